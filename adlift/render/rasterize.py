"""Tile-based front-to-back alpha compositing in vectorised PyTorch, with a hand-written backward.

Semantics are gsplat's ``rasterize_to_pixels`` (classic mode), pixel by pixel:

* pixel (i, j) is sampled at (i + 0.5, j + 0.5); ``sigma = 0.5 d^T Sigma_2d^-1 d`` with
  ``d = mean2d - pixel``;
* ``alpha = min(0.999, opacity * exp(-sigma))``; Gaussians with ``alpha < 1/255`` are skipped;
* Gaussians are visited front to back (depth order); the Gaussian that would bring the
  transmittance to ``T * (1 - alpha) <= 1e-4`` is *not* composited and ends the pixel;
* ``out = sum_k alpha_k T_k f_k`` for every feature channel, plus the accumulated alpha
  ``1 - T_final``.

One deviation, on a measure-zero set: gsplat also skips a Gaussian where rounding makes
``sigma < 0`` (only possible within rounding error of its centre); here such a pixel gets
``alpha = min(0.999, opacity * exp(-sigma))`` like its neighbours.

How it is vectorised
--------------------
Every (camera, Gaussian) pair is one *row* ``(mean_x, mean_y, conic_a, conic_b, conic_c,
log_opacity, features...)``.  Rows are intersected with square tiles (exact opacity-aware boxes,
so the tile size never changes the image) and sorted by (camera, tile, depth).  Each tile's list
is cut into *slabs* of ``slab`` consecutive Gaussians; slab ``s`` of all live tiles is evaluated
as padded [T, slab, tile^2] batches of at most ``chunk_elems`` elements:

* ``log alpha = log(opacity) - sigma`` is a quadratic in the tile-local pixel offsets, so it is one
  matrix product of per-(tile, Gaussian) coefficients [T, slab, 6] with a fixed basis
  (1, u, v, u^2, uv, v^2) [6, tile^2];
* transmittance is a ``cumprod`` along the slab, seeded with the transmittance carried from the
  previous slab; tiles whose pixels have all terminated drop out (early termination).

The backward pass recomputes each slab (nothing of size [T, slab, tile^2] is kept) and walks the
slabs back to front carrying the per-pixel suffix ``sum_{j>k} w_j <g, f_j>`` as gsplat's CUDA
backward does; gradients w.r.t. the rows are accumulated with ``index_add_``.  Between forward and
backward only the transmittance at each slab start ([T, tile^2] per slab) is stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch
import torch.nn.functional as F

from adlift.render.projection import ALPHA_THRESHOLD

ALPHA_MAX = 0.999  #: alpha clamp (gsplat; the INRIA CUDA code uses 0.99)
T_EPS = 1e-4  #: transmittance termination threshold
ROW_GEOM = 6  #: leading row columns: mean x, mean y, conic a, b, c, log opacity


@dataclasses.dataclass
class RasterSettings:
    """Tuning knobs of the torch rasteriser.  Images do not depend on them (up to rounding)."""

    tile: int = 8
    """Tile edge in pixels.  Smaller tiles waste fewer evaluations on pixels a Gaussian misses,
    larger ones pad slabs less.  8 measured fastest on CPU (gsplat's CUDA kernels use 16)."""
    slab: int | None = None
    """Gaussians per tile evaluated together; also the granularity of early termination.  None:
    automatic, enough to fill a chunk with the tiles that have work (32 .. 512, a power of two).
    Few tiles (small images) with long lists then take a few big steps instead of hundreds of
    tiny ones: 3-4x faster at 32-64 px wide renders of a 50k-Gaussian scene on CPU."""
    chunk_elems: int | None = None
    """Upper bound on T * slab * tile^2 per batched evaluation: bounds the working memory
    (about 12 float tensors of this size live at once).  None: 2^18 on CPU (cache-sized, measured
    fastest), 2^24 on GPUs (fewer launches and host syncs)."""
    threads: int | None = None
    """CPU threads for the compositing loops (None: torch's global setting).  The loops issue
    many small ops; on a machine shared with other busy processes, 1 thread avoids OpenMP
    barrier stalls that were measured to slow 2 threads down ~10x (see benchmarks/README.md)."""


@dataclasses.dataclass
class TilePlan:
    """Intersections of screen-space Gaussians with tiles, sorted by (image, tile, depth)."""

    gauss_ids: torch.Tensor  # [M] int64 row index of each intersection
    tile_start: torch.Tensor  # [num_tiles] int64 first intersection of each tile
    tile_count: torch.Tensor  # [num_tiles] int64 intersections per tile
    num_images: int
    width: int
    height: int
    tile: int
    tiles_x: int
    tiles_y: int

    @property
    def num_tiles(self) -> int:
        return self.num_images * self.tiles_x * self.tiles_y

    @property
    def num_intersections(self) -> int:
        return self.gauss_ids.shape[0]


@torch.no_grad()
def intersect_tiles(
    rows: torch.Tensor,  # [P, >= 6] mean x, mean y, conic a, b, c, log opacity, ...
    radii: torch.Tensor,  # [P, 2] int, > 0
    depths: torch.Tensor,  # [P]
    image_ids: torch.Tensor,  # [P] int64
    num_images: int,
    width: int,
    height: int,
    tile: int = 8,
) -> TilePlan:
    """All (tile, Gaussian) pairs that can matter, sorted by image, tile, then depth.

    Candidates are the tiles of gsplat's boxes (``isect_tiles``: tiles ``floor((m - r) / t) ..
    ceil((m + r) / t)``, exclusive end, clamped to the grid); a candidate is dropped when no pixel
    centre of the tile can reach alpha >= 1/255 (:func:`tile_min_sigma`), which changes no pixel
    but saves work on elongated Gaussians.  Depth ties keep the input order (stable sorts).
    """
    device = rows.device
    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    m = rows[:, 0:2].to(torch.float32) / tile  # [P, 2] in tile units
    r = radii.to(torch.float32) / tile
    grid = torch.tensor([tiles_x, tiles_y], dtype=torch.float32, device=device)
    lo = torch.minimum(torch.floor(m - r).clamp_min(0), grid).to(torch.int64)  # [P, 2]
    hi = torch.minimum(torch.ceil(m + r).clamp_min(0), grid).to(torch.int64)
    extent = (hi - lo).clamp_min(0)  # [P, 2]

    # (index_select rather than x[idx] throughout: several times faster on CPU)
    order = torch.argsort(depths, stable=True)  # [P] front to back
    extent = extent.index_select(0, order)  # [P, 2] in depth order
    lo = lo.index_select(0, order)
    ex = extent[:, 0].contiguous()  # [P] box width in tiles
    counts = ex * extent[:, 1]  # [P]
    total = int(counts.sum())
    rep = torch.repeat_interleave(torch.arange(order.shape[0], device=device), counts)  # [M'] depth-order slot
    local = torch.arange(total, device=device) - (torch.cumsum(counts, 0) - counts).index_select(0, rep)  # [M']
    ex_r = ex.index_select(0, rep)
    # row in box = floor(local / ex); (local + 0.5) / ex is never within 0.5 / ex of an integer,
    # so float64 division is exact here and much faster than integer division.
    row = torch.floor((local.to(torch.float64) + 0.5) / ex_r.to(torch.float64)).to(torch.int64)
    col = local - row * ex_r
    g = order.index_select(0, rep)  # [M'] row index
    tx = lo[:, 0].contiguous().index_select(0, rep) + col  # [M']
    ty = lo[:, 1].contiguous().index_select(0, rep) + row
    # Drop candidates where the Gaussian stays below 1/255 on every pixel centre of the tile
    # (only Gaussians whose box spans several tiles can miss one).
    multi = torch.nonzero(counts.index_select(0, rep) > 1).flatten()  # [K] candidates to test
    # float64: the quadratic form of a very elongated Gaussian cancels large terms.
    geom = rows[:, :6].T.to(torch.float64).contiguous().index_select(1, g.index_select(0, multi))  # [6, K]
    x0 = tx.index_select(0, multi).to(torch.float64) * tile + 0.5
    y0 = ty.index_select(0, multi).to(torch.float64) * tile + 0.5
    min_sigma = tile_min_sigma(geom[0], geom[1], geom[2], geom[3], geom[4], x0, x0 + (tile - 1), y0, y0 + (tile - 1))
    reach = geom[5] + math.log(1.0 / ALPHA_THRESHOLD) + 1e-3  # log(255 opacity) + rounding margin
    keep = torch.ones_like(g, dtype=torch.bool)
    keep[multi] = min_sigma <= reach
    keep = torch.nonzero(keep).flatten()
    g, tx, ty = g.index_select(0, keep), tx.index_select(0, keep), ty.index_select(0, keep)

    tile_ids = (image_ids.index_select(0, g) * (tiles_x * tiles_y) + ty * tiles_x + tx).to(torch.int32)  # [M]
    tile_ids, perm = torch.sort(tile_ids, stable=True)  # by tile; depth order kept within a tile
    tile_count = torch.bincount(tile_ids, minlength=num_images * tiles_x * tiles_y)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return TilePlan(g.index_select(0, perm), tile_start, tile_count, num_images, width, height, tile, tiles_x, tiles_y)


def tile_min_sigma(mx, my, a, b, c, x0, x1, y0, y1) -> torch.Tensor:
    """min over the rectangle [x0, x1] x [y0, y1] of ``sigma = 0.5 (a dx^2 + 2 b dx dy + c dy^2)``.

    All arguments are [K] tensors; ``(dx, dy) = mean - p``.  0 when the mean lies inside.  Otherwise
    the minimum of the convex quadratic lies on a face that faces the mean (a KKT argument), so
    it is the smaller of the 1D minima on the facing vertical and horizontal edges (each a
    closed-form 1D quadratic minimiser clamped to the edge).  Every candidate point lies in the
    rectangle, so the result is never below the true minimum.
    """
    dx = mx - torch.where(mx < x0, x0, x1)  # facing vertical edge: dx fixed
    dy = torch.minimum(torch.maximum(-b * dx / c, my - y1), my - y0)
    best = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    dy = my - torch.where(my < y0, y0, y1)  # facing horizontal edge: dy fixed
    dx = torch.minimum(torch.maximum(-b * dy / a, mx - x1), mx - x0)
    best = torch.minimum(best, 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy)
    inside = (mx >= x0) & (mx <= x1) & (my >= y0) & (my <= y1)
    return best.masked_fill_(inside, 0.0)


def pixel_basis(tile: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Tile-local quadratic basis [6, tile^2]: (1, u, v, u^2, uv, v^2) at each pixel centre.

    ``u, v`` are the pixel-centre offsets from the tile centre (-3.5 .. 3.5 for 8 px tiles),
    pixels in row-major order.
    """
    c = torch.arange(tile, dtype=torch.float64) + 0.5 - tile / 2
    v, u = torch.meshgrid(c, c, indexing="ij")  # v: row offset, u: column offset
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack([torch.ones_like(u), u, v, u * u, u * v, v * v]).to(dtype=dtype, device=device)


def tile_centres(plan: TilePlan, dtype, device) -> torch.Tensor:
    """Pixel coordinates [num_tiles, 2] of every tile's centre (all images)."""
    t = plan.tile
    ty, tx = torch.meshgrid(torch.arange(plan.tiles_y), torch.arange(plan.tiles_x), indexing="ij")
    centres = torch.stack([tx.reshape(-1), ty.reshape(-1)], dim=-1) * t + t / 2  # [tiles_per_image, 2]
    return centres.repeat(plan.num_images, 1).to(dtype=dtype, device=device)


def log_alpha_coeffs(geom: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Coefficients [..., 6] with ``coeffs . (1, u, v, u^2, uv, v^2) = log(opacity) - sigma(u, v)``.

    geom [..., 6]: (mean x, mean y, conic a, b, c, log opacity); centres [..., 2] broadcastable:
    the tile centre, origin of the tile-local offsets (u, v).  ``sigma = 0.5 a dx^2 + b dx dy +
    0.5 c dy^2`` with ``(dx, dy) = mean - pixel``.
    """
    mx, my = (geom[..., 0:2] - centres).unbind(-1)
    a, b, c, logop = geom[..., 2], geom[..., 3], geom[..., 4], geom[..., 5]
    amx_bmy = a * mx + b * my
    bmx_cmy = b * mx + c * my
    return torch.stack(
        [logop - 0.5 * (mx * amx_bmy + my * bmx_cmy), amx_bmy, bmx_cmy, -0.5 * a, -b, -0.5 * c], dim=-1
    )


def log_alpha_coeffs_vjp(geom: torch.Tensor, centres: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Vector-Jacobian product of :func:`log_alpha_coeffs`: grad [..., 6] -> d geom [..., 6]."""
    mx, my = (geom[..., 0:2] - centres).unbind(-1)
    a, b, c = geom[..., 2], geom[..., 3], geom[..., 4]
    g0, g1, g2, g3, g4, g5 = grad.unbind(-1)
    return torch.stack(
        [
            g1 * a + g2 * b - g0 * (a * mx + b * my),  # d / d mean x
            g1 * b + g2 * c - g0 * (b * mx + c * my),  # d / d mean y
            g1 * mx - 0.5 * (g0 * mx * mx + g3),  # d / d a
            g1 * my + g2 * mx - g0 * mx * my - g4,  # d / d b
            g2 * my - 0.5 * (g0 * my * my + g5),  # d / d c
            g0,  # d / d log opacity
        ],
        dim=-1,
    )


# ---------------------------------------------------------------------------------------------
# The compositing kernel, evaluated chunk by chunk.


def auto_slab(plan: TilePlan, chunk_elems: int, lo: int = 32, hi: int = 512) -> int:
    """Largest power of two in [lo, hi] with (tiles with work) x slab x tile^2 <= chunk_elems."""
    busy = max(1, int((plan.tile_count > 0).sum()))
    fit = chunk_elems // (busy * plan.tile * plan.tile)
    slab = lo
    while slab * 2 <= min(fit, hi):
        slab *= 2
    return slab


class _Kernel:
    """Constants and per-chunk steps shared by forward and backward."""

    def __init__(self, rows: torch.Tensor, plan: TilePlan, settings: RasterSettings):
        dtype, device = rows.dtype, rows.device
        self.plan = plan
        self.pix = plan.tile * plan.tile
        chunk = settings.chunk_elems or (1 << 18 if device.type == "cpu" else 1 << 24)
        self.slab = settings.slab or auto_slab(plan, chunk)
        self.per_chunk = max(1, chunk // (self.slab * self.pix))
        self.basis = pixel_basis(plan.tile, dtype, device)  # [6, pix]
        self.basis_t = self.basis.T.contiguous()  # [pix, 6]
        self.centres = tile_centres(plan, dtype, device)  # [tiles, 2]
        # Intersection -> row, padded with a sentinel row (index P) for slab padding.
        self.sentinel = rows.shape[0]
        self.isect_rows = torch.cat([plan.gauss_ids, plan.gauss_ids.new_full((1,), self.sentinel)])
        self.isect_pad = plan.num_intersections  # points at the sentinel entry above
        # alpha >= 1/255  <=>  alpha > the largest float below 1/255 (threshold keeps x > t)
        th = torch.tensor(ALPHA_THRESHOLD, dtype=dtype)
        self.alpha_floor = float(torch.nextafter(th, torch.zeros_like(th)))
        self.log_alpha_max = math.log(ALPHA_MAX)
        self.log_clamp_margin = math.log(ALPHA_MAX) - 1e-3  # rows above may reach the clamp

    @staticmethod
    def pad_rows(rows: torch.Tensor) -> torch.Tensor:
        """[P + 1, R + 1]: rows with a column of ones (the alpha channel rides along as a feature
        of 1) and a sentinel row for slab padding whose log-opacity -1e4 makes its alpha 0."""
        sentinel = rows.new_zeros(1, rows.shape[1])
        sentinel[0, 5] = -1e4
        sentinel[0, 2] = sentinel[0, 4] = 1.0
        padded = torch.cat([rows, sentinel])
        return torch.cat([padded, torch.ones_like(padded[:, :1])], dim=1)

    def row_index(self, tiles: torch.Tensor, s: int) -> torch.Tensor:
        """Row indices [T, slab] of slab ``s`` of ``tiles`` (padding -> sentinel row)."""
        plan = self.plan
        offs = torch.arange(s * self.slab, (s + 1) * self.slab, device=tiles.device)  # [slab]
        isect = plan.tile_start.index_select(0, tiles)[:, None] + offs  # [T, slab]
        isect = torch.where(offs < plan.tile_count.index_select(0, tiles)[:, None], isect, self.isect_pad)
        return self.isect_rows.index_select(0, isect.reshape(-1)).view(isect.shape)

    def alpha(self, lcoef: torch.Tensor, clampable: bool):
        """alpha [T, S, pix] (clamped to 0.999, zero below 1/255) and, if ``clampable``, the
        boolean [T, S, pix] of entries below the clamp (None otherwise)."""
        la = torch.matmul(lcoef, self.basis)  # [T, S, pix] log(opacity) - sigma
        below = la < self.log_alpha_max if clampable else None
        # Lower clamp: exp() is ~10x slower deep in its underflow range; e^-30 << 1/255 anyway.
        la.clamp_(-30.0, self.log_alpha_max)
        return F.threshold_(la.exp_(), self.alpha_floor, 0.0), below

    @staticmethod
    def transmittance(alpha: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        """[T, S+1, pix]: transmittance before each Gaussian of the slab, then after the last.

        A sequential product seeded with t_prev [T, pix], exactly like the per-pixel loop.
        """
        t, s, p = alpha.shape
        trans = torch.empty(t, s + 1, p, dtype=alpha.dtype, device=alpha.device)
        trans[:, 0] = t_prev
        torch.sub(1.0, alpha, out=trans[:, 1:])
        return trans.cumprod_(dim=1)

    @staticmethod
    def weights(trans: torch.Tensor, t_prev: torch.Tensor) -> torch.Tensor:
        """Blend weights w_k = T_k alpha_k [T, S, pix], zero from the terminating Gaussian on.

        Termination is exclusive: Gaussian k is composited iff T_{k+1} > 1e-4.  Where no pixel of
        the chunk gets there, w = T_k - T_{k+1}.  Otherwise, with T' = T zeroed where T <= 1e-4,
        ``w = min(T'_k - T'_{k+1}, 1000 T'_{k+1})``: for a composited Gaussian
        ``T_k - T_{k+1} = alpha T_k <= 999 T_{k+1}`` so the min changes nothing, and from the
        terminating Gaussian on T'_{k+1} = 0.  (Boolean masks are slow on CPU.)
        """
        if not bool(((trans[:, -1] <= T_EPS) & (t_prev > 0)).any()):
            return trans[:, :-1] - trans[:, 1:]
        tt = F.threshold(trans, T_EPS, 0.0)
        return torch.minimum(tt[:, :-1] - tt[:, 1:], tt[:, 1:] * (1.0 / (1.0 - ALPHA_MAX) + 1.0))

    def chunk_inputs(self, rows_p: torch.Tensor, tiles: torch.Tensor, s: int):
        """(row ids [T, S], geometry [T, S, 6], tile centres [T, 1, 2], features + 1 [T, S, F + 1])."""
        ids = self.row_index(tiles, s)
        r = rows_p.index_select(0, ids.reshape(-1)).view(ids.shape + rows_p.shape[1:])  # [T, S, R + 1]
        centre = self.centres.index_select(0, tiles)[:, None]  # [T, 1, 2]
        return ids, r[..., :ROW_GEOM], centre, r[..., ROW_GEOM:]


@contextlib.contextmanager
def _cpu_threads(n: int | None, device: torch.device):
    """Temporarily run torch's CPU ops with ``n`` threads (no-op for None or non-CPU devices)."""
    if n is None or device.type != "cpu" or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _CompositeFn(torch.autograd.Function):
    """rows [P, 6 + F] -> per-tile accumulated (features, alpha) [tiles, F + 1, pix]."""

    @staticmethod
    def forward(ctx, rows, plan: TilePlan, t_init, settings: RasterSettings, save: bool):
        # rows [P, R]: mean x, mean y, conic a, b, c, log opacity, features...; t_init [tiles, pix]
        with _cpu_threads(settings.threads, rows.device):
            return _CompositeFn._forward(ctx, rows, plan, t_init, settings, save)

    @staticmethod
    def _forward(ctx, rows, plan: TilePlan, t_init, settings: RasterSettings, save: bool):
        kern = _Kernel(rows, plan, settings)
        rows_p = kern.pad_rows(rows)
        n_feat = rows.shape[1] - ROW_GEOM + 1
        trans_now = t_init.clone()  # [tiles, pix] raw product (includes the terminating factor)
        out = torch.zeros(plan.num_tiles, n_feat, kern.pix, dtype=rows.dtype, device=rows.device)
        steps = []  # (s, tiles, t_prev) for the backward pass
        live = torch.nonzero(plan.tile_count > 0).flatten()
        s = 0
        while live.numel():
            live = live[(trans_now[live] > T_EPS).any(dim=1)]  # drop finished tiles
            for tiles in live.split(kern.per_chunk):
                _, geom, centre, feats = kern.chunk_inputs(rows_p, tiles, s)
                t_prev = trans_now.index_select(0, tiles)  # [T, pix]
                alpha, _ = kern.alpha(log_alpha_coeffs(geom, centre), False)
                trans = kern.transmittance(alpha, t_prev)
                w = kern.weights(trans, t_prev)  # [T, S, pix]
                out.index_add_(0, tiles, torch.bmm(feats.transpose(1, 2), w))  # [T, F+1, pix]
                trans_now.index_copy_(0, tiles, trans[:, -1])
                if save:
                    steps.append((s, tiles, t_prev))
            s += 1
            live = live[plan.tile_count[live] > s * kern.slab]
        if save:
            ctx.save_for_backward(rows_p)
            ctx.steps, ctx.plan, ctx.settings = steps, plan, settings
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # grad_out [tiles, F + 1, pix]
        with _cpu_threads(ctx.settings.threads, grad_out.device):
            return _CompositeFn._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        (rows_p,) = ctx.saved_tensors
        kern = _Kernel(rows_p[:-1, :-1], ctx.plan, ctx.settings)
        grad_out = grad_out.contiguous()
        g_rows = torch.zeros_like(rows_p[:, :-1])  # [P + 1, R]
        suffix = torch.zeros_like(grad_out[:, 0])  # [tiles, pix] sum over later slabs of w_j <g, f_j>
        for s, tiles, t_prev in reversed(ctx.steps):
            ids, geom, centre, feats = kern.chunk_inputs(rows_p, tiles, s)
            clampable = bool((geom[..., 5] > kern.log_clamp_margin).any())
            alpha, below = kern.alpha(log_alpha_coeffs(geom, centre), clampable)
            trans = kern.transmittance(alpha, t_prev)
            w = kern.weights(trans, t_prev)  # [T, S, pix]
            g = grad_out.index_select(0, tiles)  # [T, F+1, pix]
            g_feats = torch.bmm(w, g.transpose(1, 2))  # [T, S, F+1]
            wg = torch.bmm(feats, g).mul_(w)  # [T, S, pix]: w_k <g, f_k>
            later = torch.cumsum(wg, dim=1)  # inclusive prefix over the slab
            total = later[:, -1].clone()  # [T, pix]
            later.neg_().add_((total + suffix.index_select(0, tiles)).unsqueeze(1))  # sum over j > k, later slabs too
            # d L / d log(alpha_k) = alpha_k dL/dalpha_k = w_k <g, f_k> - later_k alpha_k / (1 - alpha_k);
            # it vanishes by itself from the terminating Gaussian on (w = 0 and later = 0 exactly).
            odds = alpha.div_(torch.sub(1.0, alpha))
            d_log = wg.sub_(later.mul_(odds))
            if below is not None:
                d_log.mul_(below)  # clamped alpha: no gradient
            g_lcoef = torch.matmul(d_log, kern.basis_t)  # [T, S, 6]
            g_r = torch.cat([log_alpha_coeffs_vjp(geom, centre, g_lcoef), g_feats[..., :-1]], dim=-1)
            g_rows.index_put_((ids.reshape(-1),), g_r.reshape(-1, g_r.shape[-1]), accumulate=True)
            suffix.index_add_(0, tiles, total)
        return g_rows[:-1], None, None, None, None


def composite(rows: torch.Tensor, plan: TilePlan, settings: RasterSettings | None = None) -> torch.Tensor:
    """Blend rows front to back into images [I, F + 1, H, W] (features, then accumulated alpha).

    rows [P, 6 + F]: (mean x, mean y, conic a, b, c, log opacity, F features) per (camera,
    Gaussian) pair, indexed by ``plan.gauss_ids``.  Differentiable w.r.t. rows (hand-written
    backward, see the module docstring).
    """
    settings = settings or RasterSettings()
    if settings.tile != plan.tile:
        raise ValueError(f"plan was built for {plan.tile} px tiles, settings say {settings.tile}")
    t_init = _initial_transmittance(plan, rows.dtype, rows.device)
    save = torch.is_grad_enabled() and rows.requires_grad
    tiles = _CompositeFn.apply(rows, plan, t_init, settings, save)  # [tiles, F+1, pix]
    return tiles_to_image(tiles, plan)


def _initial_transmittance(plan: TilePlan, dtype, device) -> torch.Tensor:
    """[tiles, pix]: 1 inside the image, 0 for the padding pixels of border tiles (never drawn)."""
    t = plan.tile
    ys = torch.arange(plan.tiles_y * t, device=device) < plan.height
    xs = torch.arange(plan.tiles_x * t, device=device) < plan.width
    inside = ys[:, None] & xs[None, :]  # [tiles_y * t, tiles_x * t]
    inside = inside.reshape(plan.tiles_y, t, plan.tiles_x, t).permute(0, 2, 1, 3).reshape(-1, t * t)
    return inside.to(dtype).repeat(plan.num_images, 1)


def tiles_to_image(tiles: torch.Tensor, plan: TilePlan) -> torch.Tensor:
    """[I * tiles, F, pix] -> [I, F, H, W] (crops the padding of border tiles)."""
    f, t = tiles.shape[1], plan.tile
    img = tiles.reshape(plan.num_images, plan.tiles_y, plan.tiles_x, f, t, t)
    img = img.permute(0, 3, 1, 4, 2, 5).reshape(plan.num_images, f, plan.tiles_y * t, plan.tiles_x * t)
    return img[:, :, : plan.height, : plan.width]
