"""theorem_check.py: check the paper's Theorem 1 numerically, and show why it explains Fig. 2.

For every class c, on the class's data X_c (the theorem's setting: every n in S_c shares x_M = c):

  bound    L_1(theta_hat) = sum_{n in S_c} log f_1(x1^(n) | tau_hat_c)           (Eq. 7, right-hand side)
           tau_hat_c = (class mean, isotropic MLE variance), in closed form;
  L_1      L_1(theta, phi) of Eq. (4) under the model's label posterior r_M(g|c) (Eq. 7, first line),
           by Gauss-Hermite quadrature, nodes doubled until it stops moving (g is 2-D), else Monte Carlo;
  Eq. (6)  bound >= L_1, for every trained and every untrained decoder;
  Jensen   L_1 / N <= log p(x1|x2) under the same r_M, the conditional density L_1 bounds.

Then: theta_hat is a stationary point inside the decoder's own parameterisation (gradient zero, perturbations only
lower L_1), and maximising L_1 alone from a random start reaches the bound with a decoder that no longer depends on g.
The same check runs on digits, for MoPoE and MMVAE+, with a fixed decoder std, with K importance samples and their
gradient estimators, and on your own data (--data FILE, check_arrays). With --test-fraction F, log p(x1|x2), the spread
ratio and coherence are also measured on points never trained on. The experiments are in studies.py. Exit status 0
unless a check FAILs (SKIP: nothing to decide). Progress goes to stderr, the results to stdout.
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # before NumPy loads: small matrices, no BLAS threads

import argparse  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy.random as npr  # noqa: E402
from autograd import grad  # noqa: E402
from numpy.polynomial.hermite_e import hermegauss  # noqa: E402

from extensions import annealed as A  # noqa: E402
from extensions import beyond_the_paper as B  # noqa: E402
from cli import configuration as C  # noqa: E402
from extensions import likelihoods as LK  # noqa: E402
from extensions import log_likelihood as L  # noqa: E402
from cli import runs as R  # noqa: E402
import surjvae_np as S  # noqa: E402
from cli import tables  # noqa: E402

JSON_FORMAT = 5                 # the layout of --json; plots.py --from-json reads this version only
QUADRATURE_TOLERANCE = 1e-4     # relative change of L_1 at which the node doubling stops
MAX_GAUSS_HERMITE_NODES = 300   # numpy's hermegauss overflows (NaN weights) from about 350 nodes on


# ================================================================ Theorem 1: the two sides of Eq. (6)

def mle_variance(x1_class):
    """The isotropic-Gaussian MLE variance: the mean squared deviation from the class mean, over points and dims."""
    return np.mean((x1_class - np.mean(x1_class, axis=0)) ** 2)


def constant_mean_bound(x1_class):
    """Eq. (7), right: sum_n log f_1(x1^(n) | tau_hat) = -(N D / 2)(log(2 pi sigma_hat^2) + 1), tau_hat the MLE."""
    num, dim = np.shape(x1_class)
    return -0.5 * num * dim * (np.log(2.0 * np.pi * mle_variance(x1_class)) + 1.0)


def bound(x1_class, likelihood="gaussian"):
    """Eq. (7), right, for f_1 of the likelihood's family: constant_mean_bound, or the Laplace's and the Bernoulli's (likelihoods)."""
    return constant_mean_bound(x1_class) if likelihood == "gaussian" else LK.isotropic_bound(x1_class, likelihood)


def class_log_likelihood(params, x1_class, g, likelihood="gaussian"):
    """sum_{n in S_c} log f_1(x1^(n) | tau_1(g)) at each g (K, D) -> (K,), exactly -(N D / 2) log(2 pi s^2) - (sum_n |x_n -
    xbar|^2 + N |xbar - mu(g)|^2) / (2 s^2) for isotropic f_1 of mean mu(g): K decoder calls, not K N densities (tested).
    Another family: its K N densities (likelihoods.class_log_likelihood)."""
    if likelihood != "gaussian":
        return LK.class_log_likelihood(params, x1_class, g, likelihood)
    num, dim = np.shape(x1_class)
    x_bar = np.mean(x1_class, axis=0)
    scatter = np.sum((x1_class - x_bar) ** 2)
    squared_distance = np.sum((x_bar - S.decode_mean_x1(params, g)) ** 2, axis=1)   # (K,)
    log_var = params["decoder_x1_log_var"]
    return -0.5 * num * dim * (np.log(2.0 * np.pi) + log_var) - 0.5 * (scatter + num * squared_distance) * np.exp(-log_var)


def gauss_hermite(num_nodes, dim):
    """Nodes z (K, dim) and weights w (K,) with sum_k w_k f(z_k) ~ E_{z ~ N(0, I)}[f(z)], K = num_nodes^dim."""
    if num_nodes > MAX_GAUSS_HERMITE_NODES:
        raise ValueError(f"{num_nodes} Gauss-Hermite nodes exceed the {MAX_GAUSS_HERMITE_NODES} that hermegauss computes")
    nodes, weights = hermegauss(num_nodes)               # weight exp(-z^2/2)
    grid = np.stack(np.meshgrid(*[nodes] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    grid_weights = np.prod(np.stack(np.meshgrid(*[weights] * dim, indexing="ij"), axis=-1).reshape(-1, dim), axis=1)
    return grid, grid_weights / (2.0 * np.pi) ** (dim / 2.0)


def cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, num_nodes, likelihood="gaussian"):
    """Eq. (7), first line: L_1 = int r~_M(g) sum_n log f_1(x1^(n) | tau_1(g)) dg, by Gauss-Hermite: every n in S_c shares
    r~_M = N(label_mean, diag exp(label_log_var)), so the integral is over g in R^D once. Differentiable in params."""
    z, weights = gauss_hermite(num_nodes, np.shape(label_mean)[-1])
    g = label_mean + np.exp(0.5 * label_log_var) * z                              # (K, D)
    return weights @ class_log_likelihood(params, x1_class, g, likelihood)


def converged_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 by Gauss-Hermite quadrature, the nodes per axis doubled from config["nodes"] (L.node_counts) until its relative
    change is below QUADRATURE_TOLERANCE: (L_1, error = the last change, nodes), or None (the caller uses Monte Carlo)."""
    value = None
    for nodes in L.node_counts(config["nodes"], np.shape(label_mean)[-1], config["max_nodes"]):
        previous, value = value, cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, nodes, config["likelihood"])
        if previous is not None and abs(value - previous) < QUADRATURE_TOLERANCE * abs(value):
            return value, abs(value - previous), nodes
    return None


def class_label_posterior(params, model, num_classes, c):
    """(mean, log_var) (D,) of r_M(g|c) that L_1 integrates over: what each model generates from (MMVAE+: (g, w~_1) ~ q r_1)."""
    mean, log_var = B.label_latent(params, S.one_hot(np.array([c]), num_classes), model, private="auxiliary")
    return mean[0], log_var[0]


# ================================================================ Theorem 1: stationarity and direct maximisation

def constant_mean_decoder(params, x1_class, likelihood="gaussian"):
    """Eq. (6)-(7): theta_hat inside the decoder's parameterisation: last layer W = 0, b = class mean, log-variance = log MLE.
    Another family: b = its tau_hat's location (Laplace: the median, its scale at the MLE; Bernoulli: the logits of the mean)."""
    decoder = [dict(layer) for layer in params["decoder_x1"]]
    location, log_var = (np.mean(x1_class, axis=0), np.log(mle_variance(x1_class))) if likelihood == "gaussian" else \
        LK.isotropic_constant_mle(x1_class, likelihood)
    decoder[-1] = {"W": np.zeros_like(decoder[-1]["W"]), "b": location}
    return dict(params, decoder_x1=decoder, decoder_x1_log_var=np.array(log_var))


def deterministic_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 as a deterministic, differentiable function of params: quadrature with config["nodes"] per axis up to 2-D g, else
    the mean over config["fixed_draws"] fixed draws. Either way theta_hat attains exactly the bound and maximises it."""
    dim = np.shape(label_mean)[-1]
    if dim <= 2:
        return cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, config["nodes"], config["likelihood"])
    z = npr.default_rng([dim, config["fixed_draws"]]).standard_normal((config["fixed_draws"], dim))
    return np.mean(class_log_likelihood(params, x1_class, label_mean + np.exp(0.5 * label_log_var) * z, config["likelihood"]))


def decoder_direction(params, rng):
    """A random unit direction in the x1 decoder's parameters (zeros elsewhere), and flatten's unflatten."""
    vector, unflatten = S.flatten_params(params)
    is_decoder = np.concatenate([np.full(np.size(leaf), key.startswith("decoder_x1"))     # flatten's order
                                 for key in sorted(params) for leaf in S.tree_leaves(params[key])])
    direction = rng.standard_normal(vector.shape) * is_decoder
    return direction / np.linalg.norm(direction), unflatten


def check_stationarity(params, x1_class, label_mean, label_log_var, config, rng):
    """Theorem 1 (Eq. 6) at theta_hat: the gradient of L_1 (all parameters), and L_1 along random decoder directions. For the
    Laplace, whose |x - m| has a kink at the median (ties: digits' pixels), the norm of the smallest subgradient: 0 in every
    parameter but the last bias (theta_hat's output is constant in g) and the scale, the Laplace's own (likelihoods)."""
    theta_hat = constant_mean_decoder(params, x1_class, config["likelihood"])

    def l1(p):
        return deterministic_cross_modal_term(p, x1_class, label_mean, label_log_var, config)
    at_hat, vector, changes = l1(theta_hat), S.flatten_params(theta_hat)[0], []
    for _ in range(config["directions"]):
        direction, unflatten = decoder_direction(theta_hat, rng)
        changes += [l1(unflatten(vector + scale * direction)) - at_hat for scale in (1e-3, 1e-2, 1e-1, 1.0)]
    gradient = grad(l1)(theta_hat)
    norm = np.linalg.norm(S.flatten_params(gradient)[0])
    if config["likelihood"] == "laplace":      # a kink at the median: the smallest subgradient, in the last bias; the scale's gradient
        norm = np.linalg.norm(np.append(LK.laplace_location_subgradient(x1_class, theta_hat["decoder_x1"][-1]["b"], theta_hat["decoder_x1_log_var"]),
                                        gradient["decoder_x1_log_var"]))
    return {"value_at_theta_hat": at_hat, "bound": bound(x1_class, config["likelihood"]), "gradient_norm": norm,
            "largest_change": max(changes), "num_perturbations": len(changes), "num_lower": int(np.sum(np.array(changes) < 0))}


def maximise_cross_modal_term(x1_class, c, num_classes, config, seed):
    """Maximise L_1 / N_c alone over the x1 decoder and the label expert with Adam, from a random start (decoder std 1 in the
    class's standardised units: S.fit, so that the run does not depend on x1's units), the step size decaying linearly from
    config["direct_peak_step_size"] to 0: the stochastic optimum reached, not circled. Its history in x1's units."""
    x2_class = S.one_hot(np.full(np.shape(x1_class)[0], c), num_classes)
    params = S.init_params(npr.default_rng([seed, 2]), num_classes=num_classes, latent_dim=config["latent_dim"],
                           data_dim=np.shape(x1_class)[1], hidden=config["hidden"], decoder_std=1.0)
    num_steps, peak, likelihood = config["direct_steps"], config["direct_peak_step_size"], config["likelihood"]

    def per_point_l1(p, x1, x2, rng):                                             # checked at maximise's edge
        return B.cross_modal_term.__wrapped__(p, x1, x2, rng, config["direct_samples"], "mmvae", likelihood) / np.shape(x1)[0]
    params, history = S.fit(per_point_l1, params, x1_class, x2_class, seed=seed, num_steps=num_steps, batch_size=None,
                            step_size=lambda t: peak * (1.0 - t / num_steps), print_fn=None, name="L_1", standardise=likelihood != "bernoulli")
    history = history - np.shape(x1_class)[1] * np.log(B.x1_units(x1_class, likelihood)[1])    # log f(x) = log f(y) - D log scale
    final = deterministic_cross_modal_term(params, x1_class, *class_label_posterior(params, "mmvae", num_classes, c), config)
    generated = B.generate_from_labels(params, x2_class, npr.default_rng([seed, 3]), "mmvae", likelihood=likelihood)
    return {"class": c, "bound": bound(x1_class, likelihood) / len(x1_class), "final": final / len(x1_class),
            "history": history.tolist(), "spread_ratio": S.spread_ratio(generated, x1_class)}


# ================================================================ one row: a model, a decoder, a class

def l1_columns(params, model, x1_class, x2_class, mean, log_var, config, rng):
    """L_1 per point by quadrature (else Monte Carlo, its error 4 SE), and the Monte Carlo cross-check."""
    mc = np.array([B.cross_modal_term(params, x1_class, x2_class, rng, config["mc_draws"], model, config["likelihood"])
                   for _ in range(config["mc_repeats"])]) / len(x1_class)
    mc_se = mc.std(ddof=1) / np.sqrt(len(mc))
    quadrature = converged_cross_modal_term(params, x1_class, mean, log_var, config)
    if quadrature is None:
        l1, l1_error, method = mc.mean(), 4.0 * mc_se, "MC"
    else:
        l1, l1_error, method = quadrature[0] / len(x1_class), quadrature[1] / len(x1_class), f"GH{quadrature[2]}"
    return {"l1": l1, "l1_error": l1_error, "l1_method": method, "monte_carlo": mc.mean(), "monte_carlo_se": mc_se}


def conditional_columns(params, model, x1_class, x2_class, config, rng):
    """log p(x1|x2) under L_1's law (MMVAE+: w~_1 ~ r_1) by L.log_p_x1_given_x2 (another f_1 than the Gaussian: by
    L.family_log_p_x1_given_x2's grid on a latent of at most 2 dimensions; beyond, not estimated: None, method "none", unreliable,
    so that Jensen and the MVAE-MMVAE finding say SKIP): the class mean, its error (sampled: 4 SE of
    the mean, sqrt(sum SE_n^2) / N; the grid: the mean |last change|), reliability, the largest Pareto k, the median ESS / K;
    and the standard error of the mean over the points (their spread / sqrt(N): how far another sample of points could move it)."""
    if config["likelihood"] != "gaussian":     # the sampler's mode search and proposals read f_1 as the Gaussian: the grid, up to 2-D
        found = L.family_log_p_x1_given_x2(params, x1_class, x2_class, model, config["likelihood"], config["grid_nodes"])
        if found["method"][0] == "none":
            return dict(conditional=None, conditional_error=None, conditional_method="none", conditional_reliable=False,
                        conditional_reliable_share=0.0, conditional_disagree=0, conditional_points_se=None,
                        conditional_pareto_k=None, conditional_ess=None)
    else:
        found = L.log_p_x1_given_x2(params, x1_class, x2_class, rng, model, "auxiliary", config["conditional_samples"], config["grid_nodes"])
        if config.get("annealed") and found["method"][0] == "IS":      # --annealed: a second estimate that shares no mode search
            found = A.checked_by_annealing(found, *A.annealed_log_p_x1_given_x2(params, x1_class, x2_class, rng, model, "auxiliary"))
    sampled, num = found["method"][0] == "IS", len(x1_class)
    error = 4.0 * np.sqrt(np.sum(found["error"] ** 2)) / num if sampled else np.mean(found["error"])
    return {"conditional": np.mean(found["value"]), "conditional_error": error, "conditional_method": found["method"][0],
            "conditional_reliable": bool(np.all(found["reliable"])), "conditional_reliable_share": float(np.mean(found["reliable"])),
            "conditional_disagree": int(np.sum(found["disagree"])), "conditional_points_se": float(np.std(found["value"], ddof=1) / np.sqrt(num)),
            "conditional_pareto_k": float(np.max(found["pareto_k"])) if sampled else None,
            "conditional_ess": float(np.median(found["ess"])) if sampled else None}


def held_out_columns(params, model, c, held_out, generated, config, rng):
    """The row's measures on points never trained on (held_out: x1, labels, num_classes): log p(x1|x2) of the held-out
    points of class c, and the spread ratio and coherence of the row's label -> x1 generations against the held-out data.
    x2 is the label, so the generations are the training row's; only what they are measured against changes."""
    x1_test, labels_test, num_classes = held_out
    x1_class, (means, noisy) = x1_test[labels_test == c], generated
    conditional = conditional_columns(params, model, x1_class, S.one_hot(np.full(len(x1_class), c), num_classes), config, rng)
    return dict(conditional, num_points=len(x1_class), spread_ratio=S.spread_ratio(means, x1_class),
                spread_ratio_sampled=S.spread_ratio(noisy, x1_class), coherence=L.label_coherence(means, np.full(len(means), c), x1_test, labels_test))


def evaluate_class(params, model, x1, labels, num_classes, c, config, seed_sequence, held_out=None):
    """Every number of one (model, decoder, class) row of the table, per datapoint of class c; with held_out (x1, labels,
    num_classes), its held_out_columns too. Each group of columns draws from its own child of default_rng(seed_sequence),
    so that none depends on how much another draws."""
    x1_class, (mc_rng, conditional_rng, generation_rng, held_out_rng) = x1[labels == c], npr.default_rng(seed_sequence).spawn(4)
    num, x2_class = len(x1_class), S.one_hot(np.full(len(x1_class), c), num_classes)
    posterior = class_label_posterior(params, model, num_classes, c)
    row = dict(l1_columns(params, model, x1_class, x2_class, *posterior, config, mc_rng),
               **conditional_columns(params, model, x1_class, x2_class, config, conditional_rng))
    means = B.generate_from_labels(params, x2_class, generation_rng, model, likelihood=config["likelihood"])
    noisy = B.generate_from_labels(params, x2_class, generation_rng, model, with_noise=True, likelihood=config["likelihood"])
    upper = bound(x1_class, config["likelihood"]) / num
    if held_out is not None:
        row["held_out"] = held_out_columns(params, model, c, held_out, (means, noisy), config, held_out_rng)
    return dict(row, **{"class": c, "num_points": num, "latent_size": len(posterior[0]), "bound": upper, "gap": upper - row["l1"],
                        "decoder_std": float(np.exp(0.5 * params["decoder_x1_log_var"])) if config["likelihood"] != "bernoulli" else None,
                        "spread_ratio": S.spread_ratio(means, x1_class), "spread_ratio_sampled": S.spread_ratio(noisy, x1_class),
                        "coherence": L.label_coherence(means, np.full(num, c), x1, labels)})


# ================================================================ the checks (they set the exit status) and the findings (reported)

def smallest(values):
    """The smallest value, NaN if any is NaN (Python's min skips a NaN unless it comes first); largest likewise."""
    return float(np.min(np.asarray(values, dtype=float)))


def largest(values):
    return float(np.max(np.asarray(values, dtype=float)))


def jensen_check(rows, scope="every decoder and class"):
    """Jensen under the same r_M, L_1 / N <= log p(x1|x2) less both errors: FAIL if a reliable row breaks it (or reads NaN),
    else SKIP if a row's log p(x1|x2) was unreliable (counted), else PASS."""
    reliable, skipped = [r for r in rows if r["conditional_reliable"]], sum(not r["conditional_reliable"] for r in rows)
    margin = smallest([r["conditional"] + r["conditional_error"] - r["l1"] + r["l1_error"] for r in reliable]) if reliable else float("nan")
    verdict = None if not reliable else (False if not margin >= 0 else (None if skipped else True))
    return (f"Jensen: L_1 / N <= log p(x1|x2) for {scope}", verdict, margin, "smallest log p(x1|x2) - L_1/N per point, less "
            "both errors" + (f"; {skipped} of {len(rows)} rows skipped: their log p(x1|x2) is unreliable (a run's Pareto k "
                             "too high, or the two runs disagree)" + ("" if all(r.get("conditional_method") != "none" for r in rows) else
                             ", or not estimated (the x1 likelihood is not the Gaussian)") if skipped else ""), skipped)


def config_directions(stationarity):
    """The random directions per class of check_stationarity (4 scales each)."""
    return stationarity[0].get("num_perturbations", 0) // 4 if stationarity else 0


def theorem_checks(rows, stationarity, direct):
    """Theorem 1 (inequality 6, stationarity, direct maximisation) and its numerics (quadrature against Monte Carlo, Jensen) as
    (name, passed: True, False or None for SKIP, value, what it is): they hold in every setting; a NaN read makes one FAIL."""
    margin = smallest([r["bound"] - r["l1"] + r["l1_error"] for r in rows])
    z_scores = [abs(r["l1"] - r["monte_carlo"]) / r["monte_carlo_se"] for r in rows if r["l1_method"] != "MC"]
    z = largest(z_scores) if z_scores else float("nan")
    gradient, difference = largest([s["gradient_norm"] for s in stationarity]), largest([abs(s["value_at_theta_hat"] - s["bound"]) / abs(s["bound"]) for s in stationarity])
    tried = sum(s.get("num_perturbations", 0) for s in stationarity)
    change, short, spread = largest([s["largest_change"] for s in stationarity]), largest([d["bound"] - d["final"] for d in direct]), largest([d["spread_ratio"] for d in direct])
    every = f"every class ({len(direct)})"
    return [("inequality (6): bound >= L_1 for every decoder and class", margin >= 0, margin, "smallest (bound - L_1 + L_1's error) per point"),
            ("quadrature agrees with Monte Carlo (within 4 SE)", (z < 4) if z_scores else None, z,
             "largest |quadrature - MC| / SE" if z_scores else "no row used quadrature: nothing to compare"),
            jensen_check(rows),
            ("stationarity: gradient of L_1 vanishes at theta_hat", gradient < 1e-8, gradient, "largest gradient norm"),
            ("consistency (fails only on a code bug): L_1(theta_hat) equals the closed-form bound", difference < 1e-8, difference,
             "largest relative difference; equal by algebra"),
            (f"stationarity: each of {tried} perturbations of theta_hat lowers L_1", change < 0, change,
             f"largest change of L_1; {config_directions(stationarity)} random decoder directions x 4 scales per class"),
            (f"direct maximisation of L_1 reaches the bound (within 0.01 per point), {every}", short < 0.01, short, "largest bound - final per point"),
            (f"direct maximisation makes the decoder constant in g (spread ratio < 0.05), {every}", spread < 0.05, spread, "largest spread ratio")]


def comparison_findings(rows, held_out=False):
    """The paper's Fig. 2 claim and its consequences, MMVAE against MVAE per class, as checks' tuples: no theorem implies them.
    With held-out points, log p(x1|x2)'s comparison on them too (the spread ratios' comparison is the same there: both models'
    generations are divided by the same held-out spread). Each names the label where it is decided."""
    trained = {(r["model"], r["class"]): r for r in rows if r["decoder"] == "trained"}
    classes = sorted({c for _, c in trained})
    names = [trained["mvae", c].get("label", str(c)) for c in classes]
    spreads = [trained["mmvae", c]["spread_ratio"] / trained["mvae", c]["spread_ratio"] for c in classes]
    gaps = [trained["mmvae", c]["gap"] / trained["mvae", c]["gap"] for c in classes]
    spread, gap = largest(spreads), largest(gaps)
    return [("Fig. 2: MMVAE spread ratio < 0.5 x MVAE's, every label", spread < 0.5, spread,
             f"largest MMVAE / MVAE spread ratio, label {names[int(np.argmax(spreads))]}"),
            ("MMVAE's gap to the bound < 0.25 x MVAE's, every label", gap < 0.25, gap, f"largest MMVAE / MVAE gap, label {names[int(np.argmax(gaps))]}"),
            conditional_finding([(trained["mvae", c], trained["mmvae", c]) for c in classes], names)] + (
        [conditional_finding([(trained["mvae", c]["held_out"], trained["mmvae", c]["held_out"]) for c in classes], names, " on held-out points")]
        if held_out else [])


def conditional_finding(pairs, names, where=""):
    """The MVAE's log p(x1|x2) above the MMVAE's beyond both errors in every class (pairs, the labels' names): DOES NOT HOLD
    if below in one reliable class, else HOLDS if above in all, else UNDECIDED (within the errors) or SKIP (a class unreliable)."""
    reliable = [(mvae, mmvae, name) for (mvae, mmvae), name in zip(pairs, names) if mvae["conditional_reliable"] and mmvae["conditional_reliable"]]
    differences = np.array([mvae["conditional"] - mmvae["conditional"] for mvae, mmvae, _ in reliable])
    errors = np.array([mvae["conditional_error"] + mmvae["conditional_error"] for mvae, mmvae, _ in reliable])
    below_names = [name for (_, _, name), d, e in zip(reliable, differences, errors) if d + e < 0]
    above, below, skipped = int(np.sum(differences - errors > 0)), len(below_names), len(pairs) - len(reliable)
    unreliable = [name for (mvae, mmvae), name in zip(pairs, names) if not (mvae["conditional_reliable"] and mmvae["conditional_reliable"])]
    verdict = False if below else (True if above == len(pairs) else None)
    return (f"log p(x1|x2){where}: the MVAE's exceeds the MMVAE's, every label (above in {above}, below in {below} of {len(pairs)}, "
            "beyond both errors" + (f"; below: {', '.join(below_names[:6])}" if below else "") + ")", verdict,
            smallest(differences) if reliable else float("nan"), "smallest MVAE - MMVAE per point"
            + (f"; {skipped} of {len(pairs)} labels skipped, their log p(x1|x2) unreliable: {', '.join(unreliable[:6])}" if skipped else ""), skipped)


def as_dicts(items):
    """Checks or findings (name, passed, value, measures[, rows skipped as unreliable]) as the JSON's dicts."""
    return [dict(name=n, passed=None if p is None else bool(p), value=float(v), measures=m, skipped=(rest or [0])[0]) for n, p, v, m, *rest in items]


# ================================================================ the run

def trained_and_untrained(config, data, print_fn, later=0.0):
    """({model: (params, history)}, {model: untrained params in x1's units}, direct maximisation per class). later: the
    seconds the evaluation is expected to take, for the progress lines' time left in the run."""
    x1, labels, num_classes = data.x1, data.labels, data.num_classes
    x2, order, seed = S.one_hot(labels, num_classes), config["models"][::-1], config["seed"]     # MoPoE and MMVAE+ train slowest: first
    progress = print_fn if config["steps"] >= 1000 else None
    tasks = ([(f"trained {model}", C.train_model, (model, x1, x2, seed, config, progress)) for model in order]
             + [(f"maximised L_1 alone, class {c}", maximise_cross_modal_term, (x1[labels == c], c, num_classes, config, seed))
                for c in range(num_classes)])
    results = R.run_tasks(tasks, config["jobs"], print_fn, "training", later)
    trained = {model: dict(zip(order, results))[model] for model in config["models"]}          # paper order again
    untrained = {model: C.untrained_params(model, config, x1, num_classes, seed) for model in config["models"]}
    return trained, untrained, results[len(order):]


def evaluation_keys(models, num_classes):
    """The table's rows in order, (model, decoder, class): row i draws from default_rng([seed, 4, i]) (evaluation_task)."""
    return [(model, decoder, c) for model in models for decoder in ("trained", "untrained") for c in range(num_classes)]


def evaluation_task(params, key, index, config, data):
    """The task (what, function, arguments) that evaluates row `index` of the table, key (model, decoder, class), at params."""
    model, decoder, c = key
    return (f"evaluated the {decoder} {model}, class {c}", evaluate_class,
            (params, model, data.x1, data.labels, data.num_classes, c, config, [config["seed"], 4, index], data.held_out))


def check(config, data, print_fn, later=0.0, done=None):
    """(everything the check computes as one JSON-ready dict, {model: (params, history)}) of the run's configuration and
    data (configuration.configure). later: the evaluation's estimated seconds (run_estimate), for the time left while training;
    done: rows evaluated already, {index: row} (run_estimate's, the same tasks: the same numbers), not evaluated again."""
    x1, labels, num_classes, models, seed, done = data.x1, data.labels, data.num_classes, config["models"], config["seed"], done or {}
    trained, untrained, direct = trained_and_untrained(config, data, print_fn, later)
    keys = evaluation_keys(models, num_classes)
    todo = [index for index in range(len(keys)) if index not in done]
    evaluated = R.run_tasks([evaluation_task(trained[keys[index][0]][0] if keys[index][1] == "trained" else untrained[keys[index][0]],
                                             keys[index], index, config, data) for index in todo], config["jobs"], print_fn, "evaluation")
    evaluations = {**done, **dict(zip(todo, evaluated))}
    names = [str(name) for name in (data.label_names or range(num_classes))]
    rows = [dict(model=model, decoder=decoder, label=names[c], **evaluations[index]) for index, (model, decoder, c) in enumerate(keys)]
    first = trained[models[0]][0]
    stationarity = [dict(check_stationarity(first, x1[labels == c], *class_label_posterior(first, models[0], num_classes, c),
                                            config, npr.default_rng([seed, 5, c])), **{"class": c}) for c in range(num_classes)]
    findings = comparison_findings(rows, data.held_out is not None) if {"mvae", "mmvae"} <= set(models) else []
    results = {"format": JSON_FORMAT, "config": config, "rows": rows, "stationarity": stationarity, "direct_maximisation": direct,
               "data_coherence": L.leave_one_out_coherence(x1, labels), "labels": label_records(x1, labels, names),
               "checks": as_dicts(theorem_checks(rows, stationarity, direct)),
               "findings": as_dicts(findings), "histories": {m: h.tolist() for m, (_, h) in trained.items()},
               "data": {"x1": x1.tolist(), "labels": labels.tolist()}}
    if config["save_params"]:                                                     # only on request: most of the file's size
        results["params"] = {m: C.tree_to_lists(p) for m, (p, _) in trained.items()}
    if data.held_out is not None:
        results["held_out"] = C.held_out_record(config, data.held_out)
    if data.label_names is not None:
        results["data_file"] = C.data_file_record(config, data)
    return results, trained


def label_records(x1, labels, names):
    """Per label: its name, its points, and the coherence of its mean (1 if the point nearest the label's mean is the label's
    own; 0 if the mean lies nearer another label's points, as on a curved label, where a model that draws the mean scores a
    low coherence without drawing another label)."""
    return [{"class": c, "label": name, "points": int(np.sum(labels == c)),
             "mean_coherence": L.label_coherence(np.mean(x1[labels == c], axis=0)[None, :], np.array([c]), x1, labels)}
            for c, name in enumerate(names)]


def check_arrays(x1, labels, models=("mvae", "mmvae"), print_fn=None, **options):
    """The check on your own arrays: x1 (N, D) numbers, labels (N,) any values (at least two, each on C.MIN_PER_CLASS rows or
    more); options are the script's flags by name (seed=1, steps=400, latent=4, hidden=(64,), decoder_std=0.1, jobs=1,
    quick=True, test_fraction=0.2, quiet=True, ...). Returns exactly what --json writes (rows, checks, findings, config, ...,
    all_passed, seconds). Progress goes to stderr as the script's does (quiet=True: none; print_fn: yours). A bad argument
    is a ValueError naming it, before any work."""
    start = time.perf_counter()
    config, data = C.from_keywords(C.add_check_arguments, C.flags_not_applying, arrays=(x1, labels), models=list(models), **options)
    progress = print_fn or (None if config["quiet"] else R.progress(start))
    return R.finish(check(config, data, progress)[0], start)


# ================================================================ before the run: the configuration and the time it will take

TIMED_STEPS = 10        # training steps timed per model for the estimate printed before a run
LONG_RUN = 600.0        # seconds of estimated run beyond which the estimate is printed even with --quiet


def run_estimate(config, data, trainings_per_model=1):
    """(seconds of training, seconds of evaluation, the line saying so, the rows evaluated {index: row}), measured here before
    the run: each model's step and a direct maximisation's step, each over TIMED_STEPS steps (a run of 2 + TIMED_STEPS steps
    less one of 2, so that setting up is not counted), times their steps (trainings_per_model trainings per model: the sweep's
    k too), every class's direct maximisation beside them, spread over --jobs processes; and the mean of two rows evaluated
    on --jobs processes (the untrained first and last models, class 0: check's own tasks, which it then takes as done) times
    the rows left."""
    x1, x2, models, jobs, seed = data.x1, S.one_hot(data.labels, data.num_classes), config["models"], config["jobs"], config["seed"]
    first, keys = data.labels == 0, evaluation_keys(models, data.num_classes)
    per_step = {model: timed_step(lambda steps: C.train_model(model, x1, x2, seed, dict(config, steps=steps))) for model in models}
    direct = timed_step(lambda steps: maximise_cross_modal_term(x1[first], 0, data.num_classes, dict(config, direct_steps=steps), seed))
    start, timed = time.perf_counter(), list(dict.fromkeys([models[0], models[-1]]))     # the first and the last model's costs differ most
    indices = [keys.index((model, "untrained", 0)) for model in timed]
    done = dict(zip(indices, R.run_tasks([evaluation_task(C.untrained_params(keys[index][0], config, x1, data.num_classes, seed), keys[index],
                                                          index, config, data) for index in indices], jobs, None)))
    tasks, rows = trainings_per_model * len(models) + data.num_classes, len(keys) - len(done)
    training = (trainings_per_model * sum(per_step.values()) * config["steps"] + data.num_classes * direct * config["direct_steps"]) / min(jobs, tasks)
    evaluation = (time.perf_counter() - start) * min(jobs, len(timed)) / len(timed) * rows / min(jobs, max(rows, 1))
    steps = ", ".join(f"{model} {1e3 * seconds:.2g} ms" for model, seconds in per_step.items())
    return training, evaluation, (f"estimate: about {R.duration(training + evaluation)} in all; training about {R.duration(training)} "
                                  f"({trainings_per_model * len(models)} trainings, {config['steps']} steps per model, a step: {steps}; "
                                  f"{data.num_classes} direct maximisations of {config['direct_steps']} steps, a step {1e3 * direct:.2g} ms), "
                                  f"evaluation about {R.duration(evaluation)} ({rows} rows as long as the {len(timed)} evaluated here); "
                                  f"{min(jobs, tasks)} process(es)"), done


def timed_step(run, timed=TIMED_STEPS):
    """Seconds per step of run(steps): run(2 + timed) less run(2), over timed steps (setting up not counted)."""
    seconds = []
    for steps in (2, 2 + timed):
        start = time.perf_counter()
        run(steps)
        seconds.append(time.perf_counter() - start)
    return max(seconds[1] - seconds[0], 0.0) / timed


def announce(name, description, config, data, start, trainings_per_model=1):
    """Print the configuration (stdout) and run_estimate's line (stderr, as all progress; with --quiet only beyond
    LONG_RUN): (the evaluation's estimated seconds, the rows evaluated for it, for check)."""
    print(R.wrap(f"{name} configuration: {description}"), flush=True)
    training, evaluation, estimate, done = run_estimate(config, data, trainings_per_model)
    if not config["quiet"] or training + evaluation > LONG_RUN:
        R.print_progress(start, estimate)
    return evaluation, done


def parse_args(argv):
    """The command line read once: (config, Data) (configuration.read_command_line)."""
    parser = argparse.ArgumentParser(prog="theorem_check.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    C.add_check_arguments(parser)
    return C.read_command_line(parser, argv, C.flags_not_applying)


def main(argv=None):
    R.keep_freed_memory()
    config, data = parse_args(argv)
    start = time.perf_counter()

    def body():
        evaluation, done = announce("theorem_check", C.describe(config, data), config, data, start)
        results = check(config, data, None if config["quiet"] else R.progress(start), evaluation, done)[0]
        print(tables.format_table(results["rows"]))
        if "held_out" in results:
            print(tables.format_held_out(results["rows"]))
        print(R.wrap(tables.format_notes(results, config)))
        return R.report(results, config["json"], start, tables.format_per_label(results))
    return R.interruptible(body)


if __name__ == "__main__":
    sys.exit(main())
