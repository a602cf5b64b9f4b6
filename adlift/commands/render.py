"""``adlift render``: render a 3DGS .ply from a camera rig into PNGs and a contact sheet."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Optional

import torch
import tyro
from tqdm.auto import tqdm

from adlift.io.cameras import load_cameras
from adlift.io.ply import read_ply


@dataclasses.dataclass
class RenderCommand:
    """Render a 3DGS .ply from every camera of a rig: one PNG per view plus contact_sheet.png."""

    scene: tyro.conf.Positional[Path]
    """Path of the 3D Gaussian Splatting .ply to render."""

    out: Path
    """Output directory (created if needed); existing PNGs of the same names are replaced."""

    cameras: str = "orbit:8"
    """Camera file or spec: a nerfstudio transforms.json (or its directory), a COLMAP sparse
    model directory, a 3DGS cameras.json, or `orbit:N[,elev=MIN:MAX,radius=R,fov=DEG,size=WxH]`
    (N views around the scene, framed from its bounds)."""

    split: Literal["all", "train", "novel"] = "all"
    """Which views of a camera file to render (train/novel split stored with the cameras)."""

    backend: Literal["auto", "torch", "gsplat", "cuda"] = "auto"
    """Rasteriser: auto = our CUDA kernels if built, else gsplat on CUDA, else pure PyTorch."""

    device: Optional[str] = None
    """Torch device (e.g. cpu, cuda:0); default: cuda if available, else cpu."""

    width: Optional[int] = None
    """Render width in pixels (intrinsics rescaled); with only one of width/height the aspect is kept."""

    height: Optional[int] = None
    """Render height in pixels (intrinsics rescaled)."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background colour as R G B in [0, 1]."""

    sh_degree: Optional[int] = None
    """Evaluate spherical harmonics up to this degree (default: the scene's degree)."""

    def run(self) -> None:
        from adlift.render import render
        from adlift.render.images import contact_sheet, save_images, save_png

        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        scene = read_ply(self.scene).to(device)
        cameras = load_cameras(self.cameras, scene=scene, split=self.split, width=self.width, height=self.height)
        cameras = cameras.to(device)
        background = torch.tensor(self.background, dtype=scene.dtype, device=device)
        images = []
        with torch.no_grad():
            for i in tqdm(range(len(cameras)), desc=f"rendering {self.scene.name}", unit="view"):
                out = render(scene, cameras[i], backend=self.backend, background=background, sh_degree=self.sh_degree)
                images.append(out.rgb.cpu())
        rgb = torch.cat(images)
        paths = save_images(rgb, cameras.names, self.out)
        sheet_path = save_png(contact_sheet(rgb, cameras.names), self.out / "contact_sheet.png")
        print(f"wrote {len(paths)} views ({cameras.width}x{cameras.height}) and {sheet_path}")

