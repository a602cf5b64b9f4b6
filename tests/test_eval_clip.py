"""CLIP similarities of adlift.evaluate on the tiny offline CLIP, and the missing-weights contract."""

from __future__ import annotations

import pytest
import torch

from adlift.errors import AdLiftError
from adlift.evaluate import DEFAULT_CLIP, MissingClipError, captions_for, load_clip
from tests.helpers import fake_hub_snapshot, offline_hub

pytestmark = pytest.mark.usefixtures("no_hub_network")

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip():
    return load_clip("tiny")


def _images(b: int = 3, h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_tiny_clip_is_labelled(clip):
    meta = clip.metadata()
    assert meta["model"] == "tiny" and meta["untrained"] is True
    assert meta["image_size"] == 32 and meta["embedding_dim"] == 32


def test_embeddings_are_unit_norm(clip):
    img = clip.image_embeddings(_images())
    assert img.shape == (3, 32) and img.dtype == torch.float32
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    txt = clip.text_embeddings(["a photo", "a photo, make it snowy"])
    assert txt.shape == (2, 32)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert not torch.allclose(txt[0], txt[1])  # the text actually reaches the embedding
    with pytest.raises(AdLiftError):
        clip.text_embeddings("a photo")  # a bare string is not a list of captions


def test_preprocess_crops_to_the_model_size(clip):
    for h, w in ((40, 56), (56, 40), (20, 20), (32, 32)):
        assert clip.preprocess(_images(1, h, w)).shape == (1, 3, 32, 32)
    gray = clip.preprocess(torch.full((1, 3, 50, 70), 0.5))
    expected = (0.5 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    )
    assert torch.allclose(gray[0, :, 5, 7], expected, atol=1e-5)


def test_text_image_similarity_is_bounded_and_deterministic(clip):
    x = _images()
    s1 = clip.text_image_similarity(x, "a photo of a cat")
    s2 = clip.text_image_similarity(x, "a photo of a cat")
    assert s1.shape == (3,) and torch.isfinite(s1).all()
    assert (s1.abs() <= 1).all()
    assert torch.equal(s1, s2)
    # a fresh load has the same seeded weights
    assert torch.allclose(load_clip("tiny").text_image_similarity(x, "a photo of a cat"), s1, atol=1e-6)
    expected = clip.image_embeddings(x) @ clip.text_embeddings(["a photo of a cat"])[0]
    assert torch.allclose(s1, expected, atol=1e-6)


def test_directional_similarity(clip):
    before, after = captions_for("make it snowy", None)
    x = _images()
    same = clip.directional_similarity(x, x.clone(), before, after)
    assert same.tolist() == [0.0, 0.0, 0.0]  # no image change: 0, not NaN
    y = _images(seed=1)
    d = clip.directional_similarity(x, y, before, after)
    assert d.shape == (3,) and torch.isfinite(d).all() and (d.abs() <= 1).all() and (d != 0).all()
    # the definition: cosine of the image and text embedding differences
    di = clip.image_embeddings(y) - clip.image_embeddings(x)
    t = clip.text_embeddings([before, after])
    expected = torch.nn.functional.cosine_similarity(di, (t[1] - t[0]).expand_as(di), dim=-1)
    assert torch.allclose(d, expected, atol=1e-5)
    # swapping before/after images flips the sign; identical captions give 0
    assert torch.allclose(clip.directional_similarity(y, x, before, after), -d, atol=1e-5)
    assert clip.directional_similarity(x, y, before, before).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(AdLiftError, match="differ in shape"):
        clip.directional_similarity(x, y[:2], before, after)


def test_captions_for():
    assert captions_for("make it snowy", None) == ("a photo", "a photo, make it snowy")
    assert captions_for("  make it   snowy ", "a dog on grass") == ("a dog on grass", "a dog on grass, make it snowy")
    with pytest.raises(AdLiftError, match="instruction is empty"):
        captions_for("   ", None)


def test_saved_clip_loads_through_from_pretrained(clip, tmp_path):
    d = tmp_path / "tiny-clip"
    clip.model.save_pretrained(d)
    clip.tokenizer.save_pretrained(d)
    loaded = load_clip(str(d))
    meta = loaded.metadata()
    assert meta["model"] == str(d) and meta["untrained"] is True  # the label survives saving
    x = _images()
    assert torch.allclose(loaded.image_embeddings(x), clip.image_embeddings(x), atol=1e-6)
    assert torch.allclose(
        loaded.text_embeddings(["a photo, make it snowy"]), clip.text_embeddings(["a photo, make it snowy"]), atol=1e-6
    )


def _assert_one_line_naming(err: MissingClipError, model: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert repr(model) in msg and "looked in" in msg and "save_pretrained" in msg
    assert err.model == model


def test_missing_local_directory(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(MissingClipError) as info:
        load_clip(str(missing))
    _assert_one_line_naming(info.value, str(missing))
    assert "does not exist" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingClipError, match="config.json") as info:
        load_clip(str(empty))
    _assert_one_line_naming(info.value, str(empty))


def test_saved_model_without_tokenizer(clip, tmp_path):
    d = tmp_path / "model-only"
    clip.model.save_pretrained(d)  # no tokenizer files: transformers would build an empty tokenizer
    with pytest.raises(MissingClipError, match="tokenizer") as info:
        load_clip(str(d))
    _assert_one_line_naming(info.value, str(d))
    clip.tokenizer.save_pretrained(d)
    (d / "tokenizer.json").unlink(missing_ok=True)
    (d / "vocab.json").write_text('{"<|startoftext|>": 0, "<|endoftext|>": 1}')  # a vocabulary of the wrong model
    (d / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(MissingClipError, match="expects 341") as info:
        load_clip(str(d))
    _assert_one_line_naming(info.value, str(d))


def test_missing_hub_weights_offline(tmp_path, monkeypatch):
    offline_hub(monkeypatch, tmp_path / "hf-home" / "hub")
    with pytest.raises(MissingClipError) as info:
        load_clip(DEFAULT_CLIP)
    _assert_one_line_naming(info.value, DEFAULT_CLIP)
    assert "HF_HUB_OFFLINE" in str(info.value) and str(tmp_path / "hf-home" / "hub") in str(info.value)
    assert isinstance(info.value, AdLiftError)


def test_offline_hub_id_loads_a_cached_clip_snapshot(clip, tmp_path, monkeypatch):
    cache = offline_hub(monkeypatch, tmp_path / "hub")
    saved = tmp_path / "saved"
    clip.model.save_pretrained(saved)
    clip.tokenizer.save_pretrained(saved)
    fake_hub_snapshot(cache, "someone/tiny-clip", saved)
    loaded = load_clip("someone/tiny-clip")
    assert loaded.model_id == "someone/tiny-clip" and loaded.untrained
    x = _images()
    assert torch.allclose(loaded.image_embeddings(x), clip.image_embeddings(x), atol=1e-6)
