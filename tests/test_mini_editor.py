"""The trained mini InstructPix2Pix (adlift.editors.mini, docs/MINI_EDITOR.md): reference edits,
training, and the shipped weights reproducing the model card's held-out quality."""

from __future__ import annotations

import pytest
import torch

from adlift.editors.mini import INSTRUCTIONS, MINI_WEIGHTS, card_info, edit_success, reference_edit
from adlift.errors import AdLiftError


def _pixels() -> torch.Tensor:
    """A 1x2 image: (0.2, 0.5, 0.9) and (1, 0, 0.5)."""
    return torch.tensor([[0.2, 1.0], [0.5, 0.0], [0.9, 0.5]]).view(1, 3, 1, 2)


def test_reference_edit_is_exact_on_known_pixels():
    x = _pixels()
    assert torch.allclose(reference_edit(x, "invert the colors"), 1 - x)
    blue = reference_edit(x, "turn it blue")  # HSV hue -> 240 deg: (min, min, max)
    assert torch.allclose(blue[0, :, 0, 0], torch.tensor([0.2, 0.2, 0.9]))
    assert torch.allclose(blue[0, :, 0, 1], torch.tensor([0.0, 0.0, 1.0]))
    bw = reference_edit(x, "make it a black and white photo")
    y0 = 0.299 * 0.2 + 0.587 * 0.5 + 0.114 * 0.9
    assert torch.allclose(bw[0, :, 0, 0], torch.full((3,), y0))
    assert torch.allclose(reference_edit(x, "make it darker"), 0.55 * x)
    for instr in INSTRUCTIONS:  # every edit stays in [0, 1] and keeps the shape
        out = reference_edit(torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)), instr)
        assert out.shape == (2, 3, 5, 7) and out.min() >= 0 and out.max() <= 1
    assert 8 <= len(INSTRUCTIONS) <= 12 and len(set(INSTRUCTIONS)) == len(INSTRUCTIONS)


def test_unknown_instruction_is_one_line_listing_the_known_ones():
    with pytest.raises(AdLiftError) as err:
        reference_edit(_pixels(), "turn him into a clown")
    msg = str(err.value)
    assert "\n" not in msg and "turn him into a clown" in msg and "'make it gold'" in msg


def test_edit_success_of_the_reference_is_perfect():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    m = edit_success(reference_edit(x, "make it sepia"), x, "make it sepia")
    assert torch.isinf(m["psnr"]).all() and torch.allclose(m["ssim"].float(), torch.ones(2), atol=1e-4)
    assert float(edit_success(x, x, "invert the colors")["psnr"].mean()) < 15


def test_a_few_training_steps_lower_the_loss():
    from adlift.editors.mini_train import Sources, TrainConfig, Trainer, unet_loss, vae_loss

    torch.manual_seed(0)
    cfg = TrainConfig(vae_steps=8, unet_steps=8, vae_batch=4, unet_batch=4, vae_res=32, unet_res=32,
                      vae_lr=2e-3, unet_lr=2e-3, vae_channels=(16, 16, 16), unet_channels=(16, 32))  # fmt: skip
    tr = Trainer(cfg, progress=False, sources=Sources(heldout=False, scenes=()))
    x = tr.sources.sample(4, 32, torch.Generator().manual_seed(3))

    def vae_eval():
        with torch.no_grad():
            return float(vae_loss(tr.pipe.vae, x, cfg.kl_weight, torch.Generator().manual_seed(4)))

    before = vae_eval()
    tr.run(cfg.vae_steps)
    assert vae_eval() < before

    instr = [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(4)]

    def unet_eval():
        with torch.no_grad():
            return float(unet_loss(tr.pipe, tr.latent_scaling(), x, instr, 0.0, torch.Generator().manual_seed(5)))

    before = unet_eval()
    tr.run()
    assert tr.step == cfg.total() and unet_eval() < before


@pytest.mark.skipif(not (MINI_WEIGHTS / "model_index.json").is_file(), reason="mini weights not trained yet")
def test_shipped_weights_load_and_reproduce_the_card():
    from adlift.editors import load_editor
    from adlift.editors.mini_train import heldout_batch

    torch.set_num_threads(1)
    card = card_info()
    check = card["test_check"]  # measured by the export on exactly this batch and these settings
    editor = load_editor("mini", device="cpu")
    meta = editor.metadata()
    assert meta["editor"] == "mini" and meta["model_organism"] is True and not meta["untrained_test_model"]
    images = heldout_batch(128)[check["images"]]
    for instr, expected in check["psnr"].items():
        edited = editor.edit(images, instr, steps=check["steps"], guidance_scale=check["guidance_scale"],
                             image_guidance_scale=check["image_guidance_scale"], seed=0,
                             batch_size=len(images))  # fmt: skip
        assert edited.shape == images.shape
        psnr = float(edit_success(edited, images, instr)["psnr"].mean())
        assert abs(psnr - expected) < 0.5, (instr, psnr, expected)
    # the card's held-out mean (all instructions, all held-out images) is what the small batch samples
    assert card["heldout"]["mean"]["psnr"] > 0


@pytest.mark.skipif(not (MINI_WEIGHTS / "model_index.json").is_file(), reason="mini weights not trained yet")
def test_the_documented_settings_are_the_cards():
    from adlift.editors.mini import MINI_EDIT_SETTINGS

    assert card_info()["eval_settings"] == MINI_EDIT_SETTINGS


@pytest.mark.skipif(not (MINI_WEIGHTS / "model_index.json").is_file(), reason="mini weights not trained yet")
def test_the_mini_editor_gives_its_reference_and_guidance():
    from adlift.editors.mini import MINI_EDIT_SETTINGS
    from tests.helpers import mini_editor, tiny_editor

    editor = mini_editor()
    assert editor.reference_edit_for("turn him into a clown") is None  # no known answer: None, no error
    assert editor.reference_edit_for("") is None
    x = _pixels()
    for instr in ("make it gold", "turn it blue", "invert the colors"):
        ref = editor.reference_edit_for(instr)
        assert callable(ref) and torch.equal(ref(x), reference_edit(x, instr))
    assert not torch.equal(editor.reference_edit_for("make it gold")(x), editor.reference_edit_for("make it sepia")(x))
    assert editor.default_guidance("2d") == editor.default_guidance("3d") == MINI_EDIT_SETTINGS["guidance_scale"] == 3.0
    with pytest.raises(AdLiftError, match="mode"):
        editor.default_guidance("4d")
    # InstructPix2Pix (here its untrained tiny stand-in) knows no answer and keeps IP2P / Instruct-GS2GS' guidance
    tiny = tiny_editor()
    assert tiny.reference_edit_for("make it gold") is None
    assert (tiny.default_guidance("2d"), tiny.default_guidance("3d")) == (7.5, 12.5)
