"""theorem_beyond_k: Theorem 1 beyond K = 1 (docs/collapse_strength.md). With K importance samples per stratum, the
K-sample cross term replaces Eq. (4) and the constant class mean no longer maximises it; the proposition of npmle bounds it
at every K by l*(sigma), the nonparametric maximum likelihood. Measured on the check's trained decoders
(studies.py --importance-samples K) and by maximising the K-sample cross term alone (studies.py --bound-study).
"""
import time

import autograd.numpy as np
import numpy.random as npr

from cli import configuration as C
from extensions import k_samples as K
from extensions import mopoe_mmvaeplus as MM
from extensions import npmle as NP
from cli import runs as R
import surjvae_np as S
import theorem_check as T
from theorem_check import largest, smallest


# ================================================================ the check's decoders at K > 1 (--importance-samples K)

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
            "l_star_lower": star["lower"], "l_star_upper": star["upper"], "l_star_estimate": star["estimate"], "certified": star["certified"],
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
    bound, or the constant mean's value does; the certificate is a proof in every dimension (npmle.npmle_bounds)."""
    margin = smallest([t["l_star_upper"] - (v - 4.0 * e) for t in terms for v, e in zip(t["values"], t["errors"])])
    constant = smallest([t["l_star_upper"] - t["constant_at_sigma"] for t in terms])
    how = "a grid: a proof" if all(t["certified"] == "grid" for t in terms) else "a lifted grid: a proof, looser"
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

def k_sample_experiment(config, data, trained):
    """The check's K-sample experiment (studies.py --importance-samples K > 1): k_sample_terms of every trained and untrained
    MMVAE and MoPoE, per class, as (results to add, checks, findings)."""
    x1, labels, num_classes, seed, k = data.x1, data.labels, data.num_classes, config["seed"], config["importance_samples"]
    mixtures = [(index, model) for index, model in enumerate(config["models"]) if model in ("mmvae", "mopoe")]
    terms = [dict(k_sample_terms(trained[model][0], model, x1[labels == c], c, num_classes, k, npr.default_rng([seed, 9, index, c])), model=model)
             for index, model in mixtures for c in range(num_classes)]
    untrained = [dict(k_sample_terms(C.untrained_params(model, config, x1, num_classes, seed), model, x1[labels == c], c, num_classes, k,
                                     npr.default_rng([seed, 12, index, c])), model=model + " (untrained)")
                 for index, model in mixtures for c in range(num_classes)]
    results = {"k_sample_cross_terms": terms, "k_sample_cross_terms_untrained": untrained}
    return results, k_sample_checks(terms) + npmle_checks(terms + untrained), k_sample_findings(terms)


# ================================================================ the K-sample cross term maximised alone (--bound-study)

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
                l_star_lower=star["lower"], l_star_upper=star["upper"], l_star_estimate=star["estimate"], certified=star["certified"], npmle_spread_ratio=star["spread_ratio"],
                **{"class": c})


def bound_study_settings(config, data):
    """[(class, K, sigma)] of --bound-study, the largest K first: per class, K in BOUND_KS at the middle sigma and sigma in
    BOUND_SIGMAS at K = BOUND_FIXED_K; --quick: K = 1, 8, 30 at the middle sigma, class 0."""
    sigmas = BOUND_SIGMAS[config["data"]]
    middle = sigmas[len(sigmas) // 2]
    settings = sorted({(k, middle) for k in BOUND_KS} | {(BOUND_FIXED_K, s) for s in sigmas})
    if config["quick"]:
        settings = [(k, middle) for k in (1, BOUND_FIXED_K, BOUND_KS[-1])]
    return [(c, k, s) for c in range(1 if config["quick"] else data.num_classes) for k, s in sorted(settings, key=lambda setting: -setting[0])]


def run_bound_study(config, data, print_fn):
    """--bound-study: per class, K in BOUND_KS at the middle sigma, and sigma in BOUND_SIGMAS at K = BOUND_FIXED_K."""
    x1, labels, num_classes = data.x1, data.labels, data.num_classes
    tasks = [(f"class {c}, K = {k}, sigma = {s}", bound_study_task, (x1[labels == c], c, num_classes, k, s, config, config["seed"], config["data"]))
             for c, k, s in bound_study_settings(config, data)]
    rows = R.run_tasks(tasks, config["jobs"], print_fn, "the bound study")
    return {"format": T.JSON_FORMAT, "config": config, "bound_study": rows, "checks": T.as_dicts(bound_checks(rows)), "findings": []}


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


def bound_study_estimate(config, data):
    """Seconds of --bound-study: each setting's direct maximisations (3 x its steps: the run and its double) at a step timed
    over 100 steps at the smallest and the largest K (class 0, linear between), and one NPMLE per setting (timed once, at the
    middle sigma: the smallest sigma's takes several times longer, so the estimate runs low), on --jobs processes (R.makespan)."""
    settings, first = bound_study_settings(config, data), data.x1[data.labels == 0]
    steps, sigma = BOUND_STEPS[config["data"]] // (4 if config["quick"] else 1), settings[0][2]
    ks = sorted({k for _, k, _ in settings})
    low, high = (T.timed_step(lambda n: K.maximise_k_sample_cross_term(first, 0, data.num_classes, k, sigma, n, config["latent_dim"],
                                                                        config["hidden"], config["seed"]), 100) for k in (ks[0], ks[-1]))
    start = time.perf_counter()
    NP.npmle_bounds(first, sigma)
    npmle = time.perf_counter() - start
    per_k = {k: low + (high - low) * (k - ks[0]) / max(ks[-1] - ks[0], 1) for k in ks}
    return R.makespan([3 * steps * per_k[k] + npmle for _, k, _ in settings], config["jobs"])

