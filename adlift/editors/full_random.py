"""InstructPix2Pix's full architecture with *random* weights: the real editor's compute and memory,
for cost measurements on machines that cannot have its weights (``--editor ip2p-random``).

The configurations are those InstructPix2Pix (timbrooks/instruct-pix2pix) publishes, i.e. Stable
Diffusion 1.5's with an 8-channel UNet input: UNet2DConditionModel with blocks 320/640/1280/1280, two
layers per block, 8-head attention and 768-wide cross-attention (~860M parameters); AutoencoderKL
128/256/512/512 with 4 latent channels (~84M); CLIPTextModel ViT-L/14's text tower, 12 layers 768
wide, 77 tokens (~123M); InstructPix2Pix's Euler-ancestral scheduler. The tokenizer is the small one
bundled for the tiny model (its ids are valid inputs of the 49408-token embedding): a random model
has nothing to read in the words anyway.

The weights are drawn on the target device from a seed (nothing is downloaded or written). Every
number made with it is labelled as from an untrained test model (:mod:`adlift.editors.untrained`):
it measures time and memory, never protection.
"""

from __future__ import annotations

import os

import torch

from adlift.editors.registry import EDITORS
from adlift.editors.weights import import_diffusers, quiet_hf

#: Tokens of CLIP ViT-L/14's text tower (and of InstructPix2Pix's prompts).
CLIP_MAX_LENGTH = 77


def unet_config() -> dict:
    """InstructPix2Pix's UNet2DConditionModel configuration (SD 1.5's with 8 input channels)."""
    return {
        "sample_size": 64, "in_channels": 8, "out_channels": 4, "layers_per_block": 2,
        "block_out_channels": (320, 640, 1280, 1280),
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32,
    }  # fmt: skip


def vae_config() -> dict:
    """Stable Diffusion's AutoencoderKL configuration (8x downsampling, 4 latent channels)."""
    return {
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
        "block_out_channels": (128, 256, 512, 512),
        "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
        "norm_num_groups": 32, "sample_size": 512,
    }  # fmt: skip


def text_config(tokenizer):
    """CLIP ViT-L/14's text tower (what Stable Diffusion 1.5 and InstructPix2Pix condition on)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=CLIP_MAX_LENGTH, hidden_act="quick_gelu", projection_dim=768,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def build_full_random_pipeline(seed: int = 0, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
    """The full-size pipeline with weights drawn from ``seed`` on ``device`` (global RNG untouched)."""
    import_diffusers()
    with quiet_hf():
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        from adlift.editors.tiny import ASSETS_DIR, assemble_ip2p_pipeline

        tokenizer = CLIPTokenizer.from_pretrained(str(ASSETS_DIR), model_max_length=CLIP_MAX_LENGTH)
        device = torch.device(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(seed)
            unet = UNet2DConditionModel(**unet_config())
            vae = AutoencoderKL(**vae_config())
            text_encoder = CLIPTextModel(text_config(tokenizer))
        pipe = assemble_ip2p_pipeline(vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer)
        return pipe.to(device, dtype)


@EDITORS.register("ip2p-random", help="InstructPix2Pix's full architecture with random weights (built in memory, "
                  "nothing downloaded): the real model's time and memory for cost benchmarks; its edits are noise")  # fmt: skip
def load_full_random(*, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                     cache_dir: str | os.PathLike | None = None):  # fmt: skip
    """The full-size untrained editor (``cache_dir`` is unused: nothing is stored)."""
    from adlift.editors.ip2p import IP2PEditor, default_device, default_dtype

    device = torch.device(device) if device is not None else default_device()
    pipe = build_full_random_pipeline(device=device, dtype=dtype or default_dtype(device))
    return IP2PEditor(pipe, model="ip2p-random(seed=0)", name="ip2p-random", untrained=True)
