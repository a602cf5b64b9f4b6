"""A tiny nerfstudio-layout dataset made from the bundled bust (for the plugin tests).

``make_dataset(out)`` writes ``out/scene.ply`` (every 4th Gaussian of scenes/bust, in the
dataset's own frame), ``out/images/*.png`` rendered from 8 of the bust's cameras at 48x48, and
``out/transforms.json`` with train (6), val and test (the same 2) file lists, which nerfstudio's
``nerfstudio-data`` parser reads. ``make_splatfacto_checkpoint`` writes the same Gaussians as a
splatfacto checkpoint (``_model.gauss_params.*``), as ``ns-train splatfacto`` would save them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
BUST = REPO / "scenes" / "bust"
SIZE = 48
SH_C0 = 0.28209479177387814
TRAIN = [0, 4, 8, 12, 16, 20]
NOVEL = [28, 30]


def make_dataset(out: Path) -> Path:
    from adlift.io.cameras import load_cameras
    from adlift.io.nerfstudio import frame_file_path, write_transforms
    from adlift.io.ply import read_ply, write_ply
    from adlift.render import render_images
    from adlift.render.images import save_images

    out.mkdir(parents=True, exist_ok=True)
    scene = read_ply(BUST / "scene.ply").subset(slice(0, None, 4))
    write_ply(scene, out / "scene.ply")
    cams = load_cameras(BUST / "transforms.json", split="all", width=SIZE, height=SIZE)
    cams = cams[TRAIN + NOVEL]
    images = render_images(scene, cams, backend="torch")
    save_images(images, cams.names, out / "images")
    train, novel = cams.names[: len(TRAIN)], cams.names[len(TRAIN) :]
    write_transforms(out / "transforms.json", cams, {"train": train, "novel": novel},
                     extra={"val_filenames": [frame_file_path(n) for n in novel]})  # fmt: skip
    doc = json.loads((out / "transforms.json").read_text())
    assert doc["val_filenames"] == doc["test_filenames"]
    return out


def make_splatfacto_checkpoint(ply: Path, out_dir: Path, step: int = 29999) -> Path:
    """A checkpoint holding ``ply``'s Gaussians as splatfacto stores them."""
    from adlift.io.ply import read_ply

    s = read_ply(ply)
    n = s.num_gaussians
    dc = s.sh[:, 0]
    if s.sh.shape[1] == 1:  # sh_degree 0: splatfacto keeps logit(rgb) in features_dc
        dc = torch.logit((SH_C0 * dc + 0.5).clamp(1e-4, 1 - 1e-4))
    pipeline = {
        "_model.gauss_params.means": s.means.clone(),
        "_model.gauss_params.scales": s.log_scales.clone(),
        "_model.gauss_params.quats": s.quats.clone(),
        "_model.gauss_params.features_dc": dc.clone(),
        "_model.gauss_params.features_rest": s.sh[:, 1:].clone(),
        "_model.gauss_params.opacities": s.opacity_logits[:, None].clone(),
        "_model.device_indicator_param": torch.empty(0),
    }
    assert pipeline["_model.gauss_params.features_rest"].shape == (n, s.sh.shape[1] - 1, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"step-{step:09d}.ckpt"
    torch.save({"step": step, "pipeline": pipeline, "optimizers": {}, "schedulers": {}, "scalers": {}}, path)
    return path
