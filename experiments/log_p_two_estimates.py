"""log_p_two_estimates: how often log p(x1|x2) is called reliable and wrong, on digits. Every class of the trained and the
untrained MVAE and MMVAE (the check's configuration for --data digits), estimated four times with different seeds
(log_likelihood.log_p_x1_given_x2 with default_rng([s, c]), s = 1..4; each estimate is itself two runs): the points the
first two call reliable that differ beyond 5 combined standard errors, and the points called reliable more than 1 nat below
the best of the four (docs/log_likelihood.md quotes the table).

    python -m experiments.log_p_two_estimates [--seed 0] [--quick] [--json FILE]
"""
import argparse
import sys
import time

import numpy as onp

import surjvae_np as S
import theorem_check as T
from cli import configuration as C
from cli import runs as R
from extensions import log_likelihood as L


SEEDS = (1, 2, 3, 4)       # four estimates per class: the first two compared pairwise, all four for the best value


def two_estimates(params, model, x1, labels, num_classes, classes):
    """Per class c in classes, log p four times (default_rng([s, c]), s in SEEDS): (share reliable over the estimates, points
    reliable in the first two and beyond 5 combined SE, points reliable in some estimate and more than 1 nat below the best of
    the four (summed over the four: an estimate can be that low only by missing mass, as importance sampling is unbiased for
    p), points turned unreliable by the agreement rule (the first two), seconds per class and estimate, the largest such
    first-two difference)."""
    x2, found = S.one_hot(labels, num_classes), {seed: [] for seed in SEEDS}
    start = time.perf_counter()
    for c in classes:
        members = onp.flatnonzero(labels == c)
        for seed in SEEDS:
            found[seed].append(L.log_p_x1_given_x2(params, x1[members], x2[members], onp.random.default_rng([seed, c]), model))
    joined = {seed: {key: onp.concatenate([f[key] for f in runs]) for key in ("value", "error", "reliable", "disagree")} for seed, runs in found.items()}
    a, b = joined[SEEDS[0]], joined[SEEDS[1]]
    both = a["reliable"] & b["reliable"]
    apart = both & (onp.abs(a["value"] - b["value"]) > 5 * onp.hypot(a["error"], b["error"]))
    largest = float(onp.max(onp.abs(a["value"] - b["value"])[apart])) if onp.any(apart) else 0.0
    best = onp.max([j["value"] for j in joined.values()], axis=0)
    below = sum(int(onp.sum(j["reliable"] & (j["value"] < best - 1.0))) for j in joined.values())
    return (float(onp.mean([j["reliable"] for j in joined.values()])), int(onp.sum(apart)), below, int(onp.sum(a["disagree"]) + onp.sum(b["disagree"])),
            (time.perf_counter() - start) / (len(SEEDS) * len(classes)), largest)


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=R.int_at_least(0), default=0, help="the trainings' and untrained networks' seed (default 0)")
    parser.add_argument("--quick", action="store_true", help="the check's --quick trainings, digit classes 0 and 1 only")
    parser.add_argument("--json", metavar="FILE", type=R.output_file, help="also write the rows to FILE")
    args = parser.parse_args(argv)
    config, data = T.parse_args(["--data", "digits", "--seed", str(args.seed)] + (["--quick"] if args.quick else []))
    print(f"log_p_two_estimates configuration: {C.describe(config, data)}" + (", classes 0 and 1" if args.quick else ""), flush=True)
    x1, labels, num_classes, x2, rows = data.x1, data.labels, data.num_classes, S.one_hot(data.labels, data.num_classes), []
    for model in ("mvae", "mmvae"):
        trained = C.train_model(model, x1, x2, config["seed"], config)[0]
        untrained = C.untrained_params(model, config, x1, num_classes, config["seed"])
        for name, params in (("trained", trained), ("untrained", untrained)):
            measured = two_estimates(params, model, x1, labels, num_classes, range(2 if args.quick else num_classes))
            rows.append(dict(zip(("model", "decoder", "reliable", "apart", "below_best", "turned", "seconds", "largest"), (model, name) + measured)))
            print(format_row(rows[-1]), flush=True)
    if args.json:
        R.write_json({"rows": rows, "quick": args.quick, "seed": args.seed}, args.json)
    return 0


def format_row(row):
    """One line of the table: a model and decoder state's two estimates."""
    return (f"{row['model']:5s} {row['decoder']:9s}: reliable {row['reliable']:.3f} of points, reliable in the first two and beyond 5 "
            f"combined SE {row['apart']} (largest difference {row['largest']:.1f} nats), reliable and > 1 nat below the best of four "
            f"{row['below_best']} (over the four), turned unreliable by the agreement rule {row['turned']} (first two), "
            f"{row['seconds']:.1f} s per class and estimate")


if __name__ == "__main__":
    sys.exit(main())
