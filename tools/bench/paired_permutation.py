#!/usr/bin/env python3
"""Paired comparison of two rows of `sluice bench retrieval --per-query FILE`.

For each metric: the mean per-query difference (B - A), how many queries B ranks better, worse
or the same, and a two-sided sign-flip permutation p-value (the chance that randomly swapping
A and B per query gives a mean difference at least as large). Standard library only.

    python3 tools/bench/paired_permutation.py FILE "lexical" "hybrid rrf" [--permutations N]
"""

import argparse
import json
import random
import sys

METRICS = ("ndcg@10", "recall@100", "mrr@10")


def load(path):
    rows = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                rows.setdefault(record["label"], {})[record["query"]] = record
            except (json.JSONDecodeError, KeyError) as error:
                sys.exit(f"{path}:{number}: not a --per-query record ({error})")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("a", help="label of the baseline row, e.g. 'lexical'")
    parser.add_argument("b", help="label of the row compared with it")
    parser.add_argument("--permutations", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rows = load(args.file)
    for label in (args.a, args.b):
        if label not in rows:
            sys.exit(f"no row '{label}' in {args.file}; rows: {', '.join(sorted(rows))}")
    a, b = rows[args.a], rows[args.b]
    if a.keys() != b.keys():
        sys.exit(f"rows '{args.a}' and '{args.b}' cover different queries")

    rng = random.Random(args.seed)
    print(f"{len(a)} queries, B = '{args.b}' against A = '{args.a}'")
    for metric in METRICS:
        diffs = [b[q][metric] - a[q][metric] for q in sorted(a)]
        observed = sum(diffs) / len(diffs)
        better = sum(d > 1e-12 for d in diffs)
        worse = sum(d < -1e-12 for d in diffs)
        extreme = 0
        for _ in range(args.permutations):
            flipped = sum(d if rng.random() < 0.5 else -d for d in diffs) / len(diffs)
            extreme += abs(flipped) >= abs(observed) - 1e-15
        print(f"{metric}: mean B - A {observed:+.4f}; B better on {better}, worse on {worse}, "
              f"same on {len(diffs) - better - worse}; p = {extreme / args.permutations:.3f}")


if __name__ == "__main__":
    main()
