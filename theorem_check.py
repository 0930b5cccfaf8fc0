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
import functools  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy.random as npr  # noqa: E402
from autograd import grad  # noqa: E402
from numpy.polynomial.hermite_e import hermegauss  # noqa: E402

import beyond_the_paper as B  # noqa: E402
import data_sets as D  # noqa: E402
import log_likelihood as L  # noqa: E402
import runs as R  # noqa: E402
import surjvae_np as S  # noqa: E402

JSON_FORMAT = 4                 # the layout of --json; plots.py --from-json reads this version only
QUADRATURE_TOLERANCE = 1e-4     # relative change of L_1 at which the node doubling stops
MAX_GAUSS_HERMITE_NODES = 300   # numpy's hermegauss overflows (NaN weights) from about 350 nodes on
MIN_PER_CLASS = 20              # smaller classes are too few points for the direct-maximisation check
STEPS_BEYOND_TWO_CLASSES = 3 * S.NUM_STEPS    # 3+ pinwheel classes (2: S.NUM_STEPS): doubling either moves the spread less than the seeds


# ================================================================ Theorem 1: the two sides of Eq. (6)

def mle_variance(x1_class):
    """The isotropic-Gaussian MLE variance: the mean squared deviation from the class mean, over points and dims."""
    return np.mean((x1_class - np.mean(x1_class, axis=0)) ** 2)


def constant_mean_bound(x1_class):
    """Eq. (7), right: sum_n log f_1(x1^(n) | tau_hat) = -(N D / 2)(log(2 pi sigma_hat^2) + 1), tau_hat the MLE."""
    num, dim = np.shape(x1_class)
    return -0.5 * num * dim * (np.log(2.0 * np.pi * mle_variance(x1_class)) + 1.0)


def class_log_likelihood(params, x1_class, g):
    """sum_{n in S_c} log f_1(x1^(n) | tau_1(g)) at each g (K, D) -> (K,), exactly -(N D / 2) log(2 pi s^2) - (sum_n |x_n -
    xbar|^2 + N |xbar - mu(g)|^2) / (2 s^2) for isotropic f_1 of mean mu(g): K decoder calls, not K N densities (tested)."""
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
    """Eq. (7), first line: L_1 = int r~_M(g) sum_n log f_1(x1^(n) | tau_1(g)) dg, by Gauss-Hermite: every n in S_c shares
    r~_M = N(label_mean, diag exp(label_log_var)), so the integral is over g in R^D once. Differentiable in params."""
    z, weights = gauss_hermite(num_nodes, np.shape(label_mean)[-1])
    g = label_mean + np.exp(0.5 * label_log_var) * z                              # (K, D)
    return weights @ class_log_likelihood(params, x1_class, g)


def converged_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 by Gauss-Hermite quadrature, the nodes per axis doubled from config["nodes"] (L.node_counts) until its relative
    change is below QUADRATURE_TOLERANCE: (L_1, error = the last change, nodes), or None (the caller uses Monte Carlo)."""
    value = None
    for nodes in L.node_counts(config["nodes"], np.shape(label_mean)[-1], config["max_nodes"]):
        previous, value = value, cross_modal_term_quadrature(params, x1_class, label_mean, label_log_var, nodes)
        if previous is not None and abs(value - previous) < QUADRATURE_TOLERANCE * abs(value):
            return value, abs(value - previous), nodes
    return None


def class_label_posterior(params, model, num_classes, c):
    """(mean, log_var) (D,) of r_M(g|c) that L_1 integrates over: what each model generates from (MMVAE+: (g, w~_1) ~ q r_1)."""
    mean, log_var = B.label_latent(params, S.one_hot(np.array([c]), num_classes), model, private="auxiliary")
    return mean[0], log_var[0]


# ================================================================ Theorem 1: stationarity and direct maximisation

def constant_mean_decoder(params, x1_class):
    """Eq. (6)-(7): theta_hat inside the decoder's parameterisation: last layer W = 0, b = class mean, log-variance = log MLE."""
    decoder = [dict(layer) for layer in params["decoder_x1"]]
    decoder[-1] = {"W": np.zeros_like(decoder[-1]["W"]), "b": np.mean(x1_class, axis=0)}
    return dict(params, decoder_x1=decoder, decoder_x1_log_var=np.array(np.log(mle_variance(x1_class))))


def deterministic_cross_modal_term(params, x1_class, label_mean, label_log_var, config):
    """L_1 as a deterministic, differentiable function of params: quadrature with config["nodes"] per axis up to 2-D g, else
    the mean over config["fixed_draws"] fixed draws. Either way theta_hat attains exactly the bound and maximises it."""
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
    """Theorem 1 (Eq. 6) at theta_hat: the gradient of L_1 (all parameters), and L_1 along random decoder directions."""
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
    """Maximise L_1 / N_c alone over the x1 decoder and the label expert with Adam, from a random start (decoder std 1), the
    step size decaying linearly from config["direct_peak_step_size"] to 0: the stochastic optimum reached, not circled."""
    x2_class = S.one_hot(np.full(np.shape(x1_class)[0], c), num_classes)
    params = S.init_params(npr.default_rng([seed, 2]), num_classes=num_classes, latent_dim=config["latent_dim"],
                           data_dim=np.shape(x1_class)[1], hidden=config["hidden"], decoder_std=1.0)
    num_steps, peak = config["direct_steps"], config["direct_peak_step_size"]

    def per_point_l1(p, x1, x2, rng):
        return S.cross_modal_term.__wrapped__(p, x1, x2, rng, num_samples=config["direct_samples"]) / np.shape(x1)[0]   # checked at maximise's edge
    params, history = S.maximise(per_point_l1, params, x1_class, x2_class, seed=seed, num_steps=num_steps, batch_size=None,
                                 step_size=lambda t: peak * (1.0 - t / num_steps), print_fn=None, name="L_1")
    final = deterministic_cross_modal_term(params, x1_class, *class_label_posterior(params, "mmvae", num_classes, c), config)
    generated = S.generate_from_labels(params, x2_class, npr.default_rng([seed, 3]), "mmvae")
    return {"class": c, "bound": constant_mean_bound(x1_class) / len(x1_class), "final": final / len(x1_class),
            "history": history.tolist(), "spread_ratio": S.spread_ratio(generated, x1_class)}


# ================================================================ the run's configuration and data

# nodes: Gauss-Hermite nodes per latent dimension to start from, doubled up to max_nodes until L_1 stops moving, else
# Monte Carlo (mc_repeats x mc_draws per point: many repeats, so that its SE is itself well estimated). fixed_draws: the
# deterministic L_1's draws beyond 2 latent dimensions. log p(x1|x2) (L.log_p_x1_given_x2): the grid from grid_nodes
# per axis (at most 3 latent dimensions), else importance sampling with conditional_samples draws per point.
QUICK = dict(per_class=100, steps=250, nodes=32, max_nodes=256, mc_repeats=40, mc_draws=4, direct_steps=150, directions=4, grid_nodes=32,
             conditional_samples=500, latent_dim=2, hidden=(32,), peak_step_size=S.STEP_SIZE, fixed_draws=256, direct_peak_step_size=0.05, direct_samples=4)
FULL = dict(QUICK, per_class=500, steps=None, nodes=64, mc_repeats=80, direct_steps=300, directions=8, conditional_samples=2000)
# Digits (beyond the paper): all 1797 images, 10 labels, latent 8 (docs/digits.md). Direct maximisation: 1200 steps at peak
# 0.01 (600 steps at 0.02 leave class 8 of seed 0 0.065 nats per image short of the bound; these, every class within 0.002).
DIGITS = dict(FULL, per_class=None, steps=3000, latent_dim=8, hidden=(128,), peak_step_size=0.005, direct_steps=1200,
              direct_peak_step_size=0.01, direct_samples=2, private_dim=4)
DIGITS_QUICK = dict(DIGITS, steps=600, peak_step_size=0.02, mc_repeats=40, directions=4, hidden=(64,), direct_steps=600,
                    direct_peak_step_size=0.02, conditional_samples=200, fixed_draws=64)


def run_config(args):
    """The run's sizes and architecture: QUICK, FULL or the digits', with --per-class, --steps, --private-dim."""
    options = dict(decoder_std=args.decoder_std, importance_samples=args.importance_samples, gradient=args.gradient, auxiliary=args.auxiliary or "free",
                   dtype=args.dtype)
    if args.data == "digits":
        config = DIGITS_QUICK if args.quick else DIGITS
        return dict(config, steps=args.steps or config["steps"], private_dim=args.private_dim or config["private_dim"], **options,
                    latent_dim=args.latent or config["latent_dim"], hidden=tuple(args.hidden) if args.hidden else config["hidden"])
    config = dict(QUICK if args.quick else FULL, private_dim=args.private_dim or 1, **options)
    config["per_class"] = args.per_class or config["per_class"]
    classes = args.classes if args.data in ("pinwheel", "digit-views") else len(own_data(args)[2])
    config["steps"] = args.steps or config["steps"] or (S.NUM_STEPS if classes == 2 else STEPS_BEYOND_TWO_CLASSES)
    return dict(config, latent_dim=args.latent or config["latent_dim"], hidden=tuple(args.hidden) if args.hidden else config["hidden"])


def own_data(args):
    """A user's data (--data PATH, or check_arrays' arrays): (x1, labels, label names, SHA-256 or None); a file read once."""
    if getattr(args, "arrays", None) is not None:
        return (args.arrays[0], *D.label_indices(args.arrays[1]), None)
    return read_table(args.data, args.label_column or "label")


read_table = functools.lru_cache(maxsize=4)(D.load_table)      # run_config, load_data and describe all ask for it


def load_data(args, config):
    """(x1, labels, radial, num_classes) to train on: the pinwheel of the arguments, or the digits or your data (radial None)
    less the points --test-fraction holds out."""
    if args.data == "pinwheel":
        x1, labels, radial = S.make_pinwheel(num_classes=args.classes, num_per_class=config["per_class"],
                                             rng=npr.default_rng([args.seed, 3]), return_radial=True)
        return x1, labels, radial, args.classes
    x1, labels, num_classes = whole_data(args)
    kept = ~held_out_mask(args, labels) if getattr(args, "test_fraction", None) else np.ones(len(x1), dtype=bool)
    return x1[kept], labels[kept], None, num_classes


def whole_data(args):
    """(x1, labels, num_classes) of the digits or your data, before any is held out."""
    if args.data == "digits":
        return (*D.load_digits(), 10)
    x1, labels, names, _ = own_data(args)
    return x1, labels, len(names)


HELD_OUT_SOURCE = {"pinwheel": "a fresh pinwheel sample, default_rng([seed, 7])",
                   "split": "a stratified split of the data, the same for every seed (default_rng(7))"}
SPLIT_SEED = 7       # the digits' and your data's held-out points: one split for every --seed, so seeds are compared on the same points


def held_out_record(args, held_out):
    """The JSON's "held_out": the points, their labels, their own label coherence and where they come from."""
    return {"x1": held_out[0].tolist(), "labels": held_out[1].tolist(), "coherence": L.leave_one_out_coherence(*held_out[:2]),
            "source": HELD_OUT_SOURCE["pinwheel" if args.data == "pinwheel" else "split"]}


def held_out_mask(args, labels):
    """--test-fraction F of every label's points (D.stratified_split), the same for every --seed."""
    return D.stratified_split(labels, args.test_fraction, npr.default_rng(SPLIT_SEED))


def held_out_data(args, config):
    """(x1, labels, num_classes) never trained on, or None without --test-fraction F. The pinwheel: a fresh sample from its
    generator under another seed, round(F n / (1 - F)) points per class (F of all points, as a split's); else the split's."""
    if not getattr(args, "test_fraction", None):
        return None
    if args.data == "pinwheel":
        per_class = int(round(config["per_class"] * args.test_fraction / (1.0 - args.test_fraction)))
        S.fail_unless(per_class >= 1, f"a held-out fraction of {args.test_fraction:g} holds out no pinwheel point ({config['per_class']} per class)")
        x1, labels = S.make_pinwheel(num_classes=args.classes, num_per_class=per_class, rng=npr.default_rng([args.seed, 7]))
        return x1, labels, args.classes
    x1, labels, num_classes = whole_data(args)
    held = held_out_mask(args, labels)
    return x1[held], labels[held], num_classes


def model_options(model, config):
    """B.train's options for model: the x1 decoder's std (None: learned), the training's precision, K and the gradient (MMVAE,
    MoPoE), MMVAE+'s private latent. Whatever the training's precision, the parameters come back float64 and are checked so."""
    options = {"decoder_std": config["decoder_std"], "dtype": getattr(np, config["dtype"])}
    if model in ("mmvae", "mopoe"):
        options.update(importance_samples=config["importance_samples"], gradient=config["gradient"])
    if model == "mmvaeplus":
        options.update(private_dim=config["private_dim"], auxiliary=config["auxiliary"])
    return options


def untrained_params(model, config, x1, num_classes, seed):
    """The same networks as a trained model's at step 0 (B.train's start, its decoder std fixed if set), in x1's units."""
    shift, scale = S.x1_standardisation(x1)
    params = B.init_model_params(model, S.init_rng(seed), num_classes, config["latent_dim"], np.shape(x1)[1], config["hidden"],
                                 *(model_options(model, config).get(key) for key in ("private_dim", "auxiliary")))
    fixed = {} if config["decoder_std"] is None else {"decoder_x1_log_var": np.array(2.0 * np.log(config["decoder_std"] / scale))}
    return S.change_x1_units.__wrapped__(dict(params, **fixed), shift, scale)


TIMED_STEPS = 10        # training steps timed per model for the estimate printed before a run


def run_estimate(args, config):
    """(seconds of training, seconds of evaluation, the line saying so), measured here before the run: each model's step
    over TIMED_STEPS steps (a training of 2 + TIMED_STEPS steps less one of 2, so that setting up is not counted) times
    --steps, the models spread over --jobs processes; and one row evaluated (the untrained first model, class 0) times the
    rows. Direct maximisation runs beside the training and is not counted."""
    x1, labels, _, num_classes = load_data(args, config)
    per_step = {}
    for model in args.models:
        seconds = []
        for steps in (2, 2 + TIMED_STEPS):
            start = time.perf_counter()
            B.train(model, x1, S.one_hot(labels, num_classes), args.seed, config["latent_dim"], config["hidden"], num_steps=steps,
                    print_fn=None, **model_options(model, config))
            seconds.append(time.perf_counter() - start)
        per_step[model] = max(seconds[1] - seconds[0], 0.0) / TIMED_STEPS
    start, rows = time.perf_counter(), 2 * len(args.models) * num_classes
    evaluate_class(untrained_params(args.models[0], config, x1, num_classes, args.seed), args.models[0], x1, labels, num_classes, 0,
                   config, [args.seed, 15], held_out_data(args, config))
    training = sum(per_step.values()) * config["steps"] / min(args.jobs, len(args.models))
    evaluation = (time.perf_counter() - start) * rows / min(args.jobs, rows)
    return training, evaluation, (f"estimate: about {R.duration(training + evaluation)} in all; training about {R.duration(training)} "
                                  f"({config['steps']} steps per model; a step: " + ", ".join(f"{model} {1e3 * seconds:.2g} ms" for model, seconds
                                                                                              in per_step.items())
                                  + f"), evaluation about {R.duration(evaluation)} ({rows} rows as long as one timed here); "
                                  f"{min(args.jobs, len(args.models))} process(es)")


def train_model(model, x1, x2, seed, config, print_fn=None):
    """One model trained with the run's configuration: (params, objective per step). print_fn: progress, 5 lines."""
    return B.train(model, x1, x2, seed, config["latent_dim"], config["hidden"], num_steps=config["steps"], print_fn=print_fn,
                   log_every=max(1, config["steps"] // 5), step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]),
                   **model_options(model, config))


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


def conditional_columns(params, model, x1_class, x2_class, config, rng):
    """log p(x1|x2) under L_1's law (MMVAE+: w~_1 ~ r_1) by L.log_p_x1_given_x2: the class mean, its error (sampled: 4 SE of
    the mean, sqrt(sum SE_n^2) / N; the grid: the mean |last change|), reliability, the largest Pareto k, the median ESS / K;
    and the standard error of the mean over the points (their spread / sqrt(N): how far another sample of points could move it)."""
    found = L.log_p_x1_given_x2(params, x1_class, x2_class, rng, model, "auxiliary", config["conditional_samples"], config["grid_nodes"])
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
    means = B.generate_from_labels(params, x2_class, generation_rng, model)
    noisy = B.generate_from_labels(params, x2_class, generation_rng, model, with_noise=True)
    bound = constant_mean_bound(x1_class) / num
    if held_out is not None:
        row["held_out"] = held_out_columns(params, model, c, held_out, (means, noisy), config, held_out_rng)
    return dict(row, **{"class": c, "num_points": num, "latent_size": len(posterior[0]), "bound": bound, "gap": bound - row["l1"],
                        "decoder_std": float(np.exp(0.5 * params["decoder_x1_log_var"])),
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
                             "too high, or the two runs disagree)" if skipped else ""), skipped)


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
    generations are divided by the same held-out spread)."""
    trained = {(r["model"], r["class"]): r for r in rows if r["decoder"] == "trained"}
    classes = sorted({c for _, c in trained})
    spread = largest([trained["mmvae", c]["spread_ratio"] / trained["mvae", c]["spread_ratio"] for c in classes])
    gap = largest([trained["mmvae", c]["gap"] / trained["mvae", c]["gap"] for c in classes])
    return [("Fig. 2: MMVAE spread ratio < 0.5 x MVAE's, every class", spread < 0.5, spread, "largest MMVAE / MVAE spread ratio"),
            ("MMVAE's gap to the bound < 0.25 x MVAE's, every class", gap < 0.25, gap, "largest MMVAE / MVAE gap"),
            conditional_finding([(trained["mvae", c], trained["mmvae", c]) for c in classes])] + (
        [conditional_finding([(trained["mvae", c]["held_out"], trained["mmvae", c]["held_out"]) for c in classes], " on held-out points")]
        if held_out else [])


def conditional_finding(pairs, where=""):
    """The MVAE's log p(x1|x2) above the MMVAE's beyond both errors in every class: DOES NOT HOLD if below in one reliable
    class, else HOLDS if above in all, else UNDECIDED (within the errors) or SKIP (a class unreliable)."""
    reliable = [(mvae, mmvae) for mvae, mmvae in pairs if mvae["conditional_reliable"] and mmvae["conditional_reliable"]]
    differences = np.array([mvae["conditional"] - mmvae["conditional"] for mvae, mmvae in reliable])
    errors = np.array([mvae["conditional_error"] + mmvae["conditional_error"] for mvae, mmvae in reliable])
    above, below, skipped = int(np.sum(differences - errors > 0)), int(np.sum(differences + errors < 0)), len(pairs) - len(reliable)
    verdict = False if below else (True if above == len(pairs) else None)
    return (f"log p(x1|x2){where}: the MVAE's exceeds the MMVAE's, every class (above in {above}, below in {below} of {len(pairs)}, "
            "beyond both errors)", verdict, smallest(differences) if reliable else float("nan"), "smallest MVAE - MMVAE per point"
            + (f"; {skipped} of {len(pairs)} classes skipped: an unreliable log p(x1|x2)" if skipped else ""), skipped)


def as_dicts(items):
    """Checks or findings (name, passed, value, measures[, rows skipped as unreliable]) as the JSON's dicts."""
    return [dict(name=n, passed=None if p is None else bool(p), value=float(v), measures=m, skipped=(rest or [0])[0]) for n, p, v, m, *rest in items]


# ================================================================ the run

def trained_and_untrained(args, config, x1, labels, num_classes, print_fn, later=0.0):
    """({model: (params, history)}, {model: untrained params in x1's units}, direct maximisation per class). later: the
    seconds the evaluation is expected to take, for the progress lines' time left in the run."""
    x2, order = S.one_hot(labels, num_classes), args.models[::-1]     # MoPoE and MMVAE+ train slowest: first
    progress = print_fn if config["steps"] >= 1000 else None
    tasks = ([(f"trained {model}", train_model, (model, x1, x2, args.seed, config, progress)) for model in order]
             + [(f"maximised L_1 alone, class {c}", maximise_cross_modal_term, (x1[labels == c], c, num_classes, config, args.seed))
                for c in range(num_classes)])
    results = R.run_tasks(tasks, args.jobs, print_fn, "training", later)
    trained = {model: dict(zip(order, results))[model] for model in args.models}          # paper order again
    untrained = {model: untrained_params(model, config, x1, num_classes, args.seed) for model in args.models}
    return trained, untrained, results[len(args.models):]


def check(args, print_fn, later=0.0):
    """(everything the check computes as one JSON-ready dict, {model: (params, history)}, (x1, labels, radial, num_classes)).
    later: the evaluation's estimated seconds (run_estimate), for the time left in the run while training."""
    config = run_config(args)
    x1, labels, radial, num_classes = data = load_data(args, config)
    held_out = held_out_data(args, config)
    trained, untrained, direct = trained_and_untrained(args, config, x1, labels, num_classes, print_fn, later)
    keys = [(model, decoder, c) for model in args.models for decoder in ("trained", "untrained") for c in range(num_classes)]
    evaluations = R.run_tasks([(f"evaluated the {decoder} {model}, class {c}", evaluate_class,
                              (trained[model][0] if decoder == "trained" else untrained[model], model, x1, labels, num_classes, c,
                               config, [args.seed, 4, index], held_out)) for index, (model, decoder, c) in enumerate(keys)], args.jobs, print_fn,
                              "evaluation")
    rows = [dict(model=model, decoder=decoder, **row) for (model, decoder, _), row in zip(keys, evaluations)]
    first = trained[args.models[0]][0]
    stationarity = [dict(check_stationarity(first, x1[labels == c], *class_label_posterior(first, args.models[0], num_classes, c),
                                            config, npr.default_rng([args.seed, 5, c])), **{"class": c}) for c in range(num_classes)]
    findings = comparison_findings(rows, held_out is not None) if {"mvae", "mmvae"} <= set(args.models) else []
    arguments = {name: value for name, value in vars(args).items() if name != "arrays"}           # check_arrays' arrays: in "data"
    results = {"format": JSON_FORMAT, "config": dict(arguments, **config), "rows": rows, "stationarity": stationarity,
               "direct_maximisation": direct, "data_coherence": L.leave_one_out_coherence(x1, labels),
               "checks": as_dicts(theorem_checks(rows, stationarity, direct)), "findings": as_dicts(findings),
               "histories": {m: h.tolist() for m, (_, h) in trained.items()},
               "params": {m: tree_to_lists(p) for m, (p, _) in trained.items()}, "data": {"x1": x1.tolist(), "labels": labels.tolist()}}
    if held_out is not None:
        results["held_out"] = held_out_record(args, held_out)
    if args.data not in ("pinwheel", "digits", "digit-views"):
        results["data_file"] = {"name": "arrays" if getattr(args, "arrays", None) is not None else args.data, "sha256": own_data(args)[3],
                                "label_names": [str(name) for name in own_data(args)[2]]}
    return results, trained, data


class _Refusal(argparse.ArgumentParser):
    """A parser whose errors are ValueErrors (check_arrays is a library call, not a script)."""
    def error(self, message):
        raise ValueError(message)


def check_arrays(x1, labels, models=("mvae", "mmvae"), print_fn=None, **options):
    """The check on your own arrays: x1 (N, D) numbers, labels (N,) any values (at least two, each on MIN_PER_CLASS rows or
    more); options are the script's flags by name (seed=1, steps=400, latent=4, hidden=(64,), decoder_std=0.1, jobs=1,
    quick=True, test_fraction=0.2, ...). Returns what --json writes: rows, checks, findings, config, ... A bad argument is a
    ValueError naming it."""
    parser = _Refusal(prog="check_arrays", allow_abbrev=False)
    add_check_arguments(parser.add_argument)
    argv = ["--models", *models]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        argv += [flag] if value is True else [] if value is False else [flag, *map(str, value)] if isinstance(value, (list, tuple)) else [flag, str(value)]
    args = R.refuse_repeats(parser, argv)
    S.check_array(np.asarray(x1, dtype=float) if np.asarray(x1).dtype.kind in "iuf" else x1, "x1", 2)
    S.fail_unless(np.ndim(labels) == 1 and len(labels) == len(x1), f"labels must be one per row of x1: {np.shape(labels)} for {np.shape(x1)}")
    S.fail_unless(len(np.unique(labels)) >= 2, f"the data need at least two labels, got {len(np.unique(labels))}")
    args.data, args.arrays = "arrays", (np.asarray(x1, dtype=float), np.asarray(labels))
    not_applying = flags_not_applying(args)
    S.fail_unless(not not_applying, "; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    check_data_sizes_and_scales(parser, args)
    return check(args, print_fn)[0]


def tree_to_lists(tree):
    """Parameters as nested lists, for JSON."""
    return S.tree_rebuild(tree, iter([np.asarray(leaf).tolist() for leaf in S.tree_leaves(tree)]))


# ================================================================ printing

def format_table(rows):
    header = (f"{'model':9s} {'decoder':9s} {'class':>5s} {'bound':>8s} {'L_1':>9s} {'by':>5s} {'MC +- SE':>18s} {'gap':>8s}"
              f" {'log p(x1|x2) +- error':>21s} {'by':>7s} {'sigma':>6s} {'spread':>6s} {'sampled':>7s} {'coher.':>6s}")
    legend = ("Per datapoint (nats): bound = L_1(theta_hat); L_1 = the decoder under r_M(g|c), by Gauss-Hermite (GHn: n nodes per axis) "
             "or Monte Carlo (MC; error 4 SE); gap = bound - L_1; log p(x1|x2) under the same r_M, by the grid rule (gridn: n nodes per axis; "
             "error = its last change, a sign of convergence) or importance sampling from a Laplace proposal (IS; error 4 SE; '!' = "
             "unreliable: a run's Pareto k too high, or the two runs disagree); sigma = decoder std; spread = cross-generated spread ratio of decoder means, sampled = of "
             "x1 ~ p(x1|g); coher. = label coherence")
    lines = [R.wrap(legend), header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:9s} {r['decoder']:9s} {r['class']:5d} {r['bound']:8.4f} {r['l1']:9.4f} {r['l1_method']:>5s}"
                     f" {r['monte_carlo']:9.4f} +- {r['monte_carlo_se']:.4f} {r['gap']:8.4f} {r['conditional']:11.4f} +- {r['conditional_error']:6.4f}"
                     f"{' !'[not r['conditional_reliable']]}{r['conditional_method']:>7s} {r['decoder_std']:6.3f} {r['spread_ratio']:6.3f} {r['spread_ratio_sampled']:7.3f} {r['coherence']:6.3f}")
    return "\n".join(lines)


def format_held_out(rows):
    """The held-out measures beside the training ones, per trained or untrained decoder and class."""
    header = (f"{'model':9s} {'decoder':9s} {'class':>5s} {'points':>6s} {'log p(x1|x2) +- error':>21s} {'by':>7s} {'SE':>7s} {'trained on +- SE':>21s}"
              f" {'spread':>6s} {'trained on':>10s} {'coher.':>6s} {'trained on':>10s}")
    legend = ("Held-out points (never trained on), beside the same row's measures on the training points: log p(x1|x2) per point "
              "('!' = unreliable; error: the estimator's, as above; SE: the standard error of the mean over the points, from "
              "their sampling); spread = the same generations' spread ratio against the held-out class's own spread; "
              "coher. = their label coherence against the held-out points")
    lines = [R.wrap(legend), header, "-" * len(header)]
    for r in rows:
        h = r["held_out"]
        lines.append(f"{r['model']:9s} {r['decoder']:9s} {r['class']:5d} {h['num_points']:6d} {h['conditional']:11.4f} +- {h['conditional_error']:6.4f}"
                     f"{' !'[not h['conditional_reliable']]}{h['conditional_method']:>7s} {h['conditional_points_se']:7.3f}"
                     f" {r['conditional']:10.3f} +- {r['conditional_points_se']:7.3f} {h['spread_ratio']:6.3f}"
                     f" {r['spread_ratio']:10.3f} {h['coherence']:6.3f} {r['coherence']:10.3f}")
    return "\n".join(lines)


def format_notes(results, config):
    """The notes under the table: where L_1 fell back to Monte Carlo, how log p(x1|x2) was sampled, the data's coherence."""
    rows, notes = results["rows"], []
    fallbacks = [f"{r['model']} {r['decoder']} {r['class']}" for r in rows if r["l1_method"] == "MC"]
    if fallbacks:
        notes.append(f"L_1 by Monte Carlo (error = 4 SE) in {len(fallbacks)} rows, where Gauss-Hermite did not settle within "
                     f"{config['max_nodes']} nodes per axis or would need more than {L.MAX_GRID_POINTS}: {', '.join(fallbacks[:4])}"
                     + " ..." * (len(fallbacks) > 4))
    sampled = [r for r in rows if r["conditional_method"] == "IS"]
    unreliable = [f"{r['model']} {r['decoder']} {r['class']} ({r['conditional_reliable_share']:.0%} of points)" for r in sampled if not r["conditional_reliable"]]
    if sampled:
        notes.append(f"log p(x1|x2) by importance sampling in {len(sampled)} rows (more than 3 latent dimensions, or a grid that did not "
                     f"settle or resolve the posterior): median Kish ESS / K per row {min(r['conditional_ess'] for r in sampled):.3f} to "
                     f"{max(r['conditional_ess'] for r in sampled):.3f}, largest Pareto k {max(r['conditional_pareto_k'] for r in sampled):.2f}; "
                     + (f"unreliable somewhere: {', '.join(unreliable[:4])}" + (f" and {len(unreliable) - 4} more rows" if len(unreliable) > 4 else "")
                        if unreliable else "every point reliable")
                     + f"; {sum(r.get('conditional_disagree', 0) for r in sampled)} points unreliable only because the two runs disagree")
    return "\n".join(notes + ["Data's own label coherence (leave-one-out nearest neighbour), per class: "
                                + " ".join(f"{value:.3f}" for value in results["data_coherence"])])


# ================================================================ arguments

def add_check_arguments(add, data_choices=("pinwheel", "digits")):
    """The flags of the check, which studies.py takes too: the data, the models and every setting of the check."""
    add("--seed", type=R.int_at_least(0, S.MAX_SEED), default=0, help="seed for data, initialisation and training (default 0)")
    add("--data", type=R.data_choice(data_choices), default="pinwheel", metavar="{" + ",".join(data_choices) + ",PATH}",
        help="the paper's pinwheel (default), handwritten digits" + (", paired views of digits (digit-views, the augmentation test)"
        if "digit-views" in data_choices else "") + ", or your own data: a .csv with a header and a label column, or a .npz holding "
        "x1 and labels")
    add("--label-column", default=None, metavar="NAME", help="with --data FILE.csv: the column of labels (default label)")
    add("--latent", type=R.int_at_least(1), default=None, help="latent size (default 2; 8 on digits)")
    add("--hidden", type=R.int_at_least(1), nargs="+", default=None, metavar="H",
        help="hidden layer sizes of every network (default 32; 128 on digits)")
    add("--test-fraction", type=R.fraction, default=None, metavar="F", help="also measure log p(x1|x2), coherence and the spread ratio "
        "on points never trained on, F of all points: on the pinwheel a fresh sample (another seed); on digits and your data a "
        "stratified split, the same for every --seed (default: none held out)")
    add("--classes", type=R.int_at_least(2), default=2, help="number of pinwheel arms (labels), >= 2 (default 2)")
    add("--per-class", type=R.int_at_least(MIN_PER_CLASS), default=None,
        help=f"points per class (default {FULL['per_class']}, --quick {QUICK['per_class']})")
    add("--steps", type=R.int_at_least(1), default=None, help=f"training steps per model (default {S.NUM_STEPS} for 2 classes, "
        f"{STEPS_BEYOND_TWO_CLASSES} for more, {DIGITS['steps']} on digits; --quick {QUICK['steps']}, {DIGITS_QUICK['steps']})")
    add("--models", nargs="+", choices=B.MODELS, default=list(S.PAPER_MODELS),
        help="models to train and check: the paper's (default mvae mmvae), and beyond it mopoe (MoPoE) and mmvaeplus (MMVAE+)")
    add("--jobs", type=R.int_at_least(1), default=2, help="processes for training (default 2; results do not depend on it)")
    add("--quick", action="store_true", help="smaller everything (for tests; on your data its shorter direct maximisation "
        "can stop short of the bound and FAIL: run the default, twice as long)")
    add("--json", metavar="PATH", type=R.output_file, help="write every number and check to PATH")
    add("--quiet", action="store_true", help="print only the table, the checks and the time")
    add("--private-dim", type=R.int_at_least(1), default=None, help="MMVAE+'s private latent size (default 1 on the pinwheel, 4 on digits)")
    add("--auxiliary", choices=tuple(B.AUXILIARY), default=None, help="MMVAE+'s auxiliary priors: free log-variances (default), "
        "softplus scales (the authors' Normal variant) or softmax scales of mean one (the authors' Laplace variant)")
    add("--decoder-std", type=R.positive_number, default=None, metavar="S", help="fix the x1 decoder's std at S in x1's units (default learned)")
    add("--importance-samples", type=R.int_at_least(1), default=1, metavar="K",
        help="train the MMVAE and MoPoE with K importance samples per stratum (Shi et al.'s m_iwae_looser; default 1, Eq. 5)")
    add("--gradient", choices=B.GRADIENTS, default="iwae", help="the MMVAE's and MoPoE's gradient estimator: iwae (autograd's gradient "
        "of the objective, default), stl (what the MMVAE's official code computes), dreg (Tucker et al.'s, as intended; biased for "
        "the mixture) or dreg-mix (DReG made unbiased for the stratified mixture)")
    add("--dtype", choices=("float64", "float32"), default="float64", help="the training's precision (default float64); float32 "
        "steps cost about half. Every check, L_1 and log p is evaluated in float64 on the trained parameters")


def flags_not_applying(args):
    """[(flag, what it applies to)] for every flag of the check given where it does not apply."""
    pinwheel, plus, mixtures = args.data == "pinwheel", "mmvaeplus" in args.models, bool({"mmvae", "mopoe"} & set(args.models))
    return [(flag, reason) for flag, given, reason in (
        ("--classes", args.classes != 2 and not pinwheel, "the pinwheel"), ("--per-class", args.per_class is not None and not pinwheel, "the pinwheel"),
        ("--test-fraction", getattr(args, "test_fraction", None) is not None and args.data == "digit-views", "the pinwheel, digits and your data"),
        ("--label-column", args.label_column is not None and not str(args.data).endswith(".csv"), "--data FILE.csv"),
        ("--private-dim", args.private_dim is not None and not plus, "MMVAE+ (--models ... mmvaeplus)"),
        ("--auxiliary", args.auxiliary is not None and not plus, "MMVAE+ (--models ... mmvaeplus)"),
        ("--importance-samples", args.importance_samples > 1 and not mixtures, "the MMVAE and MoPoE (--models ... mmvae)"),
        ("--gradient", args.gradient != "iwae" and not mixtures, "the MMVAE and MoPoE (--models ... mmvae)")) if given]


MEMORY_BUDGET_GIB = 4.0           # a run whose training step would hold more is refused before it starts
DECODER_STD_RANGE = (1e-4, 1e4)   # --decoder-std over the data's std: beyond it the standardised log-variance over- or underflows


def check_data_sizes_and_scales(parser, args):
    """parser.error before any work for a missing or altered digits file, a --decoder-std far off the data's scale, and
    --importance-samples or --private-dim whose step would hold more than MEMORY_BUDGET_GIB (8 bytes x 3 copies of the
    decoders' layers on K x M x batch latents, and of every weight matrix)."""
    try:
        config = run_config(args)
        x1, labels, _, num_classes = load_data(args, config) if args.data != "digit-views" else (D.load_digits()[0], None, None, 16)
        held_out_data(args, config)
    except ValueError as error:
        parser.error(("--test-fraction: " if "held-out" in str(error) else "") + str(error))
    small = [c for c in range(num_classes) if labels is not None and np.sum(labels == c) < MIN_PER_CLASS]
    if small and args.data != "pinwheel":
        names = own_data(args)[2] if args.data != "digits" else range(10)
        parser.error(f"labels {', '.join(str(names[c]) for c in small)} have fewer than {MIN_PER_CLASS} points to train on: too few for "
                     "the checks (direct maximisation and Monte Carlo per class); " + ("hold out fewer (--test-fraction)"
                                                                                       if getattr(args, "test_fraction", None) else "merge or drop them"))
    ratio = (args.decoder_std or 1.0) / S.x1_standardisation(x1)[1]
    if args.decoder_std is not None and not DECODER_STD_RANGE[0] <= ratio <= DECODER_STD_RANGE[1]:
        parser.error(f"--decoder-std {args.decoder_std:g} is {ratio:.3g} x the data's std; it must lie within "
                     f"{DECODER_STD_RANGE[0]:g}..{DECODER_STD_RANGE[1]:g} x (float64 would over- or underflow)")
    latent, data_dim = config["latent_dim"] + (config["private_dim"] if "mmvaeplus" in args.models else 0), np.shape(x1)[1]
    layers, weights = 2 * sum(config["hidden"]) + 4 * latent + data_dim + num_classes, (data_dim + num_classes + 2 * latent) * max(config["hidden"]) * 2
    for flag, samples, given in (("--importance-samples", config["importance_samples"], config["importance_samples"] > 1),
                                 ("--private-dim", 1, args.private_dim is not None)):
        gib = 8.0 * 3 * (samples * 2 * S.BATCH_SIZE * layers + weights) / 2 ** 30
        if given and gib > MEMORY_BUDGET_GIB:
            parser.error(f"{flag}: a training step would hold about {gib:.3g} GiB, more than this script's budget of {MEMORY_BUDGET_GIB:g} GiB")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="theorem_check.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    add_check_arguments(parser.add_argument)
    args = R.refuse_repeats(parser, argv)
    not_applying = flags_not_applying(args)
    if not_applying:
        parser.error("; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    check_data_sizes_and_scales(parser, args)
    return args


def describe_own_data(args):
    """A user's data in the configuration line: the file (or "arrays"), its points, columns and labels."""
    x1, labels, names, _ = own_data(args)
    return f"{'arrays' if getattr(args, 'arrays', None) is not None else args.data} ({len(x1)} points, {x1.shape[1]} columns, {len(names)} labels)"


def describe(args, config):
    """The configuration line printed first: what the run will use, defaults filled in."""
    data = ("digits (1797 images, 10 labels)" if args.data == "digits" else f"pinwheel ({args.classes} classes x {config['per_class']} points)"
            if args.data == "pinwheel" else describe_own_data(args))
    mmvaeplus = f", MMVAE+ private dim={config['private_dim']}, auxiliary={config['auxiliary']}" if "mmvaeplus" in args.models else ""
    return (f"seed={args.seed}, data={data}, models={' '.join(args.models)}{mmvaeplus}, steps per model={config['steps']}, "
            f"latent={config['latent_dim']}, hidden={config['hidden']}, decoder std={config['decoder_std'] or 'learned'}, "
            f"importance samples K={config['importance_samples']}, gradient={config['gradient']}, training dtype={config['dtype']}, "
            f"held out={describe_held_out(args, config)}, jobs={args.jobs}, quick={args.quick}, json={args.json}")


def describe_held_out(args, config):
    """--test-fraction in the configuration line: "none", or the fraction and how many points it holds out."""
    held_out = held_out_data(args, config)
    return "none" if held_out is None else f"{args.test_fraction:g} ({len(held_out[0])} points, never trained on)"


LONG_RUN = 600.0        # seconds of estimated run beyond which the estimate is printed even with --quiet


def announce(name, description, args, config, start):
    """Print the configuration (stdout) and run_estimate's line (stderr, as all progress; with --quiet only beyond
    LONG_RUN): the evaluation's estimated seconds."""
    print(R.wrap(f"{name} configuration: {description}"), flush=True)
    training, evaluation, estimate = run_estimate(args, config)
    if not args.quiet or training + evaluation > LONG_RUN:
        R.print_progress(start, estimate)
    return evaluation


def main(argv=None):
    args = parse_args(argv)
    config, start = run_config(args), time.perf_counter()

    def body():
        evaluation = announce("theorem_check", describe(args, config), args, config, start)
        results = check(args, None if args.quiet else R.progress(start), evaluation)[0]
        print(format_table(results["rows"]))
        if "held_out" in results:
            print(format_held_out(results["rows"]))
        print(R.wrap(format_notes(results, config)))
        return R.report(results, args.json, start)
    return R.interruptible(body)


if __name__ == "__main__":
    sys.exit(main())
