"""likelihoods: Theorem 1 for the x1 decoder families the anchors train with (issue 42, first part). Each family's log density
and the constant decoder that maximises the class's log-likelihood in closed form, the right-hand side of Eq. (7) for that
family. The theorem holds for any parametric f_1 in which some theta makes tau_1(g; theta) constant in g and equal to the
class's MLE: L_1(theta, phi) <= sum_n log f_1(x1_n | tau_hat) (Eq. 6). Input checks at the end.

  gaussian   (isotropic, the paper's): tau = (mean, one variance); tau_hat = (class mean, mean squared deviation).
  laplace    (per dimension, location m, scale b): log f = sum_d -log(2 b_d) - |x_d - m_d| / b_d. With a learned scale, the
             MLE is m = the per-dimension median, b = the mean absolute deviation from it (any m in the median interval
             when N is even; the value is the same). With a fixed scale b, only m = the median remains.
  bernoulli  (per pixel, x in {0, 1}, probability p): log f = sum_d x_d log p_d + (1 - x_d) log(1 - p_d); tau_hat = the
             per-pixel mean (0 log 0 = 0: a pixel that is 0, or 1, on every image is predicted with certainty).

Theorem 1 is checked here by direct maximisation (maximise_cross_modal_term): L_1 alone, over an MLP decoder of this family
from a random start, under a fixed label posterior N(0, I) in 2-D, by Gauss-Hermite quadrature, reaches the bound with a
decoder that no longer depends on g, at the family's tau_hat: for the Laplace, the median, not the mean. Not yet wired into
the models' training, theorem_check or the studies (issue 42's rest).
"""
import math

import autograd.numpy as np
import numpy as onp
from numpy.polynomial.hermite_e import hermegauss

import surjvae_np as S

FAMILIES = ("gaussian", "laplace", "bernoulli")


# ---------------------------------------------------------------- 1. the densities, summed over the last axis

def laplace_log_density(x, location, log_scale):
    """log prod_d Laplace(x_d | m_d, b_d) = sum_d -log 2 - log b_d - |x_d - m_d| / b_d, b = exp(log_scale). Broadcasts."""
    return np.sum(-math.log(2.0) - log_scale - np.abs(x - location) * np.exp(-log_scale), axis=-1)


def bernoulli_log_density(x, logits):
    """log prod_d p_d^x_d (1 - p_d)^(1 - x_d), p = sigmoid(logits), in log space: x logits - log(1 + e^logits). Broadcasts."""
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


# ---------------------------------------------------------------- 2. the constant MLE decoder and the bound, per family

@S.checked
def constant_mle(x1_class, family, fixed_scale=None):
    """tau_hat, the constant decoder output that maximises sum_n log f_1(x1_n | tau) over the class: gaussian (mean, variance),
    laplace (median, mean absolute deviation from it; with fixed_scale, (median, fixed_scale)), bernoulli (per-pixel mean,)."""
    if family == "gaussian":
        return np.mean(x1_class, axis=0), np.mean((x1_class - np.mean(x1_class, axis=0)) ** 2)
    if family == "laplace":
        median = onp.median(x1_class, axis=0)
        return median, (np.mean(np.abs(x1_class - median), axis=0) if fixed_scale is None else np.full(np.shape(median), float(fixed_scale)))
    return (np.mean(x1_class, axis=0),)


@S.checked
def constant_mle_bound(x1_class, family, fixed_scale=None):
    """Eq. (7), right, for the family: sum_n log f_1(x1_n | tau_hat). gaussian -(N D / 2)(log(2 pi s^2) + 1); laplace with a
    learned scale -N sum_d (log(2 b_d) + 1), with a fixed one -N D log(2 b) - sum_n |x_n - median|_1 / b; bernoulli
    N sum_d [p_d log p_d + (1 - p_d) log(1 - p_d)] (0 log 0 = 0). A dimension with b_d = 0 (every point at its median) makes
    the learned-scale Laplace bound +inf: the likelihood is unbounded there, as a Gaussian's is with zero variance."""
    num, dim = np.shape(x1_class)
    tau = constant_mle(x1_class, family, fixed_scale)
    if family == "gaussian":
        return float(-0.5 * num * dim * (np.log(2.0 * np.pi * tau[1]) + 1.0))
    if family == "laplace":
        if fixed_scale is None:
            with onp.errstate(divide="ignore"):
                return float(-num * np.sum(np.log(2.0 * tau[1]) + 1.0))
        return float(-num * dim * math.log(2.0 * fixed_scale) - np.sum(np.abs(x1_class - tau[0])) / fixed_scale)
    p = tau[0]
    with onp.errstate(divide="ignore", invalid="ignore"):
        entropy_terms = onp.where(p > 0, p * onp.log(p), 0.0) + onp.where(p < 1, (1 - p) * onp.log1p(-p), 0.0)
    return float(num * np.sum(entropy_terms))


# ---------------------------------------------------------------- 3. Eq. (7), first line, for the family, and its direct maximisation

def decoder_log_likelihood(decoder, x1, g, family, fixed_log_scale=None):
    """Eq. (3) for the family: log f_1(x1 | tau_1(g)) (..., N), tau_1 from decoder["layers"] (an MLP, surjvae_np.mlp: the
    location, logits or mean) and decoder["log_scale"] (laplace; or fixed_log_scale, held) or decoder["log_var"] (gaussian)."""
    output = S.mlp(decoder["layers"], g)
    if family == "laplace":
        return laplace_log_density(x1, output, decoder["log_scale"] if fixed_log_scale is None else fixed_log_scale)
    if family == "bernoulli":
        return bernoulli_log_density(x1, output)
    return S.log_normal(x1, output, decoder["log_var"])


def cross_modal_term_quadrature(decoder, x1_class, family, num_nodes, fixed_log_scale=None):
    """Eq. (7), first line: L_1 = int r(g) sum_n log f_1(x1_n | tau_1(g)) dg, r = N(0, I) in 2-D, by Gauss-Hermite with
    num_nodes per axis. Differentiable in decoder."""
    nodes, weights = hermegauss(num_nodes)                                        # weight exp(-z^2 / 2)
    g = onp.stack(onp.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)   # (K, 2)
    w = onp.outer(weights, weights).ravel() / (2.0 * onp.pi)                       # (K,), summing to 1
    per_node = decoder_log_likelihood(decoder, x1_class[None, :, :], g[:, None, :], family, fixed_log_scale)   # (K, N)
    return np.sum(w * np.sum(per_node, axis=1))


@S.checked
def maximise_cross_modal_term(x1_class, family, seed, num_steps=1500, hidden=(32,), fixed_scale=None, num_nodes=12, peak_step_size=0.02):
    """Theorem 1 by direct maximisation: L_1 / N over an MLP decoder of the family (2-D latent, its label posterior N(0, I)),
    full-batch Adam from a random start, the step size decaying linearly to 0. -> dict: the final L_1 / N, the bound / N
    (constant_mle_bound), the decoder's spread over g (sum over dimensions of its output's variance under r, by the same
    quadrature, over the class's total variance), and the mean output's distance to the class's median and to its mean."""
    layers = S.init_params(onp.random.default_rng([seed, 2]), latent_dim=2, data_dim=np.shape(x1_class)[1], hidden=hidden)["decoder_x1"]
    start = {"layers": layers} if family == "bernoulli" else {"layers": layers, "log_scale": onp.zeros(np.shape(x1_class)[1])} \
        if family == "laplace" and fixed_scale is None else {"layers": layers, "log_var": onp.zeros(())} if family == "gaussian" else {"layers": layers}
    held = None if fixed_scale is None else onp.full(np.shape(x1_class)[1], math.log(fixed_scale))

    def per_point(decoder, x1, x2, rng):                                          # checked at this edge
        return cross_modal_term_quadrature(decoder, x1, family, num_nodes, held) / np.shape(x1)[0]
    decoder, history = S.maximise.__wrapped__(per_point, start, x1_class, x1_class, seed=seed, num_steps=num_steps, batch_size=None,
                                              step_size=lambda t: peak_step_size * (1.0 - t / num_steps), print_fn=None, name="L_1")   # a decoder,
    # not a model: the checks of a model's start do not apply (this function's own ran at its edge)
    nodes, weights = hermegauss(num_nodes)
    g = onp.stack(onp.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
    w = onp.outer(weights, weights).ravel() / (2.0 * onp.pi)
    output = S.mlp(decoder["layers"], g)
    output = 1.0 / (1.0 + onp.exp(-output)) if family == "bernoulli" else output   # the location, or the probability
    centre = w @ output
    spread = float(w @ onp.sum((output - centre) ** 2, axis=1) / onp.sum(onp.var(x1_class, axis=0)))
    return {"final": float(cross_modal_term_quadrature(decoder, x1_class, family, num_nodes, held) / len(x1_class)),
            "bound": constant_mle_bound(x1_class, family, fixed_scale) / len(x1_class), "spread_ratio": spread,
            "to_median": float(onp.linalg.norm(centre - onp.median(x1_class, axis=0))), "to_mean": float(onp.linalg.norm(centre - onp.mean(x1_class, axis=0))),
            "history": history, "decoder": decoder}


# ---------------------------------------------------------------- 4. the family as the models train it, and Theorem 1's two sides for it

# One scale parameter, as the paper's isotropic Gaussian has one variance: params["decoder_x1_log_var"] = log s^2, s the
# Gaussian's std or the Laplace's scale b, shared by the dimensions (the key keeps its name, so that a fixed --decoder-std,
# the change of x1's units and the untrained decoders apply unchanged). The Bernoulli has none: the key is there, unread.
BERNOULLI_LOGIT_LIMIT = 40.0    # the MLE logit of a pixel constant over a class is +-inf; +-40 is 4e-18 from it in probability


def laplace_x1_log_likelihood(params, x1, g):
    """Eq. (3) with an isotropic Laplace f_1: location mlp(g), one scale b = exp(log_var / 2). (..., N), as S.decoder_x1_log_likelihood."""
    return laplace_log_density(x1, S.mlp(params["decoder_x1"], g), 0.5 * params["decoder_x1_log_var"])


def bernoulli_x1_log_likelihood(params, x1, g):
    """Eq. (3) with a Bernoulli f_1 per pixel: logits mlp(g). (..., N), as S.decoder_x1_log_likelihood."""
    return bernoulli_log_density(x1, S.mlp(params["decoder_x1"], g))


X1_LOG_LIKELIHOODS = {"gaussian": S.decoder_x1_log_likelihood, "laplace": laplace_x1_log_likelihood, "bernoulli": bernoulli_x1_log_likelihood}


def decoder_mean(params, g, family):
    """E[x1 | g] under f_1 of the family: the Gaussian's mean and the Laplace's location are mlp(g); the Bernoulli's sigmoid(mlp(g))."""
    output = S.decode_mean_x1(params, g)
    return 1.0 / (1.0 + np.exp(-output)) if family == "bernoulli" else output


def draw_x1(params, g, family, rng):
    """x1 ~ f_1(x1 | tau_1(g)) of the family, one draw per row of g, from rng."""
    mean, scale = decoder_mean(params, g, family), onp.exp(0.5 * params["decoder_x1_log_var"])
    if family == "bernoulli":
        return (rng.random(onp.shape(mean)) < mean).astype(float)
    return mean + scale * (rng.laplace(size=onp.shape(mean)) if family == "laplace" else rng.standard_normal(onp.shape(mean)))


def isotropic_constant_mle(x1_class, family):
    """tau_hat of the decoder the models train (one scale): (location, log s^2). gaussian: (mean, log of the mean squared
    deviation); laplace: (median, 2 log b), b the mean absolute deviation from it over points and dimensions (setting
    d/db of -N D log(2 b) - sum |x - m|_1 / b to 0); bernoulli: (the logit of the per-pixel mean, clipped at +-40, 0)."""
    if family == "gaussian":
        location, variance = constant_mle(x1_class, "gaussian")
        return location, onp.log(variance)
    if family == "laplace":
        median = onp.median(x1_class, axis=0)
        return median, 2.0 * onp.log(onp.mean(onp.abs(x1_class - median)))
    with onp.errstate(divide="ignore"):
        p = onp.mean(x1_class, axis=0)
        return onp.clip(onp.log(p) - onp.log1p(-p), -BERNOULLI_LOGIT_LIMIT, BERNOULLI_LOGIT_LIMIT), onp.zeros(())


def isotropic_bound(x1_class, family):
    """Eq. (7), right, for the decoder the models train: sum_n log f_1(x1_n | tau_hat) with one scale. gaussian and bernoulli:
    constant_mle_bound; laplace: -N D (log(2 b) + 1), b of isotropic_constant_mle."""
    if family != "laplace":
        return constant_mle_bound.__wrapped__(x1_class, family)
    num, dim = onp.shape(x1_class)
    return float(-num * dim * (0.5 * isotropic_constant_mle(x1_class, "laplace")[1] + math.log(2.0) + 1.0))


def laplace_location_subgradient(x1_class, location, log_var):
    """The distance from 0 of the subdifferential in m of sum_n log f(x_n | m, b) (isotropic Laplace, b = exp(log_var / 2)) per
    dimension (D,): d/dm_d = (#{x_nd > m_d} - #{x_nd < m_d} + s #{x_nd = m_d}) / b, s any value in [-1, 1] (|.| has a kink),
    so max(|#above - #below| - #at, 0) / b: 0 exactly where m_d is a median, also with ties (pixels), where autograd's
    gradient (which takes s = 0) need not vanish."""
    above, below, at = (onp.sum(x1_class > location, axis=0), onp.sum(x1_class < location, axis=0), onp.sum(x1_class == location, axis=0))
    return onp.maximum(onp.abs(above - below) - at, 0) * onp.exp(-0.5 * log_var)


def class_log_likelihood(params, x1_class, g, family, chunk=256):
    """sum_{n in S_c} log f_1(x1_n | tau_1(g_k)) at each g (K, D) -> (K,), for any family: K x N densities, chunk nodes at a time."""
    log_likelihood = X1_LOG_LIKELIHOODS[family]
    return np.concatenate([np.sum(log_likelihood(params, x1_class[None, :, :], g[start:start + chunk, None, :]), axis=1)
                           for start in range(0, len(g), chunk)])


# ================================================================ input checks, run by S.checked at the edge

UNCHECKED = ("laplace_log_density", "bernoulli_log_density", "decoder_log_likelihood", "cross_modal_term_quadrature", "check_x1_class",
             "check_family", "laplace_x1_log_likelihood", "bernoulli_x1_log_likelihood", "decoder_mean", "draw_x1", "isotropic_constant_mle",
             "isotropic_bound", "class_log_likelihood", "laplace_location_subgradient")


def check_x1_class(x, arguments):
    """A 2-D array of finite reals with at least one row; for the Bernoulli family, only 0s and 1s."""
    S.check_array(x, "x1_class", 2)
    S.fail_unless(len(x) >= 1, "x1_class needs at least one row")
    S.fail_unless(arguments.get("family") != "bernoulli" or onp.all((x == 0) | (x == 1)), "the bernoulli family needs x1 of 0s and 1s "
                  "(binarise first, e.g. pixel >= 8 of 16)")


def check_family(family, arguments):
    """One of FAMILIES; a fixed scale only for the Laplace family."""
    S.fail_unless(family in FAMILIES, f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    S.fail_unless(arguments.get("fixed_scale") is None or family == "laplace", f"fixed_scale applies to the laplace family only, not {family!r}")


ARGUMENT_CHECKS = {
    "family": check_family,
    "x1_class": check_x1_class,
    "fixed_scale": lambda b, arguments: b is None or S.check_number(b, "fixed_scale", positive=True),
    "seed": S.number("seed", integer=True, minimum=0), "num_steps": S.number("num_steps", integer=True, positive=True),
    "num_nodes": S.number("num_nodes", integer=True, minimum=2), "peak_step_size": S.number("peak_step_size", positive=True),
    "hidden": lambda h, arguments: S.fail_unless(isinstance(h, tuple) and all(isinstance(n, int) and n > 0 for n in h), f"hidden must be a tuple of positive integers, got {h!r}"),
}
