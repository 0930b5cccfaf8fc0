"""annealed_check: does the second estimate (annealed importance sampling, extensions/annealed.py) catch the points that
importance sampling calls reliable and gets wrong, on digits? For the trained and the untrained MVAE and MMVAE (the check's
configuration for --data digits), the first POINTS images of every class: log p(x1|x2) four times by importance sampling
(log_likelihood.log_p_x1_given_x2, default_rng([s, c]), s = 1..4) and once by AIS. Every estimate is unbiased for p, so one
more than 1 nat below the best of the five missed mass. Counted: the points the first importance-sampling estimate calls
reliable, and those of them more than 1 nat below the best, before and after AIS's agreement is required
(annealed.checked_by_annealing); and each method's seconds per point.

    python -m experiments.annealed_check [--seed 0] [--points 20] [--quick] [--json FILE]
"""
import argparse
import sys
import time

import numpy as onp

import surjvae_np as S
import theorem_check as T
from cli import configuration as C
from cli import runs as R
from extensions import annealed as A
from extensions import log_likelihood as L

SEEDS = (1, 2, 3, 4)


def second_opinion(params, model, x1, labels, num_classes, classes, points, temperatures):
    """Per class c in classes, its first points images: the four importance-sampling estimates and AIS (default_rng([5, c])).
    -> dict of counts (reliable, reliable and low, both after AIS's agreement, AIS unreliable) and seconds per point."""
    counts, seconds = dict(reliable=0, low=0, reliable_after=0, low_after=0, points=0), dict(importance=0.0, annealed=0.0)
    for c in classes:
        members = onp.flatnonzero(labels == c)[:points]
        x, x2 = x1[members], S.one_hot(labels[members], num_classes)
        start = time.perf_counter()
        found = [L.log_p_x1_given_x2(params, x, x2, onp.random.default_rng([s, c]), model) for s in SEEDS]
        seconds["importance"] += (time.perf_counter() - start) / len(SEEDS)
        start = time.perf_counter()
        annealed, error = A.annealed_log_p_x1_given_x2(params, x, x2, onp.random.default_rng([5, c]), model, temperatures=temperatures)
        seconds["annealed"] += time.perf_counter() - start
        best = onp.max([f["value"] for f in found] + [annealed], axis=0)
        checked = A.checked_by_annealing(found[0], annealed, error)
        low = found[0]["value"] < best - 1.0
        for key, reliable in (("", found[0]["reliable"]), ("_after", checked["reliable"])):
            counts["reliable" + key] += int(onp.sum(reliable))
            counts["low" + key] += int(onp.sum(reliable & low))
        counts["points"] += len(members)
    return dict(counts, **{f"{key}_seconds": value / counts["points"] for key, value in seconds.items()})


def format_row(row):
    """One line: a model and decoder state's counts before and after AIS's agreement."""
    return (f"{row['model']:5s} {row['decoder']:9s}: {row['points']} points; reliable {row['reliable']} -> {row['reliable_after']} with "
            f"AIS's agreement; reliable and > 1 nat below the best of five {row['low']} -> {row['low_after']}; "
            f"{row['importance_seconds']:.3f} s (importance sampling) and {row['annealed_seconds']:.3f} s (AIS) per point")


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=R.int_at_least(0), default=0, help="the trainings' and untrained networks' seed (default 0)")
    parser.add_argument("--points", type=R.int_at_least(1), default=20, help="images per class (default 20)")
    parser.add_argument("--temperatures", type=R.int_at_least(1), default=A.TEMPERATURES, help=f"AIS's temperatures (default {A.TEMPERATURES})")
    parser.add_argument("--quick", action="store_true", help="the check's --quick trainings, digit classes 0 and 1, 5 images each")
    parser.add_argument("--json", metavar="FILE", type=R.output_file, help="also write the rows to FILE")
    args = parser.parse_args(argv)
    config, data = T.parse_args(["--data", "digits", "--seed", str(args.seed)] + (["--quick"] if args.quick else []))
    points, classes = (5, range(2)) if args.quick else (args.points, range(data.num_classes))
    print(f"annealed_check configuration: {C.describe(config, data)}, {points} images per class, {args.temperatures} temperatures, "
          f"{A.CHAINS} chains", flush=True)
    x1, labels, rows = data.x1, data.labels, []
    for model in ("mvae", "mmvae"):
        trained = C.train_model(model, x1, S.one_hot(labels, data.num_classes), config["seed"], config)[0]
        untrained = C.untrained_params(model, config, x1, data.num_classes, config["seed"])
        for name, params in (("trained", trained), ("untrained", untrained)):
            rows.append(dict(model=model, decoder=name, **second_opinion(params, model, x1, labels, data.num_classes, classes, points,
                                                                         args.temperatures)))
            print(format_row(rows[-1]), flush=True)
    if args.json:
        R.write_json({"rows": rows, "quick": args.quick, "seed": args.seed, "points": points, "temperatures": args.temperatures}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
