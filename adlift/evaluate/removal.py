"""Removal attacks: what someone who wants to edit a protected asset can do to the published file alone.

Threat model (issue 17): the attacker has the protected scene file only (no manifest, no raw scene,
no training cameras), knows AdLift's code, and may process the file in any way before editing it.
Every attack here is one function ``attack(protected: GaussianScene, *, context: RemovalContext) ->
GaussianScene`` registered in :data:`REMOVAL_ATTACKS`; it reads nothing but ``protected`` and the
attacker-side settings in ``context`` (a seed, the render backend, and for the attacks that render:
orbit views framed from the scene's own bounds, :func:`attacker_views`).

    stripped = REMOVAL_ATTACKS.get("dedup-exact")(protected, context=RemovalContext())
    record = removal_report(raw, protected, splits, editor, instruction, config)   # every attack, measured

The suite (``REMOVAL_ATTACKS.describe()`` lists it): file order (a seeded permutation); exact
duplicate groups merged, undoing AdLift's split initialisation two ways (opacities combined as
``1 - prod(1 - a_k)`` with the opacity-weighted colour, or one copy kept with ``1 - (1 - a')^k``);
near-duplicate pairs (centres within :data:`NEAR_FRACTION` of the scale) treated the same; the
first half of the file with the split undone; opacity pruning at 3DGS' thresholds (0.005, 0.05);
size pruning (largest 1 % by max scale; 3DGS' big-point pruning in world and screen space);
robust outlier removal / clamping of colour (SH DC) and opacity; SH truncation to degree 0;
round trips through the web scene formats (skipped, with the reason, when a format is not
registered or cannot run) and float16 quantisation; re-fitting a fresh copy to blurred renders.

:func:`removal_report` measures each attack against the raw scene, which only the evaluator has:
how close the stripped renders come to the raw ones (PSNR; it *recovers* the asset when it beats
the protected file's PSNR by more than :data:`RECOVERY_MARGIN_DB`), how much protection remains
(the edit-success fall on the editor when it knows the instruction's exact answer, else the
reduction of the protection's adversarial loss), and what the attack costs (PSNR to the protected
renders, Gaussian count).

Adding an attack: one function with the signature above and one ``@REMOVAL_ATTACKS.register(name,
help=...)`` line; ``adlift evaluate --removal-attacks``, the report and the docs read the registry.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import torch
import tyro

from adlift.errors import AdLiftError
from adlift.registry import Registry
from adlift.scene import GaussianScene

if TYPE_CHECKING:
    from adlift.cameras import Cameras

#: An attack stripped the protection when its renders come closer to the raw renders than the
#: protected file's by more than this (dB).
RECOVERY_MARGIN_DB = 1.0
#: Below this PSNR to the raw renders an attack costs more than an attacker is assumed to accept (dB).
ACCEPTABLE_PSNR_DB = 35.0
#: Share of the protection that must remain after an attack that keeps :data:`ACCEPTABLE_PSNR_DB`.
REMAINING_TARGET = 0.8
#: Near duplicates: centres closer than this fraction of the smaller Gaussian's largest scale, and
#: log-scales within log(1 + this) per axis.
NEAR_FRACTION = 0.1
#: 3DGS' thresholds: opacity pruning (min_opacity 0.005), world-space big points (0.1 x extent),
#: screen-space big points (20 px radius) at a training resolution of about this width.
OPACITY_THRESHOLDS = (0.005, 0.05)
BIG_POINT_EXTENT = 0.1
BIG_POINT_PIXELS = 20.0
SCREEN_REFERENCE_WIDTH = 1000
#: Robust z-score (0.6745 (x - median) / MAD) beyond which a value is an outlier.
OUTLIER_Z = 3.0
#: smooth-colour-K: K = mean number of Gaussians in one voxel of the spatial grid whose colours are averaged.
SMOOTH_PER_VOXEL = (2, 8)
#: 3DGS' initial opacity of a fresh Gaussian (the refit attack's opacity reset).
FRESH_OPACITY = 0.1


class AttackSkipped(AdLiftError):
    """An attack cannot run here (its scene format is not registered, a dependency is missing);
    the report lists it with this message instead of a measurement."""


@dataclasses.dataclass
class RemovalContext:
    """What an attack may use besides the protected scene: attacker-side settings, never the raw
    scene, the manifest or the protection's cameras."""

    seed: int = 0
    """Seed of the attacks' random choices (permutation, refit view order)."""

    backend: str = "auto"
    """Render backend of the attacks that render (refit)."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Background of those renders."""

    width: int = 128
    """Width of the attacker's orbit views (refit)."""

    height: int = 128
    """Height of the attacker's orbit views."""

    views: int = 24
    """Number of orbit views the attacker renders (refit, screen-size pruning)."""

    refit_steps: int = 300
    """Adam steps of the refit attack (one random orbit view per step)."""

    refit_blur: float = 1.0
    """Gaussian blur sigma (pixels) of the renders the refit attack fits to."""

    def validate(self) -> None:
        if self.width < 8 or self.height < 8 or self.views < 1 or self.refit_steps < 0 or self.refit_blur < 0:
            raise AdLiftError("removal attacks need views >= 1, images of at least 8x8, refit steps >= 0, blur >= 0")


#: ``attack(protected, *, context) -> stripped scene``.
RemovalAttack = Callable[..., GaussianScene]

#: Every removal attack, in the order reports show them.
REMOVAL_ATTACKS: Registry[RemovalAttack] = Registry("removal attack")


# ---------------------------------------------------------------------------------------- helpers
def _with(scene: GaussianScene, **fields) -> GaussianScene:
    return GaussianScene(**{**scene.tensors(), **fields}, check_finite=False)


def _logit_from_log_transmittance(log_t: torch.Tensor) -> torch.Tensor:
    """logit(1 - exp(log_t)) for log_t < 0, stable at both ends (float64 in, float64 out)."""
    log_t = log_t.clamp(max=-1e-300)
    return torch.log(-torch.expm1(log_t)) - log_t


def merge_groups(scene: GaussianScene, group: torch.Tensor, mode: str = "merge") -> GaussianScene:
    """One Gaussian per group of ``group`` ([N] long, equal ids = one group), in file order of each
    group's first member; members of groups of one are returned unchanged (bit for bit).

    ``merge``: opacity ``1 - prod(1 - a_k)`` (what the stack lets through at its centre), every SH
    coefficient the opacity-weighted mean, the first member's geometry. ``keep``: the first member
    with opacity ``1 - (1 - a_first)^k`` (undoes a split of one Gaussian into k equal layers).
    """
    if mode not in ("merge", "keep"):
        raise AdLiftError(f"merge mode must be merge or keep, got {mode!r}")
    n = scene.num_gaussians
    if n == 0:
        return scene
    _, inverse, counts = torch.unique(group.cpu(), return_inverse=True, return_counts=True)
    g = inverse.to(scene.device)
    size = counts.to(scene.device)[g]  # [N] members in my group
    first = torch.full((len(counts),), n, dtype=torch.long, device=scene.device)
    first = first.scatter_reduce(0, g, torch.arange(n, device=scene.device), reduce="amin")
    keep = first.sort().values  # representatives in file order
    multi = size[keep] > 1
    if not bool(multi.any()):
        return scene
    x = scene.opacity_logits.to(torch.float64)
    log_t = torch.nn.functional.logsigmoid(-x)  # log(1 - a) per Gaussian
    out_logits = scene.opacity_logits[keep].clone()
    out_sh = scene.sh[keep].clone()
    groups_kept = g[keep]
    if mode == "merge":
        total_log_t = torch.zeros(len(counts), dtype=torch.float64, device=scene.device).index_add_(0, g, log_t)
        a = torch.sigmoid(x)
        weight = torch.zeros(len(counts), dtype=torch.float64, device=scene.device).index_add_(0, g, a)
        sh_sum = torch.zeros(len(counts), *scene.sh.shape[1:], dtype=torch.float64, device=scene.device)
        sh_sum.index_add_(0, g, scene.sh.to(torch.float64) * a[:, None, None])
        merged_logits = _logit_from_log_transmittance(total_log_t[groups_kept])
        merged_sh = sh_sum[groups_kept] / weight[groups_kept].clamp_min(1e-300)[:, None, None]
    else:
        merged_logits = _logit_from_log_transmittance(size[keep].to(torch.float64) * log_t[keep])
        merged_sh = scene.sh[keep].to(torch.float64)
    out_logits[multi] = merged_logits[multi].to(scene.dtype)
    out_sh[multi] = merged_sh[multi].to(scene.dtype)
    kept = scene.subset(keep)
    return _with(kept, opacity_logits=out_logits, sh=out_sh)


def exact_duplicate_groups(scene: GaussianScene) -> torch.Tensor:
    """[N] group ids: Gaussians with bit-identical means, log-scales and quaternions share one."""
    key = torch.cat([scene.means, scene.log_scales, scene.quats], dim=1).detach().cpu()
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    return inverse.to(scene.device)


def _hash_cells(cells: torch.Tensor) -> torch.Tensor:
    """One int64 per integer cell [M, 3] (wrapping multiply-xor; collisions only add candidates)."""
    p = (73856093, 19349663, 83492791)
    return (cells[:, 0] * p[0]) ^ (cells[:, 1] * p[1]) ^ (cells[:, 2] * p[2])


def near_duplicate_pairs(scene: GaussianScene, fraction: float = NEAR_FRACTION) -> torch.Tensor:
    """[P, 2] disjoint pairs (i < j) of near duplicates: centres closer than ``fraction`` x the
    smaller of the two largest scales, log-scales within log(1 + fraction) per axis, each the
    other's nearest such partner. A spatial hash per scale octave keeps it O(N)."""
    n = scene.num_gaussians
    empty = torch.zeros(0, 2, dtype=torch.long)
    if n < 2:
        return empty
    means = scene.means.detach().cpu().to(torch.float64)
    logs = scene.log_scales.detach().cpu().to(torch.float64)
    big = logs.amax(dim=1).exp()  # largest scale
    octave = torch.floor(torch.log2(big.clamp_min(1e-30))).long()
    candidates = []
    offsets = torch.tensor([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    for b in octave.unique().tolist():
        # partners differ in scale by < 1 + fraction <= 2: they share an octave or neighbour ones
        members = ((octave == b) | (octave == b + 1)).nonzero().squeeze(1)
        if len(members) < 2:
            continue
        cell = fraction * 2.0 ** (b + 2)  # >= every tolerance in this octave pair
        cells = torch.floor(means[members] / cell).clamp(-(2.0**40), 2.0**40).long()  # far floaters: no overflow
        keys = _hash_cells(cells)
        order = torch.argsort(keys)
        sorted_keys = keys[order]
        for off in offsets:
            q = _hash_cells(cells + off)
            lo = torch.searchsorted(sorted_keys, q, side="left")
            hi = torch.searchsorted(sorted_keys, q, side="right")
            count = hi - lo
            if not bool((count > 0).any()):
                continue
            src = torch.repeat_interleave(torch.arange(len(members)), count)
            start = torch.repeat_interleave(lo, count)
            step = torch.arange(len(src)) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
            dst = order[start + step]
            i, j = members[src], members[dst]
            keep = i < j
            candidates.append(torch.stack([i[keep], j[keep]], dim=1))
    if not candidates:
        return empty
    pairs = torch.unique(torch.cat(candidates), dim=0)
    i, j = pairs[:, 0], pairs[:, 1]
    dist = (means[i] - means[j]).norm(dim=1)
    ok = (dist < fraction * torch.minimum(big[i], big[j])) & (
        (logs[i] - logs[j]).abs().amax(dim=1) < math.log1p(fraction))  # fmt: skip
    i, j, dist = i[ok], j[ok], dist[ok]
    if len(i) == 0:
        return empty
    # Mutual nearest partners: disjoint pairs.
    best = torch.full((n,), math.inf, dtype=torch.float64)
    best = best.scatter_reduce(0, torch.cat([i, j]), torch.cat([dist, dist]), reduce="amin")
    # ties: the smallest partner index wins
    both = torch.cat([i, j])
    other = torch.cat([j, i])
    d2 = torch.cat([dist, dist])
    is_best = d2 == best[both]
    partner = torch.full((n,), n, dtype=torch.long)
    partner = partner.scatter_reduce(0, both[is_best], other[is_best], reduce="amin")
    mutual = (partner[i] == j) & (partner[j] == i)
    return torch.stack([i[mutual], j[mutual]], dim=1)


def _pair_groups(n: int, pairs: torch.Tensor, device) -> torch.Tensor:
    group = torch.arange(n)
    if len(pairs):
        group[pairs[:, 1]] = pairs[:, 0]
    return group.to(device)


def undo_split(scene: GaussianScene, layers: int = 2) -> GaussianScene:
    """Opacity a' -> 1 - (1 - a')^layers for every Gaussian (inverts AdLift's split into equal layers)."""
    log_t = layers * torch.nn.functional.logsigmoid(-scene.opacity_logits.to(torch.float64))
    return _with(scene, opacity_logits=_logit_from_log_transmittance(log_t).to(scene.dtype))


def robust_z(values: torch.Tensor) -> torch.Tensor:
    """0.6745 (x - median) / MAD per column of [N, D] (0 where the MAD is 0)."""
    med = values.median(dim=0).values
    mad = (values - med).abs().median(dim=0).values
    z = 0.6745 * (values - med) / mad.clamp_min(1e-12)
    return torch.where(mad > 0, z, torch.zeros_like(z))


def attacker_views(scene: GaussianScene, context: RemovalContext) -> "Cameras":
    """The orbit an attacker frames from the protected scene's own bounds (as ``orbit:N`` does):
    ``context.views`` views of ``context.width`` x ``context.height``, elevations -15..45 degrees."""
    from adlift.io.cameras import OrbitSpec, orbit_from_spec

    spec = OrbitSpec(num_views=context.views, elevation_deg=(-15.0, 45.0))
    return orbit_from_spec(spec, scene, width=context.width, height=context.height).to(scene.device)


# ---------------------------------------------------------------------------------------- attacks
@REMOVAL_ATTACKS.register("shuffle", help="a seeded random permutation of the Gaussians (a file-order attack; changes "
                                          "nothing if the protection does not depend on the order)")  # fmt: skip
def shuffle(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    g = torch.Generator().manual_seed(context.seed)
    return protected.subset(torch.randperm(protected.num_gaussians, generator=g))


@REMOVAL_ATTACKS.register("dedup-exact", help="Gaussians with identical means, scales and rotations merged: opacity "
                                              "1 - prod(1 - a), opacity-weighted colour")  # fmt: skip
def dedup_exact(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    return merge_groups(protected, exact_duplicate_groups(protected), "merge")


@REMOVAL_ATTACKS.register("dedup-exact-keep", help="of identical Gaussians keep the first, opacity 1 - (1 - a')^k "
                                                   "(undoes a split into k copies)")  # fmt: skip
def dedup_exact_keep(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    return merge_groups(protected, exact_duplicate_groups(protected), "keep")


@REMOVAL_ATTACKS.register("dedup-near", help=f"near-duplicate pairs (centres within {NEAR_FRACTION:g} x the scale, "
                                             "similar scales) merged like dedup-exact")  # fmt: skip
def dedup_near(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    pairs = near_duplicate_pairs(protected)
    return merge_groups(protected, _pair_groups(protected.num_gaussians, pairs, protected.device), "merge")


@REMOVAL_ATTACKS.register("dedup-near-keep", help="near-duplicate pairs: keep the first, opacity 1 - (1 - a')^2")
def dedup_near_keep(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    pairs = near_duplicate_pairs(protected)
    return merge_groups(protected, _pair_groups(protected.num_gaussians, pairs, protected.device), "keep")


@REMOVAL_ATTACKS.register("prefix-half", help="keep the first half of the file, opacity 1 - (1 - a')^2 (undoes the "
                                              "split of raw Gaussians stored first)")  # fmt: skip
def prefix_half(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    return undo_split(protected.subset(slice(0, (protected.num_gaussians + 1) // 2)), 2)


def _opacity_pruning(threshold: float) -> RemovalAttack:
    def prune(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
        return protected.subset(protected.opacities >= threshold)

    return prune


for _threshold in OPACITY_THRESHOLDS:
    _why = " (3DGS' pruning threshold)" if _threshold == 0.005 else " (a stricter cut)"
    REMOVAL_ATTACKS.add(f"prune-opacity-{_threshold:g}", _opacity_pruning(_threshold),
                        help=f"remove Gaussians of opacity < {_threshold:g}{_why}")  # fmt: skip


@REMOVAL_ATTACKS.register("prune-size-1pct", help="remove the largest 1 % of Gaussians by largest scale")
def prune_size(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    n = protected.num_gaussians
    k = round(0.01 * n)
    if k == 0:
        return protected
    order = torch.argsort(protected.log_scales.amax(dim=1).cpu(), descending=True, stable=True)
    mask = torch.ones(n, dtype=torch.bool)
    mask[order[:k]] = False
    return protected.subset(mask.to(protected.device))


@REMOVAL_ATTACKS.register("prune-big", help=f"3DGS' big-point pruning: largest scale > {BIG_POINT_EXTENT:g} x the "
                                            f"extent, or a 3-sigma radius > {BIG_POINT_PIXELS:g} px in an orbit view "
                                            f"at {SCREEN_REFERENCE_WIDTH} px width")  # fmt: skip
def prune_big(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    from adlift.cameras import scene_extent

    cams = attacker_views(protected, context)
    big = protected.scales.amax(dim=1)
    too_big = big > BIG_POINT_EXTENT * scene_extent(cams, protected)
    means_h = torch.cat([protected.means, torch.ones_like(protected.means[:, :1])], dim=1)
    for v in range(len(cams)):
        z = (means_h @ cams.viewmats[v].to(means_h).T)[:, 2]
        fx = float(cams.Ks[v, 0, 0]) * SCREEN_REFERENCE_WIDTH / cams.width
        radius = 3.0 * big * fx / z.clamp_min(1e-6)
        too_big |= (z > 0.01) & (radius > BIG_POINT_PIXELS)
    return protected.subset(~too_big)


def _colour_opacity(scene: GaussianScene) -> torch.Tensor:
    return torch.cat([scene.sh[:, 0], scene.opacity_logits[:, None]], dim=1)  # [N, 4]


@REMOVAL_ATTACKS.register("outliers-remove", help=f"remove Gaussians whose SH DC colour or opacity logit has a robust "
                                                  f"z-score > {OUTLIER_Z:g}")  # fmt: skip
def outliers_remove(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    if protected.num_gaussians < 3:
        return protected
    z = robust_z(_colour_opacity(protected).detach())
    return protected.subset(~(z.abs() > OUTLIER_Z).any(dim=1))


@REMOVAL_ATTACKS.register("outliers-clamp", help=f"set every SH DC colour channel or opacity logit with a robust "
                                                 f"z-score > {OUTLIER_Z:g} to the median")  # fmt: skip
def outliers_clamp(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    if protected.num_gaussians < 3:
        return protected
    values = _colour_opacity(protected).detach()
    out = torch.where(robust_z(values).abs() > OUTLIER_Z, values.median(dim=0).values, values)
    sh = protected.sh.clone()
    sh[:, 0] = out[:, :3]
    return _with(protected, sh=sh, opacity_logits=out[:, 3].contiguous())


def voxel_ids(means: torch.Tensor, per_voxel: float) -> torch.Tensor:
    """[N] long: the cell of a cubic grid over the means' bounding box holding each Gaussian, the
    cells sized so that a cell holds about ``per_voxel`` Gaussians if they filled the box evenly."""
    lo, hi = means.min(dim=0).values, means.max(dim=0).values
    size = float((hi - lo).clamp_min(1e-12).prod() * per_voxel / max(means.shape[0], 1)) ** (1.0 / 3.0)
    cells = ((means - lo) / max(size, 1e-12)).floor().long()  # [N, 3]
    return torch.unique(cells, dim=0, return_inverse=True)[1]


def _colour_smoothing(per_voxel: int) -> RemovalAttack:
    def smooth(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
        ids = voxel_ids(protected.means.detach(), per_voxel)
        dc = protected.sh[:, 0].detach()  # [N, 3]
        total = torch.zeros(int(ids.max()) + 1, 3, dtype=dc.dtype, device=dc.device).index_add_(0, ids, dc)
        count = torch.bincount(ids, minlength=total.shape[0]).to(dc)[:, None]
        sh = protected.sh.detach().clone()
        sh[:, 0] = (total / count)[ids]
        return _with(protected, sh=sh)

    return smooth


for _per_voxel in SMOOTH_PER_VOXEL:
    REMOVAL_ATTACKS.add(f"smooth-colour-{_per_voxel}", _colour_smoothing(_per_voxel),
                        help=f"spatial low-pass: every SH DC colour replaced by the mean over its voxel of a grid "
                             f"holding ~{_per_voxel} Gaussians a cell (averages out per-Gaussian perturbations)")  # fmt: skip


@REMOVAL_ATTACKS.register("sh-degree0", help="SH truncated to degree 0 (every higher coefficient zeroed)")
def sh_degree0(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    sh = protected.sh.clone()
    sh[:, 1:] = 0.0
    return _with(protected, sh=sh)


@REMOVAL_ATTACKS.register("float16", help="every attribute quantised to float16 and back")
def float16(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    limit = torch.finfo(torch.float16).max
    quantised = {k: t.clamp(-limit, limit).to(torch.float16).to(t.dtype) for k, t in protected.tensors().items()}
    return GaussianScene(**quantised, check_finite=False)


#: The web formats the suite round-trips through: attack name -> (format names, extensions) it
#: looks for in :data:`adlift.io.formats.SCENE_FORMATS` when it runs.
ROUNDTRIP_FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "roundtrip-compressed-ply": (("compressed-ply", "compressed_ply", "compressed"), (".compressed.ply",)),
    "roundtrip-spz": (("spz",), (".spz",)),
    "roundtrip-splat": (("splat",), (".splat",)),
    "roundtrip-sog": (("sog",), (".sog", "meta.json")),
}


def find_scene_format(names: Sequence[str], extensions: Sequence[str]) -> str | None:
    """The registered scene format with one of ``names``, else one using one of ``extensions``."""
    from adlift.io.formats import SCENE_FORMATS

    for name in names:
        if name in SCENE_FORMATS:
            return name
    for name, fmt in SCENE_FORMATS.items():
        if any(ext in fmt.extensions for ext in extensions):
            return name
    return None


def roundtrip(protected: GaussianScene, format_name: str) -> GaussianScene:
    """``protected`` written as ``format_name`` into a temporary directory and read back (float32)."""
    from adlift.io.formats import SCENE_FORMATS, read_scene, write_scene

    fmt = SCENE_FORMATS.get(format_name)
    if fmt.write is None:
        raise AttackSkipped(f"the {format_name} format is read-only in AdLift")
    ext = fmt.extensions[0]
    with tempfile.TemporaryDirectory(prefix="adlift-removal-") as tmp:
        path = Path(tmp) / (f"scene{ext}" if ext.startswith(".") else ext)
        try:
            write_scene(protected.detach().to("cpu", torch.float32), path, format=format_name)
            back = read_scene(path)
        except AdLiftError as e:
            raise AttackSkipped(f"{format_name} round trip failed: {e}") from None
    return back.to(protected.device, protected.dtype)


def _roundtrip_attack(attack: str) -> RemovalAttack:
    names, extensions = ROUNDTRIP_FORMATS[attack]

    def run(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
        from adlift.io.formats import SCENE_FORMATS

        name = find_scene_format(names, extensions)
        if name is None:
            raise AttackSkipped(f"no {' / '.join(extensions)} scene format is registered "
                                f"(registered: {', '.join(SCENE_FORMATS.names())})")  # fmt: skip
        return roundtrip(protected, name)

    return run


for _attack, (_names, _extensions) in ROUNDTRIP_FORMATS.items():
    REMOVAL_ATTACKS.add(_attack, _roundtrip_attack(_attack),
                        help=f"write and read back as {' / '.join(_extensions)} (skipped when no such scene format "
                             "is registered)")  # fmt: skip


@REMOVAL_ATTACKS.register("refit", help="3D purification: a fresh copy (same centres, DC colour, opacity reset) fitted "
                                        "with L1 + D-SSIM to blurred renders of the protected scene from orbit views")
def refit(protected: GaussianScene, *, context: RemovalContext) -> GaussianScene:
    from adlift.editors.photometric import l1_dssim_loss
    from adlift.evaluate.purify import apply_purification, purification
    from adlift.render import render, render_images

    context.validate()
    cams = attacker_views(protected, context)
    targets = render_images(protected, cams, backend=context.backend, background=context.background)
    if context.refit_blur > 0:
        targets = apply_purification(targets.cpu(), purification("blur", context.refit_blur)).to(targets.device)
    scene = protected.detach()
    n, k = scene.num_gaussians, scene.sh.shape[1]
    dc = scene.sh[:, :1].clone().requires_grad_(True)
    rest = torch.zeros(n, k - 1, 3, dtype=scene.dtype, device=scene.device, requires_grad=True)
    opacity = torch.full((n,), math.log(FRESH_OPACITY / (1 - FRESH_OPACITY)), dtype=scene.dtype, device=scene.device,
                         requires_grad=True)  # fmt: skip
    log_scales = scene.log_scales.clone().requires_grad_(True)
    quats = scene.quats.clone().requires_grad_(True)
    # 3DGS' learning rates (positions stay where the file put them).
    groups = [{"params": [dc], "lr": 0.0025}, {"params": [opacity], "lr": 0.05},
              {"params": [log_scales], "lr": 0.005}, {"params": [quats], "lr": 0.001}]  # fmt: skip
    if k > 1:
        groups.append({"params": [rest], "lr": 0.0025 / 20})
    optimizer = torch.optim.Adam(groups, eps=1e-15)
    generator = torch.Generator().manual_seed(context.seed)

    def current() -> GaussianScene:
        return GaussianScene(scene.means, quats, log_scales, opacity, torch.cat([dc, rest], dim=1), check_finite=False)

    for _ in range(context.refit_steps):
        v = int(torch.randint(len(cams), (1,), generator=generator))
        image = render(current(), cams[v], backend=context.backend, background=context.background).rgb
        loss = l1_dssim_loss(image, targets[v : v + 1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    out = current().detach()
    out.check_values()
    return out


# ------------------------------------------------------------------------------------ measurement
#: The measures of "protection remaining", in order of preference.
MEASURES = ("edit success fall", "adversarial loss")


def _mean(values) -> float | None:
    from adlift.evaluate.run import mean_of

    return mean_of([{"v": float(v)} for v in values])["v"] if len(values) else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or not (math.isfinite(part) and math.isfinite(whole)) or whole <= 0:
        return None
    return part / whole


def verdict(row: dict, protected_psnr: float | None) -> str:
    """``recovers`` (closer to raw than the protected file by more than the margin), ``too costly``
    (under :data:`ACCEPTABLE_PSNR_DB` to raw), ``strips`` (less than :data:`REMAINING_TARGET` of the
    protection left), ``holds``, or ``n/a`` (no measure of the protection)."""
    psnr = row["psnr_to_raw"]
    base = protected_psnr if protected_psnr is not None else math.inf
    if psnr > base + RECOVERY_MARGIN_DB:
        return "recovers"
    if psnr < ACCEPTABLE_PSNR_DB:
        return "too costly"
    remaining = row["protection_remaining"]
    if remaining is None:
        return "n/a"
    return "strips" if remaining < REMAINING_TARGET else "holds"


def removal_report(
    raw: GaussianScene,
    protected: GaussianScene,
    splits: dict[str, "Cameras"],
    editor,
    instruction: str,
    config=None,
    *,
    loss=None,
    attacks: Sequence[str] | None = None,
) -> dict:
    """Run the removal attacks on ``protected`` alone and measure each against ``raw``.

    Views: at most ``config.views_per_split`` of every split of ``splits`` (all measured together).
    ``editor`` edits with ``config``'s settings (text guidance: the editor's default unless given);
    ``loss`` is the protection's :class:`~adlift.attacks.AdversarialLoss` (default: the encoder loss
    on ``editor.surface``); ``attacks`` default to ``config.removal_attacks``. Returns the record
    removal.json holds (see :mod:`adlift.evaluate.report`): per attack the Gaussian count, PSNR of its
    renders to the raw and to the protected renders, the share of the protection left, and a verdict.
    """
    from tqdm.auto import tqdm

    from adlift.attacks import AdversarialLoss
    from adlift.evaluate.run import EvaluateConfig, _edit_2d, pick_views, psnr_fall, render_all
    from adlift.image_metrics import psnr_per_image
    from adlift.io.json_safe import to_jsonable

    config = config or EvaluateConfig()
    config.validate()
    config = dataclasses.replace(config, guidance_scale=config.guidance_for(editor))
    names = tuple(config.removal_attacks if attacks is None else attacks)
    if not names:
        raise AdLiftError("no removal attacks to run; name at least one")
    for name in names:
        REMOVAL_ATTACKS.check(name)
    if not instruction.strip():
        raise AdLiftError("the instruction is empty; give the edit the protection is meant to stop")
    if not splits or any(len(c) == 0 for c in splits.values()):
        raise AdLiftError("removal attacks need at least one view in every split they are given")
    tic = time.perf_counter()
    cams = [pick_views(c, config.views_per_split) for c in splits.values()]
    first = next(iter(splits.values()))
    context = RemovalContext(seed=config.seed, backend=config.backend, background=tuple(config.background),
                             width=first.width, height=first.height, views=config.removal_refit_views,
                             refit_steps=config.removal_refit_steps)  # fmt: skip
    context.validate()

    def renders(scene: GaussianScene) -> torch.Tensor:
        return torch.cat([render_all(scene, c, config) for c in cams])

    adv = loss if loss is not None else AdversarialLoss(editor.surface, instruction)
    reference_for = getattr(editor, "reference_edit_for", None)
    reference = reference_for(instruction) if reference_for is not None else None
    r, p = renders(raw), renders(protected)
    clean = r if adv.needs_reference else None
    loss_raw = adv.evaluate(r, clean)
    success_raw = None
    if reference is not None:
        success_raw = psnr_per_image(_edit_2d(editor, r, instruction, config), reference(r).to(r)).tolist()

    def measure(images: torch.Tensor) -> dict:
        losses = adv.evaluate(images, clean)
        out = {"psnr_to_raw": _mean(psnr_per_image(images, r).tolist()),
               "psnr_to_protected": _mean(psnr_per_image(images, p).tolist()),
               "loss": _mean(losses.tolist()), "loss_reduction": _mean((loss_raw - losses).tolist()),
               "edit_success": None, "success_fall": None}  # fmt: skip
        if success_raw is not None:
            success = psnr_per_image(_edit_2d(editor, images, instruction, config), reference(images).to(images))
            out["edit_success"] = _mean(success.tolist())
            out["success_fall"] = _mean([psnr_fall(a, b) for a, b in zip(success_raw, success.tolist())])
        return out

    base = measure(p)
    measure_name, why = None, None
    if base["success_fall"] is not None and base["success_fall"] > 0:
        measure_name = MEASURES[0]
    elif base["loss_reduction"] is not None and base["loss_reduction"] > 0:
        measure_name = MEASURES[1]
        why = ("the editor knows no exact answer to the instruction" if success_raw is None
               else "the protected file has no edit-success fall to keep")  # fmt: skip
    else:
        why = "the protected file neither lowers edit success nor the adversarial loss: nothing to keep"

    def remaining(m: dict) -> dict:
        by_fall = _ratio(m["success_fall"], base["success_fall"])
        by_loss = _ratio(m["loss_reduction"], base["loss_reduction"])
        chosen = by_fall if measure_name == MEASURES[0] else by_loss if measure_name == MEASURES[1] else None
        return {"fall_remaining": by_fall, "loss_remaining": by_loss, "protection_remaining": chosen}

    protected_row = {"attack": "(protected file)", "gaussians": protected.num_gaussians, **base, **remaining(base),
                     "closer_db": 0.0, "seconds": 0.0, "skipped": None, "recovers": False}  # fmt: skip
    protected_row["verdict"] = "-"
    rows = []
    bar = tqdm(names, desc="removal attacks", unit="attack", disable=not config.progress)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            stripped = REMOVAL_ATTACKS.get(name)(protected, context=context)
        except AttackSkipped as e:
            rows.append({"attack": name, "gaussians": None, "skipped": str(e), "recovers": False, "verdict": "skipped",
                         "seconds": time.perf_counter() - start})  # fmt: skip
            continue
        stripped.check_values()
        seconds = time.perf_counter() - start
        m = measure(renders(stripped))
        row = {"attack": name, "gaussians": stripped.num_gaussians, **m, **remaining(m), "seconds": seconds,
               "skipped": None}  # fmt: skip
        closer = m["psnr_to_raw"] - base["psnr_to_raw"] if m["psnr_to_raw"] != base["psnr_to_raw"] else 0.0
        row["closer_db"] = closer
        row["recovers"] = bool(closer > RECOVERY_MARGIN_DB)
        row["verdict"] = verdict(row, base["psnr_to_raw"])
        rows.append(row)
    bar.close()
    return {
        "measure": measure_name,
        "measure_note": why,
        "loss": adv.describe(),
        "views": int(r.shape[0]),
        "raw": {"gaussians": raw.num_gaussians, "loss": _mean(loss_raw.tolist()),
                "edit_success": _mean(success_raw) if success_raw is not None else None},  # fmt: skip
        "protected": protected_row,
        "attacks": rows,
        "recovered": [row["attack"] for row in rows if row["recovers"]],
        "stripped": [row["attack"] for row in rows if row["verdict"] == "strips"],
        "skipped": {row["attack"]: row["skipped"] for row in rows if row["skipped"]},
        "thresholds": {"recovery_margin_db": RECOVERY_MARGIN_DB, "acceptable_psnr_db": ACCEPTABLE_PSNR_DB,
                       "remaining_target": REMAINING_TARGET},  # fmt: skip
        "context": to_jsonable(context),
        "seconds": time.perf_counter() - tic,
    }


# ------------------------------------------------------------------------------------ command line
def parse_removal_attacks(spec: str) -> tuple[str, ...]:
    """Attack names from ``"shuffle,dedup-exact,refit"`` (``all``: every registered attack, in
    registry order); one-line AdLiftError for an unknown or repeated name or an empty spec."""
    names = [token.strip() for token in spec.split(",") if token.strip()]
    if names == ["all"]:
        return REMOVAL_ATTACKS.names()
    if not names:
        choices = ", ".join(REMOVAL_ATTACKS.names())
        raise AdLiftError(f"no removal attacks in {spec!r}; give all or names from: {choices}")
    for name in names:
        REMOVAL_ATTACKS.check(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AdLiftError(f"removal attack {repeated[0]!r} is listed twice in {spec!r}")
    return tuple(names)


def format_removal_attacks(names: Sequence[str]) -> str:
    """The spec :func:`parse_removal_attacks` reads back (``all`` for the whole suite)."""
    return "all" if tuple(names) == REMOVAL_ATTACKS.names() else ",".join(names)


#: A tuple of attack names for a config field, written ``shuffle,dedup-exact`` or ``all`` on the
#: command line (AdLiftError passes through tyro: one line, exit 2).
RemovalAttacks = Annotated[
    tuple[str, ...],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="all|NAME,...",
        instance_from_str=lambda args: parse_removal_attacks(args[0]),
        is_instance=lambda value: isinstance(value, tuple) and all(isinstance(v, str) for v in value),
        str_from_instance=lambda value: [format_removal_attacks(value)],
    ),
    tyro.conf.arg(help="With --removal: the attacks to run, comma-separated, or all (the default): "
                       + ", ".join(REMOVAL_ATTACKS.names()) + " (adlift.evaluate.removal lists what each does)."),
]
