"""Bytes moved and achieved bandwidth per kernel of one fitting step, from an ncu CSV:

    ncu --csv --clock-control none \
        --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
        -k regex:"_kernel|Kernel" python benchmarks/profile_fitting.py --cases cuda:split --steps 1 > ncu.csv
    python benchmarks/ncu_summary.py ncu.csv --ceiling-tbs 3.0 [--json out.json]

The last step in the file is summarised (from the last projection kernel on). The ceiling is the
device's measured copy bandwidth (benchmarks/render.py --fitting prints it).
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
from pathlib import Path


def short_name(name: str) -> str:
    m = re.search(r"adlift::\(anonymous namespace\)::(\w+)", name)
    if m:
        return m.group(1)
    m = re.search(r"(Device\w+Kernel)", name)
    if m:
        return m.group(1)
    m = re.search(r"(\w+_kernel)", name)
    return m.group(1) if m else name[:40]


def last_step(path: Path) -> list[dict]:
    rows = list(csv.DictReader(line for line in path.read_text().splitlines() if line.startswith('"')))
    kernels: collections.OrderedDict[str, dict] = collections.OrderedDict()
    for r in rows:
        k = kernels.setdefault(r["ID"], {"kernel": short_name(r["Kernel Name"])})
        k[r["Metric Name"]] = float(r["Metric Value"].replace(",", ""))
    ordered = list(kernels.values())
    starts = [i for i, k in enumerate(ordered) if k["kernel"].startswith("project_forward")]
    return ordered[starts[-1] :] if starts else ordered


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv", type=Path)
    p.add_argument("--ceiling-tbs", type=float, required=True, help="measured copy bandwidth, TB/s (read + write)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    step = last_step(args.csv)
    totals: collections.OrderedDict[str, dict] = collections.OrderedDict()
    for k in step:
        t = totals.setdefault(k["kernel"], {"kernel": k["kernel"], "launches": 0, "bytes": 0.0, "seconds": 0.0})
        t["launches"] += 1
        t["bytes"] += k.get("dram__bytes_read.sum", 0) + k.get("dram__bytes_write.sum", 0)
        t["seconds"] += k.get("gpu__time_duration.sum", 0) * 1e-9
    rows = sorted(totals.values(), key=lambda t: -t["seconds"])
    all_bytes, all_s = sum(t["bytes"] for t in rows), sum(t["seconds"] for t in rows)
    print("| kernel | launches | time us | DRAM MB moved | achieved TB/s | of ceiling |")
    print("|---|---|---|---|---|---|")
    for t in rows + [{"kernel": "**all**", "launches": sum(t["launches"] for t in rows), "bytes": all_bytes, "seconds": all_s}]:
        bw = t["bytes"] / t["seconds"] / 1e12 if t["seconds"] else 0.0
        t["tb_per_s"] = bw
        print(f"| {t['kernel']} | {t['launches']} | {1e6 * t['seconds']:.0f} | {t['bytes'] / 1e6:.1f} | {bw:.2f} | "
              f"{100 * bw / args.ceiling_tbs:.0f}% |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"ceiling_tb_per_s": args.ceiling_tbs, "kernels": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
