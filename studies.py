"""studies.py: the experiments beyond the paper, each built on theorem_check.py's training and row evaluation.

  --sweep             the degree of surjectivity: each pinwheel arm split into k sub-labels (docs/sweep.md)
  --importance-samples K (> 1)  what becomes of Theorem 1 with K importance samples: the K-sample cross term
  --models ... mmvaeplus        where MMVAE+'s private latent carries x1's variation (docs/mmvaeplus.md)
  --study PARTS       what controls the collapse's strength, over seeds (docs/collapse_strength.md)
  --data digit-views  the paper's augmentation warning, tested on digits paired with a pooled view (docs/augmentation.md)

Without --study or --data digit-views, the run is theorem_check.py's check (its table, checks and findings) with the
experiments' tables, checks and findings added; its --json is theorem_check's with their results added, and
plots.py --from-json reads it as it reads theorem_check's. Exit status 0 only if no check FAILs.
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # before NumPy loads: small matrices, no BLAS threads

import argparse  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy.random as npr  # noqa: E402

import beyond_the_paper as B  # noqa: E402
import data_sets as D  # noqa: E402
import k_samples as K  # noqa: E402
import log_likelihood as L  # noqa: E402
import mopoe_mmvaeplus as MM  # noqa: E402
import npmle as NP  # noqa: E402
import runs as R  # noqa: E402
import surjvae_np as S  # noqa: E402
import theorem_check as T  # noqa: E402
from theorem_check import largest, smallest  # noqa: E402


# ================================================================ the degree of surjectivity (--sweep)

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


def run_sweep(args, config, x1, labels, radial, print_fn):
    """Train every model for every k of --sweep-ks (in parallel) and evaluate each point."""
    refined = [D.refine_labels(radial, labels, k) for k in args.sweep_ks]
    tasks = [(f"trained {model} with {k} sub-label{'s' * (k > 1)} per arm", T.train_model, (model, x1, x2, args.seed, config))
             for k, (_, x2) in zip(args.sweep_ks, refined) for model in args.models]
    trained = iter(R.run_tasks(tasks, args.jobs, print_fn, "the sweep"))
    return [sweep_point(k, {model: next(trained)[0] for model in args.models}, x1, fine, np.shape(x2)[1], config["nodes"], args.seed)
            for k, (fine, x2) in zip(args.sweep_ks, refined)]


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


# ================================================================ Theorem 1 at K > 1 importance samples

def k_sample_counts(num_importance):
    """K = 1, 2, 4, ... up to num_importance, and num_importance itself."""
    return sorted({2 ** i for i in range(int(np.log2(num_importance)) + 1)} | {num_importance})


def k_sample_terms(params, model, x1_class, c, num_classes, num_importance, rng, replicates=200):
    """The K-sample cross term (K.k_sample_cross_term) of a trained decoder and of the constant class-mean decoder
    theta_hat, per point, at K = 1, 2, 4, ..., num_importance (the K the model was trained with)."""
    mean, log_var = T.class_label_posterior(params, model, num_classes, c)
    theta_hat, counts = T.constant_mean_decoder(params, x1_class), k_sample_counts(num_importance)
    trained = [K.k_sample_cross_term(params, x1_class, mean, log_var, rng, k, replicates) for k in counts]
    constant = [K.k_sample_cross_term(theta_hat, x1_class, mean, log_var, rng, k, replicates)[0] for k in counts]
    sigma = float(np.exp(0.5 * params["decoder_x1_log_var"]))
    star = NP.npmle_bounds(x1_class, sigma)                                       # l*(sigma): the bound at every K
    x2_class = S.one_hot(np.full(len(x1_class), c), num_classes)
    components = (MM.mopoe_components if model == "mopoe" else S.unimodal_experts)(params, x1_class, x2_class)
    stratum = [K.label_stratum_term(params, x1_class, x2_class, *components, rng, k, replicates) for k in counts]
    return {"class": c, "k": counts, "values": [v for v, _ in trained], "errors": [e for _, e in trained],
            "constant_decoder": constant, "bound": T.constant_mean_bound(x1_class) / len(x1_class), "sigma": sigma,
            "constant_at_sigma": NP.mixture_log_likelihood(x1_class, np.mean(x1_class, axis=0)[None, :], np.ones(1), sigma),
            "l_star_lower": star["lower"], "l_star_upper": star["upper"], "certified": star["certified"],
            "npmle_spread_ratio": star["spread_ratio"], "stratum_values": [v for v, _ in stratum], "stratum_errors": [e for _, e in stratum],
            "num_components": int(np.shape(components[0])[0])}


def k_sample_checks(terms):
    """What holds at every K: the constant-mean decoder scores exactly the bound, and the K-sample cross term does
    not decrease with K (Burda et al. 2016), within 4 standard errors of the difference."""
    constant = largest([abs(v - t["bound"]) for t in terms for v in t["constant_decoder"]])
    steps = [t["values"][i + 1] - t["values"][i] + 4.0 * np.hypot(t["errors"][i], t["errors"][i + 1])
             for t in terms for i in range(len(t["k"]) - 1)]
    return [("consistency (fails only on a code bug): the constant class-mean decoder's K-sample cross term is the bound at every K",
             constant < 1e-9, constant, "largest |value - bound| per point; equal by algebra"),
            ("K-sample cross term does not decrease with K, every trained decoder and class (within 4 SE)", smallest(steps) >= 0,
             smallest(steps), "smallest increase from K to the next K, plus 4 SE")]


def npmle_checks(terms):
    """The proposition (npmle): at every K the K-sample cross term is at most l*(sigma) at the decoder's sigma, and so is the
    constant mean's (1/N) sum_n log phi_sigma(x_n - mean). FAIL if an estimate's lower 4-SE limit exceeds the certified upper
    bound, or the constant mean's value does; the certificate is a proof on at most 2 dimensions, a heuristic beyond."""
    margin = smallest([t["l_star_upper"] - (v - 4.0 * e) for t in terms for v, e in zip(t["values"], t["errors"])])
    constant = smallest([t["l_star_upper"] - t["constant_at_sigma"] for t in terms])
    how = "a proof" if all(t["certified"] == "grid" for t in terms) else "mean-shift: a heuristic"
    strata = [t["l_star_upper"] + np.log(t["num_components"]) - (v - 4.0 * e) for t in terms if "stratum_values" in t
              for v, e in zip(t["stratum_values"], t["stratum_errors"])]
    stratum = ([("the objective's label stratum <= l*(sigma) + log M, every decoder, class and K (within 4 SE)", smallest(strata) >= 0,
                 smallest(strata), "smallest l*(sigma) upper bound + log M - (stratum - 4 SE) per point")] if strata else [])
    return stratum + [(f"K-sample cross term <= l*(sigma) (the NPMLE, certificate {how}), every decoder, class and K (within 4 SE)",
             margin >= 0, margin, "smallest l*(sigma) upper bound - (value - 4 SE) per point"),
            ("the constant class mean at the decoder's sigma <= l*(sigma), every decoder and class", constant >= 0, constant,
             "smallest l*(sigma) upper bound - the constant mean's value per point")]


def k_sample_findings(terms):
    """Whether the trained decoders beat the constant class mean at the K they were trained with."""
    excess = [t["values"][-1] - t["bound"] for t in terms]
    beyond = sum(e - 4.0 * t["errors"][-1] > 0 for e, t in zip(excess, terms))
    return [(f"at K = {terms[0]['k'][-1]}, the trained decoder's K-sample cross term exceeds the bound (in {beyond} of "
             f"{len(terms)} model-classes, beyond 4 SE)", beyond > 0, largest(excess), "largest K-sample cross term - bound per point")]


def format_k_sample(terms):
    header = f"{'model':6s} {'class':>5s} {'bound':>8s} " + " ".join(f"{'K=' + str(k):>16s}" for k in terms[0]["k"])
    lines = ["K-sample cross term (1/N) sum_n E log (1/K) sum_k f_1(x1^(n)|tau_1(g_k)), g_k ~ r_M, per point, +- SE "
             "(200 replicates); the constant class-mean decoder scores the bound at every K. A proxy: the K-sample objective's "
             "stratum M takes its log-mean-exp over f_1 p(x2|g) p(g) / q_mix(g), not over f_1 alone", header, "-" * len(header)]
    for t in terms:
        lines.append(f"{t['model']:6s} {t['class']:5d} {t['bound']:8.4f} "
                     + " ".join(f"{v:8.4f} +- {e:.4f}" for v, e in zip(t["values"], t["errors"])))
    lines += ["", "Above every K: l*(sigma), the NPMLE at the decoder's sigma (npmle; lower = EM's mixture, upper = its certificate)",
              f"{'model':6s} {'class':>5s} {'sigma':>7s} {'constant':>9s} {'l* lower':>9s} {'l* upper':>9s} {'NPMLE spread':>12s}"]
    lines += [f"{t['model']:6s} {t['class']:5d} {t['sigma']:7.4f} {t['constant_at_sigma']:9.4f} {t['l_star_lower']:9.4f} "
              f"{t['l_star_upper']:9.4f} {t['npmle_spread_ratio']:12.3f}" for t in terms]
    return "\n".join(lines)


# ================================================================ what MMVAE+'s private latent carries

def private_latent_class(params, x1_class, x2_class, mean, std, rng):
    """One class of private_latent_diagnostics."""
    shared = MM.shared_dim(params)
    g, w = mean[:, :shared], mean[:, shared:]
    only_g = S.decode_mean_x1(params, np.concatenate([g, np.zeros_like(w)], axis=1))
    only_w = S.decode_mean_x1(params, np.concatenate([np.zeros_like(g) + g.mean(axis=0), w], axis=1))
    return {"g_means_variance": S.total_variance(g), "w_means_variance": S.total_variance(w),
            "g_posterior_std": float(np.mean(std[:, :shared])), "w_posterior_std": float(np.mean(std[:, shared:])),
            "reconstruction_spread_g_only": S.spread_ratio(only_g, x1_class), "reconstruction_spread_w_only": S.spread_ratio(only_w, x1_class),
            **{f"spread_w_{source}": S.spread_ratio(MM.mmvaeplus_generate_from_labels(params, x2_class, rng, source), x1_class)
               for source in ("prior", "auxiliary", "zero")}}


def private_latent_diagnostics(params, x1, labels, num_classes, rng):
    """MMVAE+ per class: where x1's within-class variation lives, and what label -> x1 generation keeps.

    From q(g, w_1|x1): the within-class variance of the posterior means of g and of w_1 and their mean
    posterior stds; reconstructions (decoder means at the posterior means) with w_1 = 0 and with g at
    its class average, as spread ratios (what g alone and w_1 alone carry); the label -> x1 spread
    ratio with w_1 from p(w_1), from r_1 and fixed at 0. r_1's learned stds are reported once.
    """
    mean, log_var = B.x1_latent(params, x1, "mmvaeplus")                          # (N, D + P)
    classes = [dict(private_latent_class(params, x1[labels == c], S.one_hot(np.full(np.sum(labels == c), c), num_classes),
                                         mean[labels == c], np.exp(0.5 * log_var[labels == c]), rng), **{"class": c})
               for c in range(num_classes)]
    auxiliary_std = np.exp(0.5 * MM.auxiliary_log_vars(params))                    # (M, P)
    return {"auxiliary_std_x1": auxiliary_std[0].tolist(), "auxiliary_std_x2": auxiliary_std[1].tolist(),
            "private_prior_std": float(np.exp(0.5 * MM.private_prior_log_var(params))), "classes": classes}


def format_private_diagnostics(diagnostics):
    header = (f"{'class':>5s} {'var E[g|x1]':>11s} {'var E[w|x1]':>11s} {'std g':>6s} {'std w':>6s}"
              f" {'recon g':>7s} {'recon w':>7s} {'w~p(w)':>7s} {'w~r_1':>7s} {'w=0':>6s}")
    lines = [f"MMVAE+ (beyond the paper): where x1's within-class variation lives. r_1 std (x1's private prior): "
             f"{np.round(diagnostics['auxiliary_std_x1'], 3).tolist()}; var = within-class variance of posterior means; "
             "std = mean posterior std; recon g / recon w = spread ratio of reconstructions from g alone (w = 0) / "
             "w alone (g at its class mean); last three = label -> x1 spread ratio with w_1 from p(w_1), r_1, or 0",
             header, "-" * len(header)]
    for d in diagnostics["classes"]:
        lines.append(f"{d['class']:5d} {d['g_means_variance']:11.4f} {d['w_means_variance']:11.4f} {d['g_posterior_std']:6.3f}"
                     f" {d['w_posterior_std']:6.3f} {d['reconstruction_spread_g_only']:7.3f} {d['reconstruction_spread_w_only']:7.3f}"
                     f" {d['spread_w_prior']:7.3f} {d['spread_w_auxiliary']:7.3f} {d['spread_w_zero']:6.3f}")
    return "\n".join(lines)


# ================================================================ what controls the collapse's strength (--study)

# The settings the study varies, one at a time: the x1 decoder's std fixed in x1's units (None: learned), from about
# a class's spread (0.26 on the pinwheel, 0.16-0.24 on digits) down to a tenth of the smallest; K importance samples
# per stratum under each gradient estimator (30: Shi et al.'s K for MNIST-SVHN); MMVAE+'s auxiliary-prior parameterisation.
STUDY = {"pinwheel": {"decoder-std": [None, 0.25, 0.15, 0.1, 0.05, 0.025], "seeds": [0, 1, 2, 3, 4]},
         "digits": {"decoder-std": [None, 0.2, 0.1, 0.05, 0.02], "seeds": [0, 1, 2]}}
STUDY_KS = [1, 2, 4, 8, 16, 30]
STUDY_PARTS = {"decoder-std": ("decoder_std", ("mvae", "mmvae")), "importance-samples": ("importance_samples", ("mmvae", "mopoe")),
               "auxiliary": ("auxiliary", ("mmvaeplus",))}
STUDY_CONDITIONAL_SAMPLES = 1000     # draws per point for log p(x1|x2) beyond 3 latent dimensions (the check's: 2000)


def study_settings(parts, data, gradients=B.GRADIENTS):
    """[(part, value, model, gradient)] of the study: every value of each part for its models (K under every gradient
    estimator), and the learned-std MVAE and MMVAE at K = 1, the reference of every part."""
    settings = []
    for part in parts:
        option, models = STUDY_PARTS[part]
        values = {"decoder-std": STUDY[data]["decoder-std"], "importance-samples": STUDY_KS, "auxiliary": list(B.AUXILIARY)}[part]
        for gradient in (gradients if part == "importance-samples" else ("iwae",)):
            settings += [(part, value, model, gradient) for value in values for model in models]
        settings += [(part, None, reference, "iwae") for reference in ("mvae", "mmvae") if reference not in models]   # reference rows
    return settings


def study_key(part, value, model, gradient):
    """The training a study setting needs: (model, decoder std, K, auxiliary, gradient); equal keys train once. At K = 1
    "dreg" is "stl" exactly (every weight w~ is 1), so it trains once as "stl"."""
    option = STUDY_PARTS[part][0] if value is not None else None
    importance_samples = value if option == "importance_samples" else 1
    return (model, value if option == "decoder_std" else None, importance_samples,
            (value if option == "auxiliary" else "free") if model == "mmvaeplus" else None,
            "stl" if gradient == "dreg" and importance_samples == 1 else gradient)


def describe_key(key):
    """A study training in words: "mmvae, K = 8, dreg", "mvae, decoder std 0.1", "mmvaeplus, auxiliary softmax"."""
    model, decoder_std, importance_samples, auxiliary, gradient = key
    setting = ([f"decoder std {decoder_std}"] * (decoder_std is not None) + [f"K = {importance_samples}"] * (importance_samples > 1)
               + [f"auxiliary {auxiliary}"] * (auxiliary is not None) + [f"{gradient} gradient"] * (gradient != "iwae"))
    return ", ".join([model] + (setting or ["the reference setting"]))


def study_task(key, x1, labels, num_classes, seed, config, held_out=None):
    """Train one study setting and evaluate its trained rows, on held_out (x1, labels, num_classes) too if given (run in a
    worker process)."""
    model, decoder_std, importance_samples, auxiliary, gradient = key
    config = dict(config, decoder_std=decoder_std, importance_samples=importance_samples, auxiliary=auxiliary or "free",
                  gradient=gradient, conditional_samples=STUDY_CONDITIONAL_SAMPLES)
    params, _ = T.train_model(model, x1, S.one_hot(labels, num_classes), seed, config)
    rows = [T.evaluate_class(params, model, x1, labels, num_classes, c, config, [seed, 10, c], held_out) for c in range(num_classes)]
    if model == "mmvaeplus":
        for row in rows:
            x2_class = S.one_hot(np.full(row["num_points"], row["class"]), num_classes)
            row.update({f"spread_w_{source}": S.spread_ratio(MM.mmvaeplus_generate_from_labels(
                params, x2_class, npr.default_rng([seed, 11, row["class"]]), source), x1[labels == row["class"]]) for source in ("prior", "auxiliary", "zero")})
            row["auxiliary_std"] = np.exp(0.5 * MM.auxiliary_log_vars(params)[0]).tolist()
    return rows


def run_study(args, print_fn):
    """Every setting of --study for every seed: trained rows, the study's checks (Eq. 6 and Jensen on every row)."""
    config = T.run_config(args)
    (x1, labels, _, num_classes), held_out = T.load_data(args, config), T.held_out_data(args, config)
    settings, seeds = study_settings(args.study, args.data, args.study_gradients), args.study_seeds or STUDY[args.data]["seeds"]
    keys = list(dict.fromkeys(study_key(*setting) for setting in settings))
    jobs = sorted([(key, seed) for key in keys for seed in seeds], key=lambda job: -job[0][2])     # the largest K first
    evaluated = R.run_tasks([(f"trained and evaluated {describe_key(key)}, seed {seed}", study_task, (key, x1, labels, num_classes, seed, config, held_out))
                             for key, seed in jobs], args.jobs, print_fn, "the study")
    rows = {(key, seed): rows for (key, seed), rows in zip(jobs, evaluated)}
    entries = [{"part": part, "value": value, "model": model, "gradient": gradient, "seed": seed, "rows": rows[study_key(part, value, model, gradient), seed]}
               for part, value, model, gradient in settings for seed in seeds]
    all_rows = [row for key_rows in rows.values() for row in key_rows]
    held = {} if held_out is None else {"held_out": T.held_out_record(args, held_out)}
    return {"format": T.JSON_FORMAT, "config": dict(vars(args), **config), "study": entries, **held, "data_coherence": L.leave_one_out_coherence(x1, labels),
            "checks": T.as_dicts(study_checks(all_rows)), "findings": []}


def study_checks(rows):
    """Eq. (6) and Jensen on every trained row of the study: they hold at every setting, including K > 1 and a fixed std."""
    margin = smallest([r["bound"] - r["l1"] + r["l1_error"] for r in rows])
    return [("inequality (6): bound >= L_1 for every setting, seed and class of the study", margin >= 0, margin,
             "smallest (bound - L_1 + L_1's error) per point"),
            T.jensen_check(rows, "every setting, seed and class of the study")]


T_QUANTILE_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def seed_interval(per_seed):
    """(mean, low, high): the mean over seeds of per-seed values and its 95 % t interval, mean +- t_0.975(S - 1) SD / sqrt(S)
    (beyond 10 degrees of freedom the normal quantile 1.96 with Fisher's correction (z^3 + z) / (4 df)); NaN bounds for one seed."""
    values, count = np.asarray(per_seed, dtype=float), len(per_seed)
    if count < 2:
        return float(np.mean(values)), float("nan"), float("nan")
    quantile = T_QUANTILE_975.get(count - 1, 1.96 + (1.96 ** 3 + 1.96) / (4 * (count - 1)))
    half = quantile * np.std(values, ddof=1) / np.sqrt(count)
    return float(np.mean(values)), float(np.mean(values) - half), float(np.mean(values) + half)


def setting_summary(entries, field, held_out=False):
    """seed_interval of the class mean of field (held_out: on the held-out points), each seed one value; for log p(x1|x2)
    only seeds whose every class is reliable count. (mean, low, high, seeds left out)."""
    rows_of = (lambda e: [r["held_out"] for r in e["rows"]]) if held_out else (lambda e: e["rows"])
    per_seed = [np.mean([r[field] for r in rows_of(e)]) for e in entries
                if field != "conditional" or all(r["conditional_reliable"] for r in rows_of(e))]
    return seed_interval(per_seed) + (len(entries) - len(per_seed),) if per_seed else (float("nan"),) * 3 + (len(entries),)


def summarise(summary):
    """'mean [low, high]' of setting_summary, and '(k seeds unreliable)' when log p left seeds out."""
    mean, low, high, left_out = summary
    return f"{mean:8.3f} [{low:7.3f}, {high:7.3f}]" + (f" ({left_out} unreliable)" if left_out else "")


STUDY_FIELDS = ("spread_ratio", "spread_ratio_sampled", "gap", "conditional", "coherence")


def format_study(results):
    """One table per part: each setting and model, the mean over seeds of the class mean, with its 95 % interval."""
    lines, entries = [], results["study"]
    for part in dict.fromkeys(e["part"] for e in entries):
        header = (f"{'setting':>10s} {'model':9s} {'gradient':8s}" + "".join(f" {name:>26s}" for name in
                  ("spread ratio", "sampled spread", "gap to bound", "log p(x1|x2)", "coherence")) + f" {'sigma':>7s}")
        lines += [R.wrap(f"Study: {part} (beyond the paper); mean over seeds of each seed's class mean [95 % interval over seeds]; gap "
                         "and log p per point; log p over the seeds whose every class is reliable"), header, "-" * len(header)]
        for setting, model, gradient, chosen in setting_groups(entries, part):
            lines.append(f"{setting:>10s} {model:9s} {gradient:8s} " + " ".join(summarise(setting_summary(chosen, field)) for field in STUDY_FIELDS)
                         + f" {np.mean([r['decoder_std'] for e in chosen for r in e['rows']]):7.3f}")
        if part == "auxiliary":
            lines.append(format_auxiliary_study(entries))
        if "held_out" in results:
            lines.append(format_held_out_study(entries, part))
        lines.append("")
    return "\n".join(lines)


HELD_OUT_FIELDS = ("spread_ratio", "conditional", "coherence")


def setting_groups(entries, part):
    """(setting in words, model, gradient, its entries: one per seed) for every setting and model of part, in study order."""
    for value, model, gradient in dict.fromkeys((e["value"], e["model"], e.get("gradient", "iwae")) for e in entries if e["part"] == part):
        setting = "learned" if value is None and part == "decoder-std" else ("-" if value is None else str(value))
        yield setting, model, gradient, [e for e in entries if (e["part"], e["value"], e["model"], e.get("gradient", "iwae")) == (part, value, model, gradient)]


def format_held_out_study(entries, part):
    """The held-out points' spread ratio, log p(x1|x2) and coherence per setting and model of part, as format_study's."""
    header = f"{'setting':>10s} {'model':9s} {'gradient':8s}" + "".join(f" {name:>26s}" for name in ("held-out spread", "held-out log p", "held-out coher."))
    lines = ["On held-out points (never trained on): the same generations' spread ratio against each held-out class's spread, "
             "log p(x1|x2) per point, coherence against the held-out points", header, "-" * len(header)]
    for setting, model, gradient, chosen in setting_groups(entries, part):
        lines.append(f"{setting:>10s} {model:9s} {gradient:8s} " + " ".join(summarise(setting_summary(chosen, field, True)) for field in HELD_OUT_FIELDS))
    return "\n".join([R.wrap(lines[0])] + lines[1:])


def format_auxiliary_study(entries):
    """MMVAE+'s label -> x1 spread with w_1 from p(w_1), r_1 and 0, and r_1's learned std, per parameterisation."""
    lines = [f"{'MMVAE+':>10s} {'w_1 ~ p(w_1)':>26s} {'w_1 ~ r_1':>26s} {'w_1 = 0':>26s}  r_1 std (over seeds)"]
    for value in dict.fromkeys(e["value"] for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus"):
        stds = sorted({round(s, 3) for e in entries if e["part"] == "auxiliary" and e["value"] == value and e["model"] == "mmvaeplus"
                       for s in e["rows"][0]["auxiliary_std"]})
        chosen = [e for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus" and e["value"] == value]
        lines.append(f"{value:>10s} " + " ".join(summarise(setting_summary(chosen, f"spread_w_{source}")) for source in ("prior", "auxiliary", "zero"))
                     + f"  {stds[0]:.3f}..{stds[-1]:.3f}")
    return "\n".join(lines)


# ================================================================ the gradient estimators where training goes (--gradient-study)

GRADIENT_STAGES = (0, 200, 800)      # Adam steps (K = 1, iwae) before the gradients are measured: initial, part-way, trained
GRADIENT_KS = (1, 2, 4, 8, 16, 30)






def gradient_study_task(model, stage, x1, x2, seed, ks, draws):
    """At the parameters after `stage` training steps (0: the initial ones): gradient_measures of every estimator at every K,
    on one batch of 128 points (what a training step sees)."""
    params = (B.train(model, x1, x2, seed=seed, num_steps=stage, print_fn=None)[0] if stage else
              S.change_x1_units(B.init_model_params(model, S.init_rng(seed)), *S.x1_standardisation(x1)))
    batch = npr.default_rng([seed, 11]).choice(len(x1), 128, replace=False)
    rows = []
    for k in ks:
        gradients = {g: K.encoder_gradients(params, B.objective_of(model, k, g), x1[batch], x2[batch], draws, [seed, 10, k]) for g in B.GRADIENTS}
        rows += [dict(model=model, stage=stage, k=k, gradient=g, **K.gradient_measures(gradients[g], gradients["iwae"])) for g in B.GRADIENTS]
    return rows


def run_gradient_study(args, print_fn):
    """--gradient-study: each estimator's bias and signal-to-noise ratio at K in GRADIENT_KS, at GRADIENT_STAGES, seed args.seed."""
    config = T.run_config(args)
    x1, labels, _, num_classes = T.load_data(args, config)
    x2, ks, draws = S.one_hot(labels, num_classes), (1, 4) if args.quick else GRADIENT_KS, 40 if args.quick else 400
    stages = (0, config["steps"] // 4, config["steps"]) if args.quick else GRADIENT_STAGES
    tasks = [(f"gradients of mmvae after {stage} steps", gradient_study_task, ("mmvae", stage, x1, x2, args.seed, ks, draws)) for stage in stages]
    rows = [row for part in R.run_tasks(tasks, args.jobs, print_fn, "the gradient study") for row in part]
    return {"format": T.JSON_FORMAT, "config": dict(vars(args), **config, draws=draws), "gradient_study": rows, "checks": [],
            "findings": T.as_dicts(gradient_findings(rows))}


def gradient_findings(rows):
    """Which estimators differ from the IWAE gradient beyond their noise (chi^2/df of the paired differences above 3; about 1
    if unbiased) at K > 1, at the initial and at the trained parameters."""
    findings = []
    for gradient in ("stl", "dreg", "dreg-mix"):
        for stage in sorted({r["stage"] for r in rows}):
            chosen = [r["chi2_per_df"] for r in rows if r["gradient"] == gradient and r["stage"] == stage and r["k"] > 1]
            findings.append((f"{gradient} after {stage} steps: paired difference from iwae beyond noise (chi^2/df > 3) at some K > 1",
                             bool(max(chosen) > 3), max(chosen), "largest chi^2/df over K > 1"))
    return findings


def format_gradient_study(rows):
    """One line per (steps, K): each estimator's bias (a fraction of the IWAE gradient's norm), chi^2/df and SNR."""
    lines = ["steps   K " + "".join(f"{g:>25s}" for g in B.GRADIENTS), " " * 10 + f"{'bias  chi2/df    SNR':>25s}" * len(B.GRADIENTS)]
    for stage, k in dict.fromkeys((row["stage"], row["k"]) for row in rows):
        cells = {row["gradient"]: row for row in rows if (row["stage"], row["k"]) == (stage, k)}
        lines.append(f"{stage:5d} {k:3d} " + "".join(f"{cells[g]['bias']:9.3f} {cells[g]['chi2_per_df']:8.2f} {cells[g]['snr']:6.3f}" for g in B.GRADIENTS))
    return "\n".join(lines)


# ================================================================ Theorem 1 beyond K = 1: the K-sample cross term's optimum (--bound-study)

BOUND_KS = (1, 2, 4, 8, 30)
BOUND_SIGMAS = {"pinwheel": (0.025, 0.05, 0.1, 0.2), "digits": (0.1, 0.2, 0.3)}   # fixed decoder stds, in x1's units
BOUND_FIXED_K = 8                    # the sigma panel's K
BOUND_STEPS = {"pinwheel": 2000, "digits": 1500}   # Adam steps of direct maximisation; each also run at twice as many




def bound_study_task(x1_class, c, num_classes, k, sigma, config, seed, data):
    """One (class, K, sigma): direct maximisation at BOUND_STEPS and twice as many, beside the constant mean and l*(sigma)."""
    steps = BOUND_STEPS[data] // (4 if config.get("quick") else 1)
    runs = [K.maximise_k_sample_cross_term(x1_class, c, num_classes, k, sigma, n, config["latent_dim"], config["hidden"], seed) for n in (steps, 2 * steps)]
    star = NP.npmle_bounds(x1_class, sigma)
    return dict(runs[1], value_half_steps=runs[0]["value"], spread_half_steps=runs[0]["spread_ratio"], steps=2 * steps, k=k,
                sigma=sigma, constant=NP.mixture_log_likelihood(x1_class, np.mean(x1_class, axis=0)[None, :], np.ones(1), sigma),
                l_star_lower=star["lower"], l_star_upper=star["upper"], certified=star["certified"], npmle_spread_ratio=star["spread_ratio"],
                **{"class": c})


def run_bound_study(args, print_fn):
    """--bound-study: per class, K in BOUND_KS at the middle sigma, and sigma in BOUND_SIGMAS at K = BOUND_FIXED_K."""
    config = dict(T.run_config(args), quick=args.quick)
    x1, labels, _, num_classes = T.load_data(args, config)
    sigmas, middle = BOUND_SIGMAS[args.data], BOUND_SIGMAS[args.data][len(BOUND_SIGMAS[args.data]) // 2]
    settings = sorted({(k, middle) for k in BOUND_KS} | {(BOUND_FIXED_K, s) for s in sigmas})
    if args.quick:                                                               # the tests': K = 1, 8, 30 at one sigma, one class
        settings = [(k, middle) for k in (1, BOUND_FIXED_K, BOUND_KS[-1])]
    classes = range(1 if args.quick else num_classes)
    tasks = [(f"class {c}, K = {k}, sigma = {s}", bound_study_task, (x1[labels == c], c, num_classes, k, s, config, args.seed, args.data))
             for c in classes for k, s in sorted(settings, key=lambda setting: -setting[0])]
    rows = R.run_tasks(tasks, args.jobs, print_fn, "the bound study")
    return {"format": T.JSON_FORMAT, "config": dict(vars(args), **config), "bound_study": rows,
            "checks": T.as_dicts(bound_checks(rows)), "findings": []}


def bound_checks(rows):
    """The proposition on every direct maximisation: its value at most l*(sigma) (within 4 SE), the constant mean too; and
    Theorem 1 at K = 1: direct maximisation reaches the constant mean's value (within 0.01 per point) with a decoder that is
    constant in g (spread ratio < 0.05)."""
    ones = [r for r in rows if r["k"] == 1]
    short, spread = (largest([r["constant"] - r["value"] for r in ones]), largest([r["spread_ratio"] for r in ones])) if ones else (np.nan, np.nan)
    return npmle_checks([dict(values=[r["value"]], errors=[r["error"]], l_star_upper=r["l_star_upper"], constant_at_sigma=r["constant"],
                              certified=r["certified"]) for r in rows]) + [
        (f"K = 1: direct maximisation reaches the constant mean (within 0.01 per point), {len(ones)} runs", short < 0.01 if ones else None,
         short, "largest constant mean - final value per point" if ones else "no run at K = 1: nothing to decide"),
        (f"K = 1: direct maximisation makes the decoder constant in g (spread ratio < 0.05), {len(ones)} runs",
         spread < 0.05 if ones else None, spread, "largest spread ratio" if ones else "no run at K = 1: nothing to decide")]


def format_bound_study(rows):
    """One line per (class, K, sigma): constant mean <= maximised L^K (at half and all steps) <= l*, and the spreads."""
    header = (f"{'class':>5s} {'K':>3s} {'sigma':>6s} {'constant':>9s} {'L^K half':>9s} {'L^K':>17s} {'l* lower':>9s} {'l* upper':>9s} "
              f"{'spread half':>11s} {'spread':>7s} {'NPMLE':>6s}")
    lines = ["Direct maximisation of the K-sample cross term alone at fixed sigma (per point), against the constant mean and l*(sigma)",
             header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['class']:5d} {r['k']:3d} {r['sigma']:6.3f} {r['constant']:9.4f} {r['value_half_steps']:9.4f} {r['value']:8.4f} +- "
                     f"{r['error']:.4f} {r['l_star_lower']:9.4f} {r['l_star_upper']:9.4f} {r['spread_half_steps']:11.3f} "
                     f"{r['spread_ratio']:7.3f} {r['npmle_spread_ratio']:6.3f}")
    return "\n".join(lines)


# ================================================================ the augmentation warning (--data digit-views)

VIEWS = dict(latent_dim=8, hidden=(128,), steps=3000, peak_step_size=0.005, group_draws=64, shown=12)
VIEWS_QUICK = dict(VIEWS, hidden=(64,), steps=600, peak_step_size=0.02, group_draws=16)


def views_config(args):
    """The views' sizes: VIEWS or VIEWS_QUICK, with --steps."""
    config = VIEWS_QUICK if args.quick else VIEWS
    return dict(config, steps=args.steps or config["steps"], dtype=args.dtype)


def views_checks(groups):
    """Inequality (6) per group, every model: PASS if every checked group's margin is >= 0; SKIP if no group has a finite bound."""
    if not all(g["checked"] for g in groups):
        return [("inequality (6) for every group of rows sharing one x2", None, float("nan"),
                 "every group is a single point: its MLE variance is 0 and its bound +inf; nothing to compare")]
    margin = smallest([g["smallest_margin"] for g in groups])
    listed = sorted({i for g in groups for i in g["infinite"]})
    return [(f"inequality (6) for every group of rows sharing one x2 ({groups[0]['checked']} groups per model)", margin >= 0, margin,
             f"smallest bound - L_1 + {D.GROUP_STANDARD_ERRORS:g} SE of one group, nats" + (f"; {len(listed)} group{'s' * (len(listed) > 1)} of infinite bound "
                                                                                          f"(rows {listed[:5]}) not checked" if listed else ""))]


def views_task(model, x1, augment, seed, config):
    """Train model on the views and evaluate it (in a worker process)."""
    views_x1, views_x2 = D.digit_views(x1, augment)
    params, history = D.train_views(model, views_x1, views_x2, seed=seed, latent_dim=config["latent_dim"], hidden=config["hidden"],
                                    num_steps=config["steps"], print_fn=None, step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]),
                                    dtype=getattr(np, config["dtype"]))
    row = dict(D.views_model_row(params, model, x1, npr.default_rng([seed, 12])), model=model)
    return params, history, row, D.views_group_check(params, model, x1, augment, npr.default_rng([seed, 13]), config["group_draws"])


def run_views(args, print_fn):
    """--data digit-views: the MVAE and the MMVAE on the digits' paired views, with or without flip augmentation."""
    config = views_config(args)
    x1, _ = D.load_digits()
    results = R.run_tasks([(f"trained and evaluated {model} on the views, --augment {args.augment}", views_task,
                            (model, x1, args.augment, args.seed, config)) for model in args.models], args.jobs, print_fn, "the views")
    rows, groups = [r[2] for r in results], [r[3] for r in results]
    return {"format": T.JSON_FORMAT, "config": dict(vars(args), **config), "views": rows, "groups": groups,
            "data_mirror_asymmetry": D.mirror_asymmetry(x1), "checks": T.as_dicts(views_checks(groups)),
            "findings": T.as_dicts(views_findings(rows, args.augment)), "shown": [int(i) for i in npr.default_rng([args.seed, 14]).choice(len(x1), config["shown"], replace=False)],
            "params": {r[2]["model"]: T.tree_to_lists(r[0]) for r in results}, "histories": {r[2]["model"]: r[1].tolist() for r in results}}


def views_findings(rows, augment):
    """What the MMVAE keeps of the digits' left-right asymmetry (a finding: it does not set the exit status)."""
    kept = {r["model"]: r for r in rows}
    if "mmvae" not in kept:
        return []
    asymmetry = kept["mmvae"]["mirror_asymmetry"]
    verdict = asymmetry < 0.5 if augment == "flip" else asymmetry > 0.8
    name = ("with flip augmentation the MMVAE keeps less than half the data's left-right asymmetry" if augment == "flip" else
            "without augmentation (one-to-one pairs) the MMVAE keeps more than 0.8 of the data's left-right asymmetry")
    return [(name, verdict, asymmetry, f"asymmetry of its x2 -> x1 samples / the data's; nearest the mirror average: "
                                       f"{kept['mmvae']['nearest']['average']:.3f}")]


def format_views(results):
    header = f"{'model':6s} {'asymmetry kept':>14s} {'nearest: original':>18s} {'mirror':>7s} {'average':>8s} {'sigma':>6s}"
    lines = [f"Digit views (beyond the paper), --augment {results['config']['augment']}: x1 = the 8 x 8 digit, x2 = its 4 x 4 pooled "
             f"view; x2 -> x1 samples (decoder means) of every digit. Asymmetry = mean |x - mirror(x)|, relative to the data's "
             f"{results['data_mirror_asymmetry']:.4f}", header, "-" * len(header)]
    for r in results["views"]:
        lines.append(f"{r['model']:6s} {r['mirror_asymmetry']:14.3f} {r['nearest']['original']:18.3f} {r['nearest']['mirror']:7.3f}"
                     f" {r['nearest']['average']:8.3f} {r['decoder_std']:6.3f}")
    group = results["groups"][0]
    if not group["checked"]:
        lines.append("Theorem 1 per group (the rows sharing one x2): every group is a single point (one-to-one pairs), so every "
                     "bound is +inf (MLE variance 0): the theorem has nothing to say, and the cross term nothing to average over")
        return "\n".join(lines)
    lines.append(f"Theorem 1 per group (the rows sharing one x2: a digit and its mirror image), {group['checked']} groups per model; "
                 f"margin = bound - L_1 + {D.GROUP_STANDARD_ERRORS:g} SE of the group's Monte Carlo L_1, nats: " + "; ".join(
                     f"{g['model']}: smallest {g['smallest_margin']:.2f} (group {g['smallest_margin_group']}), median {g['median_margin']:.2f}, "
                     f"smallest bound - L_1 {g['smallest_bound_minus_l1']:.2f}" for g in results["groups"]))
    lines.append(f"A group's bound grows without limit as its digit nears mirror symmetry (MLE variance -> 0): the most symmetric digit "
                 f"(asymmetry {group['smallest_group_asymmetry']:.4f} per pixel) has the largest finite bound, {group['largest_group_bound']:.1f} "
                 f"nats; groups of infinite bound (listed, not checked): {group['infinite'] or 'none'}")
    return "\n".join(lines)


# ================================================================ arguments and the run

def add_study_arguments(add):
    """The flags of the experiments."""
    add("--sweep", action="store_true", help="the surjectivity sweep, beside the check on the pinwheel (about a minute)")
    add("--sweep-ks", nargs="+", type=R.int_at_least(1), default=None, metavar="K",
        help="sub-labels per arm for --sweep (default 1 2 4 8 16 32)")
    add("--study", nargs="+", choices=tuple(STUDY_PARTS), default=None,
        help="instead of the check: what controls the collapse's strength, over seeds (half an hour on the pinwheel; "
             "hours on digits, where one K = 30 training takes minutes)")
    add("--study-seeds", nargs="+", type=R.int_at_least(0, S.MAX_SEED), default=None, metavar="SEED",
        help="seeds of --study (default 0-4 on the pinwheel, 0-2 on digits); runs of other seeds can be drawn together")
    add("--study-gradients", nargs="+", choices=B.GRADIENTS, default=list(B.GRADIENTS), metavar="GRADIENT",
        help="the gradient estimators of --study importance-samples (default all: iwae stl dreg dreg-mix)")
    add("--bound-study", action="store_true",
        help="instead of the check: Theorem 1 beyond K = 1, direct maximisation of the K-sample cross term at fixed sigma "
             "against l*(sigma), the NPMLE bound (about 15 minutes on the pinwheel, an hour on digits)")
    add("--gradient-study", action="store_true",
        help="instead of the check: each gradient estimator's bias and signal-to-noise ratio against K, at the initial, "
             "part-way and trained pinwheel MMVAE (about 15 minutes)")
    add("--augment", choices=("none", "flip"), default=None,
        help="with --data digit-views: flip adds (mirrored x1, the same x2) for every pair (default none)")


def study_flags_not_applying(args):
    """[(flag, what it applies to)] for every flag given where it does not apply."""
    views, study = args.data == "digit-views", bool(args.study)
    sets_its_own = study or args.gradient_study or args.bound_study            # these train their own settings
    return [(flag, reason) for flag, given, reason in (
        ("--sweep", args.sweep and (args.data != "pinwheel" or study), "the check on the pinwheel"),
        ("--sweep-ks", args.sweep_ks is not None and not args.sweep, "--sweep, which is not given"),
        ("--auxiliary", args.auxiliary is not None and sets_its_own, "MMVAE+ in the check (the studies set their own)"),
        ("--importance-samples", args.importance_samples > 1 and (views or sets_its_own), "the check (the studies set their own)"),
        ("--decoder-std", args.decoder_std is not None and (views or sets_its_own), "the check on the pinwheel or digits"),
        ("--models", (views and not set(args.models) <= set(S.PAPER_MODELS)) or (sets_its_own and args.models != list(S.PAPER_MODELS)),
         "the check (the studies set their own; the views train the paper's two)"),
        ("--study", study and args.data not in ("pinwheel", "digits"), "--data pinwheel or digits"),
        ("--gradient-study", args.gradient_study and (study or args.data != "pinwheel" or args.sweep), "--data pinwheel, without --study or --sweep"),
        ("--bound-study", args.bound_study and (study or args.data not in ("pinwheel", "digits") or args.sweep or args.gradient_study),
         "--data pinwheel or digits, alone"),
        ("--study-seeds", args.study_seeds is not None and not study, "--study, which is not given"),
        ("--study-gradients", args.study_gradients != list(B.GRADIENTS) and not (study and "importance-samples" in args.study),
         "--study importance-samples"),
        ("--gradient", args.gradient != "iwae" and (views or sets_its_own), "the check (the studies set their own)"),
        ("--test-fraction", args.test_fraction is not None and (args.gradient_study or args.bound_study), "the check and --study"),
        ("--dtype", args.dtype != "float64" and (args.gradient_study or args.bound_study), "the check, --study, --sweep and the views"),
        ("--augment", args.augment is not None and not views, "--data digit-views")) if given]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="studies.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    T.add_check_arguments(parser.add_argument, data_choices=("pinwheel", "digits", "digit-views"))
    add_study_arguments(parser.add_argument)
    args = R.refuse_repeats(parser, argv)
    views = args.data == "digit-views"
    not_applying = T.flags_not_applying(args) + study_flags_not_applying(args)
    if not_applying:
        parser.error("; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    if not (args.sweep or args.study or args.gradient_study or args.bound_study or views or args.importance_samples > 1 or "mmvaeplus" in args.models):
        print("studies.py: nothing beyond the check: give --sweep, --study, --gradient-study, --bound-study, --data digit-views, "
              "--importance-samples K > 1 or --models ... mmvaeplus (the check alone is theorem_check.py; --help lists every flag)",
              file=sys.stderr)
        raise SystemExit(2)
    per_class = args.per_class or (T.QUICK if args.quick else T.FULL)["per_class"]
    if args.sweep and max(args.sweep_ks or [1]) > per_class:
        parser.error(f"--sweep-ks: k = {max(args.sweep_ks)} exceeds the {per_class} points per class")
    T.check_data_sizes_and_scales(parser, args)
    args.sweep_ks = args.sweep_ks or [1, 2, 4, 8, 16, 32]
    args.augment = args.augment or ("none" if views else None)
    return args


def run_check_with_experiments(args, print_fn, later=0.0):
    """theorem_check's check, and the experiments that apply: the sweep, the K-sample cross term, MMVAE+'s private latent.
    later: the check's evaluation's estimated seconds (T.run_estimate)."""
    results, trained, (x1, labels, radial, num_classes) = T.check(args, print_fn, later)
    config, checks, findings = T.run_config(args), [], []
    if args.sweep:
        results["sweep"] = run_sweep(args, config, x1, labels, radial, print_fn)
        findings += sweep_findings(results["sweep"]) if "mmvae" in args.models else []
    if "mmvaeplus" in trained:
        results["mmvaeplus_diagnostics"] = private_latent_diagnostics(trained["mmvaeplus"][0], x1, labels, num_classes,
                                                                      npr.default_rng([args.seed, 8]))
    if config["importance_samples"] > 1:
        terms = [dict(k_sample_terms(trained[model][0], model, x1[labels == c], c, num_classes, config["importance_samples"],
                                     npr.default_rng([args.seed, 9, index, c])), model=model)
                 for index, model in enumerate(args.models) if model in ("mmvae", "mopoe") for c in range(num_classes)]
        untrained = [dict(k_sample_terms(S.change_x1_units(B.init_model_params(model, S.init_rng(args.seed), num_classes, config["latent_dim"],
                                                                              x1.shape[1], config["hidden"]), *S.x1_standardisation(x1)),
                                         model, x1[labels == c], c, num_classes, config["importance_samples"],
                                         npr.default_rng([args.seed, 12, index, c])), model=model + " (untrained)")
                     for index, model in enumerate(args.models) if model in ("mmvae", "mopoe") for c in range(num_classes)]
        results["k_sample_cross_terms"], checks, findings = terms, checks + k_sample_checks(terms), findings + k_sample_findings(terms)
        checks += npmle_checks(terms + untrained)
        results["k_sample_cross_terms_untrained"] = untrained
    results["checks"] += T.as_dicts(checks)
    results["findings"] += T.as_dicts(findings)
    return results


def print_experiments(results, args, config):
    """The tables: the check's and the experiments', or the study's, or the views'."""
    if "study" in results:
        print(format_study(results))
    elif "bound_study" in results:
        print(format_bound_study(results["bound_study"]))
    elif "gradient_study" in results:
        print(format_gradient_study(results["gradient_study"]))
    elif "views" in results:
        print(format_views(results))
    else:
        print(T.format_table(results["rows"]))
        if "held_out" in results:
            print(T.format_held_out(results["rows"]))
        print(R.wrap(T.format_notes(results, config)))
    if results.get("mmvaeplus_diagnostics"):
        print("\n" + format_private_diagnostics(results["mmvaeplus_diagnostics"]))
    if results.get("sweep"):
        print("\n" + format_sweep(results["sweep"], args.models))
    if results.get("k_sample_cross_terms"):
        print("\n" + format_k_sample(results["k_sample_cross_terms"]))


def describe(args):
    """The configuration line printed first: what the run will use."""
    if args.data == "digit-views":
        config = views_config(args)
        return (f"seed={args.seed}, data=digit-views (1797 digits paired with their 4 x 4 pooled view), augment={args.augment}, "
                f"models={' '.join(args.models)}, steps per model={config['steps']}, latent={config['latent_dim']}, "
                f"hidden={config['hidden']}, jobs={args.jobs}, quick={args.quick}, json={args.json}")
    text = T.describe(args, T.run_config(args))
    if args.bound_study:
        return text.split(", models=")[0] + f", bound study (K {' '.join(map(str, BOUND_KS))}), jobs={args.jobs}, quick={args.quick}, json={args.json}"
    if args.gradient_study:
        return text.split(", models=")[0] + f", gradient study of mmvae, jobs={args.jobs}, quick={args.quick}, json={args.json}"
    if args.study:
        seeds = args.study_seeds or STUDY[args.data]["seeds"]
        keys = dict.fromkeys(study_key(*setting) for setting in study_settings(args.study, args.data, args.study_gradients))
        return text.split(", models=")[0] + (f", study={' '.join(args.study)}, seeds={' '.join(map(str, seeds))}, held out={T.describe_held_out(args, T.run_config(args))}, "
                                             f"{len(keys) * len(seeds)} trainings, jobs={args.jobs}, quick={args.quick}, json={args.json}")
    return text + (f", sweep ks={' '.join(map(str, args.sweep_ks))}" if args.sweep else "")


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    run = run_study if args.study else run_gradient_study if args.gradient_study else run_bound_study if args.bound_study else run_views if args.data == "digit-views" else \
        run_check_with_experiments

    def body():
        progress = None if args.quiet else R.progress(start)
        if run is run_check_with_experiments:                                          # the check's run estimated first
            results = run(args, progress, T.announce("studies", describe(args), args, T.run_config(args), start))
        else:
            print(R.wrap("studies configuration: " + describe(args)), flush=True)
            results = run(args, progress)
        print_experiments(results, args, T.run_config(args) if args.data != "digit-views" else None)
        return R.report(results, args.json, start)
    return R.interruptible(body)


if __name__ == "__main__":
    sys.exit(main())
