"""log_p_two_estimates: how often log p(x1|x2) is called reliable and wrong, on digits. Every class of the trained and the
untrained MVAE and MMVAE (the check's configuration for --data digits), estimated twice with different seeds
(log_likelihood.log_p_x1_given_x2 with default_rng([1, c]) and default_rng([2, c]); each estimate is itself two runs): the
points both call reliable that differ beyond 5 combined standard errors (docs/log_likelihood.md quotes the table).

    python -m experiments.log_p_two_estimates [--seed 0]
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


def two_estimates(params, model, x1, labels, num_classes):
    """Per class, log p twice ([1, c] and [2, c]): (share reliable in both runs' counts, points reliable in both and beyond 5
    combined SE, points turned unreliable by the agreement rule over both, seconds per class, the largest such difference)."""
    x2, found = S.one_hot(labels, num_classes), {1: [], 2: []}
    start = time.perf_counter()
    for c in range(num_classes):
        members = onp.flatnonzero(labels == c)
        for seed in (1, 2):
            found[seed].append(L.log_p_x1_given_x2(params, x1[members], x2[members], onp.random.default_rng([seed, c]), model))
    joined = {seed: {key: onp.concatenate([f[key] for f in runs]) for key in ("value", "error", "reliable", "disagree")} for seed, runs in found.items()}
    a, b = joined[1], joined[2]
    both = a["reliable"] & b["reliable"]
    apart = both & (onp.abs(a["value"] - b["value"]) > 5 * onp.hypot(a["error"], b["error"]))
    largest = float(onp.max(onp.abs(a["value"] - b["value"])[apart])) if onp.any(apart) else 0.0
    return (float(onp.mean(onp.concatenate([a["reliable"], b["reliable"]]))), int(onp.sum(apart)), int(onp.sum(a["disagree"]) + onp.sum(b["disagree"])),
            (time.perf_counter() - start) / (2 * num_classes), largest)


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="the trainings' and untrained networks' seed (default 0)")
    args = parser.parse_args(argv)
    config, data = T.parse_args(["--data", "digits", "--seed", str(args.seed)])
    print(f"log_p_two_estimates configuration: {C.describe(config, data)}", flush=True)
    x2 = S.one_hot(data.labels, data.num_classes)
    for model in ("mvae", "mmvae"):
        trained = C.train_model(model, data.x1, x2, config["seed"], config)[0]
        untrained = C.untrained_params(model, config, data.x1, data.num_classes, config["seed"])
        for name, params in (("trained", trained), ("untrained", untrained)):
            share, apart, turned, seconds, largest = two_estimates(params, model, data.x1, data.labels, data.num_classes)
            print(f"{model:5s} {name:9s}: reliable {share:.3f} of points (both runs), reliable in both and beyond 5 combined SE {apart}"
                  f" (largest difference {largest:.1f} nats), turned unreliable by the agreement rule {turned} (over both runs), "
                  f"{seconds:.1f} s per class", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
