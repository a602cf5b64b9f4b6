"""splatfacto checkpoints and nerfstudio cameras as AdLift objects (no nerfstudio import).

A splatfacto checkpoint (``RUN/nerfstudio_models/step-NNNNNNNNN.ckpt``, written by ``ns-train
splatfacto``) is a ``torch.save`` dict whose ``"pipeline"`` state dict holds the Gaussians under
``_model.gauss_params.*`` (``module.``-prefixed after multi-GPU training):

========================= ========== ======================================================
key                       shape      meaning (AdLift field)
========================= ========== ======================================================
``means``                 [N, 3]     centres (``means``)
``quats``                 [N, 4]     rotations, w x y z, not normalised (``quats``)
``scales``                [N, 3]     log-scales (``log_scales``)
``opacities``             [N, 1]     opacity logits (``opacity_logits``)
``features_dc``           [N, 3]     SH DC coefficients; with ``sh_degree`` 0 the *logit of the
                                     RGB colour* instead (splatfacto renders ``sigmoid`` of it)
``features_rest``         [N, K-1, 3] the other SH coefficients, coefficient-major like ours
========================= ========== ======================================================

The Gaussians live in nerfstudio's *training frame* (the dataparser's re-oriented, re-centred,
re-scaled frame), exactly like the .ply ``ns-export gaussian-splat`` writes from them and like
the cameras of the run's datamanager.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch

from adlift.cameras import Cameras
from adlift.errors import AdLiftError, FileFormatError
from adlift.io.checkpoint import load_checkpoint
from adlift.scene import SH_C0, GaussianScene

#: Prefix of the Gaussian parameters in a splatfacto pipeline state dict.
GAUSS_PREFIX = "_model.gauss_params."

#: splatfacto parameter names.
GAUSS_KEYS = ("means", "quats", "scales", "opacities", "features_dc", "features_rest")

_STEP_FILE = re.compile(r"^step-(\d+)\.ckpt$")


def find_checkpoint(path: str | Path, step: int | None = None) -> Path:
    """The checkpoint file for ``path``: a ``.ckpt`` file, or a ``nerfstudio_models`` directory
    (its ``step-{step:09d}.ckpt``, default the latest), or a run directory containing one."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise AdLiftError(f"{path}: no such checkpoint file or directory")
    directory = path / "nerfstudio_models" if (path / "nerfstudio_models").is_dir() else path
    steps = sorted(int(m.group(1)) for f in os.listdir(directory) if (m := _STEP_FILE.match(f)))
    if not steps:
        raise AdLiftError(f"{directory}: no step-*.ckpt checkpoint here; give a nerfstudio_models directory")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise AdLiftError(f"{directory}: no checkpoint for step {step} (have {steps[0]}..{steps[-1]})")
    return directory / f"step-{step:09d}.ckpt"


def _strip_module(state: dict) -> dict:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}


def is_splatfacto_state(pipeline_state: dict) -> bool:
    """Whether a pipeline state dict holds splatfacto Gaussians."""
    state = _strip_module(pipeline_state)
    return all(GAUSS_PREFIX + k in state for k in GAUSS_KEYS)


def scene_from_splatfacto_state(pipeline_state: dict, source: str | Path = "checkpoint") -> GaussianScene:
    """The Gaussians of a splatfacto pipeline state dict as a :class:`GaussianScene` (float32, CPU)."""
    state = _strip_module(pipeline_state)
    missing = [k for k in GAUSS_KEYS if GAUSS_PREFIX + k not in state]
    if missing:
        raise FileFormatError(source, f"not a splatfacto checkpoint: no {', '.join(GAUSS_PREFIX + k for k in missing)}")
    g = {k: state[GAUSS_PREFIX + k].detach().to("cpu", torch.float32) for k in GAUSS_KEYS}
    n = g["means"].shape[0]
    dc = g["features_dc"].reshape(n, 1, 3)
    rest = g["features_rest"].reshape(n, -1, 3)
    if rest.shape[1] == 0:
        # sh_degree 0: splatfacto stores logit(rgb) and renders sigmoid(features_dc); as SH DC:
        dc = (torch.sigmoid(dc) - 0.5) / SH_C0
    k = rest.shape[1] + 1
    if math.isqrt(k) ** 2 != k or k > 16:
        raise FileFormatError(source, f"features_rest has {k - 1} coefficients per channel; expected 0, 3, 8 or 15")
    return GaussianScene(
        means=g["means"],
        quats=g["quats"],
        log_scales=g["scales"],
        opacity_logits=g["opacities"].reshape(n),
        sh=torch.cat([dc, rest], dim=1),
    )


def read_splatfacto_checkpoint(path: str | Path, step: int | None = None) -> GaussianScene:
    """Read the Gaussians of a splatfacto checkpoint (file, ``nerfstudio_models`` dir or run dir)."""
    file = find_checkpoint(path, step)
    ckpt = load_checkpoint(file, "splatfacto checkpoint")  # weights_only: pickled objects are refused unrun
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("pipeline"), dict):
        raise FileFormatError(file, "not a nerfstudio checkpoint (no 'pipeline' state dict)")
    return scene_from_splatfacto_state(ckpt["pipeline"], file)


def cameras_from_nerfstudio(
    camera_to_worlds: torch.Tensor,  # [C, 3, 4] OpenGL axes (nerfstudio)
    fx: torch.Tensor,  # [C] or [C, 1]
    fy: torch.Tensor,  # [C] or [C, 1]
    cx: torch.Tensor,  # [C] or [C, 1]
    cy: torch.Tensor,  # [C] or [C, 1]
    width: torch.Tensor | int,  # [C] / [C, 1] or one int
    height: torch.Tensor | int,
    names: list[str] | None = None,
    *,
    dataparser_transform: torch.Tensor | None = None,  # [3, 4] original -> training frame
    dataparser_scale: float = 1.0,
) -> Cameras:
    """AdLift cameras from the tensors of a nerfstudio ``Cameras`` (one image size for all).

    With ``dataparser_transform``/``dataparser_scale`` given, the poses are taken back from the
    training frame to the frame of the input data (for scenes stored in that frame).
    """
    c2w = camera_to_worlds.detach().to("cpu", torch.float64)
    c2w = c2w.reshape(-1, *c2w.shape[-2:]) if c2w.ndim >= 2 else c2w
    n = c2w.shape[0]
    if c2w.ndim != 3 or tuple(c2w.shape[1:]) not in ((3, 4), (4, 4)):
        raise AdLiftError(f"camera_to_worlds must have shape [C, 3, 4], got {list(c2w.shape)}")
    sizes = {(int(w), int(h)) for w, h in zip(_ints(width, n), _ints(height, n))}
    if len(sizes) != 1:
        raise AdLiftError(
            f"the dataset's images have {len(sizes)} different sizes {sorted(sizes)[:4]}; AdLift needs one "
            "image size (resize the images, or set the render width)"
        )
    (w, h), = sizes
    full = torch.zeros(n, 4, 4, dtype=torch.float64)
    full[:, :3, :4] = c2w[:, :3, :4]
    full[:, 3, 3] = 1.0
    if dataparser_transform is not None:
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :4] = dataparser_transform.detach().to("cpu", torch.float64)[:3, :4]
        full[:, :3, 3] /= float(dataparser_scale)
        full = torch.linalg.inv(m) @ full
    Ks = torch.zeros(n, 3, 3, dtype=torch.float64)
    Ks[:, 0, 0] = _floats(fx, n)
    Ks[:, 1, 1] = _floats(fy, n)
    Ks[:, 0, 2] = _floats(cx, n)
    Ks[:, 1, 2] = _floats(cy, n)
    Ks[:, 2, 2] = 1.0
    cams = Cameras.from_camtoworlds_opengl(full, Ks, w, h, names or [f"frame_{i:05d}" for i in range(n)])
    return cams.to(dtype=torch.float32)


def _floats(value, n: int) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t


def _ints(value, n: int) -> list[int]:
    return [int(v) for v in _floats(value, n).round().tolist()]
