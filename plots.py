"""plots.py: the paper's Fig. 2 and Fig. 3, the picture of Theorem 1, and training curves, as PNGs.

Trains the models through theorem_check.check (or reads its or studies.py's --json output with --from-json) and
writes figures/fig2_samples.png, fig3_latents.png, theorem1.png and training.png (for --data digits:
digits_samples.png, theorem1_digits.png, training_digits.png; with --sweep also surjectivity_sweep.png).
Beyond the paper, from studies.py's --json files: --study-json draws collapse_strength.png and robustness.png,
--views-json augmentation.png.
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # before NumPy loads: small matrices, no BLAS threads

import argparse  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from extensions import beyond_the_paper as B  # noqa: E402
from experiments import collapse_study as CS  # noqa: E402
from cli import configuration as C  # noqa: E402
from extensions import data_sets as D  # noqa: E402
from extensions import likelihoods as LK  # noqa: E402
import figure_data as F  # noqa: E402
from extensions import mopoe_mmvaeplus as MM  # noqa: E402
from cli import runs as R  # noqa: E402
import studies as ST  # noqa: E402
import surjvae_np as S  # noqa: E402
import theorem_check as T  # noqa: E402

DATA_GREY = "#d0d0d0"


def class_colours(num_classes):
    """Yellow and green for two classes, as in the paper's Fig. 2; tab10 beyond."""
    return ["#e8b400", "#1a9850"] if num_classes == 2 else [plt.cm.tab10(c % 10) for c in range(num_classes)]


def finish_axes(ax, title, xlabel, ylabel, legend_loc=None):
    """Title, axis labels, a light grid and (if legend_loc) a small legend."""
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.2, which="both")
    if legend_loc:
        ax.legend(fontsize=8, loc=legend_loc)


def style_data_axes(ax, title, xlabel="x1[0]", ylabel="x1[1]"):
    finish_axes(ax, title, xlabel, ylabel)
    ax.set_aspect("equal")


def projection(x1):
    """(a map of points (N, D) to the plane, the axes' names): x1's own two coordinates in 2-D; beyond, its first two principal
    axes (PCA of x1, centred at its mean); in 1-D, x1 against 0."""
    dim = np.shape(x1)[1]
    if dim == 2:
        return (lambda points: points), ("x1[0]", "x1[1]")
    if dim == 1:
        return (lambda points: np.concatenate([points, np.zeros_like(points)], axis=1)), ("x1[0]", "")
    centre = np.mean(x1, axis=0)
    axes = np.linalg.svd(x1 - centre, full_matrices=False)[2][:2].T                                  # (D, 2)
    return (lambda points: (points - centre) @ axes), (f"x1's 1st principal axis (of {dim})", "x1's 2nd principal axis")


def label_names(results, num_classes):
    """The labels' names: your data's, else the class numbers."""
    return [record["label"] for record in results.get("labels") or []] or [str(c) for c in range(num_classes)]


def plot_fig2(results, seed, path):
    """Fig. 2: x1 decoded from g ~ p(g) (left) and from g ~ q(g|x2 = c) (right), per model; beyond 2-D x1, in the plane of its
    first two principal axes."""
    x1, labels = np.array(results["data"]["x1"]), np.array(results["data"]["labels"])
    num_classes, colours = labels.max() + 1, class_colours(labels.max() + 1)
    (plane, axis_names), names = projection(x1), label_names(results, labels.max() + 1)
    models = list(results["params"])
    fig, axes = plt.subplots(len(models), 2, figsize=(8.5, 4.0 * len(models)), squeeze=False, layout="constrained")
    for row, model in enumerate(models):
        params, rng = F.params_from_json(results["params"][model]), np.random.default_rng([seed, 5])
        prior_samples = B.generate_from_prior(params, len(x1), rng, model)
        label_samples = B.generate_from_labels(params, S.one_hot(labels, num_classes), rng, model, likelihood=likelihood_of(results))
        left, right = axes[row]
        for ax in (left, right):
            ax.scatter(*plane(x1).T, s=6, c=DATA_GREY, label="training data", zorder=1)
        left.scatter(*plane(prior_samples).T, s=4, c="#3b5b92", alpha=0.6, label="generated", zorder=2)
        for c in range(num_classes):
            right.scatter(*plane(label_samples[labels == c]).T, s=4, color=colours[c], alpha=0.7, zorder=2,
                          label=f"x2 = {names[c]}")
        if likelihood_of(results) == "laplace":               # Theorem 1's prediction: a collapsed MMVAE draws the median
            for centre, marker, name in ((np.median, "x", "class medians"), (np.mean, "+", "class means")):
                right.scatter(*plane(np.stack([centre(x1[labels == c], axis=0) for c in range(num_classes)])).T, s=40, marker=marker,
                              c="black", linewidths=1.5, zorder=3, label=name)
        style_data_axes(left, f"{F.NAMES[model]}: x1 from g ~ p(g)", *axis_names)
        style_data_axes(right, f"{F.NAMES[model]}: x1 from g ~ q(g|x2)", *axis_names)
        left.legend(loc="upper left", fontsize=8, markerscale=2)
        right.legend(loc="upper left", fontsize=8, markerscale=3 if likelihood_of(results) == "gaussian" else 1)
    share_limits(axes.ravel(), plane(x1))
    fig.suptitle("Fig. 2: generated x1 (decoder means" + ("" if likelihood_of(results) == "gaussian" else
                 f"; a {likelihood_of(results)} x1 decoder") + ")", fontsize=13)
    save(fig, path)


def share_limits(axes, x1):
    margin = 0.1 * np.max(x1.max(axis=0) - x1.min(axis=0))                          # about 0.4 on the pinwheel
    low, high = x1.min(axis=0) - margin, x1.max(axis=0) + margin
    for ax in axes:
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])


def plot_fig3(results, path):
    """Fig. 3: means of q(g|x1) per datapoint, and q(g|x2 = c) as 1- and 2-sigma ellipses, per model."""
    x1, labels = np.array(results["data"]["x1"]), np.array(results["data"]["labels"])
    num_classes, colours = labels.max() + 1, class_colours(labels.max() + 1)
    models = list(results["params"])
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 5.0), squeeze=False, layout="constrained")
    for ax, model in zip(axes[0], models):
        params = F.params_from_json(results["params"][model])
        shared = MM.shared_dim(params)                                     # g; MMVAE+'s private w left out
        means_x1 = B.x1_latent(params, x1, model)[0][:, :shared]
        for c in range(num_classes):
            ax.scatter(*means_x1[labels == c].T, s=5, color=colours[c], alpha=0.6, label=f"mean of q(g|x1), class {c}")
            mean, log_var = (a[0, :shared] for a in B.label_latent(params, S.one_hot(np.array([c]), num_classes), model))
            for k in (1, 2):
                ax.add_patch(Ellipse(mean, *(2 * k * np.exp(0.5 * log_var)), fill=False, lw=2.2 - 0.8 * k,
                                     ls="-" if k == 1 else "--", ec=colours[c]))
            ax.plot(*mean, marker="x", ms=10, mew=2.5, color="k")
        ax.plot([], [], ls="", marker="x", ms=8, mew=2, color="k", label="mean of q(g|x2 = c)")
        ax.plot([], [], c="k", lw=1.4, label="q(g|x2 = c): 1 sigma")
        ax.plot([], [], c="k", lw=0.6, ls="--", label="2 sigma")
        ax.add_patch(Ellipse((0, 0), 2, 2, fill=False, ec="grey", ls=":", lw=1))
        ax.plot([], [], c="grey", ls=":", label="p(g): 1 sigma")
        style_data_axes(ax, F.NAMES[model], "g[0]", "g[1]")
        ax.set_xlim(-3.2, 3.2)
        ax.set_ylim(-3.2, 3.2)
    axes[0][0].legend(loc="lower left", fontsize=7)
    fig.suptitle("Fig. 3: marginal posteriors in the 2-D latent space", fontsize=13)
    save(fig, path)


def plot_theorem(results, path):
    """Left: bound, trained L_1 and log p(x1|x2) per model and class. Right: maximising L_1 alone."""
    rows = [r for r in results["rows"] if r["decoder"] == "trained"]
    crowded = len(rows) > 8                                           # digits: 10 classes per model
    fig, (left, right) = plt.subplots(1, 2, figsize=(16 if crowded else 12, 6.0 if crowded else 5.4),
                                      gridspec_kw={"width_ratios": [2, 1] if crowded else [1, 1]}, layout="constrained")
    positions = np.arange(len(rows))
    constant = {"gaussian": "class mean", "laplace": "class median", "bernoulli": "per-pixel class mean"}[likelihood_of(results)]
    left.scatter(positions, [-r["bound"] for r in rows], marker="_", s=150 if crowded else 900, lw=3, c="k",
                 label=f"bound: -L_1(theta_hat) (constant decoder at the {constant})", zorder=3)
    left.scatter(positions, [-r["l1"] for r in rows], s=40 if crowded else 60, c="#c0392b", label="trained decoder: -L_1(theta, phi)", zorder=3)
    for reliable, colour, label in ((True, "#1f77b4", "trained model: -log p(x1|x2)"), (False, "#aaaaaa", "-log p(x1|x2), unreliable")):
        chosen = [i for i, r in enumerate(rows) if r["conditional_reliable"] == reliable and r["conditional"] is not None]
        if chosen:
            left.scatter(positions[chosen], [-rows[i]["conditional"] for i in chosen], s=50 if crowded else 70, marker="D",
                         facecolors="none", edgecolors=colour, lw=1.5, label=label, zorder=4)
    for x, r in zip(positions, [] if crowded else rows):
        left.annotate(f"gap {r['gap']:.2g}", (x, -r["l1"]), textcoords="offset points", xytext=(8, -3), fontsize=8)
    left.set_yscale("symlog", linthresh=0.1)           # a small class's per-point bound can be > 0: keep every row
    model_ticks(left, rows, crowded)
    finish_axes(left, f"Eq. (6): no decoder beats the constant {constant}", "",
                "nats per datapoint (symlog, linear within +-0.1; lower is better)")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower left", ncol=3, fontsize=9)
    window = 25 if crowded else 1                                     # digits: 1200 noisy steps per class, smoothed
    for d, colour in zip(results["direct_maximisation"], class_colours(len(results["direct_maximisation"]))):
        gap = np.convolve(d["bound"] - np.array(d["history"]), np.ones(window) / window, mode="valid")
        right.plot(np.arange(len(gap)) + window - 1, gap, color=colour, lw=1, label=f"class {d['class']}: {d['bound'] - d['final']:.1e}")
    right.axhline(0.0, color="k", lw=0.8)
    right.set_yscale("symlog", linthresh=1e-3)                       # MC noise scatters around 0
    finish_axes(right, "Maximising L_1 alone converges onto the bound", "Adam step", "bound - L_1 per datapoint, nats (Monte Carlo)")
    smoothing = f"curves: moving averages of {window} steps; " if window > 1 else ""
    right.legend(title=f"{smoothing}final (deterministic estimate)", fontsize=8, title_fontsize=8, ncol=2 if crowded else 1, loc="upper right")
    save(fig, path)


def model_ticks(ax, rows, crowded):
    """x tick labels: "MODEL\nclass c", or for many classes the class number with each model's name under its group."""
    if not crowded:
        ax.set_xticks(np.arange(len(rows)), [f"{F.NAMES[r['model']].split()[0]}\nclass {r['class']}" for r in rows], fontsize=9)
        return
    ax.set_xticks(np.arange(len(rows)), [str(r["class"]) for r in rows], fontsize=9)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for model in models:
        where = [i for i, r in enumerate(rows) if r["model"] == model]
        ax.annotate(F.NAMES[model].split()[0] + " (classes)", (np.mean(where), 0), xycoords=("data", "axes fraction"),
                    xytext=(0, -24), textcoords="offset points", ha="center", va="top", fontsize=10)
        if where[0] > 0:
            ax.axvline(where[0] - 0.5, color="grey", lw=0.6)


def plot_training(results, path):
    """Each model's objective per datapoint (maximised) over the Adam steps, one panel per model.

    The panels do not share an axis: the MVAE's objective is a sum of three ELBOs (Eq. 9), the
    MMVAE's and MoPoE's one stratified ELBO (Eq. 5), MMVAE+'s its own, so the values are not comparable.
    """
    models = list(results["histories"])
    fig, axes = plt.subplots(1, len(models), figsize=(4.3 * len(models), 3.9), squeeze=False, layout="constrained")
    for ax, model in zip(axes[0], models):
        history = np.array(results["histories"][model])
        window = max(1, len(history) // 40)
        smooth = np.convolve(history, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(history)), history, color="#c8c8c8", lw=0.6, label="each step (one batch)")
        ax.plot(np.arange(len(smooth)) + window - 1, smooth, color="k", lw=1.5, label=f"moving average of {window} steps")
        settled = history[len(history) // 2:]                             # the first steps would set the scale
        low, high = np.percentile(settled, 1), settled.max()
        ax.set_ylim(low - 0.1 * (high - low) - 0.1, high + 0.1 * (high - low) + 0.1)
        quantity = {"mvae": "sum of 3 ELBOs, Eq. (9)", "mmvaeplus": "its objective (B3)"}.get(model, "stratified ELBO, Eq. (5)")
        finish_axes(ax, f"{F.NAMES[model]}: {quantity}", "Adam step", "objective per datapoint (maximised)",
                    "lower right")
        whole = ax.inset_axes([0.16, 0.6, 0.34, 0.3])                   # every step, on its own scale
        whole.plot(np.arange(len(smooth)) + window - 1, smooth, color="k", lw=1)
        whole.set_title("all steps", fontsize=7, pad=2)
        whole.tick_params(labelsize=6)
    fig.suptitle("Training objectives, in the standardised units of x1 that fit trains in\n(the main axes show the range of the "
                 "last half of the steps; the inset, all of them)", fontsize=11)
    save(fig, path)


def plot_sweep(results, path):
    """Beyond the paper: within-label variance of x1 against sub-labels per arm k (log-log)."""
    sweep = results["sweep"]
    ks = [p["k"] for p in sweep]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    ax.plot(ks, [p["data_within_label_variance"] for p in sweep], "k-o", lw=2.5,
            label="data: tr Cov(x1 | label), what the labels leave unexplained")
    for model, colour in zip(sweep[0]["models"], ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")):
        ax.plot(ks, [p["models"][model]["generated_within_label_variance"] for p in sweep], "-s", color=colour,
                label=f"{F.NAMES[model]}: cross-generated x1 from q(g|x2)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ks, [f"{k}\n({p['points_per_label']:.0f})" for k, p in zip(ks, sweep)])
    finish_axes(ax, "Beyond the paper: what the MMVAE disregards shrinks with surjectivity",
                "sub-labels per arm k  (points per label)   <- more surjective | closer to one-to-one ->",
                "mean within-label variance of x1", "upper right")
    save(fig, path)


GRADIENT_COLOURS = {"iwae": "#ff7f0e", "stl": "#9467bd", "dreg": "#8c564b", "dreg-mix": "#17becf"}   # every B.GRADIENTS, in every figure (tested)
MODEL_COLOURS = {"mvae": "#1f77b4", "mmvae": "#d62728", "mopoe": "#2ca02c", "mmvaeplus": "#7f7f7f"}


def seed_means(entries, field="spread_ratio"):
    """Each entry's (one seed's) class mean of field, as a list over the entries."""
    return [np.mean([r[field] for r in e["rows"]]) for e in entries]


def study_curve(entries, part, model, gradient="iwae"):
    """(values, mean, low, high) over seeds of the class-mean spread ratio per value of a study part (95 % interval, CS.seed_interval)."""
    chosen = [e for e in entries if (e["part"], e["model"], e.get("gradient", "iwae")) == (part, model, gradient) and e["value"] is not None]
    values = list(dict.fromkeys(e["value"] for e in chosen))
    summaries = [CS.seed_interval(seed_means([e for e in chosen if e["value"] == value])) for value in values]
    return (values, *(list(column) for column in zip(*summaries))) if values else ([], [], [], [])


def draw_interval(ax, x, mean, low, high, **style):
    """A point or line with its 95 % interval over seeds as error bars (none where one seed gives no interval)."""
    low, high = np.nan_to_num(low, nan=np.asarray(mean)), np.nan_to_num(high, nan=np.asarray(mean))
    ax.errorbar(x, mean, yerr=[np.maximum(np.subtract(mean, low), 0), np.maximum(np.subtract(high, mean), 0)], capsize=3, **style)


def plot_decoder_std_panel(ax, entries):
    """The spread ratio against the fixed decoder std, the MVAE and the MMVAE, and each at its learned std (a star)."""
    for model in ("mvae", "mmvae"):
        values, mean, low, high = study_curve(entries, "decoder-std", model)
        draw_interval(ax, values, mean, low, high, fmt="-o", color=MODEL_COLOURS[model], label=f"{F.NAMES[model]}, fixed")
        learned = [e for e in entries if (e["part"], e["value"], e["model"]) == ("decoder-std", None, model)]
        sigma = np.mean([r["decoder_std"] for e in learned for r in e["rows"]])
        draw_interval(ax, [sigma], *([v] for v in CS.seed_interval(seed_means(learned))), fmt="*", ms=14, color=MODEL_COLOURS[model],
                      label=f"{F.NAMES[model]}, learned (at its mean sigma)")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="the data's own spread (1.0)")
    ax.set_xscale("log")
    ax.set_yscale("log")


def plot_k_panel(ax, entries):
    """The spread ratio against K, one colour per gradient estimator; the MMVAE solid, MoPoE dashed; the MVAE for reference."""
    for gradient in B.GRADIENTS:
        for model, style in (("mmvae", "-o"), ("mopoe", "--s")):
            values, mean, low, high = study_curve(entries, "importance-samples", model, gradient)
            if values:
                draw_interval(ax, values, mean, low, high, fmt=style, color=GRADIENT_COLOURS[gradient], ms=5,
                              label=f"{F.NAMES[model].split()[0]}, {gradient} gradient")
    reference = [e for e in entries if (e["part"], e["value"], e["model"]) == ("importance-samples", None, "mvae")]
    if reference:
        ax.axhline(CS.seed_interval(seed_means(reference))[0], color=MODEL_COLOURS["mvae"], ls="--", lw=1.2, label="MVAE (K = 1), for reference")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="the data's own spread (1.0)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")


def merge_studies(studies):
    """The studies of each data set as one (runs of other seeds, studies.py --study-seeds, drawn together): [(data, entries)]."""
    merged = {}
    for study in studies:
        merged.setdefault(study["config"]["data"], []).extend(study["study"])
    return list(merged.items())


def plot_study(studies, path):
    """Beyond the paper: the label -> x1 spread ratio against the decoder's std (left) and against K per estimator (right), a row per data set."""
    rows = merge_studies(studies)
    fig, axes = plt.subplots(len(rows), 2, figsize=(14, 5.0 * len(rows)), squeeze=False, layout="constrained")
    for (left, right), (data, entries) in zip(axes, rows):
        if any(e["part"] == "decoder-std" for e in entries):
            plot_decoder_std_panel(left, entries)
            finish_axes(left, f"{data}: decoder std fixed in x1's units", "decoder std sigma (log)", "label -> x1 spread ratio (log)", "lower right")
        else:
            left.axis("off")
        if any(e["part"] == "importance-samples" for e in entries):
            plot_k_panel(right, entries)
            finish_axes(right, f"{data}: K importance samples per stratum, per gradient estimator", "K (log 2)",
                        "label -> x1 spread ratio (log)")
            right.legend(fontsize=7, ncol=2, loc="lower right")
        else:
            right.axis("off")
    fig.suptitle("What controls the collapse: mean over seeds of the class-mean spread ratio, bars its 95 % interval over seeds", fontsize=12)
    save(fig, path)


def robustness_points(entries):
    """[(label, colour, marker, spread ratio, coherence, annotation)]: every model and setting of a study once (the learned-std
    references, repeated in every part, once per model), means over seeds of the class means."""
    groups = {}
    for e in entries:
        key = ("reference", None, e["model"], "iwae") if e["value"] is None else (e["part"], e["value"], e["model"], e.get("gradient", "iwae"))
        groups.setdefault(key, {}).setdefault(e["seed"], e)                      # one entry per seed
    points = []
    for (part, value, model, gradient), by_seed in groups.items():
        chosen, name = list(by_seed.values()), F.NAMES[model].split()[0]
        style = {"reference": (f"{name} (learned sigma, K = 1)", MODEL_COLOURS[model], "*", None),
                 "importance-samples": (f"{name}, {gradient} gradient, K = 1..30", GRADIENT_COLOURS[gradient], "o" if model == "mmvae" else "s",
                                        f"K={value}" if value == 30 else None),
                 "decoder-std": (f"{name}, fixed sigma", MODEL_COLOURS[model], "v", f"s={value}" if model == "mmvae" else None),
                 "auxiliary": (f"MMVAE+, {value}", MODEL_COLOURS["mmvaeplus"], {"free": "D", "softplus": "d", "softmax": "h"}.get(value), None)}[part]
        points.append(style[:3] + (np.mean(seed_means(chosen)), np.mean(seed_means(chosen, "coherence")), style[3]))
    return points


def plot_robustness(studies, path):
    """Beyond the paper, the paper's closing question: label -> x1 diversity (spread ratio) against coherence, every setting."""
    rows = merge_studies(studies)
    fig, axes = plt.subplots(1, len(rows), figsize=(7.5 * len(rows), 6.2), squeeze=False, layout="constrained")
    for ax, (data, entries) in zip(axes[0], rows):
        coherence = next(np.mean(s["data_coherence"]) for s in studies if s["config"]["data"] == data)
        labelled = set()
        for label, colour, marker, spread, coherent, annotation in robustness_points(entries):
            ax.scatter(spread, coherent, color=colour, marker=marker, s=110 if marker == "*" else 40, edgecolors="k", linewidths=0.4,
                       zorder=3, label=None if label in labelled else label)
            labelled.add(label)
            if annotation:
                ax.annotate(annotation, (spread, coherent), fontsize=6, xytext=(4, 2), textcoords="offset points")
        ax.scatter([1.0], [coherence], c="k", marker="P", s=140, zorder=4, label="the data itself (spread 1, leave-one-out coherence)")
        ax.set_xscale("log")
        finish_axes(ax, f"{data}: diversity against coherence (means over seeds)", "label -> x1 spread ratio (log; 1 = the data's)",
                    "label coherence (samples nearest their own class)")
        ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.suptitle("Does a remedy cost coherence? Each model and setting of the study as one point", fontsize=12)
    save(fig, path)


def plot_bound_study(runs, path):
    """Theorem 1 beyond K = 1, per class (rows): against K at the study's middle sigma (left), the constant mean (Theorem 1's
    optimum), the directly maximised K-sample cross term, trained models' (if a run holds them, at their fixed sigma) and the
    certified l*(sigma); against sigma at K = 8 (right), the room above Theorem 1's optimum, l* - constant, beside L^8."""
    rows = [r for run in runs for r in run.get("bound_study") or []]
    terms = [t for run in runs for t in run.get("k_sample_cross_terms") or []]
    classes = sorted({r["class"] for r in rows})
    fig, axes = plt.subplots(len(classes), 2, figsize=(10, 3.2 * len(classes)), squeeze=False)
    for (left, right), c in zip(axes, classes):
        mine = [r for r in rows if r["class"] == c]
        middle = sorted({r["sigma"] for r in mine})[len({r["sigma"] for r in mine}) // 2]
        by_k = sorted((r for r in mine if r["sigma"] == middle), key=lambda r: r["k"])
        ks = [r["k"] for r in by_k]
        left.axhline(by_k[0]["constant"], color="black", linewidth=1, label="constant mean (Theorem 1's optimum)")
        left.errorbar(ks, [r["value"] for r in by_k], yerr=[4 * r["error"] for r in by_k], color="tab:blue", marker="o", label="L^K maximised")
        left.fill_between(ks, [r["l_star_lower"] for r in by_k], [r["l_star_upper"] for r in by_k], color="tab:red", alpha=0.4)
        left.plot(ks, [r["l_star_upper"] for r in by_k], color="tab:red", label="l*(sigma), certified")
        for t in (t for t in terms if t["class"] == c and abs(t["sigma"] - middle) < 1e-9):
            left.plot(t["k"], t["values"], marker="s", markersize=3, linestyle="dashed", label=f"{t['model']} trained at K = {t['k'][-1]}")
        left.set(xscale="log", xlabel="K", ylabel="per point (nats)", title=f"class {c}, sigma = {middle:g}")
        left.set_xscale("log", base=2)
        by_sigma = sorted((r for r in mine if r["k"] == 8), key=lambda r: r["sigma"])
        sigmas = [r["sigma"] for r in by_sigma]
        right.plot(sigmas, [r["l_star_upper"] - r["constant"] for r in by_sigma], color="tab:red", marker="o", label="l* - constant mean")
        right.plot(sigmas, [r["value"] - r["constant"] for r in by_sigma], color="tab:blue", marker="o", label="L^8 maximised - constant mean")
        right.set(xscale="log", yscale="log", xlabel="decoder sigma (fixed)", ylabel="nats per point above Theorem 1's optimum", title=f"class {c}, K = 8")
        right.set_xticks(sigmas, [f"{s:g}" for s in sigmas], minor=False)
        right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        left.legend(fontsize=6)
        right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_gradient_study(rows, path):
    """Each estimator's signal-to-noise ratio (left) and chi^2/df of its paired difference from IWAE (right: about 1 if unbiased)
    against K, at each training stage (line style; the last, dash-dotted: trained at each point's K with dreg-mix)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    stages = sorted({(row["stage"], row.get("trained_k", 1) > 1) for row in rows})    # (steps, trained at each row's K)
    styles = ("dotted", "dashed", "solid", "dashdot")
    for gradient, colour in GRADIENT_COLOURS.items():
        for (stage, at_k), style in zip(stages, styles[-len(stages):] if len(stages) < 4 else styles):
            chosen = sorted((row for row in rows if row["gradient"] == gradient and (row["stage"], row.get("trained_k", 1) > 1) == (stage, at_k)),
                            key=lambda row: row["k"])
            ks = [row["k"] for row in chosen]
            axes[0].plot(ks, [row["snr"] for row in chosen], color=colour, linestyle=style, marker="o", markersize=3,
                         label=f"{gradient}, {stage} steps" + (" at K (dreg-mix)" if at_k else ""))
            if gradient != "iwae":
                axes[1].plot(ks, [max(row["chi2_per_df"], 1e-2) for row in chosen], color=colour, linestyle=style, marker="o", markersize=3)
    axes[1].axhline(1.0, color="grey", linewidth=0.8)
    for ax, label in zip(axes, ("encoder gradient SNR (median |mean| / std)", "chi^2/df of (estimator - iwae), paired")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("K (importance samples per stratum)")
        ax.set_ylabel(label)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def plot_views(runs, path):
    """Beyond the paper: for the same digits, rows data, mirrored, MMVAE x2 -> x1, MVAE x2 -> x1; one panel per run."""
    x1, _ = D.load_digits()
    fig, axes = plt.subplots(len(runs), 1, figsize=(2.0 + 0.62 * len(runs[0]["shown"]), 3.3 * len(runs)), squeeze=False, layout="constrained")
    for ax, run in zip(axes[:, 0], runs):
        digits = x1[run["shown"]]
        rows = [("data x1", digits), ("mirrored", D.mirror(digits))]
        for model in ("mmvae", "mvae"):
            if model in run["params"]:
                generated = D.views_generate_x1(F.params_from_json(run["params"][model]), D.pooled_view(digits), np.random.default_rng([run["config"]["seed"], 15]), model)
                kept = next(r["mirror_asymmetry"] for r in run["views"] if r["model"] == model)
                rows.append((f"{F.NAMES[model].split()[0]} x2 -> x1\n(asymmetry {kept:.2f})", generated))
        ax.imshow(digit_mosaic(np.clip(np.stack([images for _, images in rows]), 0, 1)), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(np.arange(len(rows)) * 9 + 3.5, [name for name, _ in rows], fontsize=8)
        ax.set_xticks([])
        ax.set_title(f"--augment {run['config']['augment']}" + (": each x2 shared by a digit and its mirror" if run["config"]["augment"] == "flip"
                                                                 else ": one-to-one pairs (the control)"), fontsize=10)
    fig.suptitle("Paired views x2 = the 4 x 4 pooled digit: x1 generated from x2 (decoder means); asymmetry relative to the data's", fontsize=11)
    save(fig, path)


def digit_mosaic(images, gap=1):
    """images (rows, columns, 64) of 8 x 8 digits -> one 2-D array with a gap of blank pixels between them."""
    rows, columns = images.shape[:2]
    mosaic = np.full((rows * (8 + gap) - gap, columns * (8 + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(columns):
            mosaic[r * (8 + gap):r * (8 + gap) + 8, c * (8 + gap):c * (8 + gap) + 8] = images[r, c].reshape(8, 8)
    return mosaic


def plot_digit_samples(results, seed, path, per_label=6):
    """Beyond the paper: label -> image samples of each model beside real digits and the class means, three panels a row."""
    x1, labels = np.array(results["data"]["x1"]), np.array(results["data"]["labels"])
    rng = np.random.default_rng([seed, 7])
    real = np.stack([x1[rng.choice(np.flatnonzero(labels == c), per_label, replace=False)] for c in range(10)])
    means = np.stack([x1[labels == c].mean(axis=0) for c in range(10)])[:, None]          # (10, 1, 64)
    blank = np.full((10, 1, 64), np.nan)
    panels = [("class mean | real digits", np.concatenate([means, blank, real], axis=1))]
    x2 = S.one_hot(np.repeat(np.arange(10), per_label), 10)
    for model, tree in results["params"].items():
        generated = B.generate_from_labels(F.params_from_json(tree), x2, rng, model, likelihood=likelihood_of(results))
        panels.append((f"{F.NAMES[model]}: x1 from q(g|x2)", generated.reshape(10, per_label, 64)))
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.3 * columns, 5.6 * rows), squeeze=False, layout="constrained")
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for index, (ax, (title, images)) in enumerate(zip(axes.ravel(), panels)):
        ax.imshow(digit_mosaic(np.clip(images, 0, 1)), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=12)
        ax.set_xticks([])
        ax.set_yticks(np.arange(10) * 9 + 3.5, [str(c) for c in range(10)] if index % columns == 0 else [], fontsize=10)
        if index % columns == 0:
            ax.set_ylabel("label x2", fontsize=11)
    fig.suptitle("Digits: decoder means of x1 generated from the label alone (one row per label)", fontsize=13)
    save(fig, path)


def likelihood_of(results):
    """The x1 decoder's family a run trained with (runs before --likelihood: the paper's Gaussian)."""
    return results["config"].get("likelihood", "gaussian")


def save(fig, path):
    fig.savefig(path, dpi=100)
    plt.close(fig)


def output_folder(text):
    """An argparse type: a folder, existing or to be made in an existing parent, where files can be created (tried)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    path = os.path.abspath(text)
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a file; --out wants a folder")
    existing = path if os.path.isdir(path) else os.path.dirname(path)
    if not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(f"neither {text} nor its parent folder exists")
    problem = R.writable_folder(existing)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="plots.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)                       # the docstring: what it draws, from what
    add = parser.add_argument
    add("--seed", type=R.int_at_least(0, S.MAX_SEED), default=None, help="seed for training and for the plotted samples (default: the JSON's, else 0)")
    add("--out", type=output_folder, default="figures", help="folder for the PNGs (default figures)")
    add("--from-json", metavar="PATH", type=R.input_file, help="draw from theorem_check.py or studies.py --json output instead of training")
    add("--quick", action="store_true", help="smaller, faster runs (for tests; not with --from-json)")
    add("--data", choices=("pinwheel", "digits"), default=None,
        help="which check to train and draw (default pinwheel; not with --from-json: its data decide)")
    add("--models", nargs="+", choices=B.MODELS, default=None,
        help="models to train (default the paper's: mvae mmvae; beyond it mopoe, mmvaeplus; not with --from-json)")
    add("--likelihood", choices=LK.FAMILIES, default=None, help="the x1 decoder's family to train with (theorem_check.py's "
        "--likelihood; default gaussian; not with --from-json); another than the gaussian draws into files named after it")
    add("--sweep", action="store_true", help="also draw surjectivity_sweep.png (runs studies.py's sweep unless the JSON has it)")
    add("--study-json", nargs="+", metavar="PATH", type=R.input_file,
        help="draw only collapse_strength.png and robustness.png, from studies.py --study --json files (a row per data set; "
             "runs of other seeds of one data set are drawn together)")
    add("--bound-json", nargs="+", metavar="PATH", type=R.input_file,
        help="draw only theorem1_beyond_k.png, from studies.py --bound-study --json output (and, beside it, an --importance-samples "
             "run at a fixed --decoder-std, whose trained K-sample cross terms are drawn too)")
    add("--gradient-json", metavar="PATH", type=R.input_file,
        help="draw only gradient_estimators.png, from studies.py --gradient-study --json output")
    add("--views-json", nargs="+", metavar="PATH", type=R.input_file,
        help="draw only augmentation.png, from studies.py --data digit-views --json files (one panel each)")
    args = R.refuse_repeats(parser, argv)
    alone = [flag for flag, value in (("--study-json", args.study_json), ("--views-json", args.views_json),
                                      ("--gradient-json", args.gradient_json), ("--bound-json", args.bound_json)) if value]
    if alone and (args.from_json or args.sweep or args.seed is not None or len(alone) > 1):
        parser.error(f"{alone[0]} draws its figure only: not with --from-json, --sweep, --seed or another --*-json")
    given = [flag for flag, value in (("--quick", args.quick), ("--data", args.data), ("--models", args.models), ("--likelihood", args.likelihood)) if value]
    if (args.from_json or alone) and given:
        parser.error(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to training only, not to --from-json or a "
                     "--*-json file (the file decides)")
    args.data, args.models, args.likelihood = args.data or "pinwheel", args.models or list(S.PAPER_MODELS), args.likelihood or "gaussian"
    return args


def load_results(args):
    """(results, seed): from --from-json (its seed unless --seed) or from a fresh run of the check (with --sweep, of studies.py's)."""
    if args.from_json:
        results = F.read_results(args.from_json, args.sweep)
        return results, results["config"].get("seed", 0) if args.seed is None else args.seed
    seed = 0 if args.seed is None else args.seed
    options = dict(seed=seed, quiet=True, data=args.data, models=args.models, quick=args.quick, save_params=True, likelihood=args.likelihood)
    if args.sweep:
        return ST.run_check_with_experiments(*ST.from_keywords(sweep=True, **options, **({"sweep_ks": [1, 4]} if args.quick else {})),
                                             print_fn=None), seed
    return T.check(*C.from_keywords(C.add_check_arguments, C.flags_not_applying, **options), print_fn=None)[0], seed


def figures_to_draw(args, results, seed):
    """[(file name, draw(path))] for the check's (or studies.py's) results."""
    if results["config"].get("data", "pinwheel") == "digits":
        figures = [("digits_samples.png", lambda path: plot_digit_samples(results, seed, path)),
                   ("theorem1_digits.png", lambda path: plot_theorem(results, path)),
                   ("training_digits.png", lambda path: plot_training(results, path))]
    else:                                                                   # the pinwheel, and your data
        figures = [("fig2_samples.png", lambda path: plot_fig2(results, seed, path))]
        figures += [("fig3_latents.png", lambda path: plot_fig3(results, path))] if results["config"].get("latent_dim", 2) == 2 else []
        figures += [("theorem1.png", lambda path: plot_theorem(results, path)), ("training.png", lambda path: plot_training(results, path))]
    if results.get("sweep"):
        figures.append(("surjectivity_sweep.png", lambda path: plot_sweep(results, path)))
    suffix = "" if likelihood_of(results) == "gaussian" else f"_{likelihood_of(results)}"     # another family: files of its own
    return [(name.replace(".png", f"{suffix}.png"), draw) for name, draw in figures]


def prepare(args):
    """(what the run draws, in words; [(file name, draw(path))]): the input files read and checked, or the models trained."""
    if args.study_json:
        studies = [F.read_study(path) for path in args.study_json]
        data = " and ".join(f"{data} ({len({e['seed'] for e in entries})} seeds)" for data, entries in merge_studies(studies))
        return (f"the study of {data} from {' '.join(args.study_json)}", [("collapse_strength.png", lambda path: plot_study(studies, path)),
                                                                          ("robustness.png", lambda path: plot_robustness(studies, path))])
    if args.bound_json:
        runs = [F.read_bound_study(path) for path in args.bound_json]
        if not any(run.get("bound_study") for run in runs):
            F.usage_error("--bound-json needs a studies.py --bound-study file among its files")
        return f"Theorem 1 beyond K = 1 from {' '.join(args.bound_json)}", [("theorem1_beyond_k.png", lambda path: plot_bound_study(runs, path))]
    if args.gradient_json:
        rows = F.read_gradient_study(args.gradient_json)
        return f"the gradient estimators from {args.gradient_json}", [("gradient_estimators.png", lambda path: plot_gradient_study(rows, path))]
    if args.views_json:
        runs = [F.read_views(path) for path in args.views_json]
        augment = " and ".join(run["config"]["augment"] for run in runs)
        return f"the digit views (--augment {augment}) from {' '.join(args.views_json)}", [("augmentation.png", lambda path: plot_views(runs, path))]
    if not args.from_json:
        print(R.wrap(f"plots configuration: training {' '.join(args.models)} on {args.data} (seed {0 if args.seed is None else args.seed}, "
                     f"x1 likelihood {args.likelihood}, "
                     f"quick={args.quick}, sweep={args.sweep}) through {'studies.py' if args.sweep else 'theorem_check.py'}; out={args.out}"), flush=True)
    results, seed = load_results(args)
    what = (f"{results['config'].get('data', 'pinwheel')} results of {' '.join(results['params'])} from {args.from_json} "
            f"(samples drawn with seed {seed}{', with the sweep' if results.get('sweep') else ''})") if args.from_json else None
    return what, figures_to_draw(args, results, seed)


def main(argv=None):
    R.keep_freed_memory()
    args = parse_args(argv)
    return R.interruptible(lambda: draw_all(args, time.perf_counter()))


def draw_all(args, start):
    """Read or train, then draw every figure into a hidden file, and only then move them all into place."""
    what, figures = prepare(args)
    if what:
        print(R.wrap(f"plots configuration: {what}; out={args.out}"), flush=True)
    os.makedirs(args.out, exist_ok=True)
    drawn = []
    try:
        for name, draw in figures:
            draw(os.path.join(args.out, f".{name}.partial.png"))
            drawn.append(name)
    finally:                                    # a failure or Ctrl-C: no figure is replaced, no hidden file is left
        if len(drawn) < len(figures):
            for name in drawn + [name for name, _ in figures[len(drawn):len(drawn) + 1]]:
                if os.path.exists(os.path.join(args.out, f".{name}.partial.png")):
                    os.remove(os.path.join(args.out, f".{name}.partial.png"))
    for name in drawn:
        os.replace(os.path.join(args.out, f".{name}.partial.png"), os.path.join(args.out, name))
        print(f"wrote {os.path.join(args.out, name)}")
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
