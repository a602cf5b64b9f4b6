#!/usr/bin/env python
"""Generate the bundled AdLift scenes (``scenes/<name>/scene.ply`` + ``transforms.json``).

    python scenes/generate.py            # (re)write every bundled scene next to this file
    python scenes/generate.py --check    # regenerate into a temp dir, compare bytes, exit 1 on mismatch
    python scenes/generate.py --out DIR  # write the scenes under DIR instead (with --check: compare DIR)
    python scenes/generate.py --only bust

Each scene is a handful of textured triangle-mesh surfaces (built here from simple parametric
shapes) turned into 3D Gaussians:

* points are sampled on the surfaces, area-weighted (optionally times a density, to put more
  Gaussians on the face), with a fixed-seed ``numpy.random.Generator``: three times too many
  candidates, thinned where they crowd most, which spreads them evenly (blue noise);
* every Gaussian is a flat disc: its local z axis is rotated onto the surface normal, its scale
  along the normal is a small fraction of the tangential scale, and the tangential scale comes
  from the distances to its nearest neighbours (``scipy.spatial.cKDTree``), so neighbouring
  discs overlap and the surface renders closed;
* colours come from scikit-image's bundled photographs and textures (public domain / CC0, see
  scenes/README.md) and are stored as the SH DC term (:meth:`GaussianScene.from_activated`);
  scenes with SH degree 1 also get a small deterministic view-dependent "sheen" term.

Determinism: all geometry and colour math is float64 numpy; the final parameters are rounded to
a grid of 2**-20 (exactly representable in float32) before they are stored as float32, so
last-bit differences of transcendental functions between CPUs or library builds do not change
the bytes written. The files carry no timestamps.

Needs the ``scenes`` extra: ``pip install -e .[scenes]`` (scipy, scikit-image).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import skimage.data
import torch
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from skimage.draw import polygon

from adlift.io.atomic import atomic_path
from adlift.cameras import Cameras, intrinsics_matrix, look_at_viewmats, orbit_cameras, split_train_novel
from adlift.io.nerfstudio import write_transforms
from adlift.io.formats import write_scene as write_scene_file
from adlift.scene import GaussianScene

SCENES_DIR = Path(__file__).resolve().parent
#: Files every scene directory holds; ``--check`` compares exactly these.
SCENE_FILES = ("scene.ply", "transforms.json")

#: Real spherical-harmonic constant of the degree-1 band (as in the INRIA 3DGS code).
SH_C1 = 0.4886025119029199
#: Parameters are rounded to multiples of this before the float32 cast (see the module docstring).
QUANTUM = 2.0**-20


# ====================================================================== small numeric helpers
def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (``e0 > e1`` gives a falling step)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def spow(x: np.ndarray, e: float) -> np.ndarray:
    """Signed power sign(x) |x|^e (superquadric building block)."""
    return np.sign(x) * np.abs(x) ** e


def mirror_wrap(t: np.ndarray, n: int) -> np.ndarray:
    """Map any coordinate into [0, n - 1] by mirrored repetition (seamless tiling)."""
    period = 2.0 * (n - 1)
    t = np.mod(t, period)
    return np.where(t > n - 1, period - t, t)


def bilinear(img: np.ndarray, col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``img`` [H, W, C] at float pixel coordinates (clamped at the border)."""
    h, w = img.shape[:2]
    col = np.clip(col, 0.0, w - 1.0)
    row = np.clip(row, 0.0, h - 1.0)
    c0 = np.minimum(np.floor(col).astype(np.int64), w - 2)
    r0 = np.minimum(np.floor(row).astype(np.int64), h - 2)
    fc = (col - c0)[:, None]
    fr = (row - r0)[:, None]
    top = img[r0, c0] * (1 - fc) + img[r0, c0 + 1] * fc
    bottom = img[r0 + 1, c0] * (1 - fc) + img[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def lerp(a, b, t: np.ndarray) -> np.ndarray:
    """Per-point linear blend of colours ``a`` and ``b`` ([3] or [n, 3]) by ``t`` [n]."""
    t = t[:, None]
    return np.asarray(a, dtype=np.float64) * (1 - t) + np.asarray(b, dtype=np.float64) * t


#: Direction towards the light baked into the bust's untextured parts (above, front, left).
LIGHT_DIR = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])


def baked_light(colour: np.ndarray, normals: np.ndarray, ambient: float = 0.62) -> np.ndarray:
    """``colour`` [n, 3] lit by a soft key light: ambient + (1 - ambient) * half-Lambert."""
    lambert = 0.5 + 0.5 * (normals @ LIGHT_DIR)
    return colour * (ambient + (1.0 - ambient) * 1.25 * lambert**1.5)[:, None]


def rgb(r: int, g: int, b: int) -> np.ndarray:
    return np.array([r, g, b], dtype=np.float64) / 255.0


def load_image(name: str) -> np.ndarray:
    """A scikit-image sample image as float64 in [0, 1]: [H, W, 3] (RGB) or [H, W] (grey)."""
    return getattr(skimage.data, name)().astype(np.float64) / 255.0


def prefilter(img: np.ndarray, samples_across: float) -> np.ndarray:
    """Blur ``img`` [H, W(, C)] for sampling at about ``samples_across`` points per image width.

    Point-sampling a sharp photo at the Gaussians' centres aliases into speckle; a Gaussian
    blur of about 0.4 sample spacings keeps the detail the Gaussians can carry and no more.
    """
    sigma = 0.4 * img.shape[1] / samples_across
    return gaussian_filter(img, (sigma, sigma) + (0,) * (img.ndim - 2))


def polygon_mask(shape: tuple[int, int], cols: list[float], rows: list[float], blur: float) -> np.ndarray:
    """A soft [H, W] mask (1 inside the polygon, blurred by ``blur`` pixels) in [0, 1]."""
    mask = np.zeros(shape, dtype=np.float64)
    rr, cc = polygon(np.asarray(rows), np.asarray(cols), shape)
    mask[rr, cc] = 1.0
    return gaussian_filter(mask, blur)


# ====================================================================== surfaces and sampling
@dataclass
class Samples:
    """Points sampled on one surface."""

    points: np.ndarray  # [n, 3]
    normals: np.ndarray  # [n, 3] unit, outward
    uv: np.ndarray  # [n, 2] the surface's own parameters (meaning depends on the surface)


@dataclass
class Surface:
    """A triangle mesh with per-vertex parameters, a Gaussian budget and a colour rule."""

    name: str
    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3] vertex indices, counter-clockwise seen from outside
    uv: np.ndarray  # [V, 2]
    count: int  # Gaussians sampled on this surface (before ``keep``)
    colour: Callable[[Samples], np.ndarray]  # -> [n, 3] in [0, 1]
    sheen: float = 0.0  # amplitude of the view-dependent term (SH degree >= 1 only)
    keep: Callable[[Samples], np.ndarray] | None = None  # optional [n] bool filter
    #: optional relative sampling density at triangle centroids (points [F, 3], uv [F, 2]) -> [F];
    #: points are drawn with probability proportional to area * density (default: area only)
    density: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def grid_surface(
    name: str,
    points: np.ndarray,  # [nu, nv, 3]
    uv: np.ndarray,  # [nu, nv, 2]
    count: int,
    colour: Callable[[Samples], np.ndarray],
    *,
    wrap_u: bool = False,
    wrap_v: bool = False,
    **kwargs,
) -> Surface:
    """Triangulate a parametric grid; outward normals along d/du x d/dv.

    With ``wrap_u`` (``wrap_v``) the last row (column) connects back to the first: a closed loop.
    """
    nu, nv = points.shape[:2]
    idx = np.arange(nu * nv).reshape(nu, nv)
    if wrap_u:
        idx = np.concatenate([idx, idx[:1]], axis=0)
    if wrap_v:
        idx = np.concatenate([idx, idx[:, :1]], axis=1)
    a = idx[:-1, :-1].ravel()
    b = idx[1:, :-1].ravel()
    c = idx[1:, 1:].ravel()
    d = idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)], axis=0)
    return Surface(name, points.reshape(-1, 3), faces, uv.reshape(-1, 2), count, colour, **kwargs)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V, 3] (unit; zero-area fans give a zero normal)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_n = np.cross(v1 - v0, v2 - v0)  # length = 2 * area
    acc = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(acc, faces[:, k], face_n)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    return acc / np.maximum(norm, 1e-300)


#: Candidates drawn per kept point before sample elimination (see :func:`sample_surface`).
OVERSAMPLE = 3


def sample_surface(surface: Surface, rng: np.random.Generator) -> Samples:
    """``surface.count`` points spread evenly over the surface, area-weighted.

    Candidates (``OVERSAMPLE`` times as many) are drawn with probability proportional to
    triangle area (times ``surface.density`` if given), stratified over the triangle list; then
    :func:`eliminate_crowded` thins them to ``surface.count``, always dropping points from the most
    crowded places. The result has the same density but no clumps and far fewer gaps than
    independent samples (blue noise), so small splats close the surface.
    """
    v, f = surface.vertices, surface.faces
    v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1)
    density = np.ones(len(f))
    if surface.density is not None:
        uv = surface.uv
        density = surface.density((v0 + v1 + v2) / 3, (uv[f[:, 0]] + uv[f[:, 1]] + uv[f[:, 2]]) / 3)
    cdf = np.cumsum(area * density)
    cdf /= cdf[-1]
    m = OVERSAMPLE * surface.count
    strata = (np.arange(m) + rng.random(m)) / m
    tri = np.minimum(np.searchsorted(cdf, strata, side="right"), len(f) - 1)
    r1, r2 = rng.random(m), rng.random(m)
    s1 = np.sqrt(r1)
    bary = np.stack([1 - s1, s1 * (1 - r2), s1 * r2], axis=1)  # uniform on the triangle

    def interp(values: np.ndarray) -> np.ndarray:
        return sum(bary[:, k : k + 1] * values[f[tri, k]] for k in range(3))

    points = interp(v)
    keep = eliminate_crowded(points, 1.0 / np.sqrt(density[tri]), surface.count)
    bary, tri, points = bary[keep], tri[keep], points[keep]
    normals = interp(vertex_normals(v, f))
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    return Samples(points, normals, interp(surface.uv))


def eliminate_crowded(points: np.ndarray, spacing: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices (ascending) of ``n_keep`` of ``points`` [m, 3], thinned where they crowd most.

    Crowding is the distance to the nearest neighbour divided by the local target ``spacing``
    [m] (relative; it carries density variations). Each round drops up to a third of the points,
    most crowded first, but never both points of a close pair, and re-measures.
    """
    alive = np.arange(len(points))
    while len(alive) > n_keep:
        dist, nn = cKDTree(points[alive]).query(points[alive], k=2)
        crowd = dist[:, 1] / spacing[alive]
        budget = min(len(alive) - n_keep, max(1, len(alive) // 3))
        drop = np.zeros(len(alive), dtype=bool)
        spared = np.zeros(len(alive), dtype=bool)
        for i in np.lexsort((alive, crowd))[: 2 * budget]:  # most crowded first, ties by index
            if budget == 0:
                break
            if not spared[i]:
                drop[i] = True
                spared[nn[i, 1]] = True  # its neighbour stays this round
                budget -= 1
        alive = alive[~drop]
    return alive


def quats_z_to(normals: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) [n, 4] of the shortest rotation taking +z onto ``normals``."""
    nx, ny, nz = normals.T
    q = np.stack([1.0 + nz, -ny, nx, np.zeros_like(nz)], axis=1)
    flip = nz < -1.0 + 1e-9  # antiparallel: half turn about x
    q[flip] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@dataclass
class SplatSettings:
    """How sampled points become Gaussians."""

    neighbours: int = 4  # nearest neighbours whose mean distance sets the tangential scale
    tangential_factor: float = 0.75  # tangential std = factor * mean neighbour distance
    normal_ratio: float = 0.1  # std along the normal = ratio * tangential std
    opacity: tuple[float, float] = (0.92, 0.98)  # uniform range of opacities


def _quantize(t: torch.Tensor) -> torch.Tensor:
    return (torch.round(t * (1.0 / QUANTUM)) * QUANTUM).to(torch.float32)


def build_gaussians(
    surfaces: list[Surface],
    *,
    seed: int,
    sh_degree: int,
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0),
    settings: SplatSettings = SplatSettings(),
) -> GaussianScene:
    """Sample every surface, size and orient the Gaussians, and pack them into a float32 scene.

    ``translate`` moves the finished scene (modelling coordinates -> world coordinates).
    """
    rng = np.random.default_rng(seed)
    parts = []
    for surface in surfaces:
        s = sample_surface(surface, rng)
        if surface.keep is not None:
            k = surface.keep(s)
            s = Samples(s.points[k], s.normals[k], s.uv[k])
        colour = np.clip(surface.colour(s), 0.0, 1.0)
        parts.append((s, colour, np.full(len(s.points), surface.sheen)))
    points = np.concatenate([p[0].points for p in parts])
    normals = np.concatenate([p[0].normals for p in parts])
    colours = np.concatenate([p[1] for p in parts])
    sheen = np.concatenate([p[2] for p in parts])
    n = len(points)

    dist, _ = cKDTree(points).query(points, k=settings.neighbours + 1)
    tangential = settings.tangential_factor * dist[:, 1:].mean(axis=1)
    median = float(np.median(tangential))
    tangential = np.clip(tangential, 0.3 * median, 3.0 * median)
    scales = np.stack([tangential, tangential, settings.normal_ratio * tangential], axis=1)
    lo, hi = settings.opacity
    opacities = lo + (hi - lo) * rng.random(n)
    if sh_degree > 0:
        # The sheen term below adds up to +sheen seen head-on (about +0.6 sheen at typical angles);
        # darken the base colour by that much so the average colour stays where it was.
        colours = np.clip(colours - 0.6 * sheen[:, None], 0.0, 1.0)

    f64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    scene = GaussianScene.from_activated(
        f64(points + np.asarray(translate, dtype=np.float64)),
        f64(colours),
        f64(scales),
        f64(opacities),
        quats=f64(quats_z_to(normals)),
        sh_degree=sh_degree,
    )
    if sh_degree > 0:
        # Degree-1 term: colour += sheen * (-dot(view_dir, normal)), view_dir = from camera to
        # Gaussian; with 3DGS's eval_sh (-C1 y sh1 + C1 z sh2 - C1 x sh3) that is
        # sh1 = a n_y, sh2 = -a n_z, sh3 = a n_x with a = sheen / C1. Slightly warm tint.
        tint = np.array([1.0, 0.95, 0.85])
        amp = (sheen / SH_C1)[:, None] * tint[None, :]  # [n, 3]
        scene.sh[:, 1] = f64(amp * normals[:, 1:2])
        scene.sh[:, 2] = f64(-amp * normals[:, 2:3])
        scene.sh[:, 3] = f64(amp * normals[:, 0:1])
    return GaussianScene(**{k: _quantize(v) for k, v in scene.tensors().items()})


# ====================================================================== camera rigs
def sweep_cameras(
    num_views: int,
    center: tuple[float, float, float],
    radius: float,
    *,
    azimuth_deg: tuple[float, float],
    elevation_deg: tuple[float, float],
    fov_deg: float,
    width: int = 256,
    height: int = 256,
    name_prefix: str = "sweep",
) -> Cameras:
    """Cameras on an arc in front of the object (the -y side), all looking at ``center``.

    Azimuth 0 is straight in front (camera on -y), positive azimuths move towards +x; the azimuth
    runs linearly over ``azimuth_deg`` and the elevation oscillates over ``elevation_deg`` twice
    along the arc (as :func:`adlift.cameras.orbit_cameras` does), so neighbouring views differ in
    both angles.
    """
    i = np.arange(num_views, dtype=np.float64)
    az = np.deg2rad(azimuth_deg[0] + (azimuth_deg[1] - azimuth_deg[0]) * i / (num_views - 1))
    lo, hi = elevation_deg
    el = np.deg2rad((lo + hi) / 2 + (hi - lo) / 2 * np.cos(4 * math.pi * i / num_views))
    dirs = np.stack([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)], axis=1)
    eyes = np.asarray(center, dtype=np.float64) + radius * dirs
    viewmats = look_at_viewmats(torch.from_numpy(eyes), torch.tensor(center, dtype=torch.float64))
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = intrinsics_matrix(f, f, width / 2, height / 2, dtype=torch.float64)
    names = [f"{name_prefix}_{k:04d}" for k in range(num_views)]
    return Cameras(viewmats.float(), K.expand(num_views, 3, 3).float().clone(), width, height, names)


# ====================================================================== scene: bust
# The face texture is the astronaut portrait (Eileen Collins, NASA, public domain). Photo pixels
# map to the head by an orthographic projection along y: column = HEAD_COL + PX_PER_UNIT * x,
# row = HEAD_ROW - PX_PER_UNIT * (z - HEAD_Z).
PX_PER_UNIT = 300.0
HEAD_COL, HEAD_ROW = 226.0, 100.0  # photo pixel at the head's centre (between the eyes)
HEAD_Z = 0.40  # world height of the head centre
HEAD_AXES = (0.25, 0.30, 0.29)  # half width (x), half depth (y), half height (z)
FACE_DENSITY = 12.0  # the face gets 1 + FACE_DENSITY times the Gaussians per area of the hair
# Outline of hair + face in the photo (column, row), clockwise from the top of the head.
HEAD_OUTLINE = [
    (226, 13), (258, 16), (282, 30), (297, 52), (303, 78), (301, 104), (293, 124), (280, 134),
    (268, 140), (263, 160), (253, 177), (238, 187), (226, 190), (212, 187), (198, 177), (190, 160),
    (186, 140), (172, 133), (160, 122), (153, 98), (154, 68), (164, 42), (183, 22), (204, 14),
]  # fmt: skip


def _photo_coords(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return HEAD_COL + PX_PER_UNIT * x, HEAD_ROW - PX_PER_UNIT * (z - HEAD_Z)


def _bump(col, row, c0, r0, sc, sr) -> np.ndarray:
    return np.exp(-0.5 * (((col - c0) / sc) ** 2 + ((row - r0) / sr) ** 2))


def _face_relief(col: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Forward displacement (world units, towards -y) of the face surface at photo pixel (col, row)."""
    # Nose: a ridge from between the eyes to the tip (row 124), widening towards the tip.
    t = np.clip((row - 94.0) / 30.0, 0.0, 1.0)
    along = np.where(row <= 124.0, t**1.6, np.exp(-0.5 * ((row - 124.0) / 4.5) ** 2))
    width = 5.0 + 5.0 * t
    nose = 0.06 * along * np.exp(-0.5 * ((col - 225.0) / width) ** 2)
    eyes = -0.018 * (_bump(col, row, 201, 101, 11, 7) + _bump(col, row, 248, 101, 11, 7))
    brow = 0.010 * _bump(col, row, 225, 88, 40, 6)
    cheeks = 0.012 * (_bump(col, row, 197, 132, 12, 12) + _bump(col, row, 255, 132, 12, 12))
    lips = 0.012 * _bump(col, row, 225, 146, 20, 6)
    chin = 0.018 * _bump(col, row, 226, 176, 16, 9)
    return nose + eyes + brow + cheeks + lips + chin


def _head_surface(count: int, photo: np.ndarray, mask: np.ndarray) -> Surface:
    ax, ay, az = HEAD_AXES
    theta = np.linspace(0.0, math.pi, 161)  # from the crown down to the chin
    phi = np.linspace(0.0, 2 * math.pi, 320, endpoint=False)
    th, ph = np.meshgrid(theta, phi, indexing="ij")  # [nu, nv]: u = theta, v = phi
    c = np.cos(th)  # vertical coordinate on the unit sphere, +1 at the crown
    # Horizontal cross-sections are superellipses (flatter face and cheeks than an ellipse);
    # the width tapers below the eyes towards the jaw, the back of the lower head less.
    p = 2.6
    sx = spow(np.cos(ph), 2 / p) * np.sin(th)
    sy = spow(np.sin(ph), 2 / p) * np.sin(th)
    ahead = smoothstep(-0.3, 0.3, -spow(np.sin(ph), 2 / p))  # 1 in front, 0 at the back
    jaw = 1.0 - (0.18 + 0.24 * ahead) * smoothstep(0.0, -0.55, c)
    depth = np.where(sy < 0, 1.0 - 0.15 * smoothstep(-0.2, -0.9, c), 1.0 - 0.15 * smoothstep(-0.1, -0.8, c))
    x = ax * jaw * sx
    y = ay * depth * sy
    z = HEAD_Z + az * c
    col, row = _photo_coords(x, z)
    front = smoothstep(0.25, 0.6, -sy)  # only the front of the head gets the face relief
    y = y - front * _face_relief(col, row)
    pts = np.stack([x, y, z], axis=-1)
    uv = np.stack([th, ph], axis=-1)

    strands = gaussian_filter(load_image("grass"), 1.5)  # grass blades stretched along the fall pass for hair
    hair_dark, hair_light = rgb(78, 54, 22), rgb(188, 156, 104)
    skin = rgb(206, 168, 142)

    def frontness(th_s: np.ndarray, ph_s: np.ndarray) -> np.ndarray:
        # -y component of the head's base shape direction: 1 straight ahead, <= 0 behind the ears.
        return -np.sin(th_s) * spow(np.sin(ph_s), 2 / p)

    def colour(s: Samples) -> np.ndarray:
        th_s, ph_s = s.uv.T
        x, _, z = s.points.T
        zrel = z - HEAD_Z
        # Hair: strands fall from the crown (texture stretched along theta), darker lower down;
        # it reaches lower at the back (a bob) than at the sides; skin below it.
        g = bilinear(strands[..., None], mirror_wrap(ph_s * 150.0, 512), mirror_wrap(th_s * 25.0, 512))[:, 0]
        hair = lerp(hair_dark, hair_light, np.clip(1.25 * g - 0.1, 0.0, 1.0))
        hair = baked_light(hair * (1.0 - 0.3 * smoothstep(0.05, -0.15, zrel))[:, None], s.normals)
        hairline = -0.12 - 0.12 * smoothstep(0.0, 0.8, np.sin(ph_s))
        base = lerp(hair, skin, smoothstep(hairline, hairline - 0.03, zrel))
        # The photo on the front, where the projection lands on the head in the photo.
        col, row = _photo_coords(x, z)
        face = bilinear(photo, col, row)
        inside = bilinear(mask[..., None], col, row)[:, 0]
        w = smoothstep(0.2, 0.5, frontness(th_s, ph_s)) * inside
        return lerp(base, face, w)

    def density(points: np.ndarray, uv: np.ndarray) -> np.ndarray:
        # Many more Gaussians on the face than on the hair, so the photo's detail survives.
        col, row = _photo_coords(points[:, 0], points[:, 2])
        r = np.hypot((col - 226.0) / 52.0, (row - 125.0) / 72.0)
        return 1.0 + FACE_DENSITY * smoothstep(1.15, 0.95, r) * smoothstep(0.1, 0.3, frontness(*uv.T))

    return grid_surface("head", pts, uv, count, colour, wrap_v=True, density=density)


TORSO_WIDTH, TORSO_DEPTH = 0.57, 0.24  # half width (x) and half depth (y) at the shoulders
TORSO_TOP, SHOULDER_Z, TORSO_BOTTOM = 0.07, -0.05, -0.44  # heights of the neck base, shoulders, cut


def _torso_surfaces(colour: Callable[[Samples], np.ndarray], base_rgb: np.ndarray) -> tuple[Surface, Surface]:
    """The torso (u = azimuth, v in [-1, 1] from the cut up to the neck) and its flat base."""
    e_dome, e_section, drop, y_off = 0.8, 0.75, 0.10, 0.02
    u = np.linspace(0.0, 2 * math.pi, 256, endpoint=False)
    v = np.linspace(-1.0, 1.0, 121)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    alpha = np.clip(vv, 0.0, 1.0) * math.pi / 2
    width = np.where(vv >= 0, np.cos(alpha) ** e_dome, 1.0 + 0.10 * vv)  # tapers to 0.9 at the cut
    z = np.where(
        vv >= 0,
        SHOULDER_Z + (TORSO_TOP - SHOULDER_Z) * np.sin(alpha) ** e_dome,
        SHOULDER_Z - vv * (TORSO_BOTTOM - SHOULDER_Z),
    )
    x = TORSO_WIDTH * width * spow(np.cos(uu), e_section)
    y = y_off + TORSO_DEPTH * width * spow(np.sin(uu), e_section)
    z = z - drop * (x / TORSO_WIDTH) ** 2 * smoothstep(-0.3, 0.0, vv)  # sloping shoulders
    torso = grid_surface(
        "torso", np.stack([x, y, z], -1), np.stack([uu, vv], -1), 8000, colour, wrap_u=True
    )
    # Base: polar grid at the cut; (u, r) order gives a downward normal.
    r = np.linspace(0.0, 1.0, 16)
    uu, rr = np.meshgrid(u[::2], r, indexing="ij")
    base_pts = np.stack(
        [
            0.9 * rr * TORSO_WIDTH * spow(np.cos(uu), e_section),
            y_off + 0.9 * rr * TORSO_DEPTH * spow(np.sin(uu), e_section),
            np.full_like(uu, TORSO_BOTTOM),
        ],
        axis=-1,
    )
    base = grid_surface(
        "base", base_pts, np.stack([uu, rr], -1), 1000, lambda s: np.tile(base_rgb, (len(s.points), 1)), wrap_u=True
    )
    return torso, base


def bust_scene() -> tuple[GaussianScene, Cameras]:
    """A head-and-shoulders bust: the astronaut's face on a sculpted head, neck, suit, collar ring."""
    photo = prefilter(load_image("astronaut"), 512 / 1.2)  # about 1.2 photo pixels per Gaussian on the face
    rows = [r for _, r in HEAD_OUTLINE]
    cols = [c for c, _ in HEAD_OUTLINE]
    mask = polygon_mask(photo.shape[:2], cols, rows, blur=2.0)
    skin, shirt = rgb(200, 160, 134), rgb(22, 21, 24)
    suit_patch = gaussian_filter(photo[385:465, 62:122], (2.5, 2.5, 0))  # orange suit fabric
    suit_patch = 0.45 * suit_patch + 0.55 * suit_patch.mean(axis=(0, 1))  # softer folds
    emblem_center, emblem_radius = (-0.27, -0.14), 0.08  # mission patch on the chest (x, z)
    photo_emblem = ((172.0, 385.0), 37.0)  # its centre (col, row) and radius in the photo

    # Neck: an elliptic cylinder from inside the torso up into the head; skin above, turtleneck below.
    neck_y, neck_r = 0.03, (0.12, 0.13)
    u = np.linspace(0.0, 2 * math.pi, 96, endpoint=False)
    zs = np.linspace(-0.10, 0.30, 40)
    uu, zz = np.meshgrid(u, zs, indexing="ij")
    neck_pts = np.stack([neck_r[0] * np.cos(uu), neck_y + neck_r[1] * np.sin(uu), zz], axis=-1)

    def neck_colour(s: Samples) -> np.ndarray:
        return baked_light(lerp(shirt, skin, smoothstep(0.11, 0.125, s.points[:, 2])), s.normals)

    neck = grid_surface("neck", neck_pts, np.stack([uu, zz], -1), 1500, neck_colour, wrap_u=True)

    # Collar ring of the suit: a torus around the base of the neck.
    ring_R, ring_r, ring_z = 0.175, 0.035, 0.07
    u = np.linspace(0.0, 2 * math.pi, 128, endpoint=False)
    v = np.linspace(0.0, 2 * math.pi, 24)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ring_pts = np.stack(
        [
            (ring_R + ring_r * np.cos(vv)) * np.cos(uu),
            neck_y + (ring_R + ring_r * np.cos(vv)) * np.sin(uu),
            ring_z + ring_r * np.sin(vv),
        ],
        axis=-1,
    )

    def ring_colour(s: Samples) -> np.ndarray:
        # Brushed metal: lighter on top, darker underneath, with faint banding around the ring.
        v = s.uv[:, 1]
        band = 0.5 + 0.5 * np.cos(12.0 * s.uv[:, 0])
        metal = lerp(rgb(70, 72, 92), rgb(185, 188, 205), 0.5 + 0.4 * np.sin(v) + 0.1 * band)
        return baked_light(metal, s.normals, ambient=0.75)

    ring = grid_surface("collar", ring_pts, np.stack([uu, vv], -1), 1800, ring_colour, wrap_u=True)

    def suit_colour(s: Samples) -> np.ndarray:
        x, y, z = s.points.T
        uc = mirror_wrap(s.uv[:, 0] * 0.45 * PX_PER_UNIT, suit_patch.shape[1])
        vr = mirror_wrap(-z * PX_PER_UNIT, suit_patch.shape[0])
        base = bilinear(suit_patch, uc, vr)
        # Mission patch: the round emblem from the photo, projected along y onto the chest.
        (pc, pr), pr_px = photo_emblem
        dx, dz = x - emblem_center[0], z - emblem_center[1]
        scale = pr_px / emblem_radius
        patch = bilinear(photo, pc + dx * scale, pr - dz * scale)
        inside = smoothstep(1.0, 0.95, np.hypot(dx, dz) / emblem_radius) * (y < 0)
        return baked_light(lerp(base, patch, inside), s.normals)

    # Shoulders and chest: a low dome (shoulders sloping away from the neck) on tapering walls,
    # closed by a flat base where the bust is cut off.
    torso, base = _torso_surfaces(suit_colour, rgb(150, 62, 35))

    head = _head_surface(14000, photo, mask)
    # Modelled with the head centre at HEAD_Z; moved down so the bust's bounding box is centred.
    shift = -0.5 * (TORSO_BOTTOM + HEAD_Z + HEAD_AXES[2])
    scene = build_gaussians([head, neck, ring, torso, base], seed=20261101, sh_degree=0, translate=(0, 0, shift))

    cams = sweep_cameras(
        32, (0.0, 0.0, 0.11 + shift), 2.3, azimuth_deg=(-80.0, 80.0), elevation_deg=(2.0, 22.0), fov_deg=40.0,
        name_prefix="bust",
    )
    return scene, cams


# ====================================================================== scene: crate
def _square_crop(img: np.ndarray, col0: int, row0: int, size: int) -> np.ndarray:
    return img[row0 : row0 + size, col0 : col0 + size]


def _wood(u_along: np.ndarray, v_across: np.ndarray, grain: np.ndarray, base=rgb(150, 104, 60)) -> np.ndarray:
    """Wood colour: a grey texture stretched along the grain, tinted brown."""
    col = mirror_wrap(u_along * 140.0, grain.shape[1])
    row = mirror_wrap(v_across * 900.0, grain.shape[0])
    g = bilinear(grain[..., None], col, row)
    return np.asarray(base)[None, :] * (0.78 + 0.45 * (g - 0.5))


def crate_scene() -> tuple[GaussianScene, Cameras]:
    """A wooden crate with a photo on each side (cat, coffee, astronaut, brick), on a patch of grass."""
    half = 0.5  # the crate is a 1 x 1 x 1 cube centred at the origin
    frame = 0.07  # width of the wooden frame around each side's picture
    grain = load_image("grass")  # its blades, stretched, pass for wood grain
    brick = np.rot90(load_image("brick"))  # courses horizontal
    mortar = smoothstep(0.35, 0.8, brick.ravel())
    brick_rgb = lerp(rgb(150, 58, 40), rgb(210, 200, 188), mortar).reshape(*brick.shape, 3)
    per_side = 5500  # Gaussians per side of the crate
    across = math.sqrt(per_side) * (1 - 2 * frame)  # Gaussians across a picture
    pictures = {
        "front": _square_crop(load_image("chelsea"), 90, 0, 300),  # cat, on -y
        "right": _square_crop(load_image("coffee"), 95, 0, 400),  # coffee cup, on +x
        "back": load_image("astronaut"),  # on +y
        "left": brick_rgb,  # brick wall, on -x
    }
    pictures = {name: prefilter(img, across) for name, img in pictures.items()}
    # Side name -> (centre, s (image right), t (image up)); s x t is the outward normal.
    sides = {
        "front": ((0, -half, 0), (1, 0, 0), (0, 0, 1)),
        "right": ((half, 0, 0), (0, 1, 0), (0, 0, 1)),
        "back": ((0, half, 0), (-1, 0, 0), (0, 0, 1)),
        "left": ((-half, 0, 0), (0, -1, 0), (0, 0, 1)),
        "top": ((0, 0, half), (1, 0, 0), (0, 1, 0)),
    }
    g = np.linspace(0.0, 1.0, 9)
    uu, vv = np.meshgrid(g, g, indexing="ij")

    def side_colour(picture: np.ndarray | None) -> Callable[[Samples], np.ndarray]:
        def colour(s: Samples) -> np.ndarray:
            u, v = s.uv.T  # in [0, 1] across the side, v up
            if picture is None:  # the lid: five planks along x with dark seams
                plank = v * 5.0
                seam = smoothstep(0.05, 0.0, np.minimum(plank % 1.0, 1.0 - plank % 1.0))
                wood = _wood(u + 0.37 * np.floor(plank), v, grain)
                return lerp(wood, rgb(60, 40, 24), 0.8 * seam)
            inner = (u - frame) / (1 - 2 * frame), (v - frame) / (1 - 2 * frame)
            h, w = picture.shape[:2]
            img = picture if picture.ndim == 3 else picture[..., None].repeat(3, -1)
            photo = bilinear(img, inner[0] * (w - 1), (1 - inner[1]) * (h - 1))
            edge = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v))
            horizontal = np.minimum(v, 1 - v) < np.minimum(u, 1 - u)
            wood = np.where(horizontal[:, None], _wood(u, v, grain), _wood(v, u + 0.5, grain))
            return lerp(wood, photo, smoothstep(frame - 0.004, frame + 0.004, edge))

        return colour

    surfaces = []
    for name, (c, s_dir, t_dir) in sides.items():
        c, s_dir, t_dir = (np.asarray(a, dtype=np.float64) for a in (c, s_dir, t_dir))
        pts = c + (2 * uu[..., None] - 1) * half * s_dir + (2 * vv[..., None] - 1) * half * t_dir
        surfaces.append(
            grid_surface(name, pts, np.stack([uu, vv], -1), per_side, side_colour(pictures.get(name)), sheen=0.06)
        )

    # Ground: a disc of grass under the crate (Gaussians hidden under the crate are dropped).
    ground_r = 1.1
    grass = load_image("grass")
    r = np.linspace(0.0, ground_r, 40)
    u = np.linspace(0.0, 2 * math.pi, 160, endpoint=False)
    rr, uu2 = np.meshgrid(r, u, indexing="ij")
    disc = np.stack([rr * np.cos(uu2), rr * np.sin(uu2), np.full_like(rr, -half)], axis=-1)
    disc = np.concatenate([disc, disc[:, :1]], axis=1)  # close the loop in u
    disc_uv = np.concatenate([np.stack([rr, uu2], -1), np.stack([rr, uu2], -1)[:, :1]], axis=1)

    def ground_colour(s: Samples) -> np.ndarray:
        x, y, _ = s.points.T
        g = bilinear(grass[..., None], mirror_wrap((x + 2) * 300.0, 512), mirror_wrap((y + 2) * 300.0, 512))[:, 0]
        edge = smoothstep(ground_r - 0.12, ground_r, np.hypot(x, y))  # dry, sandy rim
        green = lerp(rgb(38, 66, 24), rgb(150, 178, 80), g)
        return lerp(green, rgb(150, 130, 90) * (0.8 + 0.4 * g[:, None]), 0.7 * edge)

    def outside_crate(s: Samples) -> np.ndarray:
        x, y, _ = s.points.T
        return np.maximum(np.abs(x), np.abs(y)) > half - 0.02

    surfaces.append(
        grid_surface("ground", disc, disc_uv, 8000, ground_colour, sheen=0.02, keep=outside_crate)
    )
    scene = build_gaussians(surfaces, seed=20261102, sh_degree=1)
    cams = orbit_cameras(
        32, (0.0, 0.0, -0.1), 3.3, fov_deg=45.0, elevation_deg=(15.0, 40.0), azimuth_start_deg=200.0,
        name_prefix="crate",
    )
    return scene, cams


# ====================================================================== driver
#: name -> (builder, one-line description written into the .ply header).
SCENES: dict[str, tuple[Callable[[], tuple[GaussianScene, Cameras]], str]] = {
    "bust": (bust_scene, "head-and-shoulders bust with the astronaut's face (skimage.data.astronaut)"),
    "crate": (crate_scene, "wooden crate with photos (skimage chelsea, coffee, astronaut, brick) on grass"),
}


def write_scene(name: str, out_dir: Path) -> dict:
    """Build scene ``name`` and write ``out_dir/name/{scene.ply, transforms.json}``; returns a summary."""
    builder, description = SCENES[name]
    scene, cams = builder()
    train, novel = split_train_novel(cams, every=8)
    target = out_dir / name
    target.mkdir(parents=True, exist_ok=True)
    comments = [f"adlift bundled scene '{name}': {description}", "generated by scenes/generate.py"]
    write_scene_file(scene, target / "scene.ply", comments=comments)
    write_transforms(target / "transforms.json", cams, {"train": train.names, "novel": novel.names})
    return {
        "name": name,
        "num_gaussians": scene.num_gaussians,
        "sh_degree": scene.sh_degree,
        "views": (len(train), len(novel)),
        "bytes": sum((target / f).stat().st_size for f in SCENE_FILES),
    }


def check(names: list[str], root: Path = SCENES_DIR) -> int:
    """Regenerate into a temp dir and compare with the files under ``root`` byte for byte.

    Prints what differs and returns 1 on any mismatch or missing file, else prints a line and
    returns 0.
    """
    problems = []
    with tempfile.TemporaryDirectory(prefix="adlift-scenes-") as tmp:
        for name in names:
            write_scene(name, Path(tmp))
            for f in SCENE_FILES:
                fresh, bundled = Path(tmp) / name / f, Path(root) / name / f
                if not bundled.exists():
                    problems.append(f"{bundled} is missing")
                elif fresh.read_bytes() != bundled.read_bytes():
                    problems.append(f"{bundled} differs from a fresh regeneration")
    if problems:
        print("scene check FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        print("run `python scenes/generate.py` to regenerate the bundled scenes", file=sys.stderr)
        return 1
    print(f"scene check passed: {', '.join(names)} regenerate byte-identically")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="regenerate into a temp dir and compare bytes with --out's files"
    )
    parser.add_argument("--out", type=Path, default=SCENES_DIR, help="scenes root to write or check (default: scenes/)")
    parser.add_argument("--only", choices=sorted(SCENES), action="append", help="only this scene (repeatable)")
    parser.add_argument(
        "--previews", action="store_true", help="also render <scene>/preview.png (the novel views) with adlift.render"
    )
    args = parser.parse_args(argv)
    names = args.only or list(SCENES)
    torch.set_num_threads(1)  # deterministic and quick; the scenes are small
    if args.check:
        return check(names, args.out)
    for name in names:
        info = write_scene(name, args.out)
        print(
            f"{info['name']}: {info['num_gaussians']} Gaussians, SH degree {info['sh_degree']}, "
            f"{info['views'][0]} train + {info['views'][1]} novel views, {info['bytes'] / 1e6:.2f} MB "
            f"-> {args.out / name}"
        )
        if args.previews:
            print(f"  preview -> {write_preview(args.out / name)}")
    return 0


def write_preview(scene_dir: Path, size: int = 160) -> Path:
    """Render the novel views of ``scene_dir`` with the torch backend into ``preview.png`` (one row).

    Previews are pictures for people, not reference data: ``--check`` does not compare them.
    """
    from adlift.io import load_cameras, read_scene
    from adlift.render import contact_sheet, render

    scene = read_scene(scene_dir / "scene.ply")
    cams = load_cameras(scene_dir / "transforms.json", split="novel", width=size, height=size)
    with torch.no_grad():
        rgb = render(scene, cams, backend="torch", background=torch.ones(3)).rgb
    sheet = contact_sheet(rgb, cams.names, columns=len(cams))
    path = scene_dir / "preview.png"
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
