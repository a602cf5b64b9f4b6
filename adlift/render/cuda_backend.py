"""The ``cuda`` backend: AdLift's own CUDA rasteriser (``cuda/``), with a frozen/trainable split.

Same semantics as the ``torch`` backend (see :mod:`adlift.render.api`), float32 on the GPU.
What it adds is the split Lifted PGD needs: ``render(safeguard, cameras, frozen=raw)`` draws both
sets together but

* projects the frozen set once per (camera, frozen tensors) and reuses that projection while the
  frozen tensors are unchanged (an LRU cache of ``SETTINGS.cache_views`` camera projections);
* computes and accumulates gradients only for the trainable set: the backward kernel still walks
  every Gaussian of a pixel (the frozen ones shape the transmittance) but skips the reductions
  and atomics of frozen rows, and only trainable rows are back-projected.

Pipeline of one call: project the trainable set into rows [Nf, Nf + Nt) of a [C, P] buffer whose
rows [0, Nf) hold the cached frozen projection -> bin rows into 16x16 tiles, radix-sort by
(camera, tile, depth) -> composite front to back. Backward: composite in reverse (trainable rows
only) -> back-project (trainable Gaussians only).
"""

from __future__ import annotations

import collections
import dataclasses
import weakref

import torch

from adlift.cameras import Cameras
from adlift.render.api import Composited, RenderRequest
from adlift.render.cuda_build import probe
from adlift.render.projection import EPS2D
from adlift.scene import GaussianScene


@dataclasses.dataclass
class CudaSettings:
    """Knobs of the cuda backend (module-level ``SETTINGS``)."""

    cache_views: int = 64
    """Frozen-set projections kept (one per camera); about 48 bytes per frozen Gaussian each."""
    poison: bool = False
    """Fill every output buffer with NaN / -1 before the kernels run (tests: unwritten outputs show)."""


SETTINGS = CudaSettings()


def cuda_available() -> bool:
    """True when a CUDA GPU is visible and the extension builds (or is already built)."""
    return probe()[0] is not None


def cuda_unavailable_reason() -> str:
    return probe()[1] or "available"


def _module():
    module, reason = probe()
    if module is None:
        raise RuntimeError(reason)
    return module


@dataclasses.dataclass
class Projection:
    """Screen-space rows of C cameras; every field is [C, P, ...] on one device."""

    means2d: torch.Tensor  # [C, P, 2]
    conics: torch.Tensor  # [C, P, 3]
    depths: torch.Tensor  # [C, P]
    opacities: torch.Tensor  # [C, P]
    colors: torch.Tensor  # [C, P, 3]
    radii: torch.Tensor  # [C, P, 2] int32, (0, 0) where culled

    @staticmethod
    def empty(n_cam: int, rows: int, device: torch.device, poison: bool) -> "Projection":
        f32 = {"device": device, "dtype": torch.float32}
        fields = {
            "means2d": torch.empty(n_cam, rows, 2, **f32),
            "conics": torch.empty(n_cam, rows, 3, **f32),
            "depths": torch.empty(n_cam, rows, **f32),
            "opacities": torch.empty(n_cam, rows, **f32),
            "colors": torch.empty(n_cam, rows, 3, **f32),
            "radii": torch.empty(n_cam, rows, 2, device=device, dtype=torch.int32),
        }
        if poison:
            for name, t in fields.items():
                t.fill_(-1 if name == "radii" else float("nan"))
        return Projection(**fields)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.means2d, self.conics, self.depths, self.opacities, self.colors, self.radii)


def _scene_tensors(scene: GaussianScene, device: torch.device) -> tuple[torch.Tensor, ...]:
    """(means, quats, log_scales, opacity_logits, sh) as contiguous float32 on ``device``."""
    return tuple(
        t.to(device=device, dtype=torch.float32).contiguous()
        for t in (scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh)
    )


class FrozenProjectionCache:
    """Projections of a frozen Gaussian set, one entry per camera, least recently used dropped.

    Keyed by the frozen tensors' identity *and version counter* (an in-place change invalidates),
    the camera's matrices and the render settings.
    """

    def __init__(self) -> None:
        self.entries: collections.OrderedDict[tuple, Projection] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0
        # Camera values per live camera tensor pair: reading GPU values is a device sync, which a
        # training loop rendering the same Cameras object every step should not pay each time.
        self._camera_memo: collections.OrderedDict[tuple, tuple] = collections.OrderedDict()
        self._watched: set[tuple] = set()

    def _camera_values(self, viewmats: torch.Tensor, Ks: torch.Tensor) -> list[list[float]]:
        """[C][25] camera values (viewmat, K), memoised while the same unchanged tensors are passed."""
        key = (id(viewmats), id(Ks))
        memo = self._camera_memo.get(key)
        versions = (viewmats._version, Ks._version)
        if memo is not None and memo[0]() is viewmats and memo[1]() is Ks and memo[2] == versions:
            return memo[3]
        values = torch.cat([viewmats.reshape(-1, 16), Ks.reshape(-1, 9)], dim=1).cpu().tolist()
        self._camera_memo[key] = (weakref.ref(viewmats), weakref.ref(Ks), versions, values)
        while len(self._camera_memo) > 256:
            self._camera_memo.popitem(last=False)
        return values

    def clear(self) -> None:
        self.entries.clear()

    def _forget(self, scene_key: tuple) -> None:
        self._watched.discard(scene_key)
        for key in [k for k in self.entries if k[0] == scene_key]:
            del self.entries[key]

    @staticmethod
    def _scene_key(scene: GaussianScene) -> tuple:
        tensors = (scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh)
        return tuple((t.data_ptr(), t._version, tuple(t.shape), t.dtype, str(t.device)) for t in tensors)

    def lookup(
        self,
        frozen: GaussianScene,
        cameras: Cameras,
        viewmats: torch.Tensor,  # [C, 4, 4] float32 on the device
        Ks: torch.Tensor,  # [C, 3, 3]
        sh_degree: int,
        near_plane: float,
        far_plane: float,
    ) -> list[Projection]:
        """One [1, Nf] projection per camera (computed for the cameras that miss)."""
        width, height = cameras.width, cameras.height
        scene_key = self._scene_key(frozen)
        if scene_key not in self._watched:
            # Forget a set's projections when its tensors are freed: a new tensor may reuse the memory.
            self._watched.add(scene_key)
            weakref.finalize(frozen.means, self._forget, scene_key)
        base = (scene_key, width, height, sh_degree, near_plane, far_plane)
        keys = [base + (tuple(c),) for c in self._camera_values(cameras.viewmats, cameras.Ks)]
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        if missing:
            self.misses += len(missing)
            tensors = _scene_tensors(frozen.detach(), viewmats.device)
            idx = torch.tensor(missing, device=viewmats.device)
            vm, kk = viewmats.index_select(0, idx).contiguous(), Ks.index_select(0, idx).contiguous()
            proj = Projection.empty(len(missing), frozen.num_gaussians, viewmats.device, SETTINGS.poison)
            _module().project(*tensors, vm, kk, width, height, sh_degree, near_plane, far_plane, EPS2D,
                              *proj.tensors(), 0)  # fmt: skip
            for j, i in enumerate(missing):
                self.entries[keys[i]] = Projection(*(t[j : j + 1] for t in proj.tensors()))
        self.hits += len(keys) - len(missing)
        out = []
        for k in keys:
            self.entries.move_to_end(k)
            out.append(self.entries[k])
        while len(self.entries) > max(SETTINGS.cache_views, len(keys)):
            self.entries.popitem(last=False)
        return out


FROZEN_CACHE = FrozenProjectionCache()


class _RenderFunction(torch.autograd.Function):
    """Trainable Gaussians (+ cached frozen rows) -> features [C,4,H,W], alpha [C,1,H,W], visible."""

    @staticmethod
    def forward(ctx, means, quats, log_scales, logits, sh, frozen, viewmats, Ks, width, height, sh_degree, near, far):
        ext = _module()
        n_cam, n_train = viewmats.shape[0], means.shape[0]
        n_frozen = 0 if frozen is None else frozen[0].depths.shape[1]
        proj = Projection.empty(n_cam, n_frozen + n_train, means.device, SETTINGS.poison)
        if n_frozen:
            for c, entry in enumerate(frozen):
                for dst, src in zip(proj.tensors(), entry.tensors()):
                    dst[c : c + 1, :n_frozen].copy_(src)
        ext.project(means, quats, log_scales, logits, sh, viewmats, Ks, width, height, sh_degree, near, far, EPS2D,
                    *proj.tensors(), n_frozen)  # fmt: skip
        feats, alpha, last, ranges, rows = ext.rasterize_forward(
            proj.means2d, proj.conics, proj.opacities, proj.colors, proj.depths, proj.radii, width, height,
            SETTINGS.poison,
        )  # fmt: skip
        visible = (proj.radii > 0).all(dim=-1)  # [C, P]
        ctx.mark_non_differentiable(visible)
        ctx.save_for_backward(means, quats, log_scales, logits, sh, viewmats, Ks, *proj.tensors(), ranges, rows, alpha, last)
        ctx.args = (width, height, sh_degree, near, far, n_frozen)
        return feats, alpha, visible

    @staticmethod
    def backward(ctx, v_feats, v_alpha, _v_visible):
        ext = _module()
        means, quats, log_scales, logits, sh, viewmats, Ks, *rest = ctx.saved_tensors
        m2, conics, depths, opacities, colors, radii, ranges, rows, alpha, last = rest
        width, height, sh_degree, near, far, n_frozen = ctx.args
        v_feats = torch.zeros_like(alpha).expand(-1, 4, -1, -1) if v_feats is None else v_feats
        v_alpha = torch.zeros_like(alpha) if v_alpha is None else v_alpha
        v_m2, v_conics, v_opac, v_colors, v_depths = ext.rasterize_backward(
            m2, conics, opacities, colors, depths, ranges, rows, alpha, last,
            v_feats.contiguous(), v_alpha.contiguous(), n_frozen, width, height,
        )  # fmt: skip
        grads = ext.project_backward(
            means, quats, log_scales, logits, sh, viewmats, Ks, width, height, sh_degree, near, far, EPS2D,
            radii, n_frozen, v_m2, v_conics, v_depths, v_opac, v_colors,
        )  # fmt: skip
        return (*grads, None, None, None, None, None, None, None, None)


def render_cuda(scene: GaussianScene, request: RenderRequest) -> Composited:
    """Render ``scene`` (differentiable) in front of / among ``request.frozen`` (no gradients, cached);
    an :class:`adlift.render.api.RenderFn` registered with ``supports_frozen=True``.

    Returns rgb [C, 3, H, W] (no background), alpha, depth_sum [C, 1, H, W] in the scene's dtype
    and device, and visible [C, Nf + N] (frozen rows first, as :meth:`GaussianScene.concat` would
    order them).
    """
    cameras, sh_degree, near_plane, far_plane, frozen = (
        request.cameras, request.sh_degree, request.near_plane, request.far_plane, request.frozen
    )  # fmt: skip
    out_device, out_dtype = scene.device, scene.dtype
    device = scene.device if scene.device.type == "cuda" else torch.device("cuda")
    width, height = cameras.width, cameras.height
    viewmats = cameras.viewmats.to(device=device, dtype=torch.float32).contiguous()  # [C, 4, 4]
    Ks = cameras.Ks.to(device=device, dtype=torch.float32).contiguous()  # [C, 3, 3]
    cached = None
    if frozen is not None and frozen.num_gaussians:
        cached = FROZEN_CACHE.lookup(frozen, cameras, viewmats, Ks, sh_degree, near_plane, far_plane)
    feats, alpha, visible = _RenderFunction.apply(
        *_scene_tensors(scene, device), cached, viewmats, Ks, width, height, sh_degree, float(near_plane),
        float(far_plane),
    )  # fmt: skip
    feats, alpha = feats.to(out_device, out_dtype), alpha.to(out_device, out_dtype)
    return Composited(rgb=feats[:, :3], alpha=alpha, depth_sum=feats[:, 3:4], visible=visible.to(out_device))
