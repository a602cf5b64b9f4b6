"""Protection transfer to DGE: does a scene protected with each loss stop DGE's edit, and the 2D edit?

    OMP_NUM_THREADS=1 python benchmarks/dge_transfer.py                       # encoder and dge losses, 128^2
    OMP_NUM_THREADS=1 python benchmarks/dge_transfer.py --losses encoder,pipeline,dge
    OMP_NUM_THREADS=1 python benchmarks/dge_transfer.py --views 0 --losses encoder --out /tmp/enc-all.json

The bundled bust (``scenes/bust``, 26k Gaussians) is protected with Lifted PGD (``adlift.protect.protect``,
as ``adlift protect``: the default safeguard, eta 8/255) from ``--views`` of its 28 training views (default
10, every third: they hold the 4 training views evaluated, while DGE's edit uses all 28; a dge-loss view
costs ~38 s at 128^2 on one CPU thread) against the **mini editor** and ``--instruction``, once per loss
(``--losses``):

- ``encoder``: ``loss:encoder`` (PhotoGuard's encoder attack, VAE latent towards gray; the default);
- ``pipeline``: ``loss:pipeline``, ``--pipeline-steps`` checkpointed denoising steps of the 2D edit;
- ``dge``: ``loss:dge``, the same steps with each view denoised jointly with ``--key-views`` of DGE's key
  views under DGE's joint self-attention (:mod:`adlift.attacks.losses.dge`).

The pipeline and dge losses simulate the mini editor's guidance (3.0 text, 1.5 image). Renders are
128^2 by default: the mini editor was trained at that size, and its 2D edit of the bust fails below it
(edit success of the raw renders 11.4 dB at 64^2, 13.5 at 96^2, 17.8 at 128^2; unedited 16.9).

Each protected scene is then evaluated as ``adlift evaluate`` does (:func:`adlift.evaluate.run.evaluate`, no
purifications, no CLIP) in every ``--modes`` mode: ``dge`` (DGE-style edit of the raw and the protected
scene from all training views, ``--edit-steps`` diffusion steps and ``--dge-fit-steps`` fitting steps,
then renders) and ``2d`` (the mini editor's edit of each render), on ``--views-per-split`` training and
novel views. Reported per loss, mode and split: PSNR(protected, raw), the share of pixels within the
budget, **edit success** (PSNR of an edit to the instruction's exact answer) of the raw and the protected
scene and its **fall** (raw - protected, dB; > 0 = the protection hinders the edit), and seconds. The raw
scene's edit is the same in every row (seeded): it is redone per loss, as ``adlift evaluate`` does.

The mini editor is a model organism, not InstructPix2Pix: these numbers are never claims about the
real editor. Results: ``benchmarks/results/dge-transfer-mini-cpu.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from render import environment, write_results  # noqa: E402  (benchmarks/render.py)

from adlift.attacks import AdversarialLoss, loss_config  # noqa: E402
from adlift.editors import load_editor  # noqa: E402
from adlift.editors.dge import NoCheckpointDGEConfig  # noqa: E402
from adlift.editors.mini import MINI_EDIT_SETTINGS, MODEL_ORGANISM_NOTE  # noqa: E402
from adlift.evaluate.run import EvaluateConfig, evaluate  # noqa: E402
from adlift.io import load_cameras, read_scene  # noqa: E402
from adlift.protect import ProtectConfig, protect  # noqa: E402

RESULTS = HERE / "results"
BUST = HERE.parent / "scenes" / "bust"
LOSS_KINDS = ("encoder", "pipeline", "dge")
MODES = ("dge", "2d")
#: The evaluation summary keys reported per split.
KEYS = ("psnr", "within_budget", "edit_success_raw_psnr", "edit_success_protected_psnr", "edit_success_fall_psnr")


def loss_settings(kind: str, args) -> object:
    """The loss config of ``kind``: pipeline and dge simulate the mini editor's guidance."""
    if kind == "encoder":
        return loss_config("encoder")
    guidance = {k: MINI_EDIT_SETTINGS[k] for k in ("guidance_scale", "image_guidance_scale")}
    options = {"pipeline_steps": args.pipeline_steps, **guidance}
    if kind == "dge":
        options["key_views"] = args.key_views
    return loss_config(kind, **options)


def pick(cameras, n: int):
    """``n`` evenly spaced cameras of ``cameras`` (all for 0)."""
    if n <= 0 or n >= len(cameras):
        return cameras
    return cameras[sorted({round(i * (len(cameras) - 1) / max(1, n - 1)) for i in range(n)})]


def run(args) -> dict:
    editor = load_editor(args.editor, device="cpu")
    scene = read_scene(BUST / "scene.ply")
    splits = {s: load_cameras(BUST / "transforms.json", scene=scene, split=s, width=args.size, height=args.size)
              for s in ("train", "novel")}  # fmt: skip
    train = pick(splits["train"], args.views)
    eta = args.eta / 255
    meta = editor.metadata()
    result = {"benchmark": "dge-transfer",
              "note": MODEL_ORGANISM_NOTE if args.editor == "mini" else "",
              "editor": meta, "scene": "scenes/bust", "gaussians": scene.num_gaussians, "size": args.size,
              "instruction": args.instruction, "eta_255": args.eta,
              "views": {"protect": len(train), "dge_edit": len(splits["train"]),
                        "evaluated_per_split": args.views_per_split},
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "environment": environment(torch.device("cpu")), "rows": []}  # fmt: skip
    for kind in args.losses:
        base = ProtectConfig(eta=eta, rounds=args.rounds, pgd_steps=args.pgd_steps, fit_steps=args.fit_steps,
                             replay=args.replay, progress=False, seed=args.seed)  # fmt: skip
        cfg = dataclasses.replace(base, loss=loss_settings(kind, args))
        loss = AdversarialLoss(editor.surface, args.instruction, cfg.loss, cfg.eot)
        tic = time.perf_counter()
        protection = protect(scene, train, loss, cfg, novel_cameras=splits["novel"])
        seconds_protect = time.perf_counter() - tic
        print(f"{kind}: protected in {seconds_protect:.0f} s ({loss.config.describe()}); "
              f"{ {s: round(v['loss_reduction'], 5) for s, v in protection.summary.items() if isinstance(v, dict)} }",
              flush=True)  # fmt: skip
        for mode in args.modes:
            ecfg = EvaluateConfig(mode=mode, eta=eta, steps=args.edit_steps, seed=args.seed,
                                  views_per_split=args.views_per_split, purifications=(),
                                  dge=NoCheckpointDGEConfig(fit_steps=args.dge_fit_steps), progress=False)  # fmt: skip
            tic = time.perf_counter()
            ev = evaluate(scene, protection.protected, splits, args.instruction, editor, ecfg)
            seconds = time.perf_counter() - tic
            row = {"loss": kind, "loss_describe": loss.config.describe(), "mode": mode,
                   "seconds_protect": round(seconds_protect, 1), "seconds_evaluate": round(seconds, 1),
                   "protection": protection.summary, "edit_success": ev.edit_success,
                   "summary": {s: {k: v.get(k) for k in ("views", *KEYS)} for s, v in ev.summary.items()}}  # fmt: skip
            result["rows"].append(row)
            falls = {s: round(v["edit_success_fall_psnr"], 3) for s, v in row["summary"].items()
                     if v.get("edit_success_fall_psnr") is not None}  # fmt: skip
            print(f"{kind} / {mode}: evaluated in {seconds:.0f} s; edit success fall (dB) {falls}", flush=True)
    return result


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(result: dict) -> str:
    """One line per loss, mode and split."""
    lines = [f"bust ({result['gaussians']} Gaussians) at {result['size']}^2, \"{result['instruction']}\", eta "
             f"{result['eta_255']:g}/255, {result['editor'].get('editor', result['settings']['editor'])} editor"
             + (" (mini: a model organism, not InstructPix2Pix)" if result["note"] else "")
             + f"; protected from {result['views']['protect']} training views, evaluated on "
             f"{result['views']['evaluated_per_split']} views per split",
             "",
             "| loss | edit | split | PSNR prot vs raw | within budget | edit success raw dB | prot dB | fall dB "
             "| protect s | evaluate s |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in result["rows"]:
        for split, s in r["summary"].items():
            within = None if s["within_budget"] is None else 100 * s["within_budget"]
            lines.append(f"| {r['loss']} | {r['mode']} | {split} | {_num(s['psnr'], '.2f')} | {_num(within, '.2f')}% | "
                         f"{_num(s['edit_success_raw_psnr'], '.2f')} | {_num(s['edit_success_protected_psnr'], '.2f')} "
                         f"| {_num(s['edit_success_fall_psnr'], '+.2f')} | {r['seconds_protect']:.0f} | "
                         f"{r['seconds_evaluate']:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--editor", default="mini", help="mini (trained model organism; edit success needs it), tiny, ...")
    ap.add_argument("--instruction", default="make it gold", help="one of the mini editor's instructions")
    ap.add_argument("--losses", default="encoder,dge", help=f"comma-separated, of {', '.join(LOSS_KINDS)}")
    ap.add_argument("--modes", default="dge,2d", help=f"comma-separated evaluation modes, of {', '.join(MODES)}")
    ap.add_argument("--size", type=int, default=128, help="render width = height (the mini editor's 2D edit needs 128)")
    ap.add_argument("--views", type=int, default=10,
                    help="training views protected from, evenly spaced (10: every third, which holds the 4 evaluated "
                         "training views; 0 = all 28)")
    ap.add_argument("--eta", type=float, default=8.0, help="L-infinity budget in 1/255")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pgd-steps", type=int, default=5)
    ap.add_argument("--fit-steps", type=int, default=4)
    ap.add_argument("--replay", type=int, default=1)
    ap.add_argument("--pipeline-steps", type=int, default=2, help="pipeline/dge losses: denoising steps")
    ap.add_argument("--key-views", type=int, default=2, help="dge loss: DGE key views each image attends to")
    ap.add_argument("--edit-steps", type=int, default=10, help="diffusion steps of the evaluation's edits")
    ap.add_argument("--dge-fit-steps", type=int, default=300, help="fitting steps of the evaluation's DGE edit")
    ap.add_argument("--views-per-split", type=int, default=4, help="evaluated views per split (0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    ap.add_argument("--out", type=Path, default=None, help="default: results/dge-transfer-<editor>-cpu.json")
    args = ap.parse_args(argv)
    args.losses = [k for k in args.losses.split(",") if k]
    args.modes = [m for m in args.modes.split(",") if m]
    for k in args.losses:
        if k not in LOSS_KINDS:
            ap.error(f"unknown loss {k!r}; choose from {', '.join(LOSS_KINDS)}")
    for m in args.modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tic = time.perf_counter()
    result = run(args)
    result["seconds_total"] = round(time.perf_counter() - tic, 1)
    out = args.out or RESULTS / f"dge-transfer-{args.editor}-cpu.json"
    write_results(out, result)
    print(markdown(result))
    print(f"\nwrote {out} ({result['seconds_total']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
