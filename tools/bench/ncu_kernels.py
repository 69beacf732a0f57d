#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (`ncu --csv --print-units base --metrics
gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum ...`) per kernel: launches,
total time, bytes moved through device memory and the bandwidth that gives, largest time first.

Usage: python3 ncu_kernels.py REPORT.csv [--skip REGEX] [--top N] [--peak-gb-s 4800]
--skip leaves out kernels whose name matches (e.g. the weight generation before a benchmark).
"""
import argparse
import csv
import re
import sys
from collections import defaultdict


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--skip", default="")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--peak-gb-s", type=float, default=4800.0)
    args = parser.parse_args()
    skip = re.compile(args.skip) if args.skip else None
    launches = {}  # ID -> (name, {metric: value})
    with open(args.report, newline="") as f:
        # ncu prints its own lines (==PROF== ...) and the program's output before the CSV.
        lines = [line for line in f if line.startswith('"')]
    for row in csv.DictReader(lines):
        name = row.get("Kernel Name", "")
        if skip and skip.search(name):
            continue
        value = float(row["Metric Value"].replace(",", "")) if row["Metric Value"] else 0.0
        launches.setdefault(row["ID"], (name, {}))[1][row["Metric Name"]] = value
    totals = defaultdict(lambda: [0, 0.0, 0.0])  # name -> launches, ns, bytes
    for name, metrics in launches.values():
        # Kernels in an anonymous namespace keep their own name, not the namespace's parenthesis.
        short = re.sub(r"\(.*", "", name.replace("(anonymous namespace)::", ""))[:70]
        entry = totals[short]
        entry[0] += 1
        entry[1] += metrics.get("gpu__time_duration.sum", 0.0)
        entry[2] += metrics.get("dram__bytes_read.sum", 0.0) + metrics.get(
            "dram__bytes_write.sum", 0.0)
    all_ns = sum(t[1] for t in totals.values()) or 1.0
    print(f"{'kernel':70}  {'launches':>8}  {'ms':>9}  {'share':>6}  {'GB':>8}  {'GB/s':>7}  {'% peak':>6}")
    for short, (count, ns, moved) in sorted(totals.items(), key=lambda kv: -kv[1][1])[: args.top]:
        gb_s = moved / ns if ns else 0.0  # bytes per ns = GB/s
        print(f"{short:70}  {count:8d}  {ns / 1e6:9.3f}  {100 * ns / all_ns:5.1f}%  {moved / 1e9:8.3f}  "
              f"{gb_s:7.0f}  {100 * gb_s / args.peak_gb_s:5.1f}%")
    print(f"{len(launches)} launches, {all_ns / 1e6:.3f} ms of kernel time")


if __name__ == "__main__":
    sys.exit(main())
