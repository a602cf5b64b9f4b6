"""``dge``: the ``pipeline`` attack run as DGE (Direct Gaussian Editor) runs the edit: jointly over key views.

DGE (:mod:`adlift.editors.dge`) edits a few key views together: in every self-attention layer
(``attn1``) of the UNet, each key view attends to the tokens of all key views. This loss runs the
``pipeline`` loss's ``pipeline_steps`` unrolled, guided denoising steps (:func:`.pipeline.unrolled_edit`,
the same seeding and guidance) for each attacked image i on the batch [x_i, key view 1, ..., key view K]
with DGE's joint attention installed (:func:`~adlift.editors.dge.multiview_attention`, mode ``key``),
and returns the distance of x_i's edit to the target image (:func:`.pipeline.target_distance`). The key
views' renders are constants (no gradient reaches them), but their tokens are denoised together with
x_i's, so they and x_i's edit see each other in every layer, at every step.

**Context.** :meth:`DGELossConfig.prepare` (called by the protection engine with the raw renders of the
training views and the training cameras, once, before the first unit) chooses ``key_views`` of the
views with DGE's farthest-point sampling of the camera centres
(:func:`~adlift.editors.dge.select_key_views`; without cameras: the first ``key_views`` images) and
keeps their VAE latents. The context is fixed for the run: an attacked view that is itself a key view
also attends to its own raw render (the loss cannot tell which view an image is), and novel views
measured at the end attend to the training key views.

**Without context** (``adlift protect-image``, which has no scene; a loss rebuilt from a manifest to
measure removal attacks) the loss prints a one-line note once and runs as the plain ``pipeline`` loss
with the same options: there are no views to attend to.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from adlift.attacks.losses.base import register_loss
from adlift.attacks.losses.pipeline import PipelineLossConfig, target_distance, unrolled_edit
from adlift.errors import AdLiftError

if TYPE_CHECKING:
    from adlift.attacks.losses.base import AdversarialLoss
    from adlift.cameras import Cameras

#: Printed once per loss when it has no views to attend to.
NO_VIEWS_NOTE = ("loss dge: no training views to attend to (adlift protect-image, or a loss rebuilt without its "
                 "scene); running it as the plain pipeline loss. adlift protect gives it DGE's key views.")  # fmt: skip


@dataclasses.dataclass
class DGEContext:
    """What :meth:`DGELossConfig.prepare` makes (kept as ``AdversarialLoss.context``)."""

    views: list[int]
    """Indices of the key views among the prepared images (sorted; empty: each image attends to itself alone)."""

    latents: torch.Tensor | None
    """[K, 4, h, w] the key views' conditioning latents (``encode_image``), detached; None when K = 0."""

    size: tuple[int, int]
    """(H, W) of the prepared images: attacked images must have this size (one token grid)."""

    plain: bool = False
    """True when the loss had no views (the note was printed): it runs as the plain pipeline loss."""


@register_loss("dge", help="the pipeline edit as DGE runs it: each image denoised jointly with DGE's key views")
@dataclasses.dataclass
class DGELossConfig(PipelineLossConfig):
    """dge loss: the pipeline loss with every image denoised jointly with DGE's key views (joint self-attention)."""

    key_views: int = 4
    """Context key views each attacked image attends to jointly, chosen among the training views by DGE's
    farthest-point sampling of the camera centres (at most all of them)."""

    def validate(self) -> None:
        super().validate()
        if self.key_views < 1:
            raise AdLiftError(f"--loss.key-views must be >= 1 (the views each image attends to), got {self.key_views}")

    def describe(self) -> str:
        return f"dge({self.target},{self.pipeline_steps} steps,{self.key_views} key views)"

    def prepare(self, loss: "AdversarialLoss", images: torch.Tensor, cameras: "Cameras | None") -> DGEContext:
        from adlift.editors.dge import select_key_views

        n, size = images.shape[0], (int(images.shape[-2]), int(images.shape[-1]))
        count = min(self.key_views, n)
        views = [] if n == 0 else list(range(count)) if cameras is None else select_key_views(cameras, count)
        sf = loss.surface
        latents = sf.encode_image(images[views].to(sf.device, sf.dtype)).detach() if views else None
        return DGEContext(views, latents, size)

    def compute(self, loss: "AdversarialLoss", x, reference, generator) -> torch.Tensor:
        from adlift.editors.dge import KeyViewController, multiview_attention

        ctx = loss.context
        if ctx is None:
            print(NO_VIEWS_NOTE, flush=True)
            loss.context = ctx = DGEContext([], None, (0, 0), plain=True)
        if ctx.plain:
            return super().compute(loss, x, reference, generator)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if size != ctx.size:
            raise AdLiftError(f"loss dge: the image is {size[1]}x{size[0]} but its key views are "
                              f"{ctx.size[1]}x{ctx.size[0]}; attack images of the training views' size")  # fmt: skip
        sf = loss.surface
        controller = KeyViewController(list(range(1 + len(ctx.views))))  # the image, then the key views

        def joint():  # around every UNet pass, and its recomputation in the backward pass
            return multiview_attention(sf.unet, controller)

        values = []
        for i in range(x.shape[0]):
            image_latents = sf.encode_image(x[i : i + 1])  # [1, 4, h, w]
            if ctx.latents is not None:
                image_latents = torch.cat([image_latents, ctx.latents.to(image_latents)])  # [1 + K, 4, h, w]
            latents = unrolled_edit(loss, image_latents, generator, self, step_context=joint)
            values.append(target_distance(loss, latents[:1], size))
        return torch.cat(values)
