"""CLIP similarities for judging edits: text-image similarity and CLIP directional similarity.

    clip = load_clip()                                   # openai/clip-vit-large-patch14, from_pretrained
    clip = load_clip("tiny")                             # untrained offline test model
    before, after = captions_for("make it snowy", None)  # ("a photo", "a photo, make it snowy")
    sim = clip.text_image_similarity(edited, after)                       # [B] cosine
    dir_sim = clip.directional_similarity(raw, edited, before, after)     # [B] cosine

The directional similarity (Gal et al. 2021, as used by InstructPix2Pix and Instruct-NeRF2NeRF) is
cos(E_img(after) - E_img(before), E_txt(after caption) - E_txt(before caption)): how far the edit
moved the image in the direction the instruction describes. A protected image whose edit fails
scores low.

Models load like the editors, through the same huggingface_hub lookup
(:func:`adlift.editors.weights.locate_weights` / :func:`~adlift.editors.weights.loading_errors`): a hub
id or a ``save_pretrained`` directory, through the hub cache, honouring ``HF_HUB_OFFLINE``; missing
weights raise :class:`MissingClipError`. Images are resized and normalised here with torch (shortest side to the
model's ``image_size``, centre crop, OpenAI CLIP mean/std), not by CLIPProcessor's PIL path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from adlift.editors.weights import MissingModelError, loading_errors, locate_weights, quiet_hf
from adlift.errors import AdLiftError
from adlift.image_metrics import check_images

#: The CLIP model used when none is named (the one InstructPix2Pix's evaluation used).
DEFAULT_CLIP = "openai/clip-vit-large-patch14"

#: Per-channel normalisation of every OpenAI CLIP image encoder.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

class MissingClipError(MissingModelError):
    """The CLIP model's weights cannot be found (not cached, no network, or a bad local directory)."""

    what = "CLIP"
    default_model = DEFAULT_CLIP
    use_hint = "then pass DIR as the CLIP model"


def captions_for(instruction: str, source_caption: str | None = None) -> tuple[str, str]:
    """(before, after) captions for the directional similarity of an edit by ``instruction``.

    Without a caption of the source the before caption is the neutral ``"a photo"``; the after
    caption appends the instruction: ``"a photo, make it snowy"``. InstructPix2Pix's evaluation
    used hand/GPT-written edited captions instead; appending the instruction needs no language
    model and keeps the text direction equal to "what the instruction adds".
    """
    instruction = " ".join(instruction.split())
    if not instruction:
        raise AdLiftError("the edit instruction is empty; CLIP directional similarity needs one")
    before = " ".join((source_caption or "").split()) or "a photo"
    return before, f"{before}, {instruction}"


def _features(output) -> torch.Tensor:
    """Projected embeddings from ``get_*_features`` (a tensor, or an output whose pooler_output holds it)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _cosine(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Row-wise cosine of x [B, D] and y [B, D] or [D] -> [B]; 0 where either vector has zero length."""
    y = y.expand_as(x)
    dot = (x * y).sum(dim=-1)
    denom = x.norm(dim=-1) * y.norm(dim=-1)
    return torch.where(denom > eps, dot / denom.clamp_min(eps), torch.zeros_like(dot))


class ClipScorer:
    """A CLIP model and tokenizer with embedding and similarity helpers; all outputs are float32 on CPU."""

    def __init__(self, model, tokenizer, model_id: str, untrained: bool):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.untrained = untrained
        self.image_size = int(model.config.vision_config.image_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def metadata(self) -> dict:
        """What to record next to scores: model id, untrained flag, input size, embedding size."""
        return {
            "model": self.model_id,
            "untrained": self.untrained,
            "image_size": self.image_size,
            "embedding_dim": int(self.model.config.projection_dim),
        }

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] in [0, 1] -> pixel_values [B, 3, S, S].

        Shortest side resized to S = ``image_size`` (bicubic, antialiased), centre crop, CLIP mean/std.
        """
        check_images(images)
        x = images.detach().to(self.device, torch.float32)
        h, w = x.shape[-2:]
        s = self.image_size
        size = (s, max(s, round(w * s / h))) if h <= w else (max(s, round(h * s / w)), s)
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
        top, left = (size[0] - s) // 2, (size[1] - s) // 2
        x = x[..., top : top + s, left : left + s]
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings of images [B, 3, H, W] in [0, 1] -> [B, D]."""
        out = _features(self.model.get_image_features(pixel_values=self.preprocess(images)))
        return F.normalize(out.float(), dim=-1).cpu()

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Unit-length text embeddings of ``texts`` (truncated to the model's context) -> [T, D]."""
        if isinstance(texts, str) or not texts:
            raise AdLiftError("text_embeddings needs a non-empty list of strings")
        tokens = self.tokenizer(
            list(texts), padding="max_length", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        out = _features(
            self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device), attention_mask=tokens["attention_mask"].to(self.device)
            )
        )
        return F.normalize(out.float(), dim=-1).cpu()

    def text_image_similarity(self, images: torch.Tensor, caption: str) -> torch.Tensor:
        """Cosine similarity of each image [B, 3, H, W] to ``caption`` -> [B] in [-1, 1]."""
        return _cosine(self.image_embeddings(images), self.text_embeddings([caption])[0]).clamp(-1.0, 1.0)

    def directional_similarity(
        self,
        images_before: torch.Tensor,
        images_after: torch.Tensor,
        caption_before: str,
        caption_after: str,
    ) -> torch.Tensor:
        """CLIP directional similarity of before/after images [B, 3, H, W] (paired) -> [B] in [-1, 1].

        cos(E(after) - E(before), T(caption_after) - T(caption_before)); 0 where either difference
        is zero (an unchanged image, or identical captions).
        """
        if images_before.shape != images_after.shape:
            raise AdLiftError(
                f"before/after images differ in shape: {tuple(images_before.shape)} vs {tuple(images_after.shape)}"
            )
        d_img = self.image_embeddings(images_after) - self.image_embeddings(images_before)
        texts = self.text_embeddings([caption_before, caption_after])
        return _cosine(d_img, texts[1] - texts[0]).clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------------------- loading


def build_tiny_clip(seed: int = 0):
    """A tiny random-weight ``CLIPModel`` and the tiny tokenizer shipped in ``adlift/editors/assets``."""
    from adlift.editors.tiny import load_tiny_tokenizer, tiny_text_config

    tokenizer = load_tiny_tokenizer()
    with quiet_hf():
        from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

        text = tiny_text_config(tokenizer)
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
        config = CLIPConfig(
            text_config=text.to_dict(),
            vision_config=vision.to_dict(),
            projection_dim=32,
            adlift_untrained_test_model=True,  # saved in config.json, so a saved copy stays labelled
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPModel(config)
    return model, tokenizer


def load_clip(
    model: str | os.PathLike = DEFAULT_CLIP,
    device: torch.device | str = "cpu",
    *,
    cache_dir: str | os.PathLike | None = None,
) -> ClipScorer:
    """A :class:`ClipScorer` for ``model``: ``"tiny"``, a hub id, or a ``save_pretrained`` directory.

    Hub ids resolve through ``cache_dir`` (default: huggingface_hub's ``HF_HUB_CACHE``);
    with ``HF_HUB_OFFLINE=1`` nothing is downloaded. Missing weights raise :class:`MissingClipError`,
    before transformers is touched when the file system already decides it.
    """
    model = os.fspath(model)
    if model == "tiny":
        clip, tokenizer = build_tiny_clip()
        return ClipScorer(clip.to(device), tokenizer, "tiny", untrained=True)
    found = locate_weights(model, marker="config.json", kind="a saved CLIP model", cache_dir=cache_dir,
                           error=MissingClipError)  # fmt: skip
    where, source = found.where, Path(found.source)
    if source.is_dir() and not any((source / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        problem = "it has no tokenizer files (tokenizer.json, or vocab.json and merges.txt); save the tokenizer too"
        raise MissingClipError(model, where, problem)
    with quiet_hf():
        try:
            from transformers import AutoTokenizer, CLIPModel
        except ImportError as err:
            raise AdLiftError(f"CLIP metrics need transformers ({err}); install it with `pip install transformers`") from None
    with loading_errors(found, MissingClipError), quiet_hf():
        tokenizer = AutoTokenizer.from_pretrained(found.source, **found.kwargs)
        clip = CLIPModel.from_pretrained(found.source, **found.kwargs)
    # transformers 5 silently builds an empty-vocabulary tokenizer when its files are missing
    vocab = int(clip.config.text_config.vocab_size)
    if not vocab // 2 <= len(tokenizer) <= vocab:
        problem = f"its tokenizer has {len(tokenizer)} tokens but the text encoder expects {vocab}"
        raise MissingClipError(model, where, problem)
    untrained = bool(getattr(clip.config, "adlift_untrained_test_model", False))
    return ClipScorer(clip.to(device), tokenizer, model, untrained=untrained)
