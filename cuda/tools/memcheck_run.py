"""One small forward + backward through every kernel of the CUDA rasteriser, for compute-sanitizer:

    compute-sanitizer --tool memcheck python cuda/tools/memcheck_run.py

Plain rendering and the frozen/trainable split, two cameras, partial tiles. Exits 0 when the
outputs are finite; the sanitizer's own summary says whether memory accesses were clean.
"""

from __future__ import annotations

import sys

import torch

from adlift import GaussianScene
from adlift.cameras import orbit_cameras
from adlift.render import render


def scene(n: int, seed: int) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(
        0.6 * torch.randn(n, 3, generator=g),
        torch.randn(n, 4, generator=g),
        torch.full((n, 3), -3.0) + 0.5 * torch.randn(n, 3, generator=g),
        torch.randn(n, generator=g),
        0.3 * torch.randn(n, 16, 3, generator=g),
    ).to("cuda")


def main() -> int:
    cams = orbit_cameras(2, [0, 0, 0], 3.0, width=70, height=45).to("cuda")
    frozen, trainable = scene(3000, 0), scene(800, 1)
    params = [t.detach().requires_grad_() for t in trainable.tensors().values()]
    for kwargs in ({}, {"frozen": frozen}):
        out = render(GaussianScene(*params, check_finite=False), cams, backend="cuda", background=(0.1, 0.2, 0.3), **kwargs)
        (out.rgb.sum() + out.alpha.sum() + 0.01 * out.depth.sum()).backward()
    torch.cuda.synchronize()
    ok = all(torch.isfinite(p.grad).all() for p in params) and bool(torch.isfinite(out.rgb).all())
    print("memcheck run:", "finite" if ok else "NON-FINITE outputs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
