"""``adlift evaluate``: did the protection work? Invisibility, protection, robustness -> a report.

``adlift evaluate OUTDIR`` reads a directory written by ``adlift protect`` (raw scene, protected
scene, cameras, instruction, eta and editor from its manifest.json); every one of them can be
given or overridden explicitly (``--raw --protected --cameras --instruction --eta --editor``).
Writes into ``--out`` (default OUTDIR/evaluation): report.json, report.md, grid_train.png,
grid_novel.png and metrics.png (see :mod:`adlift.evaluate.report`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import torch
import tyro

from adlift.errors import AdLiftError
from adlift.io.json_safe import read_json_object

DEFAULT_PURIFY = "jpeg95,jpeg75,jpeg50,blur1.0,resize0.5,noise4"


@dataclasses.dataclass
class EvaluateCommand:
    """Evaluate a protected 3DGS scene: invisibility, protection against the editor, robustness."""

    outdir: Annotated[tyro.conf.Positional[Path | None], tyro.conf.arg(metavar="OUTDIR")] = None
    """A directory written by `adlift protect` (its manifest.json supplies what is not given)."""

    raw: Annotated[Path | None, tyro.conf.arg(metavar="PLY")] = None
    """The unprotected .ply (default: the manifest's raw scene)."""

    protected: Annotated[Path | None, tyro.conf.arg(metavar="PLY")] = None
    """The protected .ply (default: OUTDIR/protected.ply)."""

    cameras: Annotated[str | None, tyro.conf.arg(metavar="SPEC")] = None
    """Views with a train/novel split: a camera file or `orbit:N` (default: OUTDIR/transforms.json)."""

    instruction: Annotated[str | None, tyro.conf.arg(metavar="TEXT")] = None
    """The edit to test (default: the manifest's instruction)."""

    eta: Annotated[str | None, tyro.conf.arg(metavar="BUDGET")] = None
    """The protection budget, e.g. 8/255 (default: the manifest's)."""

    out: Annotated[Path | None, tyro.conf.arg(metavar="DIR")] = None
    """Output directory (default: OUTDIR/evaluation)."""

    mode: Literal["2d", "3d"] = "2d"
    """2d: InstructPix2Pix on each render; 3d: Instruct-GS2GS-style edit of both scenes, then render."""

    editor: Annotated[str | None, tyro.conf.arg(metavar="EDITOR")] = None
    """ip2p, tiny (untrained offline test model), a hub id or a local dir (default: the manifest's)."""

    clip: str = "openai/clip-vit-large-patch14"
    """CLIP for the text/directional similarities: a hub id, a local dir, tiny (untrained test model)
    or none. Missing weights are reported and the CLIP metrics marked unavailable."""

    lpips: bool = True
    """Compute LPIPS if the lpips package and its weights are available (never estimated otherwise)."""

    steps: int = 20
    """Diffusion steps per edit."""

    guidance_scale: Annotated[float | None, tyro.conf.arg(metavar="FLOAT")] = None
    """Text guidance; default 7.5 (2d) or 12.5 (3d)."""

    image_guidance_scale: float = 1.5
    """Image guidance of the edits."""

    seed: int = 0
    """Seed of the edits (raw and protected views share it)."""

    views_per_split: int = 8
    """At most this many views per split, evenly spaced (0 = all)."""

    purify: str = DEFAULT_PURIFY
    """Purifications for the robustness part, comma-separated (jpegQ, blurSIGMA, resizeS, noiseL), or none."""

    caption: Annotated[str | None, tyro.conf.arg(metavar="TEXT")] = None
    """A caption of the scene for CLIP (default "a photo"); the edited caption appends the instruction."""

    rounds_3d: int = 1
    """3d: dataset-update rounds of each scene edit."""

    gs_steps_3d: int = 200
    """3d: Gaussian optimisation steps per round."""

    width: Annotated[int | None, tyro.conf.arg(metavar="INT")] = None
    """Render width (intrinsics rescaled; default: the cameras' own size)."""

    height: Annotated[int | None, tyro.conf.arg(metavar="INT")] = None
    """Render height."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser."""

    device: Annotated[str | None, tyro.conf.arg(metavar="DEVICE")] = None
    """Torch device; default cuda if available, else cpu."""

    def _manifest(self) -> dict:
        if self.outdir is None:
            return {}
        path = self.outdir / "manifest.json"
        if not self.outdir.is_dir():
            raise AdLiftError(f"{self.outdir}: not a directory; give a directory written by `adlift protect`")
        manifest = read_json_object(path, f"is {self.outdir} a directory written by `adlift protect`?")
        if "instruction" not in manifest:
            raise AdLiftError(f"{path}: not an adlift protection manifest (no instruction)")
        return manifest

    def _raw_path(self, manifest: dict) -> Path:
        from adlift.io.checksum import file_sha256

        if self.raw is not None:
            return self.raw
        entry = manifest.get("raw_scene") or {}
        if not entry.get("path"):
            raise AdLiftError("no raw scene: give --raw RAW.ply (or a protect OUTDIR whose manifest names it)")
        recorded = Path(entry["path"])
        candidates = [recorded] if recorded.is_absolute() else [recorded, self.outdir / recorded]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise AdLiftError(f"the raw scene {recorded} named in the manifest is not found; give it with --raw")
        if entry.get("sha256") and file_sha256(found) != entry["sha256"]:
            raise AdLiftError(f"{found} changed since it was protected (sha256 differs); give the original with --raw")
        return found

    def resolve(self) -> dict:
        """Every input, from the options and the manifest; AdLiftError naming what is missing."""
        from adlift.attacks import parse_budget
        from adlift.evaluate import parse_purifications

        manifest = self._manifest()
        if self.outdir is None and (self.raw is None or self.protected is None or self.cameras is None
                                    or self.instruction is None or self.out is None):  # fmt: skip
            raise AdLiftError("without a protect OUTDIR, give --raw, --protected, --cameras, --instruction and --out")
        instruction = self.instruction if self.instruction is not None else manifest.get("instruction", "")
        if not str(instruction).strip():
            raise AdLiftError("the instruction is empty; give --instruction")
        eta = parse_budget(self.eta, "--eta") if self.eta is not None else float(manifest.get("eta", 8 / 255))
        editor = self.editor or _editor_reference(manifest.get("editor") or {}) or "ip2p"
        purifications = () if self.purify.strip().lower() in ("", "none") else tuple(parse_purifications(self.purify))
        return {
            "manifest": manifest,
            "raw": self._raw_path(manifest),
            "protected": self.protected or self.outdir / "protected.ply",
            "cameras": self.cameras or str(self.outdir / "transforms.json"),
            "instruction": str(instruction),
            "eta": eta,
            "editor": editor,
            "purifications": purifications,
            "out": self.out or self.outdir / "evaluation",
            "config": (manifest.get("config") or {}),
        }

    def run(self) -> None:
        from adlift.editors import UNTRAINED_WARNING, load_editor
        from adlift.evaluate.figures import save_grid, save_plots
        from adlift.evaluate.report import build_report, write_report
        from adlift.evaluate.run import EvaluateConfig, evaluate
        from adlift.io.cameras import load_cameras
        from adlift.io.ply import read_ply

        inputs = self.resolve()
        cfg_protect = inputs["config"]
        config = EvaluateConfig(
            mode=self.mode, eta=inputs["eta"], steps=self.steps, guidance_scale=self.guidance_scale,
            image_guidance_scale=self.image_guidance_scale, seed=self.seed, views_per_split=self.views_per_split,
            purifications=inputs["purifications"], caption=self.caption, rounds_3d=self.rounds_3d,
            gs_steps_3d=self.gs_steps_3d, background=tuple(cfg_protect.get("background", (0.0, 0.0, 0.0))),
            backend=self.backend,
        )  # fmt: skip
        config.validate()
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        raw = read_ply(inputs["raw"]).to(device)
        protected = read_ply(inputs["protected"]).to(device)
        splits = {}
        for split in ("train", "novel"):
            try:
                splits[split] = load_cameras(inputs["cameras"], scene=raw, split=split, width=self.width,
                                             height=self.height)  # fmt: skip
            except AdLiftError:
                if split == "train":
                    raise
        editor = load_editor(inputs["editor"], device=device)
        if editor.untrained:
            print(UNTRAINED_WARNING, flush=True)
        clip, clip_info = _load_clip(self.clip, device)
        lpips, lpips_info = _load_lpips(self.lpips)
        out: Path = inputs["out"]
        print(f"evaluating {inputs['protected']} against {inputs['raw']} ({config.mode}, "
              f"{', '.join(f'{len(c)} {s}' for s, c in splits.items())} views, at most {config.views_per_split or 'all'} "
              f"per split; {len(config.purifications)} purifications)", flush=True)  # fmt: skip
        result = evaluate(raw, protected, splits, inputs["instruction"], editor, config, clip=clip, lpips=lpips)

        banner = "UNTRAINED TEST MODEL (editor 'tiny'): edits are noise" if editor.untrained else ""
        files = {}
        for split, images in result.images.items():
            name = f"grid_{split}.png"
            save_grid(out / name, images, config.eta, split, banner)
            files[name] = f"{split} views: raw | protected | |diff| / eta | edit(raw) | edit(protected)"
        title = f'"{inputs["instruction"]}" ({config.mode})' + (" - untrained test models" if banner else "")
        save_plots(out / "metrics.png", result.views, result.robustness, title)
        files["metrics.png"] = "metrics per view (train vs novel) and robustness per purification"
        files["report.md"] = "this report as tables"
        sources = {"raw": str(inputs["raw"]), "protected": str(inputs["protected"]), "cameras": inputs["cameras"],
                   "manifest": str(self.outdir / "manifest.json") if self.outdir else None}  # fmt: skip
        report = build_report(result, config, instruction=inputs["instruction"], editor_metadata=editor.metadata(),
                              clip_info=clip_info, lpips_info=lpips_info, sources=sources, files=files)  # fmt: skip
        write_report(out, report)
        print(_console_summary(report))
        print(f"wrote {out / 'report.json'}, report.md, {', '.join(k for k in files if k.endswith('.png'))}")


def _editor_reference(meta: dict) -> str | None:
    """The --editor value that reloads the editor a manifest recorded."""
    if meta.get("editor") == "tiny" or meta.get("untrained_test_model"):
        return "tiny"
    return meta.get("model")


def _load_clip(reference: str, device):
    from adlift.evaluate import MissingClipError, load_clip

    if reference.strip().lower() == "none":
        return None, {"available": False, "model": None, "untrained": False, "reason": "switched off (--clip none)"}
    try:
        clip = load_clip(reference, device=device)
    except MissingClipError as e:
        print(f"CLIP metrics unavailable: {e}", flush=True)
        return None, {"available": False, "model": reference, "untrained": False, "reason": str(e)}
    meta = clip.metadata()
    return clip, {"available": True, "model": meta.get("model", reference), "untrained": bool(meta.get("untrained")),
                  "reason": None}  # fmt: skip


def _load_lpips(wanted: bool):
    from adlift.evaluate import LpipsMetric, lpips_unavailable_reason

    if not wanted:
        return None, {"available": False, "reason": "switched off (--no-lpips)"}
    metric = LpipsMetric.load()
    if metric is None:
        return None, {"available": False, "reason": lpips_unavailable_reason()}
    return metric, {"available": True, "reason": None}


def _console_summary(report: dict) -> str:
    lines = []
    for split, s in report["summary"].items():
        def f(key, fmt):
            v = s.get(key)
            return "n/a" if v is None else fmt.format(v)

        lines.append(
            f"{split:>5} ({s['views']} views): PSNR {f('psnr', '{:.1f}')} dB, SSIM {f('ssim', '{:.4f}')}, "
            f"within eta {f('within_budget', '{:.2%}')}; CLIP dir raw {f('clip_direction_raw', '{:.3f}')} -> "
            f"protected {f('clip_direction_protected', '{:.3f}')}; edit(raw) vs edit(prot) PSNR "
            f"{f('edit_deviation_psnr', '{:.1f}')} dB"
        )
    return "\n".join(lines)
