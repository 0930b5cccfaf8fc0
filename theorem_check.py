"""theorem_check.py: check the paper's Theorem 1 numerically, and show why it explains Fig. 2.

For every class c, on the class's data X_c (the theorem's setting: every n in S_c shares x_M = c):

  bound    L_1(theta_hat) = sum_{n in S_c} log f_1(x1^(n) | tau_hat_c)           (Eq. 7, right-hand side)
           tau_hat_c = (class mean, isotropic MLE variance), in closed form;
  L_1      L_1(theta, phi) of Eq. (4) under the model's label posterior r_M(g|c) (Eq. 7, first line),
           by Gauss-Hermite quadrature, nodes doubled until it stops moving (g is 2-D), else Monte Carlo;
  Eq. (6)  bound >= L_1, for every trained and every untrained decoder.

Then: theta_hat is a stationary point inside the decoder's own parameterisation (gradient zero,
perturbations only lower L_1), and maximising L_1 alone from a random start reaches the bound with a
decoder that no longer depends on g. Beyond the paper: log p(x1|x2), label coherence, the degree of
surjectivity (--sweep), digits (--data digits), MoPoE and MMVAE+ (--models). Exit status 0 only if
every check passes or says SKIP (nothing to decide in this run).
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # before NumPy loads: small matrices, no BLAS threads

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy.random as npr  # noqa: E402
from autograd import grad  # noqa: E402
from numpy.polynomial.hermite_e import hermegauss  # noqa: E402

import beyond_the_paper as B  # noqa: E402
import surjvae_np as S  # noqa: E402

JSON_FORMAT = 3                 # the layout of --json; plots.py --from-json reads this version only
QUADRATURE_TOLERANCE = 1e-4     # relative change of L_1 at which the node doubling stops
CONDITIONAL_TOLERANCE = 1e-4    # nats per point: change of log p(x1|x2) at which the grid doubling stops
MAX_GAUSS_HERMITE_NODES = 300   # numpy's hermegauss overflows (NaN weights) from about 350 nodes on
MAX_GRID_POINTS = 10 ** 6       # nodes ** latent size, at most: 1024 per axis in 2-D, 64 in 3-D (doubling from 32)
GRID_HALF_WIDTH = 8.0           # the grid rule covers mean +- 8 std of the label posterior (outside: < 1e-14 of its mass)
MAX_GRID_NODES = 1024           # per axis, for the grid rule
MIN_PER_CLASS = 20              # smaller classes are too few points for the direct-maximisation check


# ================================================================ Theorem 1: the two sides of Eq. (6)

def mle_variance(x1_class):
    """The isotropic-Gaussian MLE variance: mean squared deviation from the class mean, over points and dims."""
    return np.mean((x1_class - np.mean(x1_class, axis=0)) ** 2)


def constant_mean_bound(x1_class):
    """Eq. (7), right: sum_n log f_1(x1^(n) | tau_hat) = -(N D / 2)(log(2 pi sigma_hat^2) + 1), tau_hat the MLE."""
    num, dim = np.shape(x1_class)
    return -0.5 * num * dim * (np.log(2.0 * np.pi * mle_variance(x1_class)) + 1.0)


def class_log_likelihood(params, x1_class, g):
    """sum_{n in S_c} log f_1(x1^(n) | tau_1(g)) at each g (K, D) -> (K,), through the class's statistics:
    for isotropic Gaussian f_1 with mean mu(g) and variance s^2, exactly -(N D / 2) log(2 pi s^2) -
    (sum_n |x_n - xbar|^2 + N |xbar - mu(g)|^2) / (2 s^2): K decoder calls, not K N densities (tested)."""
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


def cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, num_nodes):
    """Eq. (7), first line: L_1 = int r~_M(g) sum_n log f_1(x1^(n) | tau_1(g)) dg, by Gauss-Hermite.
    Every n in S_c shares one label posterior r~_M = N(label_mean, diag exp(label_log_var)), so the
    integral is over g in R^D once. Differentiable in params."""
    z, weights = gauss_hermite(num_nodes, np.shape(label_mean)[-1])
    g = label_mean + np.exp(0.5 * label_log_var) * z                              # (K, D)
    return weights @ class_log_likelihood(params, x1_class, g)


def node_counts(start, dim, max_nodes):
    """The nodes per axis that refine tries in dim dimensions: from start (halved while its double exceeds
    MAX_GRID_POINTS nodes in all, down to 8), doubled up to max_nodes; none if even that many nodes are too many."""
    while start > 8 and (2 * start) ** dim > MAX_GRID_POINTS:
        start //= 2
    counts = [start] if start ** dim <= MAX_GRID_POINTS else []
    while counts and 2 * counts[-1] <= max_nodes and (2 * counts[-1]) ** dim <= MAX_GRID_POINTS:
        counts.append(2 * counts[-1])
    return counts


def refine(evaluate, counts, close_enough):
    """evaluate(nodes) for nodes in counts until close_enough(value, previous value): (value, error = the last
    change, nodes), or None if the counts run out first."""
    value = None
    for nodes in counts:
        previous, value = value, evaluate(nodes)
        if previous is not None and close_enough(value, previous):
            return value, abs(value - previous), nodes
    return None


def converged_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 by Gauss-Hermite quadrature, refined from config["nodes"] per axis until its relative change is below
    QUADRATURE_TOLERANCE: (L_1, error, nodes), or None (the caller then uses Monte Carlo)."""
    return refine(lambda nodes: cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, nodes),
                  node_counts(config["nodes"], np.shape(label_mean)[-1], config["max_nodes"]),
                  lambda value, previous: abs(value - previous) < QUADRATURE_TOLERANCE * abs(value))


def class_label_posterior(params, model, num_classes, c):
    """(mean, log_var) (D,) of the latent Eq. (4)'s L_1 integrates over for label c: the label posterior
    each model generates from; for MMVAE+ the joint (g, w~_1) ~ q(g|x2) r_1(w_1) of its cross term."""
    mean, log_var = B.label_latent(params, S.one_hot(np.array([c]), num_classes), model, private="auxiliary")
    return mean[0], log_var[0]


# ================================================================ Jensen: L_1 / N <= log p(x1|x2), the conditional model L_1 bounds

def grid_rule(num_nodes, dim):
    """Nodes z (K, dim) and log weights (K,) of the tensor-product trapezoid rule for E_{z ~ N(0, I)}[f(z)] on
    [-GRID_HALF_WIDTH, GRID_HALF_WIDTH]^dim, K = num_nodes^dim. Uniform spacing resolves the sharp peaks of a
    narrow decoder that Gauss-Hermite's nodes miss; for smooth integrands it converges as fast."""
    axis = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, num_nodes)
    z = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    return z, -0.5 * np.sum(z * z, axis=1) + dim * (np.log(axis[1] - axis[0]) - 0.5 * np.log(2.0 * np.pi))


def conditional_log_likelihood_grid(params, x1_class, label_mean, label_log_var, num_nodes, chunk=8192):
    """(1/N) sum_n log p(x1^(n)|x2) = (1/N) sum_n log int r~_M(g) f_1(x1^(n) | tau_1(g)) dg by grid_rule: the
    class's points share r~_M, so the decoder runs once per node. log f_1 = a_n + b_nk as in
    beyond_the_paper.conditional_log_likelihood; log-sum-exp over the nodes, chunk at a time."""
    z, log_weights = grid_rule(num_nodes, np.shape(label_mean)[-1])
    log_var, total = params["decoder_x1_log_var"], np.full(len(x1_class), -np.inf)
    a = -0.5 * np.shape(x1_class)[1] * (S.LOG_2PI + log_var) - 0.5 * np.sum(x1_class ** 2, axis=1) * np.exp(-log_var)  # (N,)
    for start in range(0, len(z), chunk):
        mu = S.decode_mean_x1(params, label_mean + np.exp(0.5 * label_log_var) * z[start:start + chunk])     # (K_chunk, D1)
        b = (x1_class @ mu.T - 0.5 * np.sum(mu * mu, axis=1)) * np.exp(-log_var) + log_weights[start:start + chunk]
        total = np.logaddexp(total, S.logsumexp(b, axis=1))                    # (N,)
    return np.mean(a + total)


def converged_conditional(params, x1_class, label_mean, label_log_var, config):
    """log p(x1|x2) per point by conditional_log_likelihood_grid, refined from config["grid_nodes"] per axis
    until it moves by less than CONDITIONAL_TOLERANCE: (value, error = the last change, nodes), or None."""
    return refine(lambda nodes: conditional_log_likelihood_grid(params, x1_class, label_mean, label_log_var, nodes),
                  node_counts(config["grid_nodes"], np.shape(label_mean)[-1], MAX_GRID_NODES),
                  lambda value, previous: abs(value - previous) < CONDITIONAL_TOLERANCE)


# ================================================================ Theorem 1: stationarity and direct maximisation

def constant_mean_decoder(params, x1_class):
    """theta_hat inside the decoder's parameterisation: last layer W = 0, b = class mean, log-variance = log MLE."""
    decoder = [dict(layer) for layer in params["decoder_x1"]]
    decoder[-1] = {"W": np.zeros_like(decoder[-1]["W"]), "b": np.mean(x1_class, axis=0)}
    return dict(params, decoder_x1=decoder, decoder_x1_log_var=np.array(np.log(mle_variance(x1_class))))


def deterministic_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 as a deterministic, differentiable function of params: quadrature with config["nodes"] per axis
    if g has at most 2 dimensions, else the mean over config["fixed_draws"] fixed draws g_k. Either way
    theta_hat attains exactly the bound and maximises it (an average of sum_n log f_1 <= the bound)."""
    dim = np.shape(label_mean)[-1]
    if dim <= 2:
        return cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, config["nodes"])
    z = npr.default_rng([dim, config["fixed_draws"]]).standard_normal((config["fixed_draws"], dim))
    return np.mean(class_log_likelihood(params, x1_class, label_mean + np.exp(0.5 * label_log_var) * z))


def decoder_direction(params, rng):
    """A random unit direction in the x1 decoder's parameters (zeros elsewhere), and flatten's unflatten."""
    vector, unflatten = S.flatten_params(params)
    is_decoder = np.concatenate([np.full(np.size(leaf), key.startswith("decoder_x1"))     # flatten's order
                                 for key in sorted(params) for leaf in S.tree_leaves(params[key])])
    direction = rng.standard_normal(vector.shape) * is_decoder
    return direction / np.linalg.norm(direction), unflatten


def check_stationarity(params, x1_class, label_mean, label_log_var, config, rng):
    """At theta_hat: the gradient of L_1 (all parameters), and L_1 along random decoder directions."""
    theta_hat = constant_mean_decoder(params, x1_class)

    def l1(p):
        return deterministic_cross_modal_term(p, x1_class, label_mean, label_log_var, config)
    at_hat, vector, changes = l1(theta_hat), S.flatten_params(theta_hat)[0], []
    for _ in range(config["directions"]):
        direction, unflatten = decoder_direction(theta_hat, rng)
        changes += [l1(unflatten(vector + scale * direction)) - at_hat for scale in (1e-3, 1e-2, 1e-1, 1.0)]
    return {"value_at_theta_hat": at_hat, "bound": constant_mean_bound(x1_class),
            "gradient_norm": np.linalg.norm(S.flatten_params(grad(l1)(theta_hat))[0]),
            "largest_change": max(changes), "num_perturbations": len(changes), "num_lower": int(np.sum(np.array(changes) < 0))}


def maximise_cross_modal_term(x1_class, c, num_classes, config, seed):
    """Maximise L_1 / N_c alone over the x1 decoder and the label expert, from a random start, with Adam.
    The decoder std starts at 1 (no knowledge of the class spread); the step size decays linearly from
    config["direct_peak_step_size"] to 0, so that the stochastic optimum is reached rather than circled."""
    x2_class = S.one_hot(np.full(np.shape(x1_class)[0], c), num_classes)
    params = S.init_params(npr.default_rng([seed, 2]), num_classes=num_classes, latent_dim=config["latent_dim"],
                           data_dim=np.shape(x1_class)[1], hidden=config["hidden"], decoder_std=1.0)
    num_steps, peak = config["direct_steps"], config["direct_peak_step_size"]

    def per_point_l1(p, x1, x2, rng):
        return S.cross_modal_term(p, x1, x2, rng, num_samples=config["direct_samples"]) / np.shape(x1)[0]
    params, history = S.maximise(per_point_l1, params, x1_class, x2_class, seed=seed, num_steps=num_steps, batch_size=None,
                                 step_size=lambda t: peak * (1.0 - t / num_steps), print_fn=None, name="L_1")
    final = deterministic_cross_modal_term(params, x1_class, *class_label_posterior(params, "mmvae", num_classes, c), config)
    generated = S.generate_from_labels(params, x2_class, npr.default_rng([seed, 3]), "mmvae")
    return {"class": c, "bound": constant_mean_bound(x1_class) / len(x1_class), "final": final / len(x1_class),
            "history": history.tolist(), "spread_ratio": S.spread_ratio(generated, x1_class)}


# ================================================================ the run's configuration and data

# nodes: Gauss-Hermite nodes per latent dimension to start from, doubled up to max_nodes until L_1 stops
# moving, else Monte Carlo (mc_repeats x mc_draws per point: many repeats, so that its standard error is itself
# well estimated and a 4 SE check rarely fails by chance). fixed_draws: standard-normal draws of the
# deterministic L_1 when g has more than 2 dimensions.
# grid_nodes: the grid rule's nodes per axis to start from (log p(x1|x2)); where it cannot reach the tolerance,
# importance sampling: `replicates` runs of conditional_samples draws per point (defensive proposal), and of
# bound_samples draws per label (the label proposal's bound, >= L_1/N in expectation, for the Jensen check).
QUICK = dict(per_class=100, steps=250, nodes=32, max_nodes=256, mc_repeats=40, mc_draws=4, direct_steps=150, directions=4,
             conditional_samples=100, latent_dim=2, hidden=(32,), peak_step_size=S.STEP_SIZE, fixed_draws=256,
             direct_peak_step_size=0.05, direct_samples=4, grid_nodes=32, replicates=3, bound_samples=1000)
FULL = dict(QUICK, per_class=500, steps=None, nodes=64, mc_repeats=80, direct_steps=300, directions=8,
            conditional_samples=B.DEFENSIVE_SAMPLES, replicates=4, bound_samples=4000)
# Digits (beyond the paper): all 1797 images, 10 labels; latent 8 (docs/digits.md).
# Direct maximisation on digits: 1200 steps at peak 0.01 (at 600 steps and 0.02, class 8 of seed 0 ended 0.065 nats
# per image short of the bound; at 1200 and 0.01 every class of seed 0 ends within 0.002).
DIGITS = dict(FULL, per_class=None, steps=3000, latent_dim=8, hidden=(128,), peak_step_size=0.005, direct_steps=1200,
              direct_peak_step_size=0.01, direct_samples=2, private_dim=4)
DIGITS_QUICK = dict(DIGITS, steps=600, peak_step_size=0.02, mc_repeats=40, directions=4, hidden=(64,), direct_steps=600,
                    direct_peak_step_size=0.02, conditional_samples=100, fixed_draws=64, replicates=3, bound_samples=1000)


def default_steps(num_classes):
    """Steps after which the MMVAE's cross-generated spread has settled (README, design choices): over seeds
    0-4, 2 classes by 800 steps, 3 and more by 2400 (doubling them moves the spread ratio less than the seeds do)."""
    return S.NUM_STEPS if num_classes == 2 else 3 * S.NUM_STEPS


def run_config(args):
    """The run's sizes and architecture: QUICK, FULL or the digits', with --per-class, --steps, --private-dim."""
    options = dict(decoder_std=args.decoder_std, importance_samples=args.importance_samples, auxiliary=args.auxiliary or "free")
    if args.data == "digit-views":
        config = VIEWS_QUICK if args.quick else VIEWS
        return dict(config, steps=args.steps or config["steps"])
    if args.data == "digits":
        config = DIGITS_QUICK if args.quick else DIGITS
        return dict(config, steps=args.steps or config["steps"], private_dim=args.private_dim or config["private_dim"], **options)
    config = dict(QUICK if args.quick else FULL, private_dim=args.private_dim or 1, **options)
    config["per_class"] = args.per_class or config["per_class"]
    config["steps"] = args.steps or config["steps"] or default_steps(args.classes)
    return config


def load_data(args, config):
    """(x1, labels, radial, num_classes): the pinwheel of the arguments, or the digits (radial None)."""
    if args.data == "digits":
        x1, labels = B.load_digits()
        return x1, labels, None, 10
    x1, labels, radial = S.make_pinwheel(num_classes=args.classes, num_per_class=config["per_class"],
                                         rng=npr.default_rng([args.seed, 3]), return_radial=True)
    return x1, labels, radial, args.classes


def model_options(model, config):
    """B.train's options for model under the run's configuration: the x1 decoder's std (None: learned) for every
    model, K for the MMVAE and MoPoE, the private latent and its priors' parameterisation for MMVAE+."""
    options = {"decoder_std": config["decoder_std"]}
    if model in ("mmvae", "mopoe"):
        options["importance_samples"] = config["importance_samples"]
    if model == "mmvaeplus":
        options.update(private_dim=config["private_dim"], auxiliary=config["auxiliary"])
    return options


def untrained_params(model, config, x1, num_classes, seed):
    """The same networks as a trained model's at step 0, in x1's units."""
    options, (shift, scale) = model_options(model, config), S.x1_standardisation(x1)
    params = B.init_model_params(model, S.init_rng(seed), num_classes, config["latent_dim"], np.shape(x1)[1], config["hidden"],
                                 options.get("private_dim"), options.get("auxiliary"))
    if config["decoder_std"] is not None:
        params = dict(params, decoder_x1_log_var=np.array(2.0 * np.log(config["decoder_std"] / scale)))
    return S.change_x1_units.__wrapped__(params, shift, scale)


# ================================================================ tasks, on up to --jobs processes

def train_model(model, x1, x2, seed, config):
    """One model trained with the run's configuration: (params, objective per step)."""
    return B.train(model, x1, x2, seed=seed, num_steps=config["steps"], latent_dim=config["latent_dim"], hidden=config["hidden"],
                   print_fn=None, step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]), **model_options(model, config))


def run_task(task):
    """One unit of work, run in a worker process: ("train" | "direct" | "evaluate", arguments)."""
    kind, arguments = task
    if kind == "train":
        return train_model(*arguments)
    if kind == "direct":
        return maximise_cross_modal_term(*arguments)
    if kind == "study":
        return study_task(*arguments)
    if kind == "views":
        return views_task(*arguments)
    *evaluate_arguments, seed_sequence = arguments
    return evaluate_class(*evaluate_arguments, npr.default_rng(seed_sequence))


def run_tasks(tasks, jobs, print_fn):
    """run_task's result for every task, in order; on `jobs` forked processes if jobs > 1. Every task draws
    only from its own seeded generators, so the results do not depend on jobs."""
    start, results = time.perf_counter(), []
    if jobs > 1 and len(tasks) > 1 and "fork" in multiprocessing.get_all_start_methods():
        with multiprocessing.get_context("fork").Pool(min(jobs, len(tasks))) as pool:
            for index, result in enumerate(pool.imap(run_task, tasks)):
                results.append(result)
                report_task(tasks[index], index, len(tasks), start, print_fn)
        return results
    for index, task in enumerate(tasks):
        results.append(run_task(task))
        report_task(task, index, len(tasks), start, print_fn)
    return results


def report_task(task, index, total, start, print_fn):
    if print_fn is not None:
        kind, arguments = task
        what = {"train": lambda: f"trained {arguments[0]}", "direct": lambda: f"maximised L_1 alone, class {arguments[1]}",
                "evaluate": lambda: f"evaluated {arguments[1]} class {arguments[5]}",
                "study": lambda: f"trained and evaluated {arguments[0]}, seed {arguments[4]}",
                "views": lambda: f"trained and evaluated {arguments[0]} on the views, --augment {arguments[2]}"}[kind]()
        print_fn(f"  [{index + 1}/{total}] {what}  ({time.perf_counter() - start:.1f} s)")


# ================================================================ one row: a model, a decoder, a class

def l1_columns(params, model, x1_class, x2_class, mean, log_var, config, rng):
    """L_1 per point by quadrature (else Monte Carlo, its error 4 SE), and the Monte Carlo cross-check."""
    mc = np.array([B.cross_modal_term(params, x1_class, x2_class, rng, config["mc_draws"], model)
                   for _ in range(config["mc_repeats"])]) / len(x1_class)
    mc_se = mc.std(ddof=1) / np.sqrt(len(mc))
    quadrature = converged_cross_modal_term(params, x1_class, mean, log_var, config)
    if quadrature is None:
        l1, l1_error, method = mc.mean(), 4.0 * mc_se, "MC"
    else:
        l1, l1_error, method = quadrature[0] / len(x1_class), quadrature[1] / len(x1_class), f"GH{quadrature[2]}"
    return {"l1": l1, "l1_error": l1_error, "l1_method": method, "monte_carlo": mc.mean(), "monte_carlo_se": mc_se}


def conditional_columns(params, model, x1_class, x2_class, mean, log_var, config, rng):
    """log p(x1|x2) per point under the law L_1 integrates over (MMVAE+: w~_1 ~ r_1): by the grid rule, refined
    until it stops moving; where it cannot (more than 3 latent dimensions, or not within its node cap), by
    defensive importance sampling, config["replicates"] runs: their mean, error 4 SE, median Kish ESS / K,
    and the label proposal's bound (>= L_1/N in expectation) with its SE, for the Jensen check."""
    grid = converged_conditional(params, x1_class, mean, log_var, config)
    if grid is not None:
        return {"conditional": grid[0], "conditional_error": grid[1], "conditional_method": f"grid{grid[2]}",
                "conditional_ess": None, "label_bound": None, "label_bound_se": None}
    estimates, ess, bounds = [], [], []
    for _ in range(config["replicates"]):
        log_weights = B.defensive_log_weights(params, x1_class, x2_class, rng, config["conditional_samples"], model, "auxiliary")
        estimates.append(np.mean(S.logsumexp(log_weights, axis=0)) - np.log(len(log_weights)))
        ess.append(B.effective_sample_size(log_weights) / len(log_weights))
        bounds.append(np.mean(B.conditional_log_likelihood(params, x1_class, x2_class, rng, config["bound_samples"], model, "auxiliary")))
    standard_error = lambda values: np.std(values, ddof=1) / np.sqrt(len(values))
    return {"conditional": np.mean(estimates), "conditional_error": 4.0 * standard_error(estimates), "conditional_method": "IS",
            "conditional_ess": float(np.median(ess)), "label_bound": np.mean(bounds), "label_bound_se": standard_error(bounds)}


def evaluate_class(params, model, x1, labels, num_classes, c, config, rng):
    """Every number of one (model, decoder, class) row of the table, per datapoint of class c. Each group of
    columns draws from its own child of rng, so that none depends on how much another draws."""
    x1_class, (mc_rng, conditional_rng, generation_rng) = x1[labels == c], rng.spawn(3)
    num, x2_class = len(x1_class), S.one_hot(np.full(len(x1_class), c), num_classes)
    posterior = class_label_posterior(params, model, num_classes, c)
    row = dict(l1_columns(params, model, x1_class, x2_class, *posterior, config, mc_rng),
               **conditional_columns(params, model, x1_class, x2_class, *posterior, config, conditional_rng))
    means = B.generate_from_labels(params, x2_class, generation_rng, model)
    noisy = B.generate_from_labels(params, x2_class, generation_rng, model, with_noise=True)
    bound = constant_mean_bound(x1_class) / num
    return dict(row, **{"class": c, "num_points": num, "latent_size": len(posterior[0]), "bound": bound, "gap": bound - row["l1"],
                        "decoder_std": float(np.exp(0.5 * params["decoder_x1_log_var"])),
                        "spread_ratio": S.spread_ratio(means, x1_class), "spread_ratio_sampled": S.spread_ratio(noisy, x1_class),
                        "coherence": B.label_coherence(means, np.full(num, c), x1, labels)})


# ================================================================ the checks (they set the exit status) and the findings (reported)

def smallest(values):
    """The smallest value, NaN if any value is NaN (Python's min skips a NaN unless it comes first)."""
    return float(np.min(np.asarray(values, dtype=float)))


def largest(values):
    """The largest value, NaN if any value is NaN."""
    return float(np.max(np.asarray(values, dtype=float)))


def jensen_margin(row):
    """log p(x1|x2) - L_1/N per point, less both errors. Where log p was importance-sampled, the label proposal's
    bound stands in for it: its expectation is >= L_1/N (Burda et al. 2016) and <= log p(x1|x2)."""
    if row["conditional_method"] == "IS":
        return row["label_bound"] + 4.0 * row["label_bound_se"] - row["l1"] + row["l1_error"]
    return row["conditional"] + row["conditional_error"] - row["l1"] + row["l1_error"]


def theorem_checks(rows, stationarity, direct):
    """Theorem 1 (inequality 6, stationarity, direct maximisation) and the numerics it is checked with (quadrature
    against Monte Carlo, Jensen), as (name, passed: True, False or None for SKIP, value, what the value is). They must
    hold for every configuration; a NaN anywhere in what a check reads makes it FAIL."""
    margin, jensen = smallest([r["bound"] - r["l1"] + r["l1_error"] for r in rows]), smallest([jensen_margin(r) for r in rows])
    z_scores = [abs(r["l1"] - r["monte_carlo"]) / r["monte_carlo_se"] for r in rows if r["l1_method"] != "MC"]
    z = largest(z_scores) if z_scores else float("nan")
    gradient, difference = largest([s["gradient_norm"] for s in stationarity]), largest([abs(s["value_at_theta_hat"] - s["bound"]) / abs(s["bound"]) for s in stationarity])
    change, short, spread = largest([s["largest_change"] for s in stationarity]), largest([d["bound"] - d["final"] for d in direct]), largest([d["spread_ratio"] for d in direct])
    every = f"every class ({len(direct)})"
    return [("inequality (6): bound >= L_1 for every decoder and class", margin >= 0, margin, "smallest (bound - L_1 + L_1's error) per point"),
            ("quadrature agrees with Monte Carlo (within 4 SE)", (z < 4) if z_scores else None, z,
             "largest |quadrature - MC| / SE" if z_scores else "no row used quadrature: nothing to compare"),
            ("Jensen: L_1 / N <= log p(x1|x2) for every decoder and class", jensen >= 0, jensen,
             "smallest log p(x1|x2) - L_1/N per point, less both errors"),
            ("stationarity: gradient of L_1 vanishes at theta_hat", gradient < 1e-8, gradient, "largest gradient norm"),
            ("stationarity: L_1(theta_hat) equals the closed-form bound", difference < 1e-8, difference, "largest relative difference"),
            ("stationarity: every perturbation of theta_hat lowers L_1", change < 0, change, "largest change of L_1"),
            (f"direct maximisation of L_1 reaches the bound (within 0.01 per point), {every}", short < 0.01, short, "largest bound - final per point"),
            (f"direct maximisation makes the decoder constant in g (spread ratio < 0.05), {every}", spread < 0.05, spread, "largest spread ratio")]


def comparison_findings(rows):
    """The paper's Fig. 2 claim and its consequences, MMVAE against MVAE in every class, as (name, holds: True,
    False or None for undecided, value, what the value is). Measured on trained models: no theorem implies them."""
    trained = {(r["model"], r["class"]): r for r in rows if r["decoder"] == "trained"}
    classes = sorted({c for _, c in trained})
    spread = largest([trained["mmvae", c]["spread_ratio"] / trained["mvae", c]["spread_ratio"] for c in classes])
    gap = largest([trained["mmvae", c]["gap"] / trained["mvae", c]["gap"] for c in classes])
    differences = np.array([trained["mvae", c]["conditional"] - trained["mmvae", c]["conditional"] for c in classes])
    errors = np.array([trained["mvae", c]["conditional_error"] + trained["mmvae", c]["conditional_error"] for c in classes])
    above, below = int(np.sum(differences - errors > 0)), int(np.sum(differences + errors < 0))
    sampled = any(trained[m, c]["conditional_method"] == "IS" for m in ("mvae", "mmvae") for c in classes)
    return [("Fig. 2: MMVAE spread ratio < 0.5 x MVAE's, every class", spread < 0.5, spread, "largest MMVAE / MVAE spread ratio"),
            ("MMVAE's gap to the bound < 0.25 x MVAE's, every class", gap < 0.25, gap, "largest MMVAE / MVAE gap"),
            (f"log p(x1|x2): the MVAE's exceeds the MMVAE's, every class (above in {above}, below in {below} of {len(classes)}, "
             "beyond both errors)", True if above == len(classes) else (False if below else None), smallest(differences),
             "smallest MVAE - MMVAE per point" + ("; importance-sampling estimates, lower bounds in expectation" if sampled else ""))]


def named_checks(rows, stationarity, direct, models, sweep=(), k_sample=()):
    """(checks, findings) of the run, each a list of {name, passed (True, False, None), value, measures}."""
    findings = (comparison_findings(rows) if {"mvae", "mmvae"} <= set(models) else []) + (sweep_findings(sweep) if sweep and "mmvae" in models else [])
    checks = theorem_checks(rows, stationarity, direct) + (k_sample_checks(k_sample) if k_sample else [])
    findings += k_sample_findings(k_sample) if k_sample else []
    as_dicts = lambda items: [{"name": n, "passed": None if p is None else bool(p), "value": float(v), "measures": m} for n, p, v, m in items]
    return as_dicts(checks), as_dicts(findings)


# ================================================================ the run

def trained_and_untrained(args, config, x1, labels, num_classes, print_fn):
    """({model: (params, history)}, {model: untrained params in x1's units}, direct maximisation per class)."""
    x2, order = S.one_hot(labels, num_classes), args.models[::-1]     # MoPoE and MMVAE+ train slowest: first
    tasks = ([("train", (model, x1, x2, args.seed, config)) for model in order]
             + [("direct", (x1[labels == c], c, num_classes, config, args.seed)) for c in range(num_classes)])
    results = run_tasks(tasks, args.jobs, print_fn)
    trained = {model: dict(zip(order, results))[model] for model in args.models}          # paper order again
    untrained = {model: untrained_params(model, config, x1, num_classes, args.seed) for model in args.models}
    return trained, untrained, results[len(args.models):]


def run(args, print_fn):
    """Everything the script computes, as one JSON-ready dict."""
    config = run_config(args)
    x1, labels, radial, num_classes = load_data(args, config)
    trained, untrained, direct = trained_and_untrained(args, config, x1, labels, num_classes, print_fn)
    keys = [(model, decoder, c) for model in args.models for decoder in ("trained", "untrained") for c in range(num_classes)]
    evaluations = run_tasks([("evaluate", (trained[model][0] if decoder == "trained" else untrained[model], model, x1, labels,
                                           num_classes, c, config, [args.seed, 4, index]))
                             for index, (model, decoder, c) in enumerate(keys)], args.jobs, print_fn)
    rows = [dict(model=model, decoder=decoder, **row) for (model, decoder, _), row in zip(keys, evaluations)]
    first = trained[args.models[0]][0]
    stationarity = [dict(check_stationarity(first, x1[labels == c], *class_label_posterior(first, args.models[0], num_classes, c),
                                            config, npr.default_rng([args.seed, 5, c])), **{"class": c}) for c in range(num_classes)]
    sweep = run_sweep(args, config, x1, labels, radial, print_fn) if args.sweep else []
    private = (private_latent_diagnostics(trained["mmvaeplus"][0], x1, labels, num_classes, npr.default_rng([args.seed, 8]))
               if "mmvaeplus" in trained else None)
    k_sample = ([dict(k_sample_terms(trained[model][0], model, x1[labels == c], c, num_classes, config["importance_samples"],
                                     npr.default_rng([args.seed, 9, index, c])), model=model)
                 for index, model in enumerate(args.models) if model in ("mmvae", "mopoe") for c in range(num_classes)]
                if config["importance_samples"] > 1 else [])
    return {"format": JSON_FORMAT, "config": dict(vars(args), **config), "rows": rows, "stationarity": stationarity,
            "direct_maximisation": direct, "sweep": sweep, "data_coherence": B.leave_one_out_coherence(x1, labels),
            "mmvaeplus_diagnostics": private, "k_sample_cross_terms": k_sample,
            **dict(zip(("checks", "findings"), named_checks(rows, stationarity, direct, args.models, sweep, k_sample))),
            "histories": {m: h.tolist() for m, (_, h) in trained.items()},
            "params": {m: tree_to_lists(p) for m, (p, _) in trained.items()}, "data": {"x1": x1.tolist(), "labels": labels.tolist()}}


def tree_to_lists(tree):
    """Parameters as nested lists, for JSON."""
    return S.tree_rebuild(tree, iter([np.asarray(leaf).tolist() for leaf in S.tree_leaves(tree)]))


def write_json(results, path):
    """Write results to path through a temporary file, so that a failure never leaves half a file."""
    temporary = f"{path}.partial"
    with open(temporary, "w") as f:
        json.dump(results, f)
    os.replace(temporary, path)


# ================================================================ printing

def format_table(rows):
    header = (f"{'model':9s} {'decoder':9s} {'class':>5s} {'bound':>8s} {'L_1':>9s} {'by':>5s} {'MC +- SE':>18s} {'gap':>8s}"
              f" {'log p(x1|x2) +- error':>21s} {'by':>7s} {'sigma':>6s} {'spread':>6s} {'sampled':>7s} {'coher.':>6s}")
    lines = ["Per datapoint (nats): bound = L_1(theta_hat); L_1 = the decoder under r_M(g|c), by Gauss-Hermite (GHn: n nodes "
             "per axis) or Monte Carlo (MC; error 4 SE); gap = bound - L_1; log p(x1|x2) under the same r_M, by the grid rule "
             "(gridn: n nodes per axis; error = its last change) or importance sampling (IS; error 4 replicate SE); sigma = "
             "decoder std; spread = cross-generated spread ratio of decoder means, sampled = of x1 ~ p(x1|g); coher. = label "
             "coherence", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:9s} {r['decoder']:9s} {r['class']:5d} {r['bound']:8.4f} {r['l1']:9.4f} {r['l1_method']:>5s}"
                     f" {r['monte_carlo']:9.4f} +- {r['monte_carlo_se']:.4f} {r['gap']:8.4f} {r['conditional']:11.4f} +- {r['conditional_error']:6.4f}"
                     f" {r['conditional_method']:>7s} {r['decoder_std']:6.3f} {r['spread_ratio']:6.3f} {r['spread_ratio_sampled']:7.3f} {r['coherence']:6.3f}")
    return "\n".join(lines)


def format_notes(results, config):
    """The notes under the table: where quadrature or the grid rule fell back to sampling, and the data's coherence."""
    notes = []
    for what, method, fallback, start, cap in (
            ("L_1", "l1_method", "Monte Carlo (error = 4 SE)", config["nodes"], config["max_nodes"]),
            ("log p(x1|x2)", "conditional_method", "importance sampling (error = 4 replicate SE)", config["grid_nodes"], MAX_GRID_NODES)):
        for dim in sorted({r["latent_size"] for r in results["rows"]}):
            fallbacks = [f"{r['model']} {r['decoder']} {r['class']}" for r in results["rows"] if r[method] in ("MC", "IS") and r["latent_size"] == dim]
            counts = node_counts(start, dim, cap)
            reason = (f"the tensor-product rule did not settle within {counts[-1]} nodes per axis" if counts else
                      f"a tensor-product rule would need more than {MAX_GRID_POINTS} nodes")
            if fallbacks:
                notes.append(f"{what} by {fallback} for {len(fallbacks)} rows with a {dim}-D latent, where {reason}: "
                             f"{', '.join(fallbacks[:4])}{' ...' if len(fallbacks) > 4 else ''}")
    sampled = [r["conditional_ess"] for r in results["rows"] if r["conditional_method"] == "IS"]
    if sampled:
        notes.append(f"Importance sampling of log p(x1|x2): median Kish ESS / K per row between {min(sampled):.3f} and {max(sampled):.3f}; "
                     "the estimates are stable to the error shown, which is not a proof of convergence")
    notes.append("Data's own label coherence (leave-one-out nearest neighbour), per class: "
                 + " ".join(f"{value:.3f}" for value in results["data_coherence"]))
    return "\n".join(notes)


def print_results(results, args, config):
    """The table, the notes, the extensions' tables, the checks and the findings."""
    if "study" in results:
        print(format_study(results))
    elif "views" in results:
        print(format_views(results))
    else:
        print(format_table(results["rows"]))
        print(format_notes(results, config))
    if results.get("mmvaeplus_diagnostics"):
        print("\n" + format_private_diagnostics(results["mmvaeplus_diagnostics"]))
    if results.get("sweep"):
        print("\n" + format_sweep(results["sweep"], args.models))
    if results.get("k_sample_cross_terms"):
        print("\n" + format_k_sample(results["k_sample_cross_terms"]))
    print("\nChecks (Theorem 1 and the numerics it is checked with; a FAIL sets the exit status):")
    for check in results["checks"]:
        print(f"  {({True: 'PASS', False: 'FAIL', None: 'SKIP'}[check['passed']])}  {check['name']}: {check['value']:.3g} ({check['measures']})")
    if results["findings"]:
        print("Findings (measured on these trained models; they do not set the exit status):")
    for finding in results["findings"]:
        print(f"  {({True: 'HOLDS', False: 'DOES NOT HOLD', None: 'UNDECIDED'}[finding['passed']])}  {finding['name']}: "
              f"{finding['value']:.3g} ({finding['measures']})")


# ================================================================ arguments

def int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def writable_folder(folder):
    """None if a file can be created in folder (tried: a read-only or virtual file system says no only then), else why not."""
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist"
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return None
    except OSError as error:
        return f"cannot write in the folder {folder}: {error.strerror}"


def input_file(text):
    """An argparse type: an existing file to read."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return text


def positive_number(text):
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def output_file(text):
    """An argparse type: a path to write a file to, neither a folder nor another kind of non-regular file
    (a FIFO, a device), in a folder where a file can be created."""
    path = os.path.abspath(text)
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"{text} is not a regular file (a FIFO, a device?); give a file name")
    problem = writable_folder(os.path.dirname(path))
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--seed", type=int_at_least(0), default=0, help="seed for data, initialisation and training")
    add("--data", choices=("pinwheel", "digits", "digit-views"), default="pinwheel", help="the paper's pinwheel, or beyond the "
        "paper: handwritten digits with their labels (about a minute), or digits paired with a pooled view of themselves (--augment)")
    add("--classes", type=int_at_least(2), default=2, help="number of pinwheel arms (labels), >= 2")
    add("--per-class", type=int_at_least(MIN_PER_CLASS), default=None,
        help=f"points per class (default {FULL['per_class']}, --quick {QUICK['per_class']})")
    add("--steps", type=int_at_least(1), default=None,
        help=f"training steps per model (default {S.NUM_STEPS} for 2 classes, {default_steps(3)} for more; --quick {QUICK['steps']})")
    add("--models", nargs="+", choices=B.MODELS, default=list(S.PAPER_MODELS),
        help="models to train and check: the paper's, and beyond it mopoe (MoPoE) and mmvaeplus (MMVAE+)")
    add("--jobs", type=int_at_least(1), default=min(2, os.cpu_count() or 1), help="processes for training (results do not depend on it)")
    add("--quick", action="store_true", help="smaller everything (for tests)")
    add("--json", metavar="PATH", type=output_file, help="write every number and check to PATH")
    add("--quiet", action="store_true", help="print only the table, the checks and the time")
    add_extension_arguments(add)
    args = parser.parse_args(argv)
    check_combinations(parser, args)
    args.models, args.sweep_ks = list(dict.fromkeys(args.models)), args.sweep_ks or [1, 2, 4, 8, 16, 32]
    args.augment = args.augment or ("none" if args.data == "digit-views" else None)
    return args


def add_extension_arguments(add):
    """The flags of what goes beyond the paper."""
    add("--private-dim", type=int_at_least(1), default=None, help="MMVAE+'s private latent size (default 1 on the pinwheel, 4 on digits)")
    add("--auxiliary", choices=tuple(B.AUXILIARY), default=None, help="MMVAE+'s auxiliary priors: free log-variances (default), "
        "softplus scales (the authors' Normal variant) or softmax scales of mean one (the authors' default)")
    add("--decoder-std", type=positive_number, default=None, metavar="S",
        help="fix the x1 decoder's std at S in x1's units (default: learned, as in the paper's models)")
    add("--importance-samples", type=int_at_least(1), default=1, metavar="K",
        help="train the MMVAE and MoPoE with K importance samples per stratum (Shi et al.'s m_iwae_looser)")
    add("--sweep", action="store_true", help="also run the surjectivity sweep (about a minute)")
    add("--sweep-ks", nargs="+", type=int_at_least(1), default=None, metavar="K", help="sub-labels per arm for --sweep (default 1 2 4 8 16 32)")
    add("--study", nargs="+", choices=tuple(STUDY_PARTS), default=None,
        help="instead of the check: what controls the collapse's strength (minutes to an hour)")
    add("--study-seeds", nargs="+", type=int_at_least(0), default=None, metavar="SEED",
        help="seeds of --study (default 0-4 on the pinwheel, 0-2 on digits)")
    add("--augment", choices=("none", "flip"), default=None,
        help="with --data digit-views: flip adds (mirrored x1, the same x2) for every pair (default none)")


def flags_not_applying(args):
    """[(flag, what it applies to)] for every flag given where it does not apply."""
    views, study = args.data == "digit-views", bool(args.study)
    return [(flag, reason) for flag, given, reason in (
        ("--classes", args.classes != 2 and args.data != "pinwheel", "the pinwheel"),
        ("--per-class", args.per_class is not None and args.data != "pinwheel", "the pinwheel"),
        ("--sweep", args.sweep and (args.data != "pinwheel" or study), "the check on the pinwheel"),
        ("--sweep-ks", args.sweep_ks is not None and not args.sweep, "--sweep, which is not given"),
        ("--private-dim", args.private_dim is not None and "mmvaeplus" not in args.models, "MMVAE+ (--models ... mmvaeplus)"),
        ("--auxiliary", args.auxiliary is not None and ("mmvaeplus" not in args.models or study), "MMVAE+ in the check"),
        ("--importance-samples", args.importance_samples > 1 and (not {"mmvae", "mopoe"} & set(args.models) or views or study),
         "the MMVAE and MoPoE in the check (--models ... mmvae)"),
        ("--decoder-std", args.decoder_std is not None and (views or study), "the check on the pinwheel or digits"),
        ("--models", (views and not set(args.models) <= set(S.PAPER_MODELS)) or (study and args.models != list(S.PAPER_MODELS)),
         "the check (--study sets its own; the views train the paper's two)"),
        ("--study", study and views, "--data pinwheel or digits"),
        ("--study-seeds", args.study_seeds is not None and not study, "--study, which is not given"),
        ("--augment", args.augment is not None and not views, "--data digit-views")) if given]


def check_combinations(parser, args):
    """parser.error for flags that do not apply to the others given, and for a missing or altered digits file."""
    not_applying = flags_not_applying(args)
    if not_applying:
        parser.error("; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    per_class = args.per_class or (QUICK if args.quick else FULL)["per_class"]
    if args.sweep and max(args.sweep_ks or [1]) > per_class:
        parser.error(f"--sweep-ks: k = {max(args.sweep_ks)} exceeds the {per_class} points per class")
    if args.data in ("digits", "digit-views"):
        try:
            B.load_digits()
        except ValueError as error:
            parser.error(str(error))


def main(argv=None):
    args = parse_args(argv)
    config, start = run_config(args), time.perf_counter()
    print("theorem_check configuration: " + ", ".join(f"{k}={v}" for k, v in vars(args).items())
          + f", steps per model={config['steps']}", flush=True)
    results = (run_study if args.study else run_views if args.data == "digit-views" else run)(args, None if args.quiet else print)
    print_results(results, args, config)
    results["seconds"] = time.perf_counter() - start
    results["all_passed"] = all(c["passed"] is not False for c in results["checks"])     # SKIP: not decidable
    if args.json:
        write_json(results, args.json)
        print(f"wrote {args.json}")
    print(f"total time {results['seconds']:.1f} s")
    return 0 if results["all_passed"] else 1


# ================================================================ beyond the paper: Theorem 1 at K > 1 importance samples (--importance-samples)

def k_sample_counts(num_importance):
    """K = 1, 2, 4, ... up to num_importance, and num_importance itself."""
    return sorted({2 ** i for i in range(int(np.log2(num_importance)) + 1)} | {num_importance})


def k_sample_terms(params, model, x1_class, c, num_classes, num_importance, rng, replicates=200):
    """The K-sample cross term (B.k_sample_cross_term) of a trained decoder and of the constant class-mean decoder
    theta_hat, per point, at K = 1, 2, 4, ..., num_importance (the K the model was trained with)."""
    mean, log_var = class_label_posterior(params, model, num_classes, c)
    theta_hat, counts = constant_mean_decoder(params, x1_class), k_sample_counts(num_importance)
    trained = [B.k_sample_cross_term(params, x1_class, mean, log_var, rng, k, replicates) for k in counts]
    constant = [B.k_sample_cross_term(theta_hat, x1_class, mean, log_var, rng, k, replicates)[0] for k in counts]
    return {"class": c, "k": counts, "values": [v for v, _ in trained], "errors": [e for _, e in trained],
            "constant_decoder": constant, "bound": constant_mean_bound(x1_class) / len(x1_class)}


def k_sample_checks(terms):
    """What holds at every K: the constant-mean decoder scores exactly the bound, and the K-sample cross term does
    not decrease with K (Burda et al. 2016), within 4 standard errors of the difference."""
    constant = largest([abs(v - t["bound"]) for t in terms for v in t["constant_decoder"]])
    steps = [t["values"][i + 1] - t["values"][i] + 4.0 * np.hypot(t["errors"][i], t["errors"][i + 1])
             for t in terms for i in range(len(t["k"]) - 1)]
    return [("K-sample cross term: the constant class-mean decoder scores the bound at every K", constant < 1e-9, constant,
             "largest |value - bound| per point"),
            ("K-sample cross term does not decrease with K, every trained decoder and class (within 4 SE)", smallest(steps) >= 0,
             smallest(steps), "smallest increase from K to the next K, plus 4 SE")]


def k_sample_findings(terms):
    """Whether the trained decoders beat the constant class mean at the K they were trained with."""
    excess = [t["values"][-1] - t["bound"] for t in terms]
    beyond = sum(e - 4.0 * t["errors"][-1] > 0 for e, t in zip(excess, terms))
    return [(f"at K = {terms[0]['k'][-1]}, the trained decoder's K-sample cross term exceeds the bound (in {beyond} of "
             f"{len(terms)} model-classes, beyond 4 SE)", beyond > 0, largest(excess), "largest K-sample cross term - bound per point")]


def format_k_sample(terms):
    header = f"{'model':6s} {'class':>5s} {'bound':>8s} " + " ".join(f"{'K=' + str(k):>16s}" for k in terms[0]["k"])
    lines = ["K-sample cross term (1/N) sum_n E log (1/K) sum_k f_1(x1^(n)|tau_1(g_k)), g_k ~ r_M, per point, +- SE "
             "(200 replicates); the constant class-mean decoder scores the bound at every K", header, "-" * len(header)]
    for t in terms:
        lines.append(f"{t['model']:6s} {t['class']:5d} {t['bound']:8.4f} "
                     + " ".join(f"{v:8.4f} +- {e:.4f}" for v, e in zip(t["values"], t["errors"])))
    return "\n".join(lines)


# ================================================================ beyond the paper: what controls the collapse's strength (--study)

# The settings the study varies, one at a time: the x1 decoder's std fixed in x1's units (None: learned), from about
# a class's spread (0.26 on the pinwheel, 0.16-0.24 on digits) down to a tenth of the smallest; K importance samples
# per stratum; MMVAE+'s auxiliary-prior parameterisation.
STUDY = {"pinwheel": {"decoder-std": [None, 0.25, 0.15, 0.1, 0.05, 0.025], "seeds": [0, 1, 2, 3, 4]},
         "digits": {"decoder-std": [None, 0.2, 0.1, 0.05, 0.02], "seeds": [0, 1, 2]}}
STUDY_KS = [1, 2, 4, 8, 16, 32]
STUDY_PARTS = {"decoder-std": ("decoder_std", ("mvae", "mmvae")), "importance-samples": ("importance_samples", ("mmvae", "mopoe")),
               "auxiliary": ("auxiliary", ("mmvaeplus",))}


def study_settings(parts, data):
    """[(part, value, model)] of the study, and the distinct trainings they need as {(model, option, value)}: the
    learned-std MVAE and MMVAE at K = 1 serve as every part's reference."""
    settings = []
    for part in parts:
        option, models = STUDY_PARTS[part]
        values = {"decoder-std": STUDY[data]["decoder-std"], "importance-samples": STUDY_KS, "auxiliary": list(B.AUXILIARY)}[part]
        settings += [(part, value, model) for value in values for model in models]
        settings += [(part, None, reference) for reference in ("mvae", "mmvae") if reference not in models]   # reference rows
    return settings


def study_key(part, value, model):
    """The training a study setting needs: (model, decoder std, K, auxiliary); equal keys train once."""
    option = STUDY_PARTS[part][0] if value is not None else None
    return (model, value if option == "decoder_std" else None, value if option == "importance_samples" else 1,
            (value if option == "auxiliary" else "free") if model == "mmvaeplus" else None)


def study_task(key, x1, labels, num_classes, seed, config):
    """Train one study setting and evaluate its trained rows (run in a worker process)."""
    model, decoder_std, importance_samples, auxiliary = key
    config = dict(config, decoder_std=decoder_std, importance_samples=importance_samples, auxiliary=auxiliary or "free")
    params, _ = train_model(model, x1, S.one_hot(labels, num_classes), seed, config)
    rows = [evaluate_class(params, model, x1, labels, num_classes, c, config, npr.default_rng([seed, 10, c])) for c in range(num_classes)]
    if model == "mmvaeplus":
        for row in rows:
            x2_class = S.one_hot(np.full(row["num_points"], row["class"]), num_classes)
            row.update({f"spread_w_{source}": S.spread_ratio(B.mmvaeplus_generate_from_labels(
                params, x2_class, npr.default_rng([seed, 11, row["class"]]), source), x1[labels == row["class"]]) for source in ("prior", "auxiliary", "zero")})
            row["auxiliary_std"] = np.exp(0.5 * B.auxiliary_log_vars(params)[0]).tolist()
    return rows


def run_study(args, print_fn):
    """Every setting of --study for every seed: trained rows, the study's checks (Eq. 6 and Jensen on every row)."""
    config = run_config(args)
    x1, labels, _, num_classes = load_data(args, config)
    settings, seeds = study_settings(args.study, args.data), args.study_seeds or STUDY[args.data]["seeds"]
    keys = list(dict.fromkeys(study_key(*setting) for setting in settings))
    jobs = [(key, seed) for key in keys for seed in seeds]
    evaluated = run_tasks([("study", (key, x1, labels, num_classes, seed, config)) for key, seed in jobs], args.jobs, print_fn)
    rows = {(key, seed): rows for (key, seed), rows in zip(jobs, evaluated)}
    entries = [{"part": part, "value": value, "model": model, "seed": seed, "rows": rows[study_key(part, value, model), seed]}
               for part, value, model in settings for seed in seeds]
    all_rows = [row for key_rows in rows.values() for row in key_rows]
    checks = study_checks(all_rows)
    as_dicts = [{"name": n, "passed": None if p is None else bool(p), "value": float(v), "measures": m} for n, p, v, m in checks]
    return {"format": JSON_FORMAT, "config": dict(vars(args), **config), "study": entries, "checks": as_dicts, "findings": []}


def study_checks(rows):
    """Eq. (6) and Jensen on every trained row of the study: they hold at every setting, including K > 1 and a fixed std."""
    margin, jensen = smallest([r["bound"] - r["l1"] + r["l1_error"] for r in rows]), smallest([jensen_margin(r) for r in rows])
    return [("inequality (6): bound >= L_1 for every setting, seed and class of the study", margin >= 0, margin,
             "smallest (bound - L_1 + L_1's error) per point"),
            ("Jensen: L_1 / N <= log p(x1|x2) for every setting, seed and class of the study", jensen >= 0, jensen,
             "smallest log p(x1|x2) - L_1/N per point, less both errors")]


def summarise(values):
    """'mean [min, max]' of values."""
    return f"{np.mean(values):7.3f} [{np.min(values):6.3f}, {np.max(values):6.3f}]"


def format_study(results):
    """One table per part: each setting and model, over seeds and classes: mean [min, max]."""
    lines, entries = [], results["study"]
    for part in dict.fromkeys(e["part"] for e in entries):
        header = (f"{'setting':>10s} {'model':9s} {'spread ratio':>24s} {'sampled spread':>24s} {'gap to bound':>24s}"
                  f" {'log p(x1|x2)':>24s} {'coherence':>24s} {'sigma':>7s}")
        lines += [f"Study: {part} (beyond the paper); per class and seed, mean [min, max]; gap and log p per point", header, "-" * len(header)]
        for value, model in dict.fromkeys((e["value"], e["model"]) for e in entries if e["part"] == part):
            rows = [r for e in entries if (e["part"], e["value"], e["model"]) == (part, value, model) for r in e["rows"]]
            setting = "learned" if value is None and part == "decoder-std" else ("-" if value is None else str(value))
            lines.append(f"{setting:>10s} {model:9s} " + " ".join(summarise([r[field] for r in rows]) for field in
                         ("spread_ratio", "spread_ratio_sampled", "gap", "conditional", "coherence")) + f" {np.mean([r['decoder_std'] for r in rows]):7.3f}")
        if part == "auxiliary":
            lines.append(format_auxiliary_study(entries))
        lines.append("")
    return "\n".join(lines)


def format_auxiliary_study(entries):
    """MMVAE+'s label -> x1 spread with w_1 from p(w_1), r_1 and 0, and r_1's learned std, per parameterisation."""
    lines = [f"{'MMVAE+':>10s} {'w_1 ~ p(w_1)':>24s} {'w_1 ~ r_1':>24s} {'w_1 = 0':>24s}  r_1 std (over seeds)"]
    for value in dict.fromkeys(e["value"] for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus"):
        rows = [r for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus" and e["value"] == value for r in e["rows"]]
        stds = sorted({round(s, 3) for e in entries if e["part"] == "auxiliary" and e["value"] == value and e["model"] == "mmvaeplus"
                       for s in e["rows"][0]["auxiliary_std"]})
        lines.append(f"{value:>10s} " + " ".join(summarise([r[f"spread_w_{source}"] for r in rows]) for source in ("prior", "auxiliary", "zero"))
                     + f"  {stds[0]:.3f}..{stds[-1]:.3f}")
    return "\n".join(lines)


# ================================================================ beyond the paper: the augmentation warning (--data digit-views)

VIEWS = dict(latent_dim=8, hidden=(128,), steps=3000, peak_step_size=0.005, group_draws=64, shown=12)
VIEWS_QUICK = dict(VIEWS, hidden=(64,), steps=600, peak_step_size=0.02, group_draws=16)


def group_bound(x1_groups):
    """Eq. (7), right, for each group of G rows sharing one x2 (x1_groups (N, G, D)): -(G D / 2)(log(2 pi v) + 1), v the
    group's isotropic MLE variance. +inf where v = 0: a group of one point, or a digit equal to its mirror image."""
    variance = np.mean((x1_groups - np.mean(x1_groups, axis=1, keepdims=True)) ** 2, axis=(1, 2))      # (N,)
    size = np.shape(x1_groups)[1] * np.shape(x1_groups)[2]
    with np.errstate(divide="ignore"):
        return -0.5 * size * (np.log(2.0 * np.pi * variance) + 1.0)


def group_cross_term(params, model, x1_groups, x2, rng, num_draws):
    """Eq. (7), first line, for each group (x1_groups (N, G, D), one x2 row each): E_{g ~ q(g|x2_n)} sum over the group
    of log f_1(x | tau_1(g)), through the group's statistics as class_log_likelihood: per draw, the sum over groups (S,)."""
    mean, log_var = S.label_posterior.__wrapped__(params, x2, model)              # (N, D)
    mu = S.decode_mean_x1(params, S.sample_normal(mean, log_var, rng, (num_draws,)))   # (S, N, D1)
    size, dim = np.shape(x1_groups)[1], np.shape(x1_groups)[2]
    x_bar, log_var_x = np.mean(x1_groups, axis=1), params["decoder_x1_log_var"]   # (N, D1)
    scatter = np.sum((x1_groups - x_bar[:, None, :]) ** 2, axis=(1, 2))           # (N,)
    per_group = (-0.5 * size * dim * (np.log(2.0 * np.pi) + log_var_x)
                 - 0.5 * (scatter + size * np.sum((x_bar - mu) ** 2, axis=-1)) * np.exp(-log_var_x))     # (S, N)
    return np.sum(per_group, axis=1)


def views_model_row(params, model, x1, rng):
    """What model generates from the pooled views of the digits x1: asymmetry kept, and what each sample is nearest."""
    generated = B.views_generate_x1(params, B.pooled_view(x1), rng, model)
    return {"mirror_asymmetry": B.mirror_asymmetry(generated) / B.mirror_asymmetry(x1),
            "mirror_asymmetry_absolute": B.mirror_asymmetry(generated), "nearest": B.nearest_of_three(generated, x1),
            "decoder_std": float(np.exp(0.5 * params["decoder_x1_log_var"]))}


def views_group_check(params, model, x1, augment, config, rng):
    """Inequality (6) per group S_c = the rows sharing one x2 ({x1, mirror(x1)} with flip, {x1} without), summed over
    the groups whose bound is finite: (sum of bounds, of L_1, SE of L_1, number of groups, of infinite bounds)."""
    groups = np.stack([x1, B.mirror(x1)], axis=1) if augment == "flip" else x1[:, None, :]      # (N, G, D1)
    bounds = group_bound(groups)
    finite = np.isfinite(bounds)
    totals = group_cross_term(params, model, groups[finite], B.pooled_view(x1)[finite], rng, config["group_draws"])
    return {"model": model, "bound": float(np.sum(bounds[finite])), "l1": float(np.mean(totals)),
            "l1_se": float(np.std(totals, ddof=1) / np.sqrt(len(totals))), "groups": len(bounds), "infinite": int(np.sum(~finite)),
            "largest_group_bound": float(np.max(bounds)), "smallest_group_asymmetry": float(np.min(np.mean(np.abs(x1 - B.mirror(x1)), axis=1)))}


def views_task(model, x1, augment, seed, config):
    """Train model on the views and evaluate it (in a worker process)."""
    views_x1, views_x2 = B.digit_views(x1, augment)
    params, history = B.train_views(model, views_x1, views_x2, seed=seed, latent_dim=config["latent_dim"], hidden=config["hidden"],
                                    num_steps=config["steps"], print_fn=None, step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]))
    row = dict(views_model_row(params, model, x1, npr.default_rng([seed, 12])), model=model)
    return params, history, row, views_group_check(params, model, x1, augment, config, npr.default_rng([seed, 13]))


def run_views(args, print_fn):
    """--data digit-views: the MVAE and the MMVAE on the digits' paired views, with or without flip augmentation."""
    config = run_config(args)
    x1, _ = B.load_digits()
    results = run_tasks([("views", (model, x1, args.augment, args.seed, config)) for model in args.models], args.jobs, print_fn)
    rows, groups = [r[2] for r in results], [r[3] for r in results]
    checked = all(g["infinite"] < g["groups"] for g in groups)
    margin = smallest([(g["bound"] - g["l1"] + 4.0 * g["l1_se"]) / g["groups"] for g in groups]) if checked else float("nan")
    checks = [("inequality (6) per group sharing one x2, summed over the groups of finite bound", (margin >= 0) if checked else None,
               margin, "smallest (sum of bounds - sum of L_1 + 4 SE) per group" if checked else
               "every group has a single point: its MLE variance is 0 and its bound +inf; nothing to compare")]
    return {"format": JSON_FORMAT, "config": dict(vars(args), **config), "views": rows, "groups": groups,
            "data_mirror_asymmetry": B.mirror_asymmetry(x1), "checks": [{"name": n, "passed": p, "value": float(v), "measures": m}
                                                                        for n, p, v, m in checks],
            "findings": views_findings(rows, args.augment), "shown": [int(i) for i in npr.default_rng([args.seed, 14]).choice(len(x1), config["shown"], replace=False)],
            "params": {r[2]["model"]: tree_to_lists(r[0]) for r in results}, "histories": {r[2]["model"]: r[1].tolist() for r in results}}


def views_findings(rows, augment):
    """What the models keep of the digits' left-right asymmetry, as dicts of check form (not gating)."""
    kept = {r["model"]: r for r in rows}
    if "mmvae" not in kept:
        return []
    verdict = kept["mmvae"]["mirror_asymmetry"] < 0.5 if augment == "flip" else kept["mmvae"]["mirror_asymmetry"] > 0.8
    name = (f"with flip augmentation the MMVAE keeps less than half the data's left-right asymmetry" if augment == "flip" else
            "without augmentation (one-to-one pairs) the MMVAE keeps more than 0.8 of the data's left-right asymmetry")
    return [{"name": name, "passed": bool(verdict), "value": kept["mmvae"]["mirror_asymmetry"],
             "measures": f"asymmetry of its x2 -> x1 samples / the data's; nearest the mirror average: {kept['mmvae']['nearest']['average']:.3f}"}]


def format_views(results):
    header = f"{'model':6s} {'asymmetry kept':>14s} {'nearest: original':>18s} {'mirror':>7s} {'average':>8s} {'sigma':>6s}"
    lines = [f"Digit views (beyond the paper), --augment {results['config']['augment']}: x1 = the 8 x 8 digit, x2 = its 4 x 4 pooled "
             f"view; x2 -> x1 samples (decoder means) of every digit. Asymmetry = mean |x - mirror(x)|, relative to the data's "
             f"{results['data_mirror_asymmetry']:.4f}", header, "-" * len(header)]
    for r in results["views"]:
        lines.append(f"{r['model']:6s} {r['mirror_asymmetry']:14.3f} {r['nearest']['original']:18.3f} {r['nearest']['mirror']:7.3f}"
                     f" {r['nearest']['average']:8.3f} {r['decoder_std']:6.3f}")
    group = results["groups"][0]
    if group["infinite"] == group["groups"]:
        lines.append("Theorem 1 per group (the rows sharing one x2): every group is a single point (one-to-one pairs), so every "
                     "bound is +inf (MLE variance 0): the theorem has nothing to say, and the cross term nothing to average over")
        return "\n".join(lines)
    lines.append("Theorem 1 per group (the rows sharing one x2), per group: " + "; ".join(
        f"{g['model']}: bound {g['bound'] / g['groups']:.2f}, L_1 {g['l1'] / g['groups']:.2f} +- {g['l1_se'] / g['groups']:.3f}"
        f" ({g['infinite']} of {g['groups']} groups with an infinite bound left out)" for g in results["groups"]))
    lines.append(f"A group's bound grows without limit as its digit nears mirror symmetry (MLE variance -> 0): the most symmetric digit "
                 f"(asymmetry {group['smallest_group_asymmetry']:.4f} per pixel) has the largest, {group['largest_group_bound']:.1f} nats; "
                 "an exactly symmetric one would have +inf and nothing to check")
    return "\n".join(lines)


# ================================================================ beyond the paper: the degree of surjectivity (--sweep)

def within_label_variance(x, labels):
    """Mean over labels j of tr Cov(x | label j): the variation that the labels do not describe."""
    return float(np.mean([S.total_variance(x[labels == j]) for j in np.unique(labels)]))


def label_gap(params, model, x1, fine, num_labels, nodes):
    """(sum_j bound_j - L_1,j) / N over the fine labels j: Eq. (6)'s gap, per datapoint."""
    gaps = [constant_mean_bound(x1[fine == j])
            - cross_modal_term_quadrature(params, x1[fine == j], *class_label_posterior(params, model, num_labels, j), nodes)
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
    refined = [B.refine_labels(radial, labels, k) for k in args.sweep_ks]
    tasks = [("train", (model, x1, x2, args.seed, config)) for _, x2 in refined for model in args.models]
    trained = iter(run_tasks(tasks, args.jobs, print_fn))
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
    return [("sweep: the MMVAE's cross-generated x1 vary less within a label than the data, at every k", min(lost) > 0, min(lost),
             "smallest lost variance"),
            ("sweep: the MMVAE's lost variance decreases as k grows", all(d < 0 for d in steps), max(steps) if steps else 0.0,
             "largest increase between consecutive k"),
            ("sweep: with >= 100 points per label the MMVAE loses more than half the within-label variance",
             bool(surjective) and min(surjective) > 0.5, min(surjective) if surjective else 0.0,
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


# ================================================================ beyond the paper: what MMVAE+'s private latent carries

def private_latent_class(params, x1_class, x2_class, mean, std, rng):
    """One class of private_latent_diagnostics."""
    shared = B.shared_dim(params)
    g, w = mean[:, :shared], mean[:, shared:]
    only_g = S.decode_mean_x1(params, np.concatenate([g, np.zeros_like(w)], axis=1))
    only_w = S.decode_mean_x1(params, np.concatenate([np.zeros_like(g) + g.mean(axis=0), w], axis=1))
    return {"g_means_variance": S.total_variance(g), "w_means_variance": S.total_variance(w),
            "g_posterior_std": float(np.mean(std[:, :shared])), "w_posterior_std": float(np.mean(std[:, shared:])),
            "reconstruction_spread_g_only": S.spread_ratio(only_g, x1_class), "reconstruction_spread_w_only": S.spread_ratio(only_w, x1_class),
            **{f"spread_w_{source}": S.spread_ratio(B.mmvaeplus_generate_from_labels(params, x2_class, rng, source), x1_class)
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
    auxiliary_std = np.exp(0.5 * B.auxiliary_log_vars(params))                    # (M, P)
    return {"auxiliary_std_x1": auxiliary_std[0].tolist(), "auxiliary_std_x2": auxiliary_std[1].tolist(),
            "private_prior_std": float(np.exp(0.5 * B.private_prior_log_var(params))), "classes": classes}


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


if __name__ == "__main__":
    sys.exit(main())
