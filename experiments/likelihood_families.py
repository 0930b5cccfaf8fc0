"""likelihood_families: Theorem 1 with the decoder families the anchors train with (extensions/likelihoods.py), by direct
maximisation of L_1 alone: on pinwheel classes with a Laplace decoder (learned and fixed scale) and the paper's Gaussian, and
on binarised digits (pixel >= 8 of 16) with a Bernoulli decoder. Each row: the final L_1 per point against the family's
bound, the decoder's spread over g, and where it ends: its distance to the class's median and to its mean
(docs/likelihoods.md renders the table).

    python -m experiments.likelihood_families [--quick] [--json FILE]
"""
import argparse
import sys

import numpy as onp

import surjvae_np as S
from cli import runs as R
from extensions import data_sets as D
from extensions import likelihoods as LK

SETTINGS = (("laplace", None), ("laplace", 0.3), ("gaussian", None))   # (family, fixed scale) on the pinwheel


def family_rows(quick):
    """One row per (data, class, family): what maximise_cross_modal_term ends at."""
    x1, labels = S.make_pinwheel(num_per_class=100, rng=onp.random.default_rng(0))
    rows, steps = [], 400 if quick else 1500
    for c in range(1 if quick else 2):
        for family, fixed in SETTINGS:
            rows.append(row("pinwheel", c, family, fixed, LK.maximise_cross_modal_term(x1[labels == c], family, 0, num_steps=steps, fixed_scale=fixed)))
    digits, digit_labels = D.load_digits()
    for c in range(1 if quick else 3):
        binary = (digits[digit_labels == c] >= 0.5).astype(float)
        rows.append(row("binarised digits", c, "bernoulli", None, LK.maximise_cross_modal_term(binary, "bernoulli", 0, num_steps=steps, hidden=(64,))))
    return rows


def row(data, c, family, fixed, found):
    """The JSON row of one direct maximisation."""
    return {"data": data, "class": c, "family": family + ("" if fixed is None else f" (scale {fixed})"), "final": found["final"],
            "bound": found["bound"], "spread_ratio": found["spread_ratio"], "to_median": found["to_median"], "to_mean": found["to_mean"]}


def format_rows(rows):
    """The table: one line per row."""
    lines = [f"{'data':>16s} {'class':>5s} {'family':>20s} {'L_1 / N':>10s} {'bound / N':>10s} {'spread':>8s} {'to median':>9s} {'to mean':>8s}"]
    return "\n".join(lines + [f"{r['data']:>16s} {r['class']:5d} {r['family']:>20s} {r['final']:10.4f} {r['bound']:10.4f} {r['spread_ratio']:8.5f} "
                              f"{r['to_median']:9.4f} {r['to_mean']:8.4f}" for r in rows])


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one class of each, 400 steps")
    parser.add_argument("--json", metavar="FILE", type=R.output_file, help="also write the rows to FILE")
    args = parser.parse_args(argv)
    print(f"likelihood_families configuration: quick={args.quick}, seed 0, {400 if args.quick else 1500} steps, pinwheel classes "
          f"{'0' if args.quick else '0-1'} (laplace, laplace at scale 0.3, gaussian), binarised digits classes {'0' if args.quick else '0-2'} "
          f"(bernoulli)", flush=True)
    rows = family_rows(args.quick)
    print(format_rows(rows))
    if args.json:
        R.write_json({"rows": rows, "quick": args.quick}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
