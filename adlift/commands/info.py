"""``adlift info``: what is inside a 3DGS scene file (a rich table, or ``--json``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import tyro

from adlift.io.formats import SCENE_FORMATS, detect_scene_format, read_scene
from adlift.io.spz import SpzAxes


@dataclasses.dataclass
class InfoCommand:
    """Print a 3DGS scene's Gaussian count, SH degree, bounds and opacity/scale statistics."""

    scene: tyro.conf.Positional[Path]
    """Path of the 3D Gaussian Splatting scene: .ply (INRIA layout: 3DGS, gsplat, nerfstudio exports),
    .compressed.ply, .spz, .splat, .sog or a SOG meta.json."""

    json: bool = False
    """Print the statistics as JSON (machine-readable) instead of a table."""

    spz_axes: SpzAxes = None
    """Axes of .spz files: rub (the SPZ spec, Niantic's and splat-transform's convention: y and z
    flipped against the .ply) or raw (axes as stored, like gaussforge and gsply). Default:
    $ADLIFT_SPZ_AXES, else rub."""

    def run(self) -> None:
        fmt = detect_scene_format(self.scene)
        stats = read_scene(self.scene, spz_axes=self.spz_axes).summary()
        stats = {"file": str(self.scene), "format": fmt, **stats}
        if self.json:
            print(json.dumps(stats, indent=2))
            return
        print_summary(stats)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def print_summary(stats: dict) -> None:
    """Print :meth:`GaussianScene.summary` output as a readable table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=stats["file"], show_header=False, title_justify="left")
    table.add_column("property", style="bold")
    table.add_column("value")
    if "format" in stats:
        entry = SCENE_FORMATS.entry(stats["format"])
        table.add_row("format", f"{entry.name}: {entry.help}" if entry.help else entry.name)
    table.add_row("Gaussians", f"{stats['num_gaussians']:,}")
    table.add_row("SH degree", str(stats["sh_degree"]))
    if stats["num_gaussians"]:
        table.add_row("bounds min", "  ".join(_fmt(v) for v in stats["bounds_min"]))
        table.add_row("bounds max", "  ".join(_fmt(v) for v in stats["bounds_max"]))
        table.add_row("extent", "  ".join(_fmt(v) for v in stats["extent"]))
        for key, label in (("opacity", "opacity"), ("max_scale", "largest std. dev.")):
            s = stats[key]
            table.add_row(
                label,
                f"min {_fmt(s['min'])}  p05 {_fmt(s['p05'])}  median {_fmt(s['median'])}  "
                f"p95 {_fmt(s['p95'])}  max {_fmt(s['max'])}  mean {_fmt(s['mean'])}",
            )
        table.add_row("opacity < 1/255", f"{100 * stats['nearly_transparent_fraction']:.2f} %")
        if stats.get("isotropy_ratio_median") is not None:
            table.add_row("median max/min scale", _fmt(stats["isotropy_ratio_median"]))
        if stats["degenerate_quat_count"]:
            table.add_row("zero quaternions", str(stats["degenerate_quat_count"]))
    Console(width=120).print(table)
