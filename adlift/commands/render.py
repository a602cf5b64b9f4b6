"""``adlift render``: render a scene file from a camera rig into PNGs and a contact sheet.

Size, rasteriser, device and background are the shared
:class:`~adlift.render.options.RenderOptions` (``--width``, ``--backend``, ...), nested without a
prefix so the option names and help text are written once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal, Optional

import torch
import tyro
from tqdm.auto import tqdm

from adlift.io.cameras import load_cameras
from adlift.io.formats import read_scene
from adlift.io.spz import SpzAxes
from adlift.render.options import RenderOptions


@dataclasses.dataclass
class RenderCommand:
    """Render a 3DGS scene from every camera of a rig: one PNG per view plus contact_sheet.png."""

    scene: tyro.conf.Positional[Path]
    """Path of the 3D Gaussian Splatting scene to render (.ply, .compressed.ply, .spz, .splat, .sog, meta.json)."""

    out: Path
    """Output directory (created if needed); existing PNGs of the same names are replaced."""

    cameras: str = "orbit:8"
    """Camera file or spec: a nerfstudio transforms.json (or its directory), a COLMAP sparse
    model directory, a 3DGS cameras.json, or `orbit:N[,elev=MIN:MAX,radius=R,fov=DEG,size=WxH]`
    (N views around the scene, framed from its bounds)."""

    split: Literal["all", "train", "novel"] = "all"
    """Which views of a camera file to render (train/novel split stored with the cameras)."""

    render: Annotated[RenderOptions, tyro.conf.arg(name="")] = dataclasses.field(default_factory=RenderOptions)
    """Render size, rasteriser, device and background."""

    sh_degree: Optional[int] = None
    """Evaluate spherical harmonics up to this degree (default: the scene's degree)."""

    spz_axes: SpzAxes = None
    """Axes of .spz files: rub (the SPZ spec, Niantic's and splat-transform's convention: y and z
    flipped against the .ply) or raw (axes as stored, like gaussforge and gsply). Default:
    $ADLIFT_SPZ_AXES, else rub."""

    def run(self) -> None:
        from adlift.render import render
        from adlift.render.images import contact_sheet, save_images, save_png

        self.render.validate()
        device = self.render.torch_device()
        scene = read_scene(self.scene, spz_axes=self.spz_axes).to(device)
        cameras = load_cameras(
            self.cameras, scene=scene, split=self.split, width=self.render.width, height=self.render.height
        ).to(device)
        background = torch.tensor(self.render.background, dtype=scene.dtype, device=device)
        images = []
        with torch.no_grad():
            for i in tqdm(range(len(cameras)), desc=f"rendering {self.scene.name}", unit="view"):
                out = render(
                    scene, cameras[i], backend=self.render.backend, background=background, sh_degree=self.sh_degree
                )
                images.append(out.rgb.cpu())
        rgb = torch.cat(images)
        paths = save_images(rgb, cameras.names, self.out)
        sheet_path = save_png(contact_sheet(rgb, cameras.names), self.out / "contact_sheet.png")
        print(f"wrote {len(paths)} views ({cameras.width}x{cameras.height}) and {sheet_path}")
