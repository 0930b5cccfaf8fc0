"""npmle_gap: how tight npmle's bracket lower <= l*(sigma) <= upper is, where the certificate is hardest: the digits' ten classes
(64-D, the lifted certificate) and a regular simplex's tight clusters (D peaks at their centroid). One row per (set, sigma):
lower, the mean-shift estimate, upper, and upper - lower (docs/collapse_strength.md quotes them).

    python -m experiments.npmle_gap [--sigmas 0.1 0.2 0.3 0.5] [--quick] [--json FILE]
"""
import argparse
import sys
import time

import numpy as onp

from cli import runs as R
from extensions import data_sets as D
from extensions import npmle as NP


def bracket_rows(sets, sigmas):
    """[(name, sigma, lower, estimate, upper, seconds)] of npmle_bounds on every set at every sigma."""
    rows = []
    for name, x in sets:
        for sigma in sigmas:
            start = time.perf_counter()
            found = NP.npmle_bounds(x, sigma)
            rows.append((name, sigma, found["lower"], found["estimate"], found["upper"], time.perf_counter() - start))
    return rows


def format_rows(rows):
    """The table: one line per (set, sigma)."""
    lines = [f"{'set':>22s} {'sigma':>6s} {'lower':>9s} {'estimate':>9s} {'upper':>9s} {'upper-lower':>11s} {'seconds':>7s}"]
    return "\n".join(lines + [f"{n:>22s} {s:6.3f} {lo:9.4f} {e:9.4f} {u:9.4f} {u - lo:11.4f} {t:7.2f}" for n, s, lo, e, u, t in rows])


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=R.positive_number, nargs="+", default=[0.1, 0.2, 0.3, 0.5], help="decoder stds on digits (x1's units)")
    parser.add_argument("--quick", action="store_true", help="digit classes 0 and 1 only, the simplex at d = 3 only")
    parser.add_argument("--json", metavar="FILE", type=R.output_file, help="also write the rows and the summary to FILE")
    args = parser.parse_args(argv)
    classes, dims = (range(2), (3,)) if args.quick else (range(10), (3, 5, 10))
    print(f"npmle_gap configuration: digits classes {list(classes)} at sigmas={args.sigmas}, simplex d={list(dims)} at sigma 0.55", flush=True)
    x1, labels = D.load_digits()
    digits = bracket_rows([(f"digits class {c} (64-D)", x1[labels == c]) for c in classes], args.sigmas)
    simplex = bracket_rows([(f"simplex d={d} (x10 each)", onp.repeat(D.regular_simplex(d), 10, axis=0)) for d in dims], [0.55])
    results = {"rows": digits + simplex, "sigmas": args.sigmas, "quick": args.quick}
    print(format_results(results))
    if args.json:
        R.write_json(results, args.json)
    return 0


def format_results(results):
    """What main prints: the table, then per sigma the range of upper - lower on digits (from the rows, so a JSON renders it)."""
    rows = [tuple(row) for row in results["rows"]]
    lines = [format_rows(rows)]
    for sigma in results["sigmas"]:
        gaps = [u - lo for name, s, lo, _, u, _ in rows if s == sigma and name.startswith("digits")]
        lines.append(f"digits, sigma {sigma}: upper - lower from {min(gaps):.3f} to {max(gaps):.3f} nats per image, mean {onp.mean(gaps):.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
