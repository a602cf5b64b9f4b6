"""Fixed purifications for robustness evaluation: does the protection survive a JPEG save or a blur?

Each :class:`Purification` is one deterministic transform at one strength (noise is seeded by the
generator passed in). The transforms are the ones EOT trains against, from the one registry
:data:`adlift.attacks.purifications.PURIFICATIONS` (kornia's JPEG codec, kornia Gaussian blur,
antialiased bilinear down-up resize, additive Gaussian noise), here at fixed strengths:

    for p in parse_purifications("jpeg95,jpeg50,blur1.0,resize0.5,noise4"):
        purified = apply_purification(protected, p, generator)   # [B, 3, H, W] in [0, 1]
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated

import torch
import tyro

from adlift.attacks.purifications import PURIFICATIONS
from adlift.errors import AdLiftError
from adlift.image_metrics import check_images

#: "none" (identity) or a registered purification.
PurificationKind = PURIFICATIONS.literal("none")


@dataclasses.dataclass(frozen=True)
class Purification:
    """One purification at a fixed strength, as applied before the editor in robustness evaluation."""

    name: str
    """Short label used in reports and on the command line, e.g. ``jpeg75``, ``blur1.0``, ``noise4``."""

    kind: PurificationKind
    """The transform: ``none`` (identity), ``jpeg``, ``blur``, ``resize`` (down then up) or ``noise``."""

    strength: float
    """JPEG quality in [1, 100], blur sigma in pixels (> 0), resize scale in (0, 1], or noise std in
    [0, 1] image units (the name gives it in 8-bit levels: ``noise4`` is std 4/255); 0 for ``none``."""

    def __post_init__(self) -> None:
        if self.kind == "none":
            if self.strength != 0:
                raise AdLiftError(f"purification {self.name!r}: 'none' takes no strength")
            return
        spec = PURIFICATIONS.get(self.kind)
        if not spec.valid(self.strength):
            raise AdLiftError(f"purification {self.name!r}: strength {self.strength} is out of range ({spec.strength_help})")


def purification(kind: PurificationKind, strength: float = 0.0) -> Purification:
    """A purification with its canonical name (``jpeg95``, ``blur1.0``, ``resize0.5``, ``noise4``, ``none``)."""
    if kind == "none":
        return Purification("none", "none", 0.0)
    return Purification(PURIFICATIONS.get(kind).token(kind, strength), kind, float(strength))


#: The purifications evaluated when none are named.
DEFAULT_PURIFICATIONS: tuple[Purification, ...] = (
    purification("jpeg", 95),
    purification("jpeg", 75),
    purification("jpeg", 50),
    purification("blur", 1.0),
    purification("resize", 0.5),
    purification("noise", 4 / 255),
)

_TOKEN = re.compile(r"^([a-z_]+?)(\d+(?:\.\d*)?|\.\d+)$")


def parse_purifications(spec: str) -> list[Purification]:
    """Purifications from a comma-separated spec like ``"none,jpeg95,jpeg50,blur1.0,resize0.5,noise4"``.

    Tokens: ``none``, ``jpeg<quality>``, ``blur<sigma>``, ``resize<scale>``, ``noise<std in 8-bit
    levels>``. AdLiftError on an unknown or out-of-range token, a duplicate, or an empty spec.
    """
    result: list[Purification] = []
    for raw in spec.split(","):
        token = raw.strip().lower()
        if not token:
            continue
        if token == "none":
            p = purification("none")
        else:
            m = _TOKEN.match(token)
            if m is None or m.group(1) not in PURIFICATIONS:
                raise AdLiftError(
                    f"bad purification {raw.strip()!r}; expected none or NAMEVALUE with NAME one of "
                    f"{', '.join(PURIFICATIONS.names())}, e.g. jpeg75,blur1.0,resize0.5,noise4"
                )
            kind, value = m.group(1), float(m.group(2))
            p = purification(kind, value / PURIFICATIONS.get(kind).token_scale)
        if any(q.name == p.name for q in result):
            raise AdLiftError(f"purification {p.name!r} is listed twice in {spec!r}")
        result.append(p)
    if not result:
        raise AdLiftError(f"no purifications in {spec!r}; e.g. jpeg95,jpeg50,blur1.0,resize0.5,noise4")
    return result


def format_purifications(purifications: tuple[Purification, ...] | list[Purification]) -> str:
    """The spec :func:`parse_purifications` reads back: names joined by commas, or ``none`` when empty."""
    return ",".join(p.name for p in purifications) or "none"


def _purifications_from_cli(args: list[str]) -> tuple[Purification, ...]:
    text = args[0].strip()
    # AdLiftError passes through tyro: one line and exit 2 from run_command (see attacks.pgd.Budget).
    return () if text.lower() in ("", "none") else tuple(parse_purifications(text))


#: ``--purify`` help: the token grammar, from the registry.
PURIFY_HELP = (
    "Purifications of the protected renders before editing (robustness), comma-separated NAMEVALUE "
    "tokens, or none: " + "; ".join(f"{name}: {spec.strength_help}" for name, spec in PURIFICATIONS.items())
    + ". E.g. jpeg75,blur1.0,resize0.5,noise4."
)

#: A tuple of purifications for a config field: written ``jpeg95,blur1.0`` (or ``none``) on the command line.
Purifications = Annotated[
    tuple[Purification, ...],
    tyro.constructors.PrimitiveConstructorSpec(
        nargs=1,
        metavar="SPEC",
        instance_from_str=_purifications_from_cli,
        is_instance=lambda value: isinstance(value, tuple) and all(isinstance(p, Purification) for p in value),
        str_from_instance=lambda value: [format_purifications(value)],
    ),
    tyro.conf.arg(help=PURIFY_HELP),
]


def apply_purification(
    images: torch.Tensor, p: Purification, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``p`` applied to images [B, 3, H, W] in [0, 1] -> [B, 3, H, W] clamped to [0, 1].

    ``generator`` (a CPU generator) draws the noise of ``noise`` purifications; None uses torch's
    global RNG. Differentiable, though evaluation does not need it.
    """
    check_images(images)
    if p.kind == "none":
        return images.clamp(0.0, 1.0)
    return PURIFICATIONS.get(p.kind).apply(images, p.strength, generator).clamp(0.0, 1.0)
