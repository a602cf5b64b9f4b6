"""Adversarial losses, EOT and image-space PGD on the tiny (untrained) IP2P model, CPU only."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from adlift.attacks import (
    AdversarialLoss,
    EOTConfig,
    LOSSES,
    PGDConfig,
    PURIFICATIONS,
    apply_purification_kind,
    image_pgd,
    parse_budget,
    pgd_step,
    project_linf,
)
from adlift.attacks.losses import LossSettings, loss_config, register_loss
from adlift.errors import AdLiftError
from tests.helpers import rand_images, tiny_editor

INSTRUCTION = "turn him into a clown"

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("single_thread")]  # numpy-2 notes from diffusers' schedulers


def make_loss(kind: str = "encoder", eot: EOTConfig | None = None, **kw) -> AdversarialLoss:
    return AdversarialLoss(tiny_editor().surface, INSTRUCTION, loss_config(kind, **kw), eot)


# ---------------------------------------------------------------------------------- budget maths
def test_parse_budget_reads_fractions_and_numbers():
    assert parse_budget("8/255") == pytest.approx(8 / 255)
    assert parse_budget("0.05") == pytest.approx(0.05)
    assert parse_budget(0.1) == pytest.approx(0.1)
    for bad in ("eight", "1/0", "0", "-2/255", "2", "nan"):
        with pytest.raises(AdLiftError):
            parse_budget(bad)


def test_projection_stays_in_the_ball_and_in_unit_range():
    g = torch.Generator().manual_seed(0)
    center = torch.rand(2, 3, 8, 8, generator=g)
    x = center + torch.randn(2, 3, 8, 8, generator=g)
    p = project_linf(x, center, 0.05)
    assert float((p - center).abs().max()) <= 0.05 + 1e-7
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
    inside = center + 0.01
    torch.testing.assert_close(project_linf(inside.clamp(0, 1), center, 0.05), inside.clamp(0, 1))


def test_pgd_step_moves_against_the_gradient_sign():
    center = torch.full((1, 3, 4, 4), 0.5)
    grad = torch.ones_like(center)
    grad[..., 0, 0] = -1.0
    x = pgd_step(center, grad, center, eta=0.1, step=0.02)
    assert float(x[0, 0, 1, 1]) == pytest.approx(0.48)
    assert float(x[0, 0, 0, 0]) == pytest.approx(0.52)


def test_step_schedule_decays_geometrically_to_a_quarter():
    cfg = PGDConfig(steps=5, step_size=0.04)
    steps = [cfg.step_at(k) for k in range(5)]
    assert steps[0] == pytest.approx(0.04) and steps[-1] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(steps, steps[1:]))


# ---------------------------------------------------------------------------------- losses
def test_encoder_loss_is_zero_when_the_target_is_the_image_itself(tmp_path):
    from PIL import Image

    from adlift.render.images import to_uint8

    x = rand_images(1, 32, 40)
    x = x.mul(255).round().div(255)  # exactly representable in a PNG
    path = tmp_path / "target.png"
    Image.fromarray(to_uint8(x)[0]).save(path)
    same = make_loss(target="image", target_image=path)
    assert float(same.evaluate(x)[0]) < 1e-10
    gray = make_loss(target="gray")
    assert float(gray.evaluate(x)[0]) > 1e-4


def test_away_loss_is_zero_at_the_clean_image_and_needs_it():
    x = rand_images(2, 32, 32)
    loss = make_loss(target="away")
    assert loss.needs_reference
    assert torch.all(loss.evaluate(x, x).abs() < 1e-10)
    assert torch.all(loss.evaluate(rand_images(2, 32, 32, seed=1), x) < 0)
    with pytest.raises(AdLiftError, match="reference"):
        loss(x)


@pytest.mark.parametrize("kw", [{}, {"target": "zero"}, {"kind": "unet"}, {"kind": "unet", "unet_mode": "sds"},
                                {"kind": "pipeline", "pipeline_steps": 2},
                                {"kind": "dge", "pipeline_steps": 2, "key_views": 2}])  # fmt: skip
def test_every_loss_is_per_image_differentiable_and_paired(kw):
    loss = make_loss(**kw)
    loss.prepare(rand_images(3, 24, 32, seed=5))  # the scene's views (dge: its key views; others: nothing)
    x = rand_images(2, 24, 32)
    value, grad = loss.gradient(x, generator=torch.Generator().manual_seed(0))
    assert value.shape == (2,) and torch.isfinite(value).all()
    assert grad.shape == x.shape and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    # evaluate(): fixed draws, and an image's value does not depend on its batch.
    both = loss.evaluate(x)
    torch.testing.assert_close(both, loss.evaluate(x))
    torch.testing.assert_close(both[1:], loss.evaluate(x[1:]))


def test_gradient_truncation_stops_at_the_image():
    leaf = torch.rand(1, 3, 16, 16, requires_grad=True)
    image = leaf * 1.0  # something that produced the image
    make_loss().gradient(image)
    assert leaf.grad is None


def test_sds_gradient_skips_the_unet_jacobian():
    """SDS: d loss / d z0 = eps_pred - noise exactly, measured on the latent with the same draws."""
    sf = tiny_editor().surface
    loss = make_loss("unet", unet_mode="sds")
    x = rand_images(1, 16, 16)
    z = (sf.encode_image(x) * sf.scaling_factor).detach().requires_grad_(True)
    g = torch.Generator().manual_seed(3)
    t = torch.randint(round(0.02 * 1000), round(0.98 * 1000) + 1, (1,), generator=g)
    noise = torch.randn(z.shape, generator=g)
    with torch.no_grad():
        eps = sf.predict_noise_conditional(sf.add_noise(z, noise, t), t, z / sf.scaling_factor, sf.text_embeddings(INSTRUCTION))
    value = ((eps - noise) * z).sum() / z.numel()
    (gz,) = torch.autograd.grad(value, z)
    torch.testing.assert_close(gz, (eps - noise) / z.numel())
    assert loss.config.unet_mode == "sds"


def test_pipeline_checkpointing_gives_the_same_gradient():
    x = rand_images(1, 16, 16)
    a = make_loss("pipeline", pipeline_steps=2, gradient_checkpointing=True)
    b = make_loss("pipeline", pipeline_steps=2, gradient_checkpointing=False)
    va, ga = a.gradient(x, generator=torch.Generator().manual_seed(1))
    vb, gb = b.gradient(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(va, vb)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    ("kind", "change"),
    [("encoder", {"target": "image"}), ("pipeline", {"target": "away"}), ("pipeline", {"target": "image"}),
     ("unet", {"t_range": (0.9, 0.1)}), ("unet", {"unet_mode": "x"}), ("pipeline", {"pipeline_steps": 0})],
)  # fmt: skip
def test_bad_loss_settings_are_rejected(kind, change):
    with pytest.raises(AdLiftError):
        dataclasses.replace(loss_config(kind), **change).validate()


@pytest.mark.parametrize("eot", [EOTConfig(samples=-1), EOTConfig(samples=1, transforms=("sepia",))])
def test_bad_eot_settings_are_rejected(eot):
    with pytest.raises(AdLiftError):
        make_loss(eot=eot)


def test_the_loss_registry_is_the_one_source_of_kinds_and_options():
    """Each kind is a config class in LOSSES with only its own options; unknown kinds are one-line errors."""
    assert LOSSES.names() == ("encoder", "unet", "pipeline", "dge")
    fields = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in LOSSES.items()}
    assert "unet_mode" in fields["unet"] and "unet_mode" not in fields["encoder"] | fields["pipeline"]
    assert "pipeline_steps" in fields["pipeline"] and "pipeline_steps" not in fields["encoder"] | fields["unet"]
    assert "target" not in fields["unet"]
    for name, cls in LOSSES.items():
        assert cls.kind == name and cls().to_json()["kind"] == name
    with pytest.raises(AdLiftError, match="unknown loss 'style'; choose one of: encoder, unet, pipeline, dge"):
        loss_config("style")
    assert make_loss("unet", eot=EOTConfig(samples=2)).describe() == "unet(advdm)+eot2"
    with pytest.raises(TypeError):
        register_loss("not-a-config")(int)


def test_a_new_loss_kind_is_one_class_and_one_registration():
    """What docs/ARCHITECTURE.md's "where to add a loss" promises: AdversarialLoss needs nothing else."""
    import torch

    @dataclasses.dataclass
    class MeanBrightness(LossSettings):
        """Test loss: mean brightness."""

        scale: float = 1.0

        def compute(self, loss, x, reference, generator):
            return self.scale * x.float().flatten(1).mean(1)

    try:
        register_loss("test-brightness")(MeanBrightness)
        x = rand_images(2, 16, 16)
        value, grad = make_loss("test-brightness", scale=2.0).gradient(x)
        torch.testing.assert_close(value, 2.0 * x.flatten(1).mean(1))
        torch.testing.assert_close(grad, torch.full_like(x, 2.0 / x[0].numel()))
    finally:
        LOSSES._entries.pop("test-brightness", None)


def test_unreadable_target_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "target.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(AdLiftError, match="cannot read"):
        make_loss(target="image", target_image=bad)


def test_empty_instruction_is_rejected():
    with pytest.raises(AdLiftError, match="instruction"):
        AdversarialLoss(tiny_editor().surface, "  ")


# ---------------------------------------------------------------------------------- EOT
@pytest.mark.parametrize("name", PURIFICATIONS.names())
def test_purifications_keep_shape_change_the_image_and_pass_gradients(name):
    lo, hi = PURIFICATIONS.get(name).eot_range
    strength = hi if name == "noise" else (lo + hi) / 2  # noise: a strength that surely changes pixels
    x = rand_images(2, 32, 40).requires_grad_(True)
    y = apply_purification_kind(x, name, strength, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert float((y - x).detach().abs().mean()) > 1e-3
    y.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_eot_averages_over_random_purifications():
    x = rand_images(1, 32, 32)
    plain = make_loss()
    eot = make_loss(eot=EOTConfig(samples=3))
    _, g_plain = plain.gradient(x)
    _, g_eot = eot.gradient(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(g_plain, g_eot)
    _, again = eot.gradient(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(g_eot, again)  # deterministic for a seed
    torch.testing.assert_close(eot.evaluate(x), plain.evaluate(x))  # evaluation never uses EOT


# ---------------------------------------------------------------------------------- image PGD
def test_image_pgd_lowers_the_loss_within_the_budget_deterministically():
    x = rand_images(2, 32, 32)
    loss = make_loss()
    cfg = PGDConfig(eta=8 / 255, steps=15, seed=4)
    res = image_pgd(x, loss, cfg)
    assert res.losses.shape == (16, 2)
    assert float((res.images - x).abs().max()) <= 8 / 255 + 1e-6
    assert float(res.images.min()) >= 0 and float(res.images.max()) <= 1
    before, after = loss.evaluate(x), loss.evaluate(res.images)
    assert torch.all(after < 0.7 * before), (before, after)
    torch.testing.assert_close(image_pgd(x, loss, cfg).images, res.images)


def test_image_pgd_without_steps_or_random_start_returns_the_image():
    x = rand_images(1, 16, 16)
    res = image_pgd(x, make_loss(), PGDConfig(steps=0, random_start=False))
    torch.testing.assert_close(res.images, x)
