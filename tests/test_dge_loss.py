"""The ``dge`` adversarial loss (the pipeline edit with DGE's joint key-view attention) and the loss
``prepare`` hook of the protection engine; tiny untrained IP2P, 32x32 images, CPU."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from adlift.attacks import AdversarialLoss, PGDConfig, image_pgd
from adlift.attacks.losses import LOSSES, LossSettings, loss_config, register_loss
from adlift.attacks.losses.dge import NO_VIEWS_NOTE, DGELossConfig
from adlift.cameras import orbit_cameras
from adlift.editors.dge import select_key_views
from adlift.errors import AdLiftError
from adlift.protect import ProtectConfig, ProtectionRun, protect
from adlift.render import render
from adlift.scene import GaussianScene
from tests.helpers import BUST, BUST_CAMS, rand_images, run_cli, tiny_editor

INSTRUCTION = "turn him into a clown"

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]


def make_loss(kind: str = "dge", **kw) -> AdversarialLoss:
    return AdversarialLoss(tiny_editor().surface, INSTRUCTION, loss_config(kind, **{"pipeline_steps": 2, **kw}))


def processors() -> dict:
    return dict(tiny_editor().surface.unet.attn_processors)


def assert_restored(before: dict) -> None:
    after = processors()
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)


# ------------------------------------------------------------------------------------------ the loss
def test_the_context_views_change_the_loss_and_an_empty_context_is_the_pipeline_loss():
    x = rand_images(2, 32, 32)
    loss = make_loss(key_views=3)
    loss.prepare(rand_images(3, 32, 32, seed=1))
    a = loss.evaluate(x)
    loss.prepare(rand_images(3, 32, 32, seed=2))
    b = loss.evaluate(x)
    assert float((a - b).abs().min()) > 1e-6  # x's edit attends to the context views' tokens (measured 5.6e-5)
    loss.prepare(x[:0])  # no views: x attends to itself alone, through DGE's processors
    assert loss.context.views == [] and loss.context.latents is None
    pipeline = make_loss("pipeline")
    torch.testing.assert_close(loss.evaluate(x), pipeline.evaluate(x), rtol=1e-5, atol=1e-7)
    for seed in (0, 7):  # the same draws as the pipeline loss for a seed
        g, h = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        torch.testing.assert_close(loss(x[:1], generator=g), pipeline(x[:1], generator=h), rtol=1e-5, atol=1e-7)
    assert float((a - pipeline.evaluate(x)).abs().min()) > 1e-6


def test_the_key_views_are_dge_farthest_point_choice_and_their_latents():
    cams = orbit_cameras(6, [0.0, 0.0, 0.0], 3.0, width=32, height=32)
    images = rand_images(6, 32, 32, seed=4)
    loss = make_loss(key_views=2)
    loss.prepare(images, cams)
    assert loss.context.views == select_key_views(cams, 2) == [0, 3]
    torch.testing.assert_close(loss.context.latents, loss.surface.encode_image(images[[0, 3]]))
    assert loss.context.latents.grad_fn is None
    loss.prepare(images)  # without cameras: the first key_views images
    assert loss.context.views == [0, 1]
    make_loss(key_views=10).prepare(images, cams)  # more key views than views: all of them
    with pytest.raises(AdLiftError, match="6 views need as many cameras"):
        loss.prepare(images, cams[[0, 1]])


def test_evaluate_is_paired_per_image_and_the_gradient_survives_checkpointing():
    x = rand_images(2, 32, 32)
    ctx = rand_images(2, 32, 32, seed=1)
    loss = make_loss(key_views=2)
    loss.prepare(ctx)
    both = loss.evaluate(x)
    torch.testing.assert_close(both, loss.evaluate(x))
    torch.testing.assert_close(both[1:], loss.evaluate(x[1:]))  # an image's value does not depend on its batch
    # Gradient checkpointing recomputes each step in the backward pass, after compute() has returned:
    # the joint attention must be installed there too, or the gradient would be another function's.
    grads = []
    for ckpt in (True, False):
        other = make_loss(key_views=2, gradient_checkpointing=ckpt)
        other.prepare(ctx)
        value, grad = other.gradient(x, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
        grads.append((value, grad))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-9)


def test_pgd_with_the_dge_loss_lowers_it_and_the_unet_is_restored():
    before = processors()
    x = rand_images(1, 32, 32)
    loss = make_loss(key_views=2)
    loss.prepare(rand_images(2, 32, 32, seed=1))
    result = image_pgd(x, loss, PGDConfig(eta=8 / 255, steps=3))
    assert float((result.images - x).abs().max()) <= 8 / 255 + 1e-6
    assert float(loss.evaluate(result.images)[0]) < float(loss.evaluate(x)[0])
    assert_restored(before)


def test_the_processors_are_restored_when_the_unet_fails(monkeypatch):
    before = processors()
    loss = make_loss(key_views=2)
    loss.prepare(rand_images(2, 32, 32, seed=1))

    def failing(*args, **kwargs):
        raise RuntimeError("UNet failed")

    monkeypatch.setattr(loss.surface, "predict_noise", failing)
    with pytest.raises(RuntimeError, match="UNet failed"):
        loss.gradient(rand_images(1, 32, 32))
    assert_restored(before)


def test_without_views_it_is_the_pipeline_loss_with_one_note(capsys):
    x = rand_images(2, 32, 32)
    loss = make_loss(key_views=2)
    first = loss.evaluate(x)
    torch.testing.assert_close(first, make_loss("pipeline").evaluate(x), rtol=0, atol=0)
    torch.testing.assert_close(loss.evaluate(x), first)
    assert capsys.readouterr().out.splitlines() == [NO_VIEWS_NOTE]  # once per loss


@pytest.mark.parametrize(("options", "needle"), [({"key_views": 0}, "key-views must be >= 1"),
                                                 ({"pipeline_steps": 0}, "pipeline_steps must be >= 1"),
                                                 ({"target": "image"}, "target-image")])  # fmt: skip
def test_invalid_options_are_one_line_errors(options, needle):
    with pytest.raises(AdLiftError, match=needle) as e:
        make_loss(**options)
    assert "\n" not in str(e.value)


def test_an_image_of_another_size_than_its_key_views_is_a_one_line_error():
    loss = make_loss(key_views=2)
    loss.prepare(rand_images(2, 32, 32))
    with pytest.raises(AdLiftError, match="the image is 24x16 but its key views are 32x32") as e:
        loss.evaluate(rand_images(1, 16, 24))
    assert "\n" not in str(e.value)


def test_the_dge_loss_is_registered_with_its_own_option():
    assert "dge" in LOSSES.names() and LOSSES.get("dge") is DGELossConfig
    fields = {f.name for f in dataclasses.fields(DGELossConfig)}
    assert {"key_views", "pipeline_steps", "target", "guidance_scale"} <= fields
    assert all("key_views" not in {f.name for f in dataclasses.fields(cls)} for n, cls in LOSSES.items() if n != "dge")
    assert DGELossConfig().to_json() == {**loss_config("pipeline").to_json(), "kind": "dge", "key_views": 4}
    assert make_loss(key_views=3).describe() == "dge(gray,2 steps,3 key views)"


# ------------------------------------------------------------------------------------------ the engine's hook
def small_scene() -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    return GaussianScene.from_activated(means=torch.randn(200, 3, generator=g) * 0.4, rgb=torch.rand(200, 3, generator=g),
                                        scales=torch.full((200, 3), 0.08), opacities=torch.full((200,), 0.8),
                                        sh_degree=0)  # fmt: skip


@pytest.fixture
def recording_kind():
    """A loss kind whose prepare() records its calls and whose compute() refuses to run unprepared."""
    calls: list[tuple[torch.Tensor, object]] = []

    @dataclasses.dataclass
    class Recording(LossSettings):
        """Test loss: mean brightness, after prepare()."""

        def prepare(self, loss, images, cameras):
            calls.append((images.clone(), cameras))
            return len(calls)

        def compute(self, loss, x, reference, generator):
            assert loss.context is not None, "compute before prepare"
            return x.float().flatten(1).mean(1)

    register_loss("test-recording")(Recording)
    try:
        yield calls
    finally:
        LOSSES._entries.pop("test-recording", None)


@pytest.mark.parametrize("method", ["lifted-pgd", "fit2d", "direct"])
def test_the_engine_prepares_the_loss_with_the_raw_renders_and_training_cameras(recording_kind, method):
    cams = orbit_cameras(3, [0.0, 0.0, 0.0], 3.0, width=32, height=32)
    loss = AdversarialLoss(tiny_editor().surface, INSTRUCTION, loss_config("test-recording"))
    cfg = ProtectConfig(method=method, rounds=1, pgd_steps=1, fit_steps=1, replay=0, progress=False)
    run = ProtectionRun(small_scene(), cams, loss, cfg)
    ((images, cameras),) = recording_kind  # once, before the first unit
    assert run.done == 0 and loss.context == 1
    torch.testing.assert_close(images, run.state.raw_renders)
    with torch.no_grad():
        torch.testing.assert_close(images, render(small_scene(), cams).rgb.clamp(0, 1), rtol=0, atol=1e-5)
    assert list(cameras.names) == list(cams.names) and len(cameras) == 3
    run.step()
    assert len(recording_kind) == 1


def test_a_resumed_protection_prepares_its_loss_again(recording_kind, tmp_path):
    class Stop(Exception):
        """Interrupts the run after its first unit."""

    def stop(done, total):
        raise Stop

    cams = orbit_cameras(3, [0.0, 0.0, 0.0], 3.0, width=32, height=32)
    cfg = ProtectConfig(rounds=1, pgd_steps=1, fit_steps=1, replay=0, progress=False, checkpoint=tmp_path / "c.pt",
                        checkpoint_every=1)  # fmt: skip
    with pytest.raises(Stop):
        protect(small_scene(), cams, AdversarialLoss(tiny_editor().surface, INSTRUCTION, loss_config("test-recording")),
                cfg, on_unit=stop)  # fmt: skip
    fresh = AdversarialLoss(tiny_editor().surface, INSTRUCTION, loss_config("test-recording"))
    result = protect(small_scene(), cams, fresh, cfg)
    assert len(recording_kind) == 2 and fresh.context == 2  # the resumed run prepared its own loss
    assert len(result.history) == 3
    torch.testing.assert_close(recording_kind[1][0], recording_kind[0][0])  # the same context as the first run


# ------------------------------------------------------------------------------------------ the command line
def test_protect_with_loss_dge_runs_end_to_end(tmp_path):
    out = tmp_path / "prot"
    proc = run_cli("protect", str(BUST), "--instruction", "turn her into a clown", "--out", str(out), "--cameras",
                   str(BUST_CAMS), "--editor", "tiny", "--width", "32", "--rounds", "1", "--pgd-steps", "1",
                   "--fit-steps", "1", "--replay", "0", "loss:dge", "--loss.pipeline-steps", "1", "--loss.key-views",
                   "2", hf_home=tmp_path / "hf")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "loss dge(gray,1 steps,2 key views)" in proc.stdout
    assert "no training views" not in proc.stdout  # the engine gave the loss its key views
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["loss"]["kind"] == "dge" and manifest["config"]["loss"]["key_views"] == 2
    assert (out / "protected.ply").exists()


def test_protect_with_invalid_dge_options_is_one_line(tmp_path):
    out = tmp_path / "prot"
    proc = run_cli("protect", str(BUST), "--instruction", "turn her into a clown", "--out", str(out), "--cameras",
                   str(BUST_CAMS), "--editor", "tiny", "--width", "32", "loss:dge", "--loss.key-views", "0",
                   hf_home=tmp_path / "hf")  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "key-views must be >= 1" in lines[0], proc.stderr
    assert not (out / "protected.ply").exists()
