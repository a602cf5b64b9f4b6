"""What a protection run leaves on disk (every file written atomically).

    OUT/protected.ply     the protected scene: ONE standard INRIA-layout 3DGS .ply, its Gaussians in the
                          published order (adlift.protect.publish): it stands alone, nothing marks the safeguard
    OUT/safeguard.ply     the safeguard alone (only with save_safeguard; private, never publish it)
    OUT/transforms.json   the cameras used (nerfstudio layout; train/test lists = train/novel views)
    OUT/manifest.json     version, settings, instruction, editor, eta, per-view metrics, safeguard record
                          (the creator's private record)
    OUT/preview.png       raw | protected | |difference| x gain for a few training and novel views

With ``asset_format`` (``adlift protect --format``, default the input's format) the protected scene is
``OUT/protected<extension>`` in that scene format (protected.compressed.ply, protected.spz, protected.splat,
protected.sog); safeguard.ply stays a .ply. A lossy format's file is decoded again and the protection
measured on that decode (:mod:`adlift.protect.exported`): the manifest's ``export`` section.

``manifest.json`` is a :class:`~adlift.protect.manifest.Manifest` (its schema is documented there).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from adlift.attacks.losses import describe_loss
from adlift.cameras import Cameras
from adlift.editors.untrained import label_record, untrained_banner, untrained_note
from adlift.image_metrics import difference_image
from adlift.io.checksum import file_sha256
from adlift.protect.api import ProtectResult
from adlift.protect.config import ProtectConfig
from adlift.protect.manifest import (
    MANIFEST_FILE,
    CamerasInfo,
    ExportInfo,
    Manifest,
    NerfstudioInfo,
    ProtectedSceneInfo,
    RawSceneInfo,
    SafeguardInfo,
)
from adlift.protect.publish import ORDER_NAME, published_scene
from adlift.scene import GaussianScene

if TYPE_CHECKING:
    from adlift.attacks.losses import AdversarialLoss


def save_preview(
    path: Path,
    raw: torch.Tensor,  # [C, 3, H, W]
    protected: torch.Tensor,  # [C, 3, H, W]
    names: list[str],
    eta: float,
    banner: str = "",
) -> Path:
    """A sheet with one row per view: raw | protected | |difference| (eta = white)."""
    from adlift.render.images import contact_sheet, save_png, with_banner

    diff = difference_image(protected, raw, eta)
    triples = torch.stack([raw, protected, diff], dim=1).flatten(0, 1)  # [3C, 3, H, W]
    labels = [label for n in names for label in (f"{n} raw", "protected", "|diff| / eta")]
    return save_png(with_banner(contact_sheet(triples, labels, columns=3), banner), path)


def protected_file_name(asset_format: str) -> str:
    """``protected`` + the scene format's first extension: protected.ply, protected.spz, protected.sog, ..."""
    from adlift.io.formats import SCENE_FORMATS

    return "protected" + SCENE_FORMATS.get(asset_format).extensions[0]


def write_protection(
    out: Path,
    result: ProtectResult,
    *,
    raw: GaussianScene,
    raw_path: Path,
    train_cameras: Cameras,
    novel_cameras: Cameras | None,
    instruction: str,
    editor_metadata: dict,
    config: ProtectConfig,
    cameras_source: str,
    save_safeguard: bool = False,
    preview_views: int = 2,
    nerfstudio: NerfstudioInfo | None = None,
    asset_format: str = "ply",
    scene_options: dict | None = None,
    loss: "AdversarialLoss | None" = None,
    measure_export: bool = True,
) -> Manifest:
    """Write the files listed in the module docstring into ``out``; returns the manifest.

    ``nerfstudio``: the section ``ns-train adlift-protect`` adds. ``asset_format``: the scene format of
    the protected file (:func:`protected_file_name`), ``scene_options`` its write options (``spz_axes``).
    ``measure_export``: for a lossy format, decode the written file and measure the protection it keeps
    (the manifest's ``export``; the loss numbers only with ``loss``)."""
    from adlift.io.nerfstudio import write_transforms
    from adlift.io.formats import SCENE_FORMATS, read_scene, write_scene
    from adlift.protect.api import render_views

    out.mkdir(parents=True, exist_ok=True)
    note = untrained_note(editor_metadata, "protection")
    comment = f"adlift protect {config.method}, instruction {instruction!r}, eta {config.eta * 255:.3g}/255{note}"
    published = published_scene(result.protected)  # the one order every protected file is written in
    asset = protected_file_name(asset_format)
    write_scene(published, out / asset, format=asset_format, comments=[comment.replace("\n", " ")],
                **dict(scene_options or {}))
    export = None
    if measure_export and not SCENE_FORMATS.get(asset_format).lossless:
        from adlift.protect.exported import measure_export as measure

        decoded = read_scene(out / asset, **dict(scene_options or {}))
        splits = measure(decoded, published, raw, {"train": train_cameras, "novel": novel_cameras}, config, loss,
                         asset_format)  # fmt: skip
        export = ExportInfo(format=asset_format, path=asset, quantised_in_fit=config.quantise_as,
                            quantise_every=config.quantise_every if config.quantise_as else None, splits=splits)  # fmt: skip
    if save_safeguard:
        write_scene(published_scene(result.safeguard), out / "safeguard.ply", comments=["adlift safeguard Gaussians"])
    all_cams = Cameras.concat([train_cameras] + ([novel_cameras] if novel_cameras is not None else []))
    splits = {"train": list(train_cameras.names)}
    if novel_cameras is not None:
        splits["novel"] = list(novel_cameras.names)
    write_transforms(out / "transforms.json", all_cams.to("cpu"), splits)

    # Preview: the first few training and novel views.
    pick = [("train", i) for i in range(min(preview_views, len(train_cameras)))]
    if novel_cameras is not None:
        pick += [("novel", i) for i in range(min(preview_views, len(novel_cameras)))]
    cams = Cameras.concat([(train_cameras if s == "train" else novel_cameras)[[i]] for s, i in pick])
    raw_img = render_views(raw.to(result.protected.device), cams, config).cpu()
    prot_img = render_views(published, cams, config).cpu()
    banner = untrained_banner(editor_metadata, "protection")
    save_preview(out / "preview.png", raw_img, prot_img, [f"{s}:{n}" for (s, _), n in zip(pick, cams.names)],
                 config.eta, banner)  # fmt: skip

    import adlift

    manifest = Manifest(
        adlift_version=adlift.__version__,
        created=Manifest.now(),
        seconds=round(result.seconds, 3),
        raw_scene=RawSceneInfo(str(Path(raw_path).resolve()), file_sha256(raw_path), raw.num_gaussians),
        protected_scene=ProtectedSceneInfo(asset, published.num_gaussians, order=ORDER_NAME, format=asset_format),
        safeguard=SafeguardInfo(
            first=None,
            count=result.protected.num_gaussians - result.num_frozen,
            frozen=result.num_frozen,
            file="safeguard.ply" if save_safeguard else None,
            init=config.safeguard.init,
            trainable=list(config.safeguard.trainable),
            source_index_hash=hashlib.sha256(result.source_index.numpy().tobytes()).hexdigest()[:16],
        ),
        instruction=instruction,
        editor=dict(editor_metadata),
        loss=describe_loss(config.loss, config.eot),
        method=config.method,
        eta=config.eta,
        config=config.to_json(),
        cameras=CamerasInfo(
            file="transforms.json",
            source=cameras_source,
            width=train_cameras.width,
            height=train_cameras.height,
            train=list(train_cameras.names),
            novel=list(novel_cameras.names) if novel_cameras is not None else [],
        ),
        views=result.views,
        summary=result.summary,
        history=result.history,
        files={"protected": asset, "cameras": "transforms.json", "preview": "preview.png"},
        warning=label_record(editor_metadata, "protection"),
        nerfstudio=nerfstudio,
        export=export,
    )  # fmt: skip
    manifest.write(out / MANIFEST_FILE)
    return manifest
