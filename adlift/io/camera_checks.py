"""Checks shared by the camera-file readers."""

from __future__ import annotations

import warnings
from pathlib import Path

from adlift.errors import FileFormatError


def single_image_size(path: str | Path, sizes: set[tuple[int, int]], distorted: set[str], what: str) -> tuple[int, int]:
    """The one (width, height) of a camera file's ``what`` (e.g. "frames"), warning about ignored distortion.

    Raises :class:`FileFormatError` when the file mixes image sizes: AdLift renders one size per file.
    """
    if len(sizes) > 1:
        raise FileFormatError(
            path, f"{what} have different image sizes {sorted(sizes)}; AdLift needs one image size per camera file"
        )
    if distorted:
        warnings.warn(
            f"{path}: non-zero lens distortion ({', '.join(sorted(distorted))}) is ignored; "
            "AdLift renders undistorted pinhole views",
            stacklevel=3,
        )
    ((width, height),) = sizes
    return width, height
