"""A tiny, *untrained* InstructPix2Pix for tests and the offline demo.

It is a real :class:`diffusers.StableDiffusionInstructPix2PixPipeline` built from tiny configs
(UNet2DConditionModel with 8 input channels, AutoencoderKL with SD's 8x downsampling,
CLIPTextModel, EulerAncestralDiscreteScheduler as InstructPix2Pix ships) and the small BPE
tokenizer in ``assets/``. Weights are random but deterministic for a seed. Nothing is downloaded.

The pipeline is built once, saved with ``save_pretrained`` into the AdLift cache
(``$ADLIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/adlift`` or ``~/.cache/adlift``) and then loaded
back with ``from_pretrained`` from that directory: exactly the code path real weights take.

Its edits are noise-like: everything it produces must be labelled as coming from an untrained
test model (see :mod:`adlift.editors.untrained`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from adlift.editors.registry import EDITORS
from adlift.editors.weights import import_diffusers, quiet_hf

#: Folder of the tokenizer files shipped with the package.
ASSETS_DIR = Path(__file__).resolve().parent / "assets"

#: Bump when the tiny architecture changes, so stale cached copies are not reused.
TINY_VERSION = 1

#: Token sequence length of the tiny text encoder (real CLIP uses 77).
TINY_MAX_LENGTH = 16


def adlift_cache_dir() -> Path:
    """Where AdLift caches generated artefacts (the tiny pipeline)."""
    if os.environ.get("ADLIFT_CACHE_DIR"):
        return Path(os.environ["ADLIFT_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "adlift"


def load_tiny_tokenizer():
    """The CLIPTokenizer of the tiny model, from ``assets/vocab.json`` and ``assets/merges.txt``."""
    import_diffusers()
    from transformers import CLIPTokenizer

    # transformers 5: from_pretrained(dir) reads vocab.json + merges.txt; vocab_file= would be ignored.
    return CLIPTokenizer.from_pretrained(str(ASSETS_DIR), model_max_length=TINY_MAX_LENGTH)


def tiny_text_config(tokenizer):
    """The ``CLIPTextConfig`` of the tiny models' text encoders (32 wide, 2 layers), sized to ``tokenizer``."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TINY_MAX_LENGTH,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_pipeline(seed: int = 0):
    """Construct the tiny pipeline in memory, weights drawn from ``seed`` (global RNG untouched)."""
    import_diffusers()
    with quiet_hf():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        tokenizer = load_tiny_tokenizer()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(
                sample_size=8,
                in_channels=8,  # 4 noisy latent channels + 4 image-conditioning channels
                out_channels=4,
                layers_per_block=1,
                block_out_channels=(16, 32),
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=32,
                attention_head_dim=8,
                norm_num_groups=8,
            )
            torch.manual_seed(seed + 1)
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * 4,  # 3 downsamples: SD's 8x latent factor
                up_block_types=("UpDecoderBlock2D",) * 4,
                block_out_channels=(8, 8, 16, 16),
                layers_per_block=1,
                latent_channels=4,
                norm_num_groups=8,
                sample_size=32,
            )
            torch.manual_seed(seed + 2)
            text_encoder = CLIPTextModel(tiny_text_config(tokenizer))
        return assemble_ip2p_pipeline(vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer)


def assemble_ip2p_pipeline(*, vae, unet, text_encoder, tokenizer):
    """A ``StableDiffusionInstructPix2PixPipeline`` of the given models with InstructPix2Pix's released
    scheduler (Euler ancestral on SD's scaled-linear betas) and no safety checker."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    scheduler = EulerAncestralDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="epsilon", steps_offset=1,
    )  # fmt: skip
    return StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip


def tiny_pipeline_dir(seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """A ``save_pretrained`` directory of the tiny pipeline for ``seed``, built on first use.

    The directory is written under a temporary name and renamed into place, so concurrent
    processes never see a half-written model.
    """
    diffusers = import_diffusers()
    import transformers

    root = Path(cache_dir).expanduser() if cache_dir is not None else adlift_cache_dir()
    versions = f"diffusers{diffusers.__version__}-transformers{transformers.__version__}"
    key = f"tiny-ip2p-v{TINY_VERSION}-seed{seed}-{versions}"
    target = root / key
    if (target / "model_index.json").is_file() and (target / "adlift_tiny.json").is_file():
        return target
    if target.exists():  # a leftover of an older layout or a copy someone edited: rebuild it
        shutil.rmtree(target, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        with quiet_hf():
            build_tiny_pipeline(seed).save_pretrained(tmp, safe_serialization=True)
        (tmp / "adlift_tiny.json").write_text(
            json.dumps({"editor": "tiny", "untrained_test_model": True, "seed": seed, "version": TINY_VERSION}) + "\n"
        )
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "model_index.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


@EDITORS.register("tiny", help="untrained offline test model (tests, demo; built locally, nothing downloaded): its edits are noise")
def load_tiny(*, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
              cache_dir: str | os.PathLike | None = None):  # fmt: skip
    """The tiny untrained IP2P editor; ``cache_dir`` is where it is built (default: :func:`adlift_cache_dir`)."""
    from adlift.editors.ip2p import IP2PEditor

    return IP2PEditor.tiny(device=device, dtype=dtype, cache_dir=cache_dir)
