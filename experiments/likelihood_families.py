"""likelihood_families: Theorem 1 with the decoder families the anchors train with (extensions/likelihoods.py).

1. By direct maximisation of L_1 alone: on pinwheel classes with a Laplace decoder (learned and fixed scale) and the paper's
   Gaussian, and on binarised digits (pixel >= 8 of 16) with a Bernoulli decoder. Each row: the final L_1 per point against
   the family's bound, the decoder's spread over g, and where it ends: its distance to the class's median and to its mean.
2. The collapse of trained models per family: the MVAE and the MMVAE trained as the check trains them (--likelihood), on the
   pinwheel (Gaussian, Laplace) over seeds 0-4: per class, the spread ratio and coherence of label -> x1 generations (decoder
   means), and how far the generations' centre lies from the class's median and from its mean.
docs/likelihoods.md renders both tables.

    python -m experiments.likelihood_families [--quick] [--jobs J] [--json FILE]
"""
import argparse
import sys
import time

import numpy as onp

import surjvae_np as S
from cli import configuration as C
from cli import runs as R
from extensions import beyond_the_paper as B
from extensions import data_sets as D
from extensions import likelihoods as LK
from extensions import log_likelihood as L

TRAINED_FAMILIES, SEEDS, GENERATIONS = ("gaussian", "laplace"), range(5), 2000     # part 2: families, seeds, draws per class

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


def trained_row(family, seed, quick):
    """Part 2, one (family, seed): the pinwheel as the check draws it (C.read_data), the MVAE and the MMVAE trained as the check
    trains them (C.train_model), and per (model, class) the measures of GENERATIONS label -> x1 decoder means."""
    config = dict(C.QUICK if quick else C.FULL, likelihood=family, seed=seed, data="pinwheel", classes=2, test_fraction=None,
                  decoder_std=None, importance_samples=1, gradient="iwae", dtype="float64", private_dim=1, auxiliary="free")
    config["steps"] = config["steps"] or S.NUM_STEPS
    data = C.read_data(config, None)
    rows = []
    for model in S.PAPER_MODELS:
        params = C.train_model(model, data.x1, S.one_hot(data.labels, 2), seed, config)[0]
        for c in range(2):
            x1_class, x2 = data.x1[data.labels == c], S.one_hot(onp.full(GENERATIONS, c), 2)
            generated = B.generate_from_labels(params, x2, onp.random.default_rng([seed, 9, c]), model, likelihood=family)
            centre, median, mean = onp.mean(generated, axis=0), onp.median(x1_class, axis=0), onp.mean(x1_class, axis=0)
            rows.append({"family": family, "seed": seed, "model": model, "class": c, "spread_ratio": S.spread_ratio(generated, x1_class),
                         "coherence": L.label_coherence(generated, onp.full(GENERATIONS, c), data.x1, data.labels),
                         "to_median": float(onp.linalg.norm(centre - median)), "to_mean": float(onp.linalg.norm(centre - mean)),
                         "median_to_mean": float(onp.linalg.norm(median - mean))})
    return rows


def trained_rows(quick, jobs, print_fn):
    """Part 2's rows: every (family, seed), on jobs processes."""
    seeds = SEEDS[:2] if quick else SEEDS
    tasks = [(f"trained the mvae and the mmvae, {family}, seed {seed}", trained_row, (family, seed, quick)) for family in TRAINED_FAMILIES for seed in seeds]
    return [row for rows in R.run_tasks(tasks, jobs, print_fn, "training") for row in rows]


def format_trained(rows):
    """Part 2's table: per family and model, the mean over seeds and classes (and the range) of each measure."""
    lines = [f"{'family':>9s} {'model':>6s} {'runs':>4s} {'spread ratio':>19s} {'coherence':>19s} {'centre to median':>19s} {'centre to mean':>19s}"]
    for family in dict.fromkeys(r["family"] for r in rows):
        for model in S.PAPER_MODELS:
            chosen = [r for r in rows if r["family"] == family and r["model"] == model]
            cells = [onp.array([r[key] for r in chosen]) for key in ("spread_ratio", "coherence", "to_median", "to_mean")]
            lines.append(f"{family:>9s} {model:>6s} {len(chosen):4d} " + " ".join(f"{v.mean():6.3f} ({v.min():.3f}-{v.max():.3f})" for v in cells))
    distance = onp.array([r["median_to_mean"] for r in rows])
    return "\n".join(lines + [f"(mean over seeds and classes, range in brackets; a class's median lies {distance.min():.3f}-{distance.max():.3f} from its mean)"])


def main(argv=None):
    R.keep_freed_memory()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one class of each, 400 steps")
    parser.add_argument("--jobs", type=R.int_at_least(1), default=2, help="processes for part 2's trainings (default 2)")
    parser.add_argument("--json", metavar="FILE", type=R.output_file, help="also write the rows to FILE")
    args, start = parser.parse_args(argv), time.perf_counter()
    print(f"likelihood_families configuration: quick={args.quick}, jobs={args.jobs}; 1. direct maximisation: seed 0, "
          f"{400 if args.quick else 1500} steps, pinwheel classes {'0' if args.quick else '0-1'} (laplace, laplace at scale 0.3, gaussian), "
          f"binarised digits classes {'0' if args.quick else '0-2'} (bernoulli); 2. trained models: {', '.join(TRAINED_FAMILIES)} on the "
          f"pinwheel, seeds {'0-1' if args.quick else '0-4'}, the check's {'--quick ' if args.quick else ''}training", flush=True)
    rows = family_rows(args.quick)
    print(format_rows(rows), flush=True)
    trained = trained_rows(args.quick, args.jobs, R.progress(start))
    print(format_trained(trained))
    if args.json:
        R.write_json({"rows": rows, "trained": trained, "quick": args.quick}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
