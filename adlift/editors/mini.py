"""A *trained* miniature InstructPix2Pix: AdLift's offline measuring device (a model organism).

It is a real :class:`diffusers.StableDiffusionInstructPix2PixPipeline` with tiny configs
(AutoencoderKL with 4x downsampling, UNet2DConditionModel with 8 input channels, CLIPTextModel
with the bundled tokenizer of ``assets/``, InstructPix2Pix's Euler-ancestral scheduler), trained
on CPU (:mod:`adlift.editors.mini_train`, ``make train-mini``) on instructions whose correct
result is known exactly: :data:`INSTRUCTIONS`, computed by :func:`reference_edit`. Its weights
ship inside the package (``mini_weights/``, safetensors) and load through ``from_pretrained``
like real weights.

It is a **model organism, not InstructPix2Pix**: its edits are real, learned edits, but only of
these instructions and at low quality; numbers measured with it are never claims about the real
editor (its :meth:`MiniEditor.metadata` says so). Edit success is measurable because the right
answer is known: :func:`edit_success` = PSNR/SSIM of ``edit(x)`` to ``reference_edit(x)``.
Model card: ``docs/MINI_EDITOR.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from adlift.editors.ip2p import EDIT_MODES, IP2PEditor
from adlift.editors.registry import EDITORS
from adlift.errors import AdLiftError
from adlift.image_metrics import check_images

#: The shipped weights (a ``save_pretrained`` directory inside the package).
MINI_WEIGHTS = Path(__file__).resolve().parent / "mini_weights"

#: The label every result of the mini editor carries.
MODEL_ORGANISM_NOTE = (
    "mini: a small InstructPix2Pix trained offline on exactly computable edits (a model organism); "
    "its numbers are not claims about InstructPix2Pix"
)

#: Edit settings the model card's held-out numbers were measured with (pass them to ``editor.edit``).
MINI_EDIT_SETTINGS = {"steps": 10, "guidance_scale": 3.0, "image_guidance_scale": 1.5}

# Rec. 601 luma weights (the black-and-white photo, gold and sepia tones).
_LUMA = (0.299, 0.587, 0.114)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def _rgb(x: torch.Tensor, values) -> torch.Tensor:
    return x.new_tensor(values).view(1, 3, 1, 1)


def _gold(x: torch.Tensor) -> torch.Tensor:
    """Luminance through a gold tone curve: dark bronze at black, pale gold at white."""
    y = _luma(x)
    return _rgb(x, (0.22, 0.13, 0.02)) + y * _rgb(x, (0.78, 0.72, 0.38))


def _black_white(x: torch.Tensor) -> torch.Tensor:
    return _luma(x).expand(-1, 3, -1, -1)


def _hue(channel: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Set every pixel's HSV hue to a primary colour, keeping its value (max) and saturation."""

    def edit(x: torch.Tensor) -> torch.Tensor:
        hi = x.amax(dim=1, keepdim=True)
        lo = x.amin(dim=1, keepdim=True)
        out = lo.expand(-1, 3, -1, -1).clone()
        out[:, channel : channel + 1] = hi
        return out

    return edit


def _sepia(x: torch.Tensor) -> torch.Tensor:
    m = x.new_tensor([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    return torch.einsum("oc,bchw->bohw", m, x)


def _winter(x: torch.Tensor) -> torch.Tensor:
    """Half desaturated, cooled (less red, more blue) and brightened."""
    x = 0.5 * x + 0.5 * _luma(x)
    return 0.8 * x + _rgb(x, (0.10, 0.17, 0.26))


def _warmer(x: torch.Tensor) -> torch.Tensor:
    return x * _rgb(x, (1.12, 1.0, 0.82)) + _rgb(x, (0.04, 0.01, 0.0))


#: The instructions the mini editor was trained on, each an exact image transform (see reference_edit).
_EDITS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "make it gold": _gold,
    "make it a black and white photo": _black_white,
    "turn it blue": _hue(2),
    "turn it red": _hue(0),
    "turn it green": _hue(1),
    "make it sepia": _sepia,
    "make it look like winter": _winter,
    "invert the colors": lambda x: 1.0 - x,
    "make it warmer": _warmer,
    "make it darker": lambda x: 0.55 * x,
}
INSTRUCTIONS: list[str] = list(_EDITS)


def check_instruction(instruction: str) -> str:
    """``instruction`` if the mini editor knows it, else a one-line AdLiftError listing them."""
    if instruction not in _EDITS:
        known = ", ".join(repr(i) for i in INSTRUCTIONS)
        raise AdLiftError(f"unknown mini-editor instruction {instruction!r}; known: {known}")
    return instruction


def reference_edit(images: torch.Tensor, instruction: str) -> torch.Tensor:
    """The exact result of ``instruction`` on images [B, 3, H, W] in [0, 1]: [B, 3, H, W] in [0, 1].

    Per-pixel colour transforms (differentiable, any device/dtype); clamped to [0, 1].
    """
    fn = _EDITS[check_instruction(instruction)]
    check_images(images, values=False)
    return fn(images).clamp(0.0, 1.0)


def edit_success(edited: torch.Tensor, images: torch.Tensor, instruction: str) -> dict[str, torch.Tensor]:
    """How well ``edited`` carries out ``instruction`` on ``images``: PSNR and SSIM of it to the reference, per image [B]."""
    from adlift.image_metrics import psnr_per_image, ssim_per_image

    ref = reference_edit(images.to(edited), instruction)
    edited = edited.clamp(0.0, 1.0)
    return {"psnr": psnr_per_image(edited, ref), "ssim": ssim_per_image(edited, ref)}


def card_info() -> dict:
    """What the shipped weights' ``adlift_mini.json`` records (training and held-out quality); {} if absent."""
    path = MINI_WEIGHTS / "adlift_mini.json"
    return json.loads(path.read_text()) if path.is_file() else {}


class MiniEditor(IP2PEditor):
    """The trained mini InstructPix2Pix; an :class:`IP2PEditor` that also knows its reference edits."""

    #: True: a model organism, not InstructPix2Pix (recorded with everything it produces).
    model_organism = True
    instructions = INSTRUCTIONS

    @staticmethod
    def reference_edit(images: torch.Tensor, instruction: str) -> torch.Tensor:
        """:func:`reference_edit`: the exact answer for one of :data:`INSTRUCTIONS`."""
        return reference_edit(images, instruction)

    def reference_edit_for(self, instruction: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """``images -> reference_edit(images, instruction)`` for one of :data:`INSTRUCTIONS`, else None
        (an instruction the mini editor was not trained on has no known answer)."""
        if instruction not in _EDITS:
            return None
        return lambda images: reference_edit(images, instruction)

    def default_guidance(self, mode: str) -> float:
        """:data:`MINI_EDIT_SETTINGS`' text guidance (3.0, the model card's), in every mode (2d, 3d, dge)."""
        if mode not in EDIT_MODES:
            raise AdLiftError(f"mode must be one of {', '.join(EDIT_MODES)}, got {mode!r}")
        return float(MINI_EDIT_SETTINGS["guidance_scale"])

    def metadata(self) -> dict:
        return {**super().metadata(), "model_organism": True, "note": MODEL_ORGANISM_NOTE}


@EDITORS.register("mini", help="trained small InstructPix2Pix (a model organism, not the real editor): "
                               "real edits of a fixed instruction set at low quality, CPU-fast")  # fmt: skip
def load_mini(*, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
              cache_dir: str | os.PathLike | None = None) -> MiniEditor:  # fmt: skip
    """The shipped mini editor (float32 by default on every device: fp16 buys nothing at this size)."""
    if not (MINI_WEIGHTS / "model_index.json").is_file():
        raise AdLiftError(f"the mini editor's weights are missing from {MINI_WEIGHTS}; run `make train-mini`")
    return MiniEditor.from_pretrained(MINI_WEIGHTS, device=device, dtype=dtype or torch.float32,
                                      cache_dir=cache_dir, name="mini")  # fmt: skip
