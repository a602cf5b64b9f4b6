"""DGE-style 3D editing (Direct Gaussian Editor, Chen et al., ECCV 2024): consistent multi-view edits, then one fit.

Instruct-GS2GS edits one view at a time and lets the 3D fit average the disagreements, round after
round. DGE makes the 2D edits agree first and fits the Gaussians once:

1. **Key views.** ``key_views`` views spread over the cameras (farthest-point sampling of the
   camera centres, starting at the first camera; default one key view per ``views_per_key`` = 5
   cameras, DGE's ``camera_batch_size``).
2. **Joint editing of the key views.** Every view's render latent (a VAE posterior sample of the
   original render) is noised to ``t_start`` (DGE: 0.98 T) and denoised in ``steps`` DDIM steps
   with InstructPix2Pix' three-way guidance, conditioned on its original view. In each step the key
   views go through the UNet as one batch whose self-attention (every ``attn1``) lets each key view's
   tokens attend to the tokens of *all* key views (keys and values concatenated over the key views,
   separately per guidance branch). It is a diffusers attention processor installed with
   ``unet.set_attn_processor`` for the duration of the edit (:func:`multiview_attention`); the UNet
   is not modified.
3. **Feature injection into the other views.** In the same step the other views go through the
   UNet (``batch_size`` at a time); their self-attention *output* is replaced, token by token, by
   the key views' self-attention outputs at corresponding tokens, blended over the two key views
   whose camera centres are nearest (weights inversely proportional to the distance). Correspondence
   (``matching``):

   * ``epipolar`` (DGE's, the default): among the key view's tokens within ``epipolar_threshold``
     tokens of the epipolar line of the view's token (fundamental matrix from the cameras,
     :mod:`adlift.editors.epipolar`), the one whose attention input is most similar (cosine, on the
     image-conditioned branch) to the view's token;
   * ``depth``: the key-view token the view's token reprojects to with the scene's rendered depth,
     where that point is visible in the key view (depth test); tokens without a surface, outside the
     key view or occluded there fall back to the epipolar match. Exact where the depth is right,
     and needs no feature similarity, which an adversarial perturbation of the renders could steer.

   Below timestep ``plain_attention_below`` (DGE: 100 of 1000) every view uses its own ordinary
   self-attention, to sharpen details.
4. **Direct 3DGS fit.** All Gaussian parameters are optimised to the edited views for
   ``fit_steps`` Adam steps (one random view per step) with the photometric loss and learning rates
   of the Instruct-GS2GS-style editor (:class:`~adlift.editors.scene_edit.GaussianFitter`;
   (1 - 0.2) L1 + 0.2 D-SSIM; DGE uses L1 + a perceptual loss, whose weights AdLift cannot ship
   offline).

DGE's defaults: 20 diffusion steps, text guidance 7.5, image guidance 1.5, noise level 0.98 T, one
key view per 5 cameras, plain attention below t = 100, 1000 fitting steps (1000-1500 in its
scripts). Differences from DGE's code: the key views are fixed for the whole edit (DGE re-draws one
at random in every group of 5 consecutive cameras at every step, which assumes cameras ordered
along a trajectory), the two nearest key views are blended with inverse-distance weights
(DGE: a sigmoid of the distance ratio), no densification, no SAM mask for local edits, and the
"original" views are renders of the input scene.

The diffusion settings (``steps``, guidance, ``seed``, ``batch_size``) and the fit's photometric loss,
learning rates, renderer, checkpoint path and progress come from a
:class:`~adlift.editors.scene_edit.SceneEditConfig` (its Instruct-GS2GS-only fields ``rounds``,
``gs_steps``, ``t_lower`` and ``t_upper`` are not used); DGE's own settings are :class:`DGEConfig`.

With a checkpoint path, the state is saved after the multi-view edit and every
``checkpoint_every`` fitting steps, and resumed with the same result as an uninterrupted run; it holds
only tensors, numbers and strings (:mod:`adlift.io.checkpoint`) and a fingerprint of the run.
Callers that never checkpoint (``adlift evaluate``, the viewer) nest :class:`NoCheckpointDGEConfig`,
which hides ``checkpoint_every`` from their options.

:func:`edit_scenes_dge` edits several scenes (raw and protected) from the same cameras with the same
settings and seed, a paired comparison: ``adlift evaluate --mode dge`` and the viewer's
"Edit scenes (DGE)" both run it. ``on_progress`` callbacks report the UNet passes of the multi-view
edit and the fitting steps; an exception raised in one (a cancelled job) ends the edit, with the UNet
restored.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
import tyro
from tqdm.auto import tqdm

from adlift.cameras import Cameras
from adlift.editors.epipolar import depth_correspondence, depth_on_grid, epipolar_candidates
from adlift.editors.scene_edit import GaussianFitter, SceneEditConfig, SceneEditResult, _render_views, run_fingerprint
from adlift.errors import AdLiftError
from adlift.io.checkpoint import load_checkpoint, save_checkpoint
from adlift.scene import GaussianScene

if TYPE_CHECKING:
    from adlift.editors.ip2p import IP2PEditor

#: Bump when the checkpoint layout or the fingerprint changes.
CHECKPOINT_VERSION = 1

#: SceneEditConfig fields DGE does not use or that do not change its result (left out of the fingerprint).
_EDIT_FIELDS_UNUSED = ("rounds", "gs_steps", "t_lower", "t_upper")

#: Epipolar candidate masks are cached per (view, key view, layer) up to this many tokens per layer.
_CACHE_TOKENS = 1024

#: Progress of one DGE edit: (stage, done, total); stage "edit" counts the UNet passes of the multi-view
#: edit (``steps`` x (1 + batches of the other views)), "fit" the fitting steps.
DGEProgress = Callable[[str, int, int], None]


@dataclasses.dataclass
class DGEConfig:
    """DGE's own settings (``adlift edit --mode dge --dge.*``); defaults follow DGE's released configuration."""

    key_views: int = 0
    """Key views edited jointly (spread over the cameras); 0 = one per `views-per-key` cameras, rounded up."""

    views_per_key: int = 5
    """With key-views 0: cameras per key view (DGE's camera_batch_size: 5)."""

    matching: Literal["epipolar", "depth"] = "epipolar"
    """How a view's tokens find their key-view tokens: epipolar (DGE: the most similar token near the
    epipolar line) or depth (reprojection with the scene's rendered depth, epipolar where it has none)."""

    epipolar_threshold: float = 1.0
    """Largest distance (in tokens of the attention layer's grid) of a candidate from the epipolar line (DGE: 1)."""

    t_start: float = 0.98
    """Noise level the render latents start from, as a fraction of the training timesteps (DGE: 0.98)."""

    plain_attention_below: int = 100
    """Below this timestep every view uses its own self-attention again (DGE: 100 of 1000)."""

    fit_steps: int = 1000
    """Adam steps of the direct 3DGS fit to the edited views (DGE: max_steps 1000; 1500 in its scripts)."""

    checkpoint_every: int = 100
    """With a checkpoint path: save it every this many fitting steps (and after the multi-view edit)."""

    def validate(self) -> None:
        """AdLiftError for settings that cannot work."""
        if self.key_views < 0 or self.views_per_key < 1:
            raise AdLiftError(f"need dge.key-views >= 0 and dge.views-per-key >= 1, got {self.key_views}, "
                              f"{self.views_per_key}")  # fmt: skip
        if self.matching not in ("epipolar", "depth"):
            raise AdLiftError(f"dge.matching must be epipolar or depth, got {self.matching!r}")
        if not self.epipolar_threshold > 0:
            raise AdLiftError(f"dge.epipolar-threshold must be > 0, got {self.epipolar_threshold}")
        if not 0.0 < self.t_start <= 1.0:
            raise AdLiftError(f"dge.t-start must lie in (0, 1], got {self.t_start}")
        if self.plain_attention_below < 0 or self.fit_steps < 0 or self.checkpoint_every < 1:
            raise AdLiftError("need dge.plain-attention-below >= 0, dge.fit-steps >= 0 and dge.checkpoint-every >= 1")

    def num_key_views(self, n_views: int) -> int:
        """Key views for ``n_views`` cameras: ``key_views`` (at most all), else ceil(n / views_per_key)."""
        k = self.key_views if self.key_views > 0 else math.ceil(n_views / self.views_per_key)
        return max(1, min(n_views, k))


@dataclasses.dataclass
class NoCheckpointDGEConfig(DGEConfig):
    """:class:`DGEConfig` for callers that never checkpoint a DGE edit (``adlift evaluate --dge.*``, the viewer's
    ``adlift view --dge.*``): the same fields, with ``checkpoint_every`` hidden from the command line."""

    checkpoint_every: tyro.conf.Suppress[int] = DGEConfig.checkpoint_every
    """Unused: these callers never save a checkpoint."""


def select_key_views(cameras: Cameras, count: int) -> list[int]:
    """``count`` camera indices spread over the rig: farthest-point sampling of the camera centres from
    camera 0 (ties to the lowest index; cameras sharing a centre are taken in index order); sorted."""
    centers = cameras.centers.double()
    chosen = [0]
    dist = (centers - centers[0]).norm(dim=-1)
    dist[0] = -1.0
    while len(chosen) < min(count, len(cameras)):
        i = int(torch.argmax(dist))  # the first of the farthest; never one already chosen (-1)
        chosen.append(i)
        dist = torch.minimum(dist, (centers - centers[i]).norm(dim=-1))
        dist[chosen] = -1.0
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------------- attention
def _attention(attn, x: torch.Tensor, views: int = 1) -> torch.Tensor:
    """``attn``'s self-attention of tokens x [G * views, L, D] where the ``views`` consecutive images of
    each group attend jointly (keys and values concatenated over them): [G * views, L, D_out].
    ``views=1`` is diffusers' ordinary self-attention."""
    if attn.spatial_norm is not None or attn.group_norm is not None or x.ndim != 3:
        raise AdLiftError("DGE's multi-view attention supports transformer self-attention layers only")
    n, length, _ = x.shape
    groups = n // views
    q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
    heads = attn.heads
    dh = q.shape[-1] // heads

    def split(t: torch.Tensor) -> torch.Tensor:  # [G*V, L, H*dh] -> [G, H, V*L, dh]
        return t.reshape(groups, views * length, heads, dh).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(n, length, heads * dh).to(q.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    if attn.residual_connection:
        out = out + x
    return out / attn.rescale_output_factor


class KeyViewController:
    """What :class:`_DGEAttnProcessor` needs in the modes ``plain`` and ``key``: the mode of the current UNet
    pass and the key views (the consecutive images of each guidance branch that attend jointly in mode
    ``key``). Enough on its own for a joint pass over given images without cameras (the ``dge`` adversarial
    loss, :mod:`adlift.attacks.losses.dge`); :class:`_Controller` adds what ``inject`` needs."""

    def __init__(self, key_views: list[int], mode: Literal["plain", "key"] = "key"):
        self.key_views = key_views
        self.mode: Literal["plain", "key", "inject"] = mode


class _Controller(KeyViewController):
    """What the attention processors of one multi-view edit share: the mode of the current UNet pass,
    the cameras, the token grids and correspondences."""

    def __init__(self, cameras: Cameras, key_views: list[int], config: DGEConfig, latent_hw: tuple[int, int],
                 size_multiple: int, depth: torch.Tensor | None, alpha: torch.Tensor | None):  # fmt: skip
        super().__init__(key_views, mode="plain")
        self.cameras, self.config = cameras, config
        self.batch_views: list[int] = []
        self.depth, self.alpha = depth, alpha  # [C, H', W'] padded, or None
        # Token grids of the UNet's levels: (h, w, stride in padded pixels), keyed by tokens per image.
        self.grids: dict[int, tuple[int, int, float]] = {}
        h, w, stride = latent_hw[0], latent_hw[1], float(size_multiple)
        for _ in range(8):
            self.grids.setdefault(h * w, (h, w, stride))
            h, w, stride = math.ceil(h / 2), math.ceil(w / 2), stride * 2
        # The two key views nearest each camera (by centre), with inverse-distance weights.
        centers = cameras.centers.double()
        keys = torch.tensor(key_views)
        self.neighbours: dict[int, list[tuple[int, float]]] = {}
        for view in range(len(cameras)):
            d = (centers[keys] - centers[view]).norm(dim=-1)
            order = torch.argsort(d, stable=True)[:2].tolist()
            if len(order) == 1 or float(d[order].sum()) == 0.0:
                self.neighbours[view] = [(order[0], 1.0)]
            else:
                d1, d2 = float(d[order[0]]), float(d[order[1]])
                self.neighbours[view] = [(order[0], d2 / (d1 + d2)), (order[1], d1 / (d1 + d2))]
        self._cache: dict[tuple, torch.Tensor | tuple[torch.Tensor, torch.Tensor]] = {}

    def grid(self, length: int) -> tuple[int, int, float]:
        if length not in self.grids:
            raise AdLiftError(f"an attention layer has {length} tokens, which matches no level of the latent grid")
        return self.grids[length]

    def _candidates(self, view: int, key: int, length: int) -> torch.Tensor:
        h, w, stride = self.grid(length)
        cache_key = ("epi", view, key, length)
        if cache_key in self._cache:
            return self._cache[cache_key]
        cand = epipolar_candidates(self.cameras, view, key, h, w, (stride, stride), self.config.epipolar_threshold)
        cand[~cand.any(dim=1)] = True  # a token whose line misses the key view: unconstrained
        if length <= _CACHE_TOKENS:
            self._cache[cache_key] = cand
        return cand

    def _reprojection(self, view: int, key: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        cache_key = ("depth", view, key, length)
        if cache_key not in self._cache:
            h, w, stride = self.grid(length)
            d_v, ok_v = depth_on_grid(self.depth[view], self.alpha[view], h, w)
            d_k, _ = depth_on_grid(self.depth[key], self.alpha[key], h, w)
            self._cache[cache_key] = depth_correspondence(self.cameras, view, key, d_v, ok_v, (stride, stride), d_k)
        return self._cache[cache_key]  # type: ignore[return-value]

    def match(self, view: int, key: int, feats: torch.Tensor, key_feats: torch.Tensor) -> torch.Tensor:
        """For each token of ``view`` (features [L, D]) the index [L] of its key-view token (features [L, D])."""
        length = feats.shape[0]
        sim = F.normalize(feats.float(), dim=-1) @ F.normalize(key_feats.float(), dim=-1).T  # [L, L]
        cand = self._candidates(view, key, length).to(sim.device)
        index = sim.masked_fill(~cand, float("-inf")).argmax(dim=1)
        if self.config.matching == "depth":
            by_depth, valid = self._reprojection(view, key, length)
            index = torch.where(valid.to(index.device), by_depth.to(index.device), index)
        return index


class _DGEAttnProcessor:
    """A diffusers attention processor for one self-attention layer (``attn1``) of the UNet.

    ``plain``: ordinary self-attention. ``key``: the batch is [3 branches x K key views]; each key
    view attends to all key views' tokens of its branch; the layer keeps its input and output.
    ``inject``: the batch is [3 x B other views]; each view's output is the key views' output at
    its corresponding tokens (:meth:`_Controller.match`), blended over its two nearest key views.
    """

    def __init__(self, controller: KeyViewController):
        self.c = controller  # a _Controller for mode "inject"
        self.key_in: torch.Tensor | None = None  # [3, K, L, D]
        self.key_out: torch.Tensor | None = None  # [3, K, L, D_out]

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):  # fmt: skip
        c = self.c
        if encoder_hidden_states is not None or attention_mask is not None:
            raise AdLiftError("DGE's attention processor belongs on self-attention layers (attn1) only")
        if c.mode == "plain":
            return _attention(attn, hidden_states)
        n, length, dim = hidden_states.shape
        if c.mode == "key":
            k = len(c.key_views)
            out = _attention(attn, hidden_states, views=k)
            self.key_in = hidden_states.detach().view(3, k, length, dim)
            self.key_out = out.detach().view(3, k, length, -1)
            return out
        views = c.batch_views
        x = hidden_states.view(3, len(views), length, dim)
        out = hidden_states.new_zeros(3, len(views), length, self.key_out.shape[-1])
        for b, view in enumerate(views):
            for j, weight in c.neighbours[view]:
                index = c.match(view, c.key_views[j], x[1, b], self.key_in[1, j])  # image-conditioned branch
                out[:, b] += weight * self.key_out[:, j, index]
        return out.view(n, length, -1)


@contextmanager
def multiview_attention(unet, controller: KeyViewController) -> Iterator[int]:
    """Install a :class:`_DGEAttnProcessor` on every self-attention layer (``attn1``) of ``unet`` and
    restore the previous processors afterwards (also when the body raises); yields the number of layers."""
    before = dict(unet.attn_processors)
    procs = {name: (_DGEAttnProcessor(controller) if name.endswith("attn1.processor") else proc)
             for name, proc in before.items()}  # fmt: skip
    count = sum(isinstance(p, _DGEAttnProcessor) for p in procs.values())
    if count == 0:
        raise AdLiftError("the editor's UNet has no self-attention layers (attn1); DGE cannot run on it")
    unet.set_attn_processor(procs)
    try:
        yield count
    finally:
        unet.set_attn_processor(before)


# ---------------------------------------------------------------------------------------------------- the edit
@dataclasses.dataclass
class MultiViewEdit:
    """What :func:`multiview_edit` returns."""

    images: torch.Tensor  # [C, 3, H, W]
    """The edited views, in [0, 1], on the originals' device (float32)."""

    key_views: list[int]
    """Indices of the key views."""


def _generators(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(seed + i) for i in range(n)]


@torch.no_grad()
def multiview_edit(
    editor: IP2PEditor,
    originals: torch.Tensor,  # [C, 3, H, W] in [0, 1]
    cameras: Cameras,
    instruction: str,
    config: DGEConfig | None = None,
    *,
    steps: int = 20,
    guidance_scale: float = 7.5,
    image_guidance_scale: float = 1.5,
    seed: int = 0,
    batch_size: int = 4,
    depth: torch.Tensor | None = None,  # [C, 1, H, W] rendered camera-z depth (matching "depth")
    alpha: torch.Tensor | None = None,  # [C, 1, H, W] rendered alpha (matching "depth")
    key_views: list[int] | None = None,
    progress: bool = False,
    on_pass: Callable[[int, int], None] | None = None,
) -> MultiViewEdit:
    """DGE's consistent multi-view edit of ``originals`` seen from ``cameras`` (steps 1-3 of the module
    docstring). View i draws its VAE sample and noise from a generator seeded ``seed + i``.
    ``key_views`` overrides :func:`select_key_views`. ``on_pass(done, total)`` after every UNet pass
    (``steps`` x (1 + batches of the other views) in all)."""
    from adlift.image_metrics import check_images

    config = config or DGEConfig()
    config.validate()
    check_images(originals, "original views", values=False)
    n = originals.shape[0]
    if len(cameras) != n or (cameras.height, cameras.width) != tuple(originals.shape[-2:]):
        raise AdLiftError(f"{n} original views of {originals.shape[-1]}x{originals.shape[-2]} need as many cameras "
                          f"of that size, got {len(cameras)} of {cameras.width}x{cameras.height}")  # fmt: skip
    if config.matching == "depth" and (depth is None or alpha is None):
        raise AdLiftError("matching 'depth' needs the rendered depth and alpha of every view")
    if steps < 1:
        raise AdLiftError(f"steps must be >= 1, got {steps}")
    keys = sorted(set(key_views)) if key_views is not None else select_key_views(cameras, config.num_key_views(n))
    if not keys or any(not 0 <= k < n for k in keys):
        raise AdLiftError(f"key views {keys} are not indices of the {n} views")
    others = [i for i in range(n) if i not in keys]
    sf = editor.surface
    dev = sf.device
    x_img = originals.to(dev, sf.dtype).clamp(0.0, 1.0)
    gens = _generators(seed, n)
    lat, image_lat = [], []
    for s in range(0, n, max(1, batch_size)):
        mean, std = sf.encode_latent_dist(x_img[s : s + batch_size])
        g = gens[s : s + batch_size]
        vae_noise = torch.stack([torch.randn(mean.shape[1:], generator=gi) for gi in g]).to(mean)
        lat.append((mean + std * vae_noise) * sf.scaling_factor)
        image_lat.append(mean)  # encode_image = the posterior mean, unscaled
    latents, image_latents = torch.cat(lat), torch.cat(image_lat)
    noise = torch.stack([torch.randn(latents.shape[1:], generator=gi) for gi in gens]).to(latents)
    t0 = min(sf.num_train_timesteps - 1, max(1, round(config.t_start * sf.num_train_timesteps)))
    x = sf.add_noise(latents, noise, t0)
    ts = [round(t0 * k / steps) for k in range(steps, 0, -1)]  # evenly spaced from t0 towards 0
    text, uncond = sf.text_embeddings(instruction), sf.empty_text_embeddings()

    def pad(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        return sf.pad(t.to(dev, torch.float32))[0][:, 0]  # [C, H', W']

    alpha_p = None
    if alpha is not None:  # padding carries no surface
        a = alpha.to(dev, torch.float32)
        h, w = a.shape[-2:]
        alpha_p = F.pad(a, (0, (-w) % sf.size_multiple, 0, (-h) % sf.size_multiple))[:, 0]
    controller = _Controller(cameras.to(dev), keys, config, tuple(latents.shape[-2:]), sf.size_multiple,
                             pad(depth), alpha_p)  # fmt: skip
    bs = max(1, batch_size)
    chunks = [others[s : s + bs] for s in range(0, len(others), bs)]
    passes = steps * (1 + len(chunks))
    bar = tqdm(total=passes, desc="DGE: editing views jointly", unit="pass", disable=not progress, leave=False)
    done = 0

    def passed() -> None:
        nonlocal done
        done += 1
        bar.update(1)
        if on_pass is not None:
            on_pass(done, passes)

    with multiview_attention(sf.unet, controller):
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < steps else -1
            plain = t < config.plain_attention_below
            eps = torch.empty_like(x)
            controller.mode = "plain" if plain else "key"
            eps[keys] = sf.predict_noise(x[keys], t, image_latents[keys], text, guidance_scale, image_guidance_scale,
                                         uncond)  # fmt: skip
            passed()
            for chunk in chunks:
                controller.mode, controller.batch_views = ("plain" if plain else "inject"), chunk
                eps[chunk] = sf.predict_noise(x[chunk], t, image_latents[chunk], text, guidance_scale,
                                              image_guidance_scale, uncond)  # fmt: skip
                passed()
            x = sf.ddim_step(x, eps, t, t_prev)
    bar.close()
    out = torch.cat([sf.decode_latents(x[s : s + bs], tuple(originals.shape[-2:])) for s in range(0, n, bs)])
    return MultiViewEdit(out.to(originals.device, torch.float32), keys)


# ---------------------------------------------------------------------------------------------------- the run
@dataclasses.dataclass
class DGEResult(SceneEditResult):
    """What :func:`edit_scene_dge` returns: :class:`~adlift.editors.scene_edit.SceneEditResult`'s fields
    (``targets`` = the consistent multi-view edits; ``history`` = one entry: ``round`` 1, ``edit_seconds``,
    ``fit_seconds``, ``fit_steps``, ``loss_before_fit``, ``loss_after_fit``) and the key views."""

    key_views: list[int] = dataclasses.field(default_factory=list)
    """Indices of the key views among the cameras."""


def _edit_fingerprint(edit: SceneEditConfig) -> dict:
    d = edit.fingerprint()
    for key in _EDIT_FIELDS_UNUSED:
        d.pop(key, None)
    return d


class DGERun:
    """A DGE edit in two phases: :meth:`edit_views` (the multi-view edit), then :meth:`fit_step` once per
    fitting step; :func:`edit_scene_dge` runs it to the end with checkpoints."""

    def __init__(self, scene: GaussianScene, cameras: Cameras, editor: IP2PEditor, instruction: str,
                 config: DGEConfig | None = None, edit: SceneEditConfig | None = None, *,
                 originals: torch.Tensor | None = None):  # fmt: skip
        config, edit = config or DGEConfig(), edit or SceneEditConfig()
        config.validate()
        edit.validate()
        if edit.guidance_scale is None:  # the editor's own DGE default (7.5 for InstructPix2Pix)
            edit = dataclasses.replace(edit, guidance_scale=editor.default_guidance("dge"))
        if not isinstance(scene, GaussianScene) or scene.num_gaussians == 0:
            raise AdLiftError("the DGE edit needs a non-empty GaussianScene")
        if len(cameras) == 0:
            raise AdLiftError("the DGE edit needs at least one training camera")
        if not instruction.strip():
            raise AdLiftError("the instruction is empty; say what the edit should do")
        self.config, self.edit, self.editor, self.instruction = config, edit, editor, instruction
        self.device, self.dtype = scene.device, scene.dtype
        self.cameras = cameras.to(self.device)
        self.views = [self.cameras[i] for i in range(len(cameras))]
        given = originals
        if originals is None:
            originals = _render_views(scene.detach(), self.views, edit)
        elif tuple(originals.shape) != (len(cameras), 3, cameras.height, cameras.width):
            raise AdLiftError(f"originals must have shape [C={len(cameras)}, 3, H={cameras.height}, "
                              f"W={cameras.width}], got {list(originals.shape)}")  # fmt: skip
        self.originals = originals.to(self.device, self.dtype)
        self._source = scene.detach()
        settings = {"edit": _edit_fingerprint(edit),
                    "dge": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("fit_steps", "checkpoint_every")}}  # fmt: skip
        self._fingerprint = run_fingerprint(scene, cameras, given, editor, instruction, settings, CHECKPOINT_VERSION)
        self.fitter = GaussianFitter(scene, self.cameras, edit)
        self.targets: torch.Tensor | None = None
        self.key_views: list[int] = []
        self.done = 0  # fitting steps done
        self._order = torch.Generator().manual_seed(edit.seed * 1000003 + 7)
        self.history: dict = {"edit_seconds": None, "fit_seconds": 0.0, "fit_steps": 0, "loss_before_fit": None,
                              "loss_after_fit": None}  # fmt: skip

    @property
    def total(self) -> int:
        """Units of the whole edit: the multi-view edit, then one per fitting step."""
        return 1 + self.config.fit_steps

    @property
    def finished(self) -> bool:
        return self.targets is not None and self.done >= self.config.fit_steps

    def scene(self) -> GaussianScene:
        """The current (detached) scene."""
        return self.fitter.scene()

    def edit_views(self, on_pass: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Steps 1-3: the consistent multi-view edit of the original views; returns (and keeps) the targets.
        ``on_pass(done, total)``: after every UNet pass (:func:`multiview_edit`)."""
        tic = time.perf_counter()
        depth = alpha = None
        if self.config.matching == "depth":
            from adlift.render import render

            with torch.no_grad():
                outs = [render(self._source, v, backend=self.edit.backend, background=self.edit.background)
                        for v in self.views]  # fmt: skip
            depth, alpha = torch.cat([o.depth for o in outs]), torch.cat([o.alpha for o in outs])
        e = self.edit
        result = multiview_edit(self.editor, self.originals, self.cameras, self.instruction, self.config,
                                steps=e.steps, guidance_scale=float(e.guidance_scale),
                                image_guidance_scale=e.image_guidance_scale, seed=e.seed, batch_size=e.batch_size,
                                depth=depth, alpha=alpha, progress=e.progress, on_pass=on_pass)  # fmt: skip
        self.targets = result.images.to(self.device, self.dtype)
        self.key_views = result.key_views
        self.history["edit_seconds"] = time.perf_counter() - tic
        self.history["loss_before_fit"] = self.fitter.mean_loss(self.views, self.targets)
        return self.targets

    def fit_step(self) -> float:
        """Step 4, once: one Adam step of every Gaussian parameter on one random view; returns its loss."""
        if self.targets is None:
            raise AdLiftError("the DGE fit needs the edited views first (edit_views)")
        tic = time.perf_counter()
        i = int(torch.randint(len(self.views), (1,), generator=self._order))
        loss = self.fitter.step(self.views[i], self.targets[i : i + 1], self.done)
        self.done += 1
        self.history["fit_steps"] = self.done
        self.history["fit_seconds"] += time.perf_counter() - tic
        return loss

    def finish(self) -> DGEResult:
        """Measure the fitted scene against the edited views and return the result."""
        if self.targets is None:
            raise AdLiftError("the DGE edit has not edited its views yet")
        loss = self.fitter.mean_loss(self.views, self.targets)
        if not math.isfinite(loss):
            raise AdLiftError(f"the DGE fit diverged (loss {loss}); lower the learning rates")
        self.history["loss_after_fit"] = loss
        return DGEResult(self.fitter.scene(check_finite=True), self.targets.detach(), self.originals.detach(),
                         [{"round": 1, **self.history}], list(self.key_views))  # fmt: skip

    def fingerprint(self) -> dict:
        """What a checkpoint must share with this run: version, hashes of the scene (and given originals),
        cameras, instruction, editor, and every setting that changes the result (not fit_steps: a run
        can be resumed with more steps)."""
        return self._fingerprint

    def state_dict(self) -> dict:
        """Everything needed to resume: tensors, numbers, strings, lists and dicts only."""
        if self.targets is None:
            raise AdLiftError("nothing to save before the multi-view edit")
        return {"fingerprint": self.fingerprint(), "fit": self.fitter.state_dict(), "targets": self.targets.cpu(),
                "key_views": list(self.key_views), "done": self.done, "order": self._order.get_state(),
                "history": dict(self.history)}  # fmt: skip

    def load_state_dict(self, state: dict, source: object = "the checkpoint") -> None:
        """Continue from :meth:`state_dict` of the same run; AdLiftError for a checkpoint of another run."""
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint():
            raise AdLiftError(f"{source} is a checkpoint of another edit (scene, cameras, instruction, editor or "
                              "settings differ); delete it or choose another output directory")  # fmt: skip
        try:
            targets = state["targets"].to(self.device, self.dtype)
            if tuple(targets.shape) != tuple(self.originals.shape):
                raise ValueError("tensor shapes differ")
            self.fitter.load_state_dict(state["fit"])
            self._order.set_state(state["order"])
            key_views, done, history = [int(k) for k in state["key_views"]], int(state["done"]), dict(state["history"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            why = " ".join(str(e).split())[:120]
            raise AdLiftError(f"{source} is damaged ({e.__class__.__name__}: {why}); delete it to start over") from None
        self.targets, self.key_views, self.done, self.history = targets, key_views, done, history


def edit_scene_dge(
    scene: GaussianScene,
    cameras: Cameras,
    editor: IP2PEditor,
    instruction: str,
    config: DGEConfig | None = None,
    edit: SceneEditConfig | None = None,
    *,
    originals: torch.Tensor | None = None,  # [C, 3, H, W] in [0, 1]; default: renders of `scene`
    on_progress: DGEProgress | None = None,
) -> DGEResult:
    """Edit ``scene`` with ``instruction`` DGE-style from the training views ``cameras`` (module docstring).

    ``edit.checkpoint``: saved after the multi-view edit, every ``config.checkpoint_every`` fitting
    steps and at the end, and resumed from when it exists (a checkpoint of another run is refused; a
    finished run resumes with more ``fit_steps``). ``on_progress(stage, done, total)``: after every UNet
    pass of the multi-view edit ("edit") and every fitting step ("fit").
    """
    config, edit = config or DGEConfig(), edit or SceneEditConfig()
    run = DGERun(scene, cameras, editor, instruction, config, edit, originals=originals)
    ckpt = Path(edit.checkpoint) if edit.checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        run.load_state_dict(load_checkpoint(ckpt, "DGE edit checkpoint"), ckpt)
    if run.targets is None:
        run.edit_views(None if on_progress is None else lambda done, total: on_progress("edit", done, total))
        if ckpt is not None:
            save_checkpoint(ckpt, run.state_dict())
    bar = tqdm(total=config.fit_steps, initial=min(run.done, config.fit_steps), desc="DGE: fitting the Gaussians",
               unit="step", disable=not edit.progress, leave=False)  # fmt: skip
    while run.done < config.fit_steps:
        loss = run.fit_step()
        bar.update(1)
        if run.done % 10 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")
        if on_progress is not None:
            on_progress("fit", run.done, config.fit_steps)
        if ckpt is not None and (run.done % config.checkpoint_every == 0 or run.done == config.fit_steps):
            save_checkpoint(ckpt, run.state_dict())
    bar.close()
    return run.finish()


def edit_scenes_dge(
    scenes: Mapping[str, GaussianScene],
    cameras: Cameras,
    editor: IP2PEditor,
    instruction: str,
    config: DGEConfig | None = None,
    edit: SceneEditConfig | None = None,
    *,
    on_progress: Callable[[str, str, int, int], None] | None = None,
) -> dict[str, DGEResult]:
    """Edit every scene of ``scenes`` (by name, e.g. raw and protected) with :func:`edit_scene_dge`, in
    order, from the same ``cameras`` (moved to each scene's device) with the same settings and seed: a
    paired comparison (``adlift evaluate --mode dge``, the viewer). ``edit.checkpoint`` must be None (the
    scenes would share it). ``on_progress(name, stage, done, total)``: :func:`edit_scene_dge`'s progress of
    the scene called ``name``."""
    edit = edit or SceneEditConfig()
    if edit.checkpoint is not None:
        raise AdLiftError("edit_scenes_dge edits several scenes and cannot share one checkpoint; leave it unset")
    results = {}
    for name, scene in scenes.items():
        report = None if on_progress is None else (lambda stage, done, total, name=name:
                                                    on_progress(name, stage, done, total))  # fmt: skip
        results[name] = edit_scene_dge(scene, cameras.to(scene.device), editor, instruction, config, edit,
                                       on_progress=report)  # fmt: skip
    return results
