"""adlift.registry.Registry: order, refused duplicates, one-line errors listing the choices, Literal."""

from __future__ import annotations

import typing

import pytest

from adlift.errors import AdLiftError
from adlift.registry import Entry, Registry


def colours() -> Registry[int]:
    reg: Registry[int] = Registry("colour")
    reg.add("red", 1, "the first one")
    reg.add("green", 2)

    @reg.register("blue", help="registered by decorator")
    def blue():  # a decorated function is returned unchanged
        return 3

    return reg


def test_names_keep_registration_order_and_lookups_return_values():
    reg = colours()
    assert reg.names() == ("red", "green", "blue")
    assert [name for name, _ in reg.items()] == ["red", "green", "blue"]
    assert reg.get("red") == 1 and reg.get("green") == 2 and reg.get("blue")() == 3
    assert reg.entry("red") == Entry("red", 1, "the first one")
    assert "red" in reg and "purple" not in reg and len(reg) == 3
    assert reg.check("green") == "green"
    assert repr(reg) == "Registry('colour', ['red', 'green', 'blue'])"


def test_a_name_is_registered_once_unless_replaced():
    reg = colours()
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        reg.add("red", 9)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("green")(lambda: None)
    assert reg.get("red") == 1  # the refused registration changed nothing
    reg.add("red", 9, replace=True)
    assert reg.get("red") == 9 and reg.names() == ("red", "green", "blue")  # replacing keeps the place
    for bad in ("", " red", "red "):
        with pytest.raises(ValueError, match="invalid colour name"):
            reg.add(bad, 0)


@pytest.mark.parametrize("call", ["get", "check", "entry"])
def test_unknown_names_are_one_line_adlift_errors_listing_the_choices(call):
    with pytest.raises(AdLiftError) as info:
        getattr(colours(), call)("purple")
    message = str(info.value)
    assert message == "unknown colour 'purple'; choose one of: red, green, blue"
    assert "\n" not in message


def test_literal_lists_extra_names_then_the_registered_ones():
    reg = colours()
    assert typing.get_args(reg.literal()) == ("red", "green", "blue")
    assert typing.get_args(reg.literal("auto")) == ("auto", "red", "green", "blue")
    assert typing.get_origin(reg.literal()) is typing.Literal
    reg.add("cyan", 4)
    assert typing.get_args(reg.literal()) == ("red", "green", "blue", "cyan")  # read at call time


def test_describe_gives_one_line_per_name_with_its_help():
    assert colours().describe().splitlines() == ["red: the first one", "green", "blue: registered by decorator"]


def test_an_empty_registry_says_so_on_lookup():
    reg: Registry[int] = Registry("thing")
    assert reg.names() == () and len(reg) == 0 and reg.describe() == ""
    with pytest.raises(AdLiftError, match="unknown thing 'x'"):
        reg.get("x")


def test_the_render_backends_are_a_registry_with_torch_always_there():
    from adlift.render import BACKENDS

    assert isinstance(BACKENDS, Registry) and "torch" in BACKENDS
    assert set(BACKENDS.names()) >= {"torch", "gsplat", "cuda"}
    assert "auto" in typing.get_args(BACKENDS.literal("auto"))
