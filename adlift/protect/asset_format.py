"""Protecting for the file the asset will be published in.

What a scene format cannot hold is settled before the fit, so writing the file does not drop the
protection (docs/FORMATS.md): a format with fewer SH bands than the scene (``.splat``: degree 0) gets the
scene protected truncated to what the file holds, and a lossy format is fitted with its own quantiser in
the loop (``ProtectConfig.quantise_as``). ``adlift protect --format`` and ``ns-train adlift-protect
--pipeline.model.format`` both go through :func:`prepare_for_format`.
"""

from __future__ import annotations

import dataclasses

from adlift.io.formats import SCENE_FORMATS
from adlift.protect.config import ProtectConfig
from adlift.scene import GaussianScene


def prepare_for_format(
    scene: GaussianScene, config: ProtectConfig, asset_format: str, *, quantise: bool = True,
    options: dict | None = None,
) -> tuple[GaussianScene, ProtectConfig, list[str]]:  # fmt: skip
    """(the scene to protect, the config to protect it with, lines saying what changed) for an asset
    written as ``asset_format`` with write ``options`` (``spz_axes``; None values: the defaults);
    ``quantise=False`` fits in float32 and lets the writer quantise."""
    fmt = SCENE_FORMATS.get(asset_format)
    notes: list[str] = []
    if scene.sh_degree > fmt.max_sh_degree:
        notes.append(f"{asset_format} holds SH degree {fmt.max_sh_degree} only: protecting the scene with its SH "
                     f"truncated to degree {fmt.max_sh_degree} (from {scene.sh_degree}), the asset as that file shows it")  # fmt: skip
        scene = scene.with_sh_degree(fmt.max_sh_degree)
    if quantise and not fmt.lossless:
        given = tuple(sorted((k, str(v)) for k, v in (options or {}).items() if v is not None and k in fmt.options))
        config = dataclasses.replace(config, quantise_as=asset_format, quantise_options=given)
        notes.append(f"fitting with the {asset_format} quantiser in the loop (the written file's values; codec round "
                     f"trip every {config.quantise_every} optimiser steps)")  # fmt: skip
    return scene, config, notes
