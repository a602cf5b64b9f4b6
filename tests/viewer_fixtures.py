"""A protect-like output directory for the viewer tests, made in a second (no protection run).

The bundled bust is the raw scene; the "protected" scene is the bust with every Gaussian's DC colour
shifted by +-6/255 (a visible-in-the-heatmap, invisible-to-the-eye difference within eta = 8/255).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from adlift.io.ply import read_ply, write_ply
from adlift.scene import SH_C0, GaussianScene

REPO = Path(__file__).resolve().parents[1]
BUST = REPO / "scenes" / "bust" / "scene.ply"
BUST_CAMS = REPO / "scenes" / "bust" / "transforms.json"
INSTRUCTION = "turn her into a clown"


def perturbed(scene: GaussianScene, amount: float = 6 / 255, seed: int = 0) -> GaussianScene:
    """``scene`` with each DC colour channel moved by +-``amount`` (random signs)."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (scene.num_gaussians, 3), generator=g).to(scene.dtype) * 2 - 1
    sh = scene.sh.clone()
    sh[:, 0] += sign * amount / SH_C0
    return GaussianScene(scene.means, scene.quats, scene.log_scales, scene.opacity_logits, sh)


def fake_protect_outdir(out: Path, *, report: bool = True) -> Path:
    """OUTDIR with protected.ply, manifest.json (naming the bust as raw), transforms.json and,
    with ``report``, evaluation/report.json with per-view metrics."""
    out.mkdir(parents=True, exist_ok=True)
    write_ply(perturbed(read_ply(BUST)), out / "protected.ply")
    shutil.copy(BUST_CAMS, out / "transforms.json")
    views = [{"name": f"bust_{i:04d}", "split": "novel" if i % 8 == 0 else "train", "linf_255": 6.0,
              "psnr": 44.0 + i / 10, "loss_raw": 1.0, "loss_protected": 0.5} for i in range(32)]  # fmt: skip
    manifest = {
        "manifest_version": 1,
        "raw_scene": {"path": str(BUST), "sha256": hashlib.sha256(BUST.read_bytes()).hexdigest()},
        "protected_scene": {"path": "protected.ply"},
        "instruction": INSTRUCTION,
        "editor": {"editor": "tiny", "model": "tiny(seed=0)", "untrained_test_model": True},
        "eta": 8 / 255,
        "config": {"background": [0.0, 0.0, 0.0]},
        "cameras": {"file": "transforms.json"},
        "views": views,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    if report:
        (out / "evaluation").mkdir(exist_ok=True)
        rep_views = [{**v, "ssim": 0.99, "clip_direction_raw": 0.2, "clip_direction_protected": 0.05,
                      "edit_deviation_psnr": 12.0} for v in views]  # fmt: skip
        rep = {"report_version": 1, "instruction": INSTRUCTION, "eta": 8 / 255, "editor": manifest["editor"],
               "sources": {"raw": str(BUST), "protected": str(out / "protected.ply"),
                           "cameras": str(out / "transforms.json"), "manifest": str(out / "manifest.json")},
               "views": rep_views}  # fmt: skip
        (out / "evaluation" / "report.json").write_text(json.dumps(rep))
    return out
