"""sweep: the degree of surjectivity (studies.py --sweep; docs/sweep.md). Each pinwheel arm is split into k sub-labels by
the radius (data_sets.refine_labels), every model is trained on each k, and what it keeps of the within-label variance is
measured: Theorem 1 predicts that the MMVAE loses it, less as the labels get finer.
"""
import autograd.numpy as np
import numpy.random as npr

from extensions import beyond_the_paper as B
from cli import configuration as C
from extensions import data_sets as D
from cli import runs as R
import surjvae_np as S
import theorem_check as T
from theorem_check import largest, smallest


def within_label_variance(x, labels):
    """Mean over labels j of tr Cov(x | label j): the variation that the labels do not describe."""
    return float(np.mean([S.total_variance(x[labels == j]) for j in np.unique(labels)]))


def label_gap(params, model, x1, fine, num_labels, nodes):
    """(sum_j bound_j - L_1,j) / N over the fine labels j: Eq. (6)'s gap, per datapoint."""
    gaps = [T.constant_mean_bound(x1[fine == j])
            - T.cross_modal_term_quadrature(params, x1[fine == j], *T.class_label_posterior(params, model, num_labels, j), nodes)
            for j in range(num_labels)]
    return float(np.sum(gaps) / len(x1))


def sweep_point(k, params_by_model, x1, fine, num_labels, nodes, seed):
    """What each model trained with each arm split into k sub-labels keeps of the within-label variance."""
    x2, data_variance = S.one_hot(fine, num_labels), within_label_variance(x1, fine)
    point = {"k": k, "num_labels": num_labels, "points_per_label": len(x1) / num_labels,
             "data_within_label_variance": data_variance, "models": {}}
    for model, params in params_by_model.items():
        generated = B.generate_from_labels(params, x2, npr.default_rng([seed, 6, k]), model)
        point["models"][model] = {
            "generated_within_label_variance": within_label_variance(generated, fine),
            "lost_variance": data_variance - within_label_variance(generated, fine),
            "spread_ratio": float(np.mean([S.spread_ratio(generated[fine == j], x1[fine == j]) for j in range(num_labels)])),
            "gap": label_gap(params, model, x1, fine, num_labels, nodes)}
    return point


def run_sweep(config, data, print_fn):
    """Train every model for every k of --sweep-ks (in parallel) and evaluate each point."""
    ks, models, seed = config["sweep_ks"], config["models"], config["seed"]
    refined = [D.refine_labels(data.radial, data.labels, k) for k in ks]
    tasks = [(f"trained {model} with {k} sub-label{'s' * (k > 1)} per arm", C.train_model, (model, data.x1, x2, seed, config))
             for k, (_, x2) in zip(ks, refined) for model in models]
    trained = iter(R.run_tasks(tasks, config["jobs"], print_fn, "the sweep"))
    return [sweep_point(k, {model: next(trained)[0] for model in models}, data.x1, fine, np.shape(x2)[1], config["nodes"], seed)
            for k, (fine, x2) in zip(ks, refined)]


def sweep_findings(sweep):
    """Findings across k, as Theorem 1 leads one to expect: the MMVAE loses within-label variance, less as labels get finer.
    'lost' is the data's mean within-label variance minus that of the MMVAE's cross-generated x1 (decoder
    means); the third check applies where labels still describe >= 100 points each, the paper's regime."""
    lost = [p["models"]["mmvae"]["lost_variance"] for p in sweep]
    fraction = [l / p["data_within_label_variance"] for l, p in zip(lost, sweep)]
    surjective = [f for f, p in zip(fraction, sweep) if p["points_per_label"] >= 100]
    steps = [b - a for a, b in zip(lost[:-1], lost[1:])]
    return [("sweep: the MMVAE's cross-generated x1 vary less within a label than the data, at every k", smallest(lost) > 0, smallest(lost),
             "smallest lost variance"),
            ("sweep: the MMVAE's lost variance decreases as k grows", bool(steps) and largest(steps) < 0, largest(steps) if steps else float("nan"),
             "largest increase between consecutive k"),
            ("sweep: with >= 100 points per label the MMVAE loses more than half the within-label variance",
             bool(surjective) and smallest(surjective) > 0.5, smallest(surjective) if surjective else float("nan"),
             "smallest lost / data where points per label >= 100")]


def format_sweep(sweep, models):
    header = f"{'k':>4s} {'labels':>6s} {'pts/label':>9s} {'data var':>9s}" + "".join(
        f" | {m + ' var':>10s} {'ratio':>6s} {'gap':>8s}" for m in models)
    lines = ["Surjectivity sweep (beyond the paper): each arm split into k sub-labels. var = mean over labels of tr Cov(x1 | label), "
             "of the data and of cross-generated x1 (decoder means); ratio = mean over labels of the per-label spread ratio; "
             "gap = bound - L_1 per point", header, "-" * len(header)]
    for p in sweep:
        lines.append(f"{p['k']:4d} {p['num_labels']:6d} {p['points_per_label']:9.1f} {p['data_within_label_variance']:9.5f}"
                     + "".join(f" | {p['models'][m]['generated_within_label_variance']:10.5f}"
                               f" {p['models'][m]['spread_ratio']:6.3f} {p['models'][m]['gap']:8.3f}" for m in models))
    return "\n".join(lines)
