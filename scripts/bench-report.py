#!/usr/bin/env python3
"""Turns criterion's estimates into a Markdown table: median per engine and the ratio."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
rows = {}
for est in sorted(root.glob("*/*/*/new/estimates.json")):
    case_dir = est.parent.parent
    engine = case_dir.parent.name
    group = case_dir.parent.parent.name
    median = json.loads(est.read_text())["median"]["point_estimate"]
    rows.setdefault((group, case_dir.name), {})[engine] = median


def fmt(ns):
    if ns is None:
        return "—"
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


print("| group | case | kvlar-vm (median) | kvlar-core 0.4.0 (median) | speed-up |")
print("|---|---|---:|---:|---:|")
for (group, case), eng in sorted(rows.items()):
    ours = eng.get("kvlar-vm")
    peer = eng.get("kvlar-core-0.4")
    ratio = f"{peer / ours:,.0f}×" if ours and peer else "—"
    print(f"| {group} | {case} | {fmt(ours)} | {fmt(peer)} | {ratio} |")
