"""InstructPix2Pix editor, its differentiable surface, the tiny offline model and missing weights.

Everything runs on the tiny untrained model (no network: HF_HUB_OFFLINE=1); the tiny pipeline is
built once per session into a temporary AdLift cache and loaded back with from_pretrained.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from adlift.editors import IP2PEditor, MissingWeightsError, load_editor
from adlift.editors.weights import is_local_reference, locate_weights
from adlift.errors import AdLiftError
from tests.helpers import TINY_CACHE, fake_hub_snapshot, offline_hub, rand_images, tiny_editor

REPO = Path(__file__).resolve().parents[1]
BUST = REPO / "scenes" / "bust"

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread", "no_hub_network")]  # numpy-2 notes from diffusers' schedulers


# ---------------------------------------------------------------------- tokenizer and tiny model
def test_shipped_tokenizer_files_are_reproducible_and_small():
    import importlib.util

    from adlift.editors.tiny import ASSETS_DIR

    spec = importlib.util.spec_from_file_location("make_tokenizer", ASSETS_DIR / "make_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vocab, merges = module.build()
    assert json.loads((ASSETS_DIR / "vocab.json").read_text()) == vocab
    shipped = (ASSETS_DIR / "merges.txt").read_text().splitlines()
    assert shipped[0].startswith("#version") and shipped[1:] == merges
    assert 200 <= len(vocab) <= 600
    assert {"<|startoftext|>", "<|endoftext|>"} <= set(vocab)


def test_tiny_tokenizer_tokenizes_instructions_into_words():
    from adlift.editors.tiny import TINY_MAX_LENGTH, load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    enc = tok("Turn him into a CLOWN", padding="max_length", max_length=TINY_MAX_LENGTH, truncation=True)
    tokens = tok.convert_ids_to_tokens(enc.input_ids)
    assert tokens[:7] == ["<|startoftext|>", "turn</w>", "him</w>", "into</w>", "a</w>", "clown</w>", "<|endoftext|>"]
    assert len(enc.input_ids) == TINY_MAX_LENGTH
    # Words outside the merges fall back to characters and still decode.
    assert tok.decode(tok("zebra stripes").input_ids, skip_special_tokens=True) == "zebra stripes"


def test_tiny_editor_is_a_real_ip2p_pipeline_loaded_from_a_saved_directory():
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer

    ed = tiny_editor()
    pipe = ed.pipe
    assert isinstance(pipe, StableDiffusionInstructPix2PixPipeline)
    assert isinstance(pipe.unet, UNet2DConditionModel) and pipe.unet.config.in_channels == 8
    assert isinstance(pipe.vae, AutoencoderKL) and isinstance(pipe.text_encoder, CLIPTextModel)
    assert isinstance(pipe.tokenizer, CLIPTokenizer)
    assert isinstance(pipe.scheduler, EulerAncestralDiscreteScheduler)
    assert ed.surface.size_multiple == 8  # the same latent factor as Stable Diffusion
    # It went through save_pretrained -> from_pretrained (the path real weights take).
    saved = [p for p in TINY_CACHE.iterdir() if (p / "model_index.json").is_file()]
    assert len(saved) == 1 and (saved[0] / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert ed.untrained and ed.name == "tiny"
    meta = ed.metadata()
    assert meta["editor"] == "tiny" and meta["untrained_test_model"] is True
    assert sum(p.numel() for p in pipe.unet.parameters()) < 1_000_000  # really tiny


def test_tiny_weights_are_deterministic_per_seed_and_leave_the_global_rng_alone():
    from adlift.editors.tiny import build_tiny_pipeline

    state = torch.random.get_rng_state()
    a = build_tiny_pipeline(seed=0).unet.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_tiny_pipeline(seed=0).unet.state_dict()
    c = build_tiny_pipeline(seed=1).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    # The saved copy holds exactly these weights.
    loaded = tiny_editor().pipe.unet.state_dict()
    assert all(torch.equal(a[k], loaded[k]) for k in a)


# ---------------------------------------------------------------------- 2D editing
def test_edit_shapes_range_and_determinism_per_seed():
    ed = tiny_editor()
    x = rand_images(3, 32, 48)
    y = ed.edit(x, "turn him into a clown", steps=4, seed=0, batch_size=2)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, ed.edit(x, "turn him into a clown", steps=4, seed=0, batch_size=2))
    other = ed.edit(x, "turn him into a clown", steps=4, seed=1, batch_size=2)
    assert (y - other).abs().max() > 1e-3
    # Per-image generators: an image's result does not depend on its batch.
    alone = ed.edit(x[2:3], "turn him into a clown", steps=4, seed=0)
    torch.testing.assert_close(alone, y[2:3], atol=1e-4, rtol=0)


def test_edit_depends_on_the_instruction():
    ed = tiny_editor()
    x = rand_images(1, 32, 32, seed=3)
    a = ed.edit(x, "make it snow", steps=3, seed=0)
    b = ed.edit(x, "turn him into bronze", steps=3, seed=0)
    assert (a - b).abs().max() > 1e-4


@pytest.mark.parametrize("size", [(30, 45), (5, 7), (33, 8)])
def test_edit_restores_sizes_that_are_not_multiples_of_8(size):
    ed = tiny_editor()
    x = rand_images(2, *size, seed=1)
    y = ed.edit(x, "make it snow", steps=2, seed=0)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_edit_rejects_bad_images():
    ed = tiny_editor()
    with pytest.raises(AdLiftError, match=r"\[B, 3, H, W\]"):
        ed.edit(torch.rand(3, 32, 32), "x")
    with pytest.raises(AdLiftError):
        ed.edit(torch.rand(1, 3, 32, 32), "x", steps=0)


def test_edit_from_render_shapes_and_determinism():
    ed = tiny_editor()
    cur, org = rand_images(2, 30, 40, seed=4), rand_images(2, 30, 40, seed=5)
    kw = dict(steps=5, seed=[7, 8])
    y = ed.edit_from_render(cur, org, "make it snow", **kw)
    assert y.shape == cur.shape and torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, ed.edit_from_render(cur, org, "make it snow", **kw))
    assert (y - ed.edit_from_render(cur, org, "make it snow", steps=5, seed=[9, 10])).abs().max() > 1e-3
    # The conditioning view matters.
    assert (y - ed.edit_from_render(cur, cur, "make it snow", **kw)).abs().max() > 1e-4
    with pytest.raises(AdLiftError, match="t_range"):
        ed.edit_from_render(cur, org, "x", t_range=(0.9, 0.5))


def test_2d_edit_of_bundled_scene_views():
    from adlift.io.cameras import load_cameras
    from adlift.io.ply import read_ply
    from adlift.render import render

    scene = read_ply(BUST / "scene.ply")
    cams = load_cameras(BUST / "transforms.json", split="novel", width=64, height=64)[:2]
    with torch.no_grad():
        views = render(scene, cams, backend="torch").rgb.clamp(0, 1)  # [2, 3, 64, 64]
    assert views.shape == (2, 3, 64, 64) and views.std() > 0.05  # the bust is visible
    edited = tiny_editor().edit(views, "turn him into a clown", steps=4, seed=0)
    assert edited.shape == views.shape and torch.isfinite(edited).all()
    assert (edited - views).abs().mean() > 0.01  # it edited something


# ---------------------------------------------------------------------- differentiable surface
def test_encode_image_is_what_the_pipeline_conditions_on():
    ed = tiny_editor()
    x = rand_images(2, 32, 32, seed=6)
    with torch.no_grad():
        ours = ed.surface.encode_image(x)
        ref = ed.pipe.prepare_image_latents(2 * x - 1, 2, 1, torch.float32, "cpu", False)  # unscaled mode
    assert ours.shape == (2, 4, 4, 4)
    torch.testing.assert_close(ours, ref)
    # The scaled latent is the same mean times the VAE scaling factor.
    torch.testing.assert_close(ed.surface.encode_latents(x).detach(), ours * ed.surface.scaling_factor)


def test_predict_noise_reproduces_the_pipeline_guidance_exactly():
    """One pipeline step from fixed latents equals one scheduler step with our guided estimate."""
    from diffusers import EulerAncestralDiscreteScheduler

    ed = tiny_editor()
    sf = ed.surface
    x = rand_images(2, 32, 32, seed=7)
    lat0 = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    ref = ed.pipe(["make it snow"] * 2, image=x, num_inference_steps=1, latents=lat0, output_type="latent",
                  guidance_scale=7.5, image_guidance_scale=1.5).images  # fmt: skip

    def ours(guidance: float, image_guidance: float) -> torch.Tensor:
        sched = EulerAncestralDiscreteScheduler.from_config(ed.pipe.scheduler.config)
        sched.set_timesteps(1)
        t = sched.timesteps[0]
        lat = lat0 * sched.init_noise_sigma
        with torch.no_grad():
            eps = sf.predict_noise(sched.scale_model_input(lat, t), t, sf.encode_image(x),
                                   sf.text_embeddings("make it snow"), guidance, image_guidance)  # fmt: skip
        return sched.step(eps, t, lat).prev_sample

    torch.testing.assert_close(ours(7.5, 1.5), ref, atol=1e-5, rtol=1e-5)
    assert (ours(7.5, 1.2) - ref).abs().max() > 1e-4  # the test can tell the guidance terms apart


def test_predict_noise_combines_the_three_branches():
    sf = tiny_editor().surface
    x = rand_images(1, 16, 16, seed=8)
    with torch.no_grad():
        img = sf.encode_image(x)
        noisy = torch.randn_like(img)
        text, empty = sf.text_embeddings("make it snow"), sf.empty_text_embeddings()
        e_text = sf.predict_noise_conditional(noisy, 600, img, text)
        e_image = sf.predict_noise_conditional(noisy, 600, img, empty)
        e_uncond = sf.predict_noise_conditional(noisy, 600, torch.zeros_like(img), empty)
        guided = sf.predict_noise(noisy, 600, img, text, 7.5, 1.5)
    expected = e_uncond + 7.5 * (e_text - e_image) + 1.5 * (e_image - e_uncond)
    torch.testing.assert_close(guided, expected, atol=1e-4, rtol=1e-4)
    assert text.shape[0] == 1 and text.shape[1:] == empty.shape[1:] and not torch.equal(text, empty)


def test_gradients_reach_pixels_through_the_encoder():
    sf = tiny_editor().surface
    x = rand_images(2, 24, 20, seed=9).requires_grad_(True)
    target = torch.zeros(2, 4, 3, 3)
    loss = (sf.encode_image(x) - target).pow(2).mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert x.grad.shape == x.shape


def test_gradients_reach_pixels_through_the_unet():
    sf = tiny_editor().surface
    x = rand_images(2, 32, 32, seed=10).requires_grad_(True)
    text = sf.text_embeddings("turn him into a clown")
    noise = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    # Only through the UNet's image conditioning: the noisy latent is a constant.
    clean = sf.encode_latents(x.detach())
    eps = sf.predict_noise(sf.add_noise(clean, noise, 500), 500, sf.encode_image(x), text)
    (eps - noise).pow(2).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # And through the noisy latent as well (AdvDM-style), with per-sample timesteps.
    y = x.detach().clone().requires_grad_(True)
    t = torch.tensor([300, 800])
    eps = sf.predict_noise(sf.add_noise(sf.encode_latents(y), noise, t), t, sf.encode_image(y.detach()), text)
    (eps - noise).pow(2).mean().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_text_embeddings_under_inference_mode_do_not_poison_later_gradients():
    sf = tiny_editor().surface
    with torch.inference_mode():
        a = sf.text_embeddings("add a hat to the statue")
    assert "add a hat to the statue" not in sf._text_cache
    x = rand_images(1, 16, 16, seed=11).requires_grad_(True)
    img = sf.encode_image(x)
    eps = sf.predict_noise(torch.zeros_like(img), 400, img, sf.text_embeddings("add a hat to the statue"))
    eps.square().mean().backward()  # would fail if an inference tensor had been cached
    torch.testing.assert_close(a.clone(), sf.text_embeddings("add a hat to the statue").detach())
    assert x.grad.abs().sum() > 0


def test_decode_latents_range_shape_and_gradient():
    sf = tiny_editor().surface
    lat = torch.randn(1, 4, 4, 6, requires_grad=True)
    img = sf.decode_latents(lat, size=(30, 45))
    assert img.shape == (1, 3, 30, 45) and img.min() >= 0 and img.max() <= 1
    img.mean().backward()
    assert torch.isfinite(lat.grad).all() and lat.grad.abs().sum() > 0


def test_noise_schedule_add_noise_and_ddim_step_are_consistent():
    sf = tiny_editor().surface
    abar = sf.alphas_cumprod
    assert abar.shape == (sf.num_train_timesteps,) and bool((abar[1:] < abar[:-1]).all())
    x0 = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([100, 900])
    xt = sf.add_noise(x0, noise, t)
    a = abar[t].view(2, 1, 1, 1)
    torch.testing.assert_close(xt, a.sqrt() * x0 + (1 - a).sqrt() * noise)
    # With the true noise, DDIM recovers x0 exactly (to t_prev = -1) and lands on x_{t'} otherwise.
    torch.testing.assert_close(sf.ddim_step(xt, noise, t, -1), x0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sf.ddim_step(xt, noise, t, torch.tensor([50, 400])),
                               sf.add_noise(x0, noise, torch.tensor([50, 400])), atol=1e-4, rtol=1e-4)  # fmt: skip
    with pytest.raises(AdLiftError, match="timesteps"):
        sf.add_noise(x0, noise, sf.num_train_timesteps)


# ---------------------------------------------------------------------- missing weights
def test_local_references_and_hub_ids_are_told_apart(tmp_path):
    assert not is_local_reference("timbrooks/instruct-pix2pix")
    assert is_local_reference("/no/such/dir") and is_local_reference("./model") and is_local_reference("a/b/c")
    assert is_local_reference(str(tmp_path))


def test_missing_hub_weights_offline_with_empty_cache(tmp_path, monkeypatch):
    offline_hub(monkeypatch, tmp_path / "hf" / "hub")
    with pytest.raises(MissingWeightsError) as info:
        IP2PEditor.from_pretrained("timbrooks/instruct-pix2pix", device="cpu")
    msg = str(info.value)
    assert isinstance(info.value, AdLiftError) and "\n" not in msg
    assert "timbrooks/instruct-pix2pix" in msg  # which model
    assert str(tmp_path / "hf" / "hub") in msg  # where it looked
    assert "HF_HUB_OFFLINE" in msg
    for how in ("network", "HF_HOME", "local directory"):  # how to provide it
        assert how in msg


def test_missing_hub_weights_via_load_editor_default(tmp_path, monkeypatch):
    offline_hub(monkeypatch, tmp_path / "cache")
    with pytest.raises(MissingWeightsError, match="instruct-pix2pix") as info:
        load_editor("ip2p", device="cpu")
    assert str(tmp_path / "cache") in str(info.value) and "not in the cache" in str(info.value)


def test_offline_hub_id_loads_from_its_cached_snapshot(tmp_path, monkeypatch):
    """Offline, a hub id resolves to its cached snapshot through huggingface_hub, with no network."""
    cache = offline_hub(monkeypatch, tmp_path / "hub")
    tiny_editor()
    tiny_dir = next(p for p in TINY_CACHE.iterdir() if (p / "model_index.json").is_file())
    snapshot = fake_hub_snapshot(cache, "someone/tiny-ip2p", tiny_dir)
    found = locate_weights("someone/tiny-ip2p")
    assert Path(found.source) == snapshot and found.kwargs == {"local_files_only": True}
    assert found.where == f"the hub cache {cache}"
    ed = load_editor("someone/tiny-ip2p", device="cpu")
    assert ed.model == "someone/tiny-ip2p" and ed.name == "ip2p"
    x = rand_images(1, 16, 16)
    torch.testing.assert_close(ed.edit(x, "snow", steps=2), tiny_editor().edit(x, "snow", steps=2))
    # A cached snapshot that is not a diffusers pipeline is named as such.
    fake_hub_snapshot(cache, "someone/not-a-pipeline", None)
    with pytest.raises(MissingWeightsError, match="has no model_index.json") as info:
        load_editor("someone/not-a-pipeline", device="cpu")
    assert "\n" not in str(info.value)


def test_editor_registry_names_loaders_and_help():
    from adlift.editors import EDITORS, editor_help
    from adlift.editors.ip2p import load_ip2p
    from adlift.editors.tiny import load_tiny

    from adlift.editors.mini import load_mini

    assert set(EDITORS.names()) >= {"ip2p", "mini", "tiny"}
    assert EDITORS.get("ip2p") is load_ip2p and EDITORS.get("tiny") is load_tiny
    assert EDITORS.get("mini") is load_mini
    text = editor_help()
    assert all(f"{name}: " in text for name in EDITORS.names()) and "hub id" in text
    with pytest.raises(ValueError, match="already registered"):
        EDITORS.add("tiny", load_tiny)


def test_missing_local_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "model"
    with pytest.raises(MissingWeightsError) as info:
        load_editor(str(missing), device="cpu")
    msg = str(info.value)
    assert str(missing) in msg and "does not exist" in msg and "save_pretrained" in msg and "\n" not in msg
    # A directory that is not a saved pipeline.
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        load_editor(str(tmp_path / "empty"), device="cpu")


def test_a_saved_pipeline_directory_loads_as_an_editor(tmp_path):
    """Any save_pretrained directory works (here a copy of the tiny one), as MagicBrush weights would."""
    import shutil

    src = next(p for p in TINY_CACHE.iterdir() if (p / "model_index.json").is_file())
    dst = tmp_path / "my-ip2p"
    shutil.copytree(src, dst)
    ed = load_editor(str(dst), device="cpu")
    assert ed.name == "ip2p" and ed.model == str(dst) and not ed.untrained
    x = rand_images(1, 16, 16)
    torch.testing.assert_close(ed.edit(x, "snow", steps=2), tiny_editor().edit(x, "snow", steps=2))


@pytest.mark.parametrize(
    "raised, says",
    [
        ("offline", "HF_HUB_OFFLINE=1 forbids downloading"),
        ("local-entry", "could not be reached"),
        ("os", "loading failed (disk on fire)"),
    ],
)
def test_loading_errors_name_what_went_wrong_in_one_line(raised, says):
    from huggingface_hub import errors as hf

    from adlift.editors.weights import WeightsSource, loading_errors

    err = {"offline": hf.OfflineModeIsEnabled("no"), "local-entry": hf.LocalEntryNotFoundError("multi\nline"),
           "os": OSError("disk on fire\nmore")}[raised]  # fmt: skip
    found = WeightsSource("owner/model", "owner/model", "the hub cache /c")
    with pytest.raises(MissingWeightsError) as info:
        with loading_errors(found):
            raise err
    msg = str(info.value)
    assert says in msg and "'owner/model'" in msg and "/c" in msg and "\n" not in msg
    with pytest.raises(KeyError):  # anything else is a bug, not a user error: it propagates
        with loading_errors(found):
            raise KeyError("x")


def test_a_new_editor_is_one_loader_and_one_registration(monkeypatch):
    """What issue 16's `mini` editor does: register a loader; load_editor, the help text and the labels follow."""
    from adlift.editors import EDITORS, editor_help, is_untrained, untrained_banner

    monkeypatch.setattr(EDITORS, "_entries", dict(EDITORS._entries))  # leave the real registry as it was
    tiny_editor()  # builds the saved tiny pipeline used as the "trained" weights
    saved = next(p for p in TINY_CACHE.iterdir() if (p / "model_index.json").is_file())

    @EDITORS.register("scratch", help="a trained stand-in (test only)")
    def load_scratch(*, device=None, dtype=None, cache_dir=None) -> IP2PEditor:
        return IP2PEditor.from_pretrained(saved, device=device, dtype=dtype, cache_dir=cache_dir, name="scratch")

    ed = load_editor("scratch", device="cpu")
    assert ed.name == "scratch" and ed.metadata()["editor"] == "scratch" and not ed.untrained
    assert not is_untrained(ed.metadata()) and untrained_banner(ed) == ""
    assert "scratch: a trained stand-in (test only)" in editor_help()
    assert EDITORS.names()[-1] == "scratch"


def test_model_organism_results_are_labelled_everywhere():
    from types import SimpleNamespace

    from adlift.editors.untrained import (
        is_model_organism,
        label_record,
        untrained_banner,
        untrained_note,
        untrained_warning,
    )

    mini_meta = {"editor": "mini", "model_organism": True}
    mini = SimpleNamespace(name="mini", model_organism=True, untrained=False)
    real = {"editor": "ip2p"}
    for source in (mini_meta, mini):
        assert is_model_organism(source)
        assert "model organism" in untrained_warning(source) and "'mini'" in untrained_warning(source)
        assert untrained_banner(source, "protection").startswith("MODEL ORGANISM (editor 'mini')")
        assert "not a claim about InstructPix2Pix" in untrained_note(source, "evaluation")
        assert "not claims about the real editor" in label_record(source, "protection")
    assert not is_model_organism(real) and label_record(real) is None and untrained_banner(real) == ""
    assert label_record({"editor": "tiny"}, "edit").startswith("untrained test model")  # untrained wording kept


def test_full_size_random_editor_has_instructpix2pix_architecture():
    """ip2p-random: the published InstructPix2Pix configuration (built on the meta device: no memory)."""
    from adlift.editors import EDITORS
    from adlift.editors.full_random import build_full_random_pipeline

    pipe = build_full_random_pipeline(device="meta", dtype=torch.float16)
    millions = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
                for name in ("unet", "vae", "text_encoder")}  # fmt: skip
    assert 855 < millions["unet"] < 865 and 82 < millions["vae"] < 86 and 120 < millions["text_encoder"] < 126
    assert pipe.unet.config.in_channels == 8 and pipe.unet.dtype == torch.float16
    assert pipe.text_encoder.config.max_position_embeddings == 77 == pipe.tokenizer.model_max_length
    assert type(pipe.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert "random weights" in EDITORS.describe() and EDITORS.names()[0] == "ip2p"
