"""beyond_the_paper: what this project adds to the paper, built by composing surjvae_np's functions.

B1 MoPoE (Sutter et al. 2021), a third posterior. B2 MMVAE+ (Palumbo, Daunhawer and Vogt 2023), the
published remedy, with private latents. B3 every model behind one interface: what theorem_check.py
and plots.py call. B4 what the MMVAE loses in nats: log p(x1|x2), and label coherence. B5 the
surjectivity sweep's labels. B6 handwritten digits. B7 what controls the collapse's strength: K
importance samples, a fixed decoder std. B8 the paper's augmentation warning: paired views of digits.
Input checks at the end. surjvae_np never imports this module.
"""
import gzip
import hashlib
import io
import math
import os

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

import surjvae_np as S

MODELS = S.PAPER_MODELS + ("mopoe", "mmvaeplus")


def checked_with(registry):
    """S.checked with another registry of this module (at its end): MMVAEPLUS_CHECKS take MMVAE+'s params
    (or the paper's: private size 0), LOG_P_CHECKS enough samples, VIEWS_CHECKS the views' params."""
    return lambda function: S.checked(function, registry)


# ---------------------------------------------------------------- B1. MoPoE: a mixture of products of experts

@S.checked
def nonempty_subsets(num_modalities):
    """The non-empty subsets of {1..M} as 0/1 rows (2^M - 1, M), the full set first, singletons last.
    For M = 2: [[1, 1], [1, 0], [0, 1]], the paper's Eq. (9) subsets and MoPoE's components."""
    codes = np.arange(2 ** num_modalities - 1, 0, -1)                              # full set first
    bits = (codes[:, None] >> np.arange(num_modalities - 1, -1, -1)) & 1           # (2^M - 1, M)
    return bits[np.argsort(-bits.sum(axis=1), kind="stable")].astype(float)


SUBSETS_OF_TWO = nonempty_subsets.__wrapped__(2)        # at import: the checks are defined at the end
# Which products include the prior expert p(g): as Sutter et al. implement MoPoE (thomassutter/MoPoE,
# poe_fusion), only the product over all modalities; a one-modality component is the bare expert r_m.
PRIOR_IN_FULL_SET_ONLY = (SUBSETS_OF_TWO.sum(axis=1) == 2).astype(float)         # (S,) = [1, 0, 0]


def mopoe_components(params, x1, x2):
    """MoPoE's components: the PoE (Eq. 8) over each non-empty subset of {x1, x2}, with p(g) in the full
    set's only, as the authors' poe_fusion. Means, log_vars (S, N, D)."""
    return S.product_of_experts(*S.unimodal_experts(params, x1, x2), SUBSETS_OF_TWO, PRIOR_IN_FULL_SET_ONLY)


@S.checked
def mopoe_objective(params, x1, x2, rng):
    """Eq. (5) with the MoPoE posterior q = (1/|P|) sum_{s in P} PoE_s, P the non-empty subsets. Maximised.

    The paper's stratified mixture ELBO over MoPoE's components: the component r_2 scores log p(x1|g),
    so the cross term is there with weight 1/3. Sutter et al. estimate a looser bound: one component
    per datapoint and sum_s w_s KL(PoE_s || p(g)); the expected difference is (1/|P|) sum_s KL(PoE_s || q_mix).
    """
    return S.stratified_mixture_elbo(params, x1, x2, *mopoe_components(params, x1, x2), rng)


# ---------------------------------------------------------------- B2. MMVAE+: private latents and auxiliary priors

# The auxiliary priors r_m(w_m) = N(0, diag s_m^2), and the private prior p(w) = N(0, s_p^2 I) of the objective
# and of generation, in three parameterisations (the parameters' keys say which; a, learned, starts at 0):
#   "free":     log s_m^2 = a (s_m = 1 at the start), s_p = 1: this project's default;
#   "softplus": s_m = softplus(a) (log 2 at the start), s_p = softplus(0) = log 2: srl-ethz/mmvaeplus's Normal variant;
#   "softmax":  s_m = P softmax(a) (1 at the start; the P scales' mean stays 1), s_p = 1: srl-ethz/mmvaeplus's
#               default (there with Laplace distributions); at P = 1, r_m is p(w) and cannot narrow.
AUXILIARY = {"free": ("auxiliary_prior_log_var_x1", "auxiliary_prior_log_var_x2"),
             "softplus": ("auxiliary_prior_softplus_x1", "auxiliary_prior_softplus_x2"),
             "softmax": ("auxiliary_prior_logits_x1", "auxiliary_prior_logits_x2")}
AUXILIARY_KEYS = AUXILIARY["free"]


@checked_with("MMVAEPLUS_CHECKS")
def init_mmvaeplus_params(rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,), private_dim=1, auxiliary="free"):
    """init_params with latents u = (g, w) of size latent_dim + private_dim, and the auxiliary priors' parameters a
    (zeros) under the keys of auxiliary's parameterisation. private_dim 0 is the MMVAE."""
    params = S.init_params(rng, num_classes, latent_dim + private_dim, data_dim, hidden)
    return dict(params, **{key: np.zeros(private_dim) for key in AUXILIARY[auxiliary]}) if private_dim else params


def auxiliary_of(params):
    """The parameterisation whose keys params hold, or None (the paper's parameters: no private latent)."""
    return next((name for name, keys in AUXILIARY.items() if keys[0] in params), None)


def private_dim(params):
    """The size of MMVAE+'s private latent w (0 for the paper's parameters)."""
    return int(onp.shape(params[AUXILIARY[auxiliary_of(params)][0]])[0]) if auxiliary_of(params) else 0


def shared_dim(params):
    """The size of the shared latent g: the decoders' input size less w's."""
    return int(onp.shape(params["decoder_x1"][0]["W"])[0]) - private_dim(params)


def auxiliary_log_vars(params):
    """log s_m^2 of r_1 and r_2, (M, P), from the parameters a of params' parameterisation."""
    if auxiliary_of(params) is None:
        return np.zeros((2, 0))
    a = np.stack([params[key] for key in AUXILIARY[auxiliary_of(params)]])       # (M, P)
    if auxiliary_of(params) == "softplus":
        return 2.0 * np.log(np.logaddexp(0.0, a))                                  # s = softplus(a) = log(1 + e^a)
    if auxiliary_of(params) == "softmax":
        return 2.0 * (a - S.logsumexp(a, axis=-1)[:, None] + math.log(np.shape(a)[-1]))   # s = P softmax(a)
    return a


def private_prior_log_var(params):
    """log s_p^2 of the private prior p(w) = N(0, s_p^2 I): log(log 2)^2 for "softplus", else 0."""
    return 2.0 * math.log(math.log(2.0)) if auxiliary_of(params) == "softplus" else 0.0


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_objective(params, x1, x2, rng, beta=1.0):
    """MMVAE+, stratified, one sample per stratum. Maximised.

    u_m = (g, w_m), a shared g and a private w_m; expert m is q(u|x_m) = q(g|x_m) q(w_m|x_m). Stratum m
    draws g ~ q(g|x_m), w_m ~ q(w_m|x_m) and, for the other modality n, w~_n ~ r_n(w_n), and scores
      log p(x_m|g, w_m) + log p(x_n|g, w~_n) + beta log [p(g) p(w_m) / (q_MoE(g|x1, x2) q(w_m|x_m))],
    averaged over m outside the log, as Eq. (5). The cross term log p(x_n|g, w~_n) is Eq. (4) over
    (g, w~): Theorem 1's proof holds for it unchanged, the law of (g, w~) being the same for every n
    in S_c. p(g) = N(0, I); p(w), r_m and the experts' scales: params' parameterisation (AUXILIARY, mmvaeplus_experts).
    Private size 0: mmvae_objective for the same noise (tested). The authors' code (srl-ethz/mmvaeplus) runs two
    experiments that differ from this in different ways: PolyMNIST with the ELBO, K = 1, beta = 2.5 and Laplace
    distributions (their default, the softmax scales); CUB with their m_dreg (which computes the IWAE gradient), K = 10,
    beta = 1 and Normal distributions (the softplus scales, and p(g) of scale log 2 too); both with likelihood weights.
    """
    shared = shared_dim(params)
    means, log_vars = mmvaeplus_experts(params, x1, x2)                           # (M, N, D + P)
    u = S.sample_normal(means, log_vars, rng)                                     # (M, N, D + P): stratum m
    g, w_own = u[..., :shared], u[..., shared:]                                   # (M, N, D), (M, N, P)
    # Stratum m borrows the other modality's auxiliary prior: r_2 in stratum 1, r_1 in stratum 2.
    w_other = S.sample_normal(np.zeros(np.shape(w_own)), auxiliary_log_vars(params)[::-1, None, :], rng)   # (M, N, P)
    w_for_x1, w_for_x2 = np.stack([w_own[0], w_other[1]]), np.stack([w_other[0], w_own[1]])  # own in its stratum
    log_p_x1 = S.decoder_x1_log_likelihood(params, x1, np.concatenate([g, w_for_x1], axis=-1))   # (M, N)
    log_p_x2 = S.decoder_x2_log_likelihood(params, x2, np.concatenate([g, w_for_x2], axis=-1))   # (M, N)
    log_ratio = (S.log_prior(g) + S.log_normal(w_own, 0.0, private_prior_log_var(params))
                 - S.mixture_log_density(g, means[..., :shared], log_vars[..., :shared])
                 - S.log_normal(w_own, means[..., shared:], log_vars[..., shared:]))          # (M, N)
    return np.mean(log_p_x1 + log_p_x2 + beta * log_ratio)


def mmvaeplus_experts(params, x1, x2):
    """MMVAE+'s experts q(u|x_m), u = (g, w_m): means and log-variances (M, N, D + P), the scales under params'
    parameterisation as the authors' encoders give them (srl-ethz/mmvaeplus, e.g. resnet_polyMNIST.py's Enc): "free"
    exp(a / 2) of the network's output a (this project's); "softplus" softplus(a); "softmax" n softmax(a) over the n
    entries of g and, apart, of w (their 1e-20 is left out: the log of each map is finite)."""
    means, raw = S.unimodal_experts(params, x1, x2)                              # (M, N, D + P)
    return means, expert_log_var(params, raw)


def expert_log_var(params, raw):
    """The experts' log-variances from the encoder's raw outputs (..., D + P), by params' parameterisation (mmvaeplus_experts)."""
    kind, shared = auxiliary_of(params), shared_dim(params)
    if kind == "softplus":
        return 2.0 * np.log(np.logaddexp(0.0, raw))                               # s = softplus(a)
    if kind == "softmax":
        groups = [raw[..., :shared], raw[..., shared:]]                           # g and w apart
        return np.concatenate([2.0 * (a - S.logsumexp(a, axis=-1)[..., None] + math.log(np.shape(a)[-1])) for a in groups], axis=-1)
    return raw


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_label_latent(params, x2, private="prior"):
    """(mean, log_var) (N, D + P) of u = (g, w_1) for label -> x1 generation: g ~ q(g|x2), the shared
    part of expert r_2, and w_1 ~ p(w_1) (private="prior", the authors' default at generation)
    or w_1 ~ r_1 (private="auxiliary", the law its cross term is trained under)."""
    mean, raw = S.gaussian_expert(params["encoder_x2"], x2)
    mean, log_var = mean[..., :shared_dim(params)], expert_log_var(params, raw)[..., :shared_dim(params)]    # (N, D)
    w_log_var = auxiliary_log_vars(params)[0] if private == "auxiliary" else np.full(private_dim(params), private_prior_log_var(params))
    w_mean, w_log_var = np.zeros((len(mean), private_dim(params))), w_log_var + np.zeros((len(mean), 1))  # (N, P)
    return np.concatenate([mean, w_mean], axis=-1), np.concatenate([log_var, w_log_var], axis=-1)


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_generate_from_labels(params, x2, rng, private="prior", with_noise=False):
    """x1 decoder means at one u = (g, w_1) per row of x2, w_1 from p(w_1), r_1, or fixed at 0 ("zero")."""
    mean, log_var = mmvaeplus_label_latent(params, x2, "prior" if private == "zero" else private)
    u = S.sample_normal(mean, log_var, rng)                                       # (N, D + P)
    if private == "zero":
        u = np.concatenate([u[:, :shared_dim(params)], np.zeros((len(u), private_dim(params)))], axis=1)
    means = S.decode_mean_x1(params, u)
    return S.sample_normal(means, params["decoder_x1_log_var"], rng) if with_noise else means


# ---------------------------------------------------------------- B3. every model behind one interface

OBJECTIVES = dict(S.OBJECTIVES, mopoe=mopoe_objective, mmvaeplus=mmvaeplus_objective)


@S.checked
def label_latent(params, x2, model, private="prior"):
    """(mean, log_var) of the latent that label -> x1 generation draws, per row of x2. The paper's models:
    S.label_posterior; MoPoE: its one-modality component, the bare expert r_2; MMVAE+: mmvaeplus_label_latent."""
    if model == "mmvaeplus":
        return mmvaeplus_label_latent.__wrapped__(params, x2, private)
    if model == "mopoe":
        return S.gaussian_expert(params["encoder_x2"], x2)
    return S.label_posterior.__wrapped__(params, x2, model)


@S.checked
def x1_latent(params, x1, model):
    """(mean, log_var) of the latent q gives x1 alone: S.x1_posterior, MoPoE's r_1, or MMVAE+'s q(g, w_1|x1)."""
    if model == "mmvaeplus":
        mean, raw = S.gaussian_expert(params["encoder_x1"], x1)
        return mean, expert_log_var(params, raw)
    if model == "mopoe":
        return S.gaussian_expert(params["encoder_x1"], x1)
    return S.x1_posterior.__wrapped__(params, x1, model)


@S.checked
def init_model_params(model, rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,), private_dim=None, auxiliary=None):
    """Initial parameters of any model: init_params, or init_mmvaeplus_params (private_dim default 1, auxiliary "free")."""
    if model == "mmvaeplus":
        return init_mmvaeplus_params(rng, num_classes, latent_dim, data_dim, hidden, 1 if private_dim is None else private_dim,
                                     auxiliary or "free")
    return S.init_params(rng, num_classes, latent_dim, data_dim, hidden)


@S.checked
def objective_of(model, num_importance=1, gradient="iwae"):
    """A model's objective as training calls it at every step (unchecked: the checks ran at train's edge); for the
    MMVAE and MoPoE with num_importance > 1 or another gradient than "iwae", its K-sample version (B7)."""
    if num_importance > 1 or gradient != "iwae":
        k_sample = IWAE_OBJECTIVES[model].__wrapped__
        return lambda params, x1, x2, rng: k_sample(params, x1, x2, rng, num_importance, gradient)
    return OBJECTIVES[model].__wrapped__


@S.checked
def train(model, x1, x2, seed=0, latent_dim=2, hidden=(32,), private_dim=None, auxiliary=None, decoder_std=None,
          importance_samples=1, gradient="iwae", **options):
    """Train any model as S.train does: initial parameters from init_rng(seed) in standardised units, then S.fit on
    its objective. private_dim, auxiliary (AUXILIARY's parameterisations): MMVAE+ only. decoder_std: None learns the
    x1 decoder's std (the paper's models do); a number S fixes it at S in x1's units. importance_samples: K per
    stratum, and gradient: its estimator (GRADIENTS), for the MMVAE and MoPoE (B7). options: S.fit's and S.maximise's."""
    start = init_model_params(model, S.init_rng(seed), np.shape(x2)[1], latent_dim, np.shape(x1)[1], hidden, private_dim, auxiliary)
    objective = objective_of(model, importance_samples, gradient)
    if decoder_std is not None:
        fixed = np.array(2.0 * math.log(decoder_std / S.x1_standardisation(x1)[1]))     # in fit's standardised units
        start, objective = dict(start, decoder_x1_log_var=fixed), _with_fixed_decoder_std(objective, fixed)
    return S.fit(objective, start, x1, x2, seed=seed, name=model, **options)


@S.checked
def generate_from_prior(params, num_samples, rng, model):
    """x1 decoder means at g ~ p(g) = N(0, I) (Fig. 2, left), for any model (MMVAE+: u = (g, w), w ~ p(w))."""
    log_var = np.concatenate([np.zeros(shared_dim(params)), np.full(private_dim(params), private_prior_log_var(params))])
    return S.decode_mean_x1(params, S.sample_normal(np.zeros((num_samples, len(log_var))), log_var, rng))


@S.checked
def cross_modal_term(params, x1, x2, rng, num_samples=16, model="mmvae"):
    """Eq. (4), S.cross_modal_term for any model: r_M = label_latent (MMVAE+: (g, w~_1) ~ q(g|x2) r_1(w_1),
    the law its objective's cross term is trained under). Monte Carlo, summed over datapoints. Maximised."""
    g = S.sample_normal(*label_latent(params, x2, model, private="auxiliary"), rng, (num_samples,))   # (S, N, D [+ P])
    return np.sum(np.mean(S.decoder_x1_log_likelihood(params, x1, g), axis=0))


@S.checked
def generate_from_labels(params, x2, rng, model, with_noise=False, private="prior"):
    """x1 decoder means at one latent ~ label_latent per row of x2 (Fig. 2, right), for any model."""
    if model == "mmvaeplus":
        return mmvaeplus_generate_from_labels.__wrapped__(params, x2, rng, private, with_noise)
    return S.sample_x1.__wrapped__(params, *label_latent.__wrapped__(params, x2, model), rng, with_noise)


# ---------------------------------------------------------------- B4. what the MMVAE loses, in nats: log p(x1|x2)

# log p(x1|x2) = log int q(g|x2) p(x1|g) dg, per datapoint, for any latent size (log_p_x1_given_x2). On a latent of
# at most 3 dimensions a uniform grid, where it converges and resolves the posterior; else importance sampling from
# a proposal fitted to each point's posterior q(g|x2) p(x1|g) (Laplace), mixed with q(g|x2), judged by Pareto k.
GRID_HALF_WIDTH = 8.0         # the grid covers mean +- 8 std of q(g|x2) (outside: < 1e-14 of its mass)
GRID_TOLERANCE = 1e-4         # nats per point: the change of the mean over a label's points at which the doubling stops
MAX_GRID_POINTS = 10 ** 6     # nodes ** latent size, at most: 512 per axis in 2-D (from 32), 64 in 3-D
MAX_GRID_NODES = 1024         # per axis
STUDENT_DOF = 3               # the Laplace components: multivariate Student-t, 3 degrees of freedom,
WIDENING = 2.0                # with scale matrix 2 x the inverse Hessian (tails of non-Gaussian posteriors; docs/log_likelihood.md)
LABEL_SHARE = 0.2             # the share of the proposal that is q(g|x2) itself: every weight <= 5 p_theta(x1|g)
PARETO_K_RELIABLE = 0.7       # Vehtari et al. (2024): above it the importance-sampling estimate is unreliable
LAPLACE_STEPS = 20            # damped Gauss-Newton steps to each mode, at most (the log posterior then moves < 1e-3 per point)
RANDOM_STARTS = 2             # draws from q(g|x2) per point, besides its mean and q(g|x1)'s mean, to start mode searches from
RETRY_FACTOR = 4              # a point whose Pareto k exceeds PARETO_K_RELIABLE is estimated once more, with 4 x the draws


@S.checked
def node_counts(first, dim, max_nodes):
    """The nodes per axis that a doubling rule tries in dim dimensions: from first (halved while its double exceeds
    MAX_GRID_POINTS nodes in all, down to 8), doubled up to max_nodes; none if even that many nodes are too many."""
    while first > 8 and (2 * first) ** dim > MAX_GRID_POINTS:
        first //= 2
    counts = [first] if first ** dim <= MAX_GRID_POINTS else []
    while counts and 2 * counts[-1] <= max_nodes and (2 * counts[-1]) ** dim <= MAX_GRID_POINTS:
        counts.append(2 * counts[-1])
    return counts


@checked_with("MMVAEPLUS_CHECKS")
def decoder_jacobian(params, g):
    """The x1 decoder mean mu(g) (N, D1) and its Jacobian d mu / d g (N, D1, D), forward through mlp's layers
    (h_l = tanh(a_l): d h_l = (1 - h_l^2) W_l^T d h_(l-1)). Plain NumPy: it is never differentiated."""
    layers, hidden = params["decoder_x1"], g
    jacobian = onp.broadcast_to(onp.eye(g.shape[-1]), g.shape + (g.shape[-1],))                 # (N, D, D)
    for layer in layers[:-1]:
        hidden = onp.tanh(hidden @ layer["W"] + layer["b"])                                       # (N, H)
        jacobian = (1.0 - hidden ** 2)[..., None] * (layer["W"].T @ jacobian)                      # (N, H, D)
    return hidden @ layers[-1]["W"] + layers[-1]["b"], layers[-1]["W"].T @ jacobian


def _log_posterior_unnormalised(params, x1, g, mean, log_var):
    """log q(g|x2) + log p_theta(x1|g), g (..., N, D), x1 (N, D1): the integrand of log p(x1|x2), in logs. -> (..., N)."""
    return S.log_normal(g, mean, log_var) + S.decoder_x1_log_likelihood(params, x1, g)


def _laplace_fit(params, x1, mean, log_var, start):
    """Each point's posterior mode of q(g|x2) p_theta(x1_n|g) by damped Gauss-Newton from start (N, D) (each step the
    Newton step, halved up to 5 times where it does not raise the log posterior, else none), and the Gauss-Newton
    Hessian of -log there, diag(1 / var) + J^T J / s^2: (mode (N, D), Hessian (N, D, D))."""
    precision, noise_precision, g = onp.exp(-log_var), onp.exp(-params["decoder_x1_log_var"]), onp.array(start, dtype=float)
    value = _log_posterior_unnormalised(params, x1, g, mean, log_var)                              # (N,)
    for _ in range(LAPLACE_STEPS):
        mu, jacobian = decoder_jacobian.__wrapped__(params, g)                                    # (N, D1), (N, D1, D)
        transposed = onp.swapaxes(jacobian, -1, -2)                                               # (N, D, D1)
        hessian = onp.diag(precision) + noise_precision * (transposed @ jacobian)                 # (N, D, D)
        gradient = -(g - mean) * precision + noise_precision * (transposed @ (x1 - mu)[..., None])[..., 0]   # (N, D)
        step, todo = onp.linalg.solve(hessian, gradient[..., None])[..., 0], onp.arange(len(g))
        for _ in range(6):                                                                        # 1, 1/2, ..., 1/32
            candidate = g[todo] + step[todo]
            candidate_value = _log_posterior_unnormalised(params, x1[todo], candidate, mean, log_var)
            better = candidate_value >= value[todo]
            g[todo[better]], value[todo[better]] = candidate[better], candidate_value[better]
            todo, step = todo[~better], step * 0.5
            if not len(todo):
                break
        if onp.max(onp.abs(step) * onp.exp(-0.5 * log_var)) < 1e-6:                               # converged: in q's std units
            break
    _, jacobian = decoder_jacobian.__wrapped__(params, g)
    return g, onp.diag(precision) + noise_precision * (onp.swapaxes(jacobian, -1, -2) @ jacobian)


def _student_t_sample(mode, hessian, rng, size):
    """size draws (size, N, D) of the multivariate Student-t with STUDENT_DOF degrees of freedom, location mode (N, D)
    and scale matrix hessian^-1 (N, D, D): mode + L^-T z sqrt(nu / u), L L^T = hessian, z ~ N(0, I), u ~ chi^2_nu."""
    inverse_transposed = onp.swapaxes(onp.linalg.inv(onp.linalg.cholesky(hessian)), -1, -2)     # L^-T (N, D, D)
    z = rng.standard_normal((size,) + mode.shape)                                                 # (K, N, D)
    steps = (inverse_transposed @ z[..., None])[..., 0]                                            # covariance hessian^-1
    return mode + steps * onp.sqrt(STUDENT_DOF / rng.chisquare(STUDENT_DOF, (size, len(mode))))[..., None]


def _student_t_log_density(g, mode, hessian):
    """log t_nu(g | mode, hessian^-1) of g (..., N, D): log Gamma((nu + D)/2) - log Gamma(nu/2) - (D/2) log(nu pi)
    + (1/2) log|hessian| - ((nu + D)/2) log(1 + d^T hessian d / nu), d = g - mode."""
    nu, dim, residual = STUDENT_DOF, mode.shape[-1], g - mode
    quadratic = onp.sum(residual * (hessian @ residual[..., None])[..., 0], axis=-1)
    constant = math.lgamma((nu + dim) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * dim * math.log(nu * math.pi)
    return constant + 0.5 * onp.linalg.slogdet(hessian)[1] - 0.5 * (nu + dim) * onp.log1p(quadratic / nu)


def _laplace_log_weights(params, x1, mean, log_var, fits, rng, num_samples, chunk=256):
    """Importance log weights (K, N) of log p(x1|x2): log q(g|x2) p_theta(x1|g) - log r(g), from the proposal r per
    point = (1 - LABEL_SHARE) x (the equal mixture of a Student-t at each fit (mode, hessian), scale matrix WIDENING x
    hessian^-1) + LABEL_SHARE x q(g|x2).
    Stratified: each component gets its share of the K draws; the weights use the whole mixture (unbiased)."""
    fits = [(mode, hessian / WIDENING) for mode, hessian in fits]                                # scale WIDENING x hessian^-1
    shares = [(1.0 - LABEL_SHARE) / len(fits)] * len(fits) + [LABEL_SHARE]
    counts = [int(round(share * num_samples)) for share in shares[:-1]]
    draws = [_student_t_sample(mode, hessian, rng, count) for (mode, hessian), count in zip(fits, counts)]
    draws.append(S.sample_normal(onp.broadcast_to(mean, x1.shape[:1] + mean.shape), log_var, rng, (num_samples - sum(counts),)))
    g = onp.concatenate(draws)                                                                    # (K, N, D)
    log_weights = []
    for start in range(0, num_samples, chunk):
        part = g[start:start + chunk]
        components = [_student_t_log_density(part, mode, hessian) for mode, hessian in fits] + [S.log_normal(part, mean, log_var)]
        log_proposal = S.logsumexp(onp.stack([onp.log(share) + c for share, c in zip(shares, components)]), axis=0)
        log_weights.append(_log_posterior_unnormalised(params, x1, part, mean, log_var) - log_proposal)
    return onp.concatenate(log_weights)


@S.checked
def pareto_k(log_weights):
    """Pareto k of each column of log weights (K, N): the generalised Pareto shape fitted (Zhang and Stephens 2009, with
    Vehtari et al.'s weak prior) to the M = min(K / 5, 3 sqrt(K)) largest weights over the next one. k <= 0.7: the
    estimate's error is trustworthy; above, the variance of the weights may be infinite (Vehtari et al. 2024)."""
    size = len(log_weights)
    tail = int(min(math.ceil(0.2 * size), math.ceil(3.0 * math.sqrt(size))))
    ordered = onp.sort(log_weights, axis=0)
    weights = onp.exp(ordered - ordered[-1])                                                       # largest weight 1
    exceedances = weights[-tail:] - weights[-tail - 1]                                             # (M, N), ascending
    return onp.array([_generalised_pareto_shape(column) for column in exceedances.T])


def _generalised_pareto_shape(x):
    """The shape k of a generalised Pareto fitted to the ascending exceedances x > 0 (Zhang and Stephens 2009, as in
    Vehtari et al.'s PSIS): a quadrature over b = -k / sigma of the profile likelihood, then a weak prior at k = 0.5."""
    if x[-1] <= 0.0:
        return -onp.inf                                                                             # equal weights: no tail
    if x[int(len(x) / 4 + 0.5) - 1] <= 0.0:
        return onp.inf                                                                              # a few weights over a sea of equal ones
    n, prior_strength, grid_size = len(x), 10.0, 30 + int(math.sqrt(len(x)))
    b = 1.0 - onp.sqrt(grid_size / (onp.arange(1, grid_size + 1) - 0.5))
    b = b / (3.0 * x[int(n / 4 + 0.5) - 1]) + 1.0 / x[-1]
    k = onp.mean(onp.log1p(-b[:, None] * x), axis=1)                                              # (grid,)
    log_likelihood = n * (onp.log(-b / k) - k - 1.0)
    with onp.errstate(over="ignore"):                                                           # exp(huge) = inf: a weight of 0
        weights = 1.0 / onp.sum(onp.exp(log_likelihood[None, :] - log_likelihood[:, None]), axis=1)
    b_mean = onp.sum(b * weights) / onp.sum(weights)
    return float((n * onp.mean(onp.log1p(-b_mean * x)) + prior_strength * 0.5) / (n + prior_strength))


@S.checked
def importance_estimate(log_weights):
    """From log weights (K, N): log (1/K) sum_k w_k, its standard error by the delta method sqrt(var(w) / K) / mean(w)
    (a standard error, trustworthy where Pareto k <= 0.7), Pareto k, and Kish's effective sample size / K."""
    size = len(log_weights)
    log_mean = S.logsumexp(log_weights, axis=0) - math.log(size)                                  # (N,)
    relative = onp.exp(log_weights - log_mean)                                                     # w_k / mean(w)
    standard_error = onp.sqrt(onp.sum((relative - 1.0) ** 2, axis=0) / (size * (size - 1)))
    ess = onp.exp(2.0 * S.logsumexp(log_weights, axis=0) - S.logsumexp(2.0 * log_weights, axis=0)) / size
    return log_mean, standard_error, pareto_k.__wrapped__(log_weights), ess


@checked_with("MMVAEPLUS_CHECKS")
def grid_log_p(params, x1, label_mean, label_log_var, num_nodes, chunk=8192):
    """log p(x1_n|x2) per point (N,) by the tensor-product trapezoid rule on mean +- GRID_HALF_WIDTH std of q(g|x2) =
    N(label_mean, diag exp(label_log_var)), num_nodes per axis: the points share q(g|x2), so the decoder runs once per node.
    log N(x_n | mu_k, s^2 I) = a_n + b_nk, a_n = -(D1/2) log(2 pi s^2) - |x_n|^2 / (2 s^2), b_nk = (x_n . mu_k - |mu_k|^2 / 2) / s^2."""
    mean, log_var = label_mean, label_log_var
    dim, axis = len(mean), onp.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, num_nodes)
    z = onp.stack(onp.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)           # (K, D)
    log_weights = -0.5 * onp.sum(z * z, axis=1) + dim * (math.log(axis[1] - axis[0]) - 0.5 * S.LOG_2PI)
    noise_log_var, total = params["decoder_x1_log_var"], onp.full(len(x1), -onp.inf)
    a = -0.5 * x1.shape[1] * (S.LOG_2PI + noise_log_var) - 0.5 * onp.sum(x1 * x1, axis=1) * onp.exp(-noise_log_var)
    for start in range(0, len(z), chunk):
        mu = S.decode_mean_x1(params, mean + onp.exp(0.5 * log_var) * z[start:start + chunk])       # (K_chunk, D1)
        b = (x1 @ mu.T - 0.5 * onp.sum(mu * mu, axis=1)) * onp.exp(-noise_log_var) + log_weights[start:start + chunk]
        total = onp.logaddexp(total, S.logsumexp(b, axis=1))
    return a + total


def _converged_grid(params, x1, mean, log_var, hessians, start_nodes):
    """grid_log_p with the nodes doubled from start_nodes until the mean over the points moves by less than GRID_TOLERANCE
    and the node spacing is at most twice the narrowest posterior std (from the Laplace Hessians, in the grid's
    standardised coordinates: a narrower peak can fall between the nodes, and two grids then agree on a wrong value;
    the trapezoid rule's relative error on a Gaussian of std w at spacing h is about 2 exp(-2 pi^2 w^2 / h^2)):
    (values, |last change| per point, nodes), or None if the counts run out first. The last change is a sign of
    convergence, not a bound on the error."""
    scaled = hessians * onp.exp(0.5 * (log_var[:, None] + log_var[None, :]))                      # diag(s) H diag(s)
    narrowest = 1.0 / math.sqrt(onp.max(onp.linalg.eigvalsh(scaled)))
    previous = None
    for nodes in node_counts.__wrapped__(start_nodes, len(mean), MAX_GRID_NODES):
        values = grid_log_p.__wrapped__(params, x1, mean, log_var, nodes)
        resolved = 2.0 * GRID_HALF_WIDTH / (nodes - 1) <= 2.0 * narrowest
        if previous is not None and resolved and abs(onp.mean(values - previous)) < GRID_TOLERANCE:
            return values, onp.abs(values - previous), nodes
        previous = values
    return None


@checked_with("LOG_P_CHECKS")
def log_p_x1_given_x2(params, x1, x2, rng, model, private="prior", num_samples=2000, grid_nodes=32):
    """log p(x1|x2) = log int q(g|x2) p_theta(x1|g) dg (the display under Eq. 4) per datapoint, as a dict of arrays (N,):
      "value";  "error": by importance sampling a standard error (delta method), by the grid |the last change|;
      "reliable": the grid converged and resolved the posterior, or Pareto k <= PARETO_K_RELIABLE;
      "method": "grid<nodes>" or "IS"; "pareto_k", "ess" (Kish ESS / K; NaN on the grid).
    q(g|x2) = label_latent (MMVAE+: w_1 ~ p(w_1) with private="prior", ~ r_1 with "auxiliary"). Each point's
    posterior mode is sought (_laplace_fit) from the label's mean and from q(g|x1)'s mean. On a latent of at most 3
    dimensions the grid is tried first (_converged_grid, from grid_nodes per axis; None: never), trusted only where
    its spacing resolves those modes' widths; else importance sampling (_laplace_log_weights, num_samples draws per
    point; RETRY_FACTOR times as many again where Pareto k > PARETO_K_RELIABLE) from a Student-t at each mode, and at the
    modes found from RANDOM_STARTS draws of q(g|x2) (so that a second mode is found, not only flagged), mixed with
    q(g|x2) itself. A posterior peak that no search finds and that neither the grid's nodes nor q(g|x2)'s draws hit
    is missed by both methods (docs/log_likelihood.md)."""
    labels, out = onp.argmax(x2, axis=1), {key: onp.zeros(len(x1)) for key in ("value", "error", "pareto_k", "ess")}
    out.update(reliable=onp.zeros(len(x1), dtype=bool), method=onp.empty(len(x1), dtype=object))
    own_mean = x1_latent.__wrapped__(params, x1, model)[0]
    for label in onp.unique(labels):
        members = onp.flatnonzero(labels == label)
        mean, log_var = (a[0] for a in label_latent.__wrapped__(params, x2[members[:1]], model, private))
        fits = [_laplace_fit(params, x1[members], mean, log_var, start) for start in (onp.broadcast_to(mean, own_mean[members].shape), own_mean[members])]
        hessians = onp.concatenate([hessian for _, hessian in fits])
        grid = _converged_grid(params, x1[members], mean, log_var, hessians, grid_nodes) if grid_nodes and len(mean) <= 3 else None
        if grid is not None:
            found = dict(value=grid[0], error=grid[1], pareto_k=onp.nan, ess=onp.nan, reliable=True, method=f"grid{grid[2]}")
        else:
            starts = S.sample_normal(onp.broadcast_to(mean, own_mean[members].shape), log_var, rng, (RANDOM_STARTS,))
            fits += [_laplace_fit(params, x1[members], mean, log_var, start) for start in starts]
            found = _sampled(params, x1[members], mean, log_var, fits, rng, num_samples)
        for key, column in found.items():
            out[key][members] = column
    return out


def _sampled(params, x1, mean, log_var, fits, rng, num_samples):
    """importance_estimate of _laplace_log_weights as log_p_x1_given_x2's columns. A point whose Pareto k exceeds
    PARETO_K_RELIABLE is estimated again, from fresh draws, RETRY_FACTOR times as many, and that estimate replaces the
    first whatever it says (k from a few thousand weights is noisy: a true k of 0.5 reads above 0.7 at some points)."""
    value, error, k, ess = importance_estimate.__wrapped__(_laplace_log_weights(params, x1, mean, log_var, fits, rng, num_samples))
    again = onp.flatnonzero(k > PARETO_K_RELIABLE)
    if len(again):
        subset = [(mode[again], hessian[again]) for mode, hessian in fits]
        weights = _laplace_log_weights(params, x1[again], mean, log_var, subset, rng, RETRY_FACTOR * num_samples)
        value[again], error[again], k[again], ess[again] = importance_estimate.__wrapped__(weights)
    return dict(value=value, error=error, pareto_k=k, ess=ess, reliable=k <= PARETO_K_RELIABLE, method="IS")


def _nearest_label(points, reference_x1, reference_labels):
    """The label of each point's nearest reference point (Euclidean): points (N, D) -> (N,)."""
    squared = (onp.sum(points ** 2, axis=1)[:, None] - 2.0 * points @ reference_x1.T
               + onp.sum(reference_x1 ** 2, axis=1)[None, :])                     # (N, R)
    return reference_labels[onp.argmin(squared, axis=1)]


@S.checked
def label_coherence(generated, conditioning_labels, reference_x1, reference_labels):
    """Fraction of generated x1 whose nearest reference point carries the conditioning label: 1 means
    every label -> x1 sample lands among its own class; it tells samples that stray to another class
    (the MVAE's overlapping label posteriors) from variation that is kept."""
    return float(onp.mean(_nearest_label(generated, reference_x1, reference_labels) == conditioning_labels))


@S.checked
def leave_one_out_coherence(x1, labels):
    """label_coherence of the data themselves, per label: each point against all the others (1-NN).
    The yardstick for label_coherence: where the data's own classes overlap, no model can score 1."""
    squared = onp.sum(x1 ** 2, axis=1)[:, None] - 2.0 * x1 @ x1.T + onp.sum(x1 ** 2, axis=1)[None, :]   # (N, N)
    onp.fill_diagonal(squared, onp.inf)                                           # not its own neighbour
    same = labels[onp.argmin(squared, axis=1)] == labels
    return [float(onp.mean(same[labels == c])) for c in onp.unique(labels)]


# ---------------------------------------------------------------- B5. the surjectivity sweep's labels

@S.checked
def refine_labels(position, labels, k):
    """Split each class into k sub-labels of (near) equal size by position along its pinwheel arm.

    position (N,): the radial coordinate r of make_pinwheel(return_radial=True) (|x1| would misplace
    the rare points with r < 0). Sub-label j of class c is c k + j, j = 0 nearest the centre; k = 1 is
    the paper's setting. Returns (fine_labels (N,), x2 one-hot (N, C k)).
    """
    num_classes, fine = int(labels.max()) + 1, onp.zeros(len(labels), dtype=int)
    for c in range(num_classes):
        members = onp.flatnonzero(labels == c)
        order = members[onp.argsort(position[members], kind="stable")]            # centre -> tip
        fine[order] = c * k + (onp.arange(len(order)) * k) // len(order)
    return fine, S.one_hot(fine, num_classes * k)


# ---------------------------------------------------------------- B6. real surjective data: handwritten digits

# UCI Optical Recognition of Handwritten Digits, test set (E. Alpaydin and C. Kaynak; CC BY 4.0), the copy
# inside scikit-learn's wheel, unchanged: 1797 rows of 64 pixel counts 0..16 (8 x 8 images), then the label.
DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "digits.csv.gz")
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


@S.checked
def load_digits(path=None):
    """The digits as x1 (N, 64) in [0, 1] (pixel counts / 16) and integer labels (N,) in 0..9, from path
    (default DIGITS_PATH). Checks the file's SHA-256 first: a missing or altered file is a ValueError naming it."""
    path = DIGITS_PATH if path is None else path
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise ValueError(f"cannot read the digits file {path}: {error.strerror}; it ships in the repository "
                         "as data/digits.csv.gz") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{path} is altered: its SHA-256 is {digest}, expected {DIGITS_SHA256}")
    table = onp.loadtxt(io.StringIO(gzip.decompress(content).decode("ascii")), delimiter=",")   # (N, 65)
    return table[:, :64] / 16.0, table[:, 64].astype(int)


# ---------------------------------------------------------------- B7. what controls the collapse's strength: K, the gradient, sigma

# The gradient estimators of the K-sample objective (docs/collapse_strength.md): "iwae" autograd's gradient of it
# (this project's default; srl-ethz/mmvaeplus's m_dreg computes it too: its hook never fires and q is not detached);
# "stl" the MMVAE's official code as it runs (iffsid/mmvae, src/objectives.py, m_dreg_looser: q's parameters detached,
# the hook on a copy of the samples never fires); "dreg" Tucker et al. (2019) as intended (MultiVae after its PR #39).
GRADIENTS = ("iwae", "stl", "dreg")


def log_importance_weights(params, x1, x2, g, means, log_vars):
    """log w = log p(g, {x_m}) - log q(g|{x_m}) at g (K, M, N, D), q the equal mixture of the components (means,
    log_vars (M, N, D)): log p(g) + log p(x1|g) + log p(x2|g) - log q_mix(g) (Eq. 1, 3, 5). -> (K, M, N)."""
    log_joint = S.log_prior(g) + (S.decoder_x1_log_likelihood(params, x1, g) + S.decoder_x2_log_likelihood(params, x2, g))
    return log_joint - S.mixture_log_density(g, means, log_vars)


@S.checked
def stratified_importance_weighted_elbo(params, x1, x2, means, log_vars, rng, num_importance):
    """Eq. (5) with K = num_importance importance samples per stratum (Shi et al.'s m_iwae_looser). Maximised:
      (1/M) sum_m E log (1/K) sum_k w_mk,  w_mk = p(g_mk, {x_m}) / q(g_mk|{x_m}),  g_mk ~ q_m (reparameterised),
    the log-mean-exp over the K samples inside each stratum, the 1/M average outside. K = 1 is
    S.stratified_mixture_elbo exactly (tested). Its stratum m = M holds the K-sample cross term of
    k_sample_cross_term, which the constant-mean decoder no longer maximises once K > 1. Differentiated as it stands,
    it gives the IWAE gradient (Burda et al. 2016): sum_k w~_k grad log w_k, w~ = w / sum_k w."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D)
    return np.mean(S.logsumexp(log_importance_weights(params, x1, x2, g, means, log_vars), axis=0) - math.log(num_importance))


@S.checked
def sticking_the_landing(params, x1, x2, means, log_vars, rng, num_importance):
    """stratified_importance_weighted_elbo with q's parameters held in log q (Roeder et al. 2017): the same value; the
    gradient sum_k w~_k (d log w_k / d g_k) (d g_k / d phi) for the encoders (the score term d log q / d phi at fixed g
    dropped), the IWAE gradient for the decoders. What iffsid/mmvae's m_dreg_looser computes (src/objectives.py).
    Biased for K > 1 (Tucker et al. 2019); at K = 1, summed over the strata, unbiased (the dropped term's
    expectation, E_{q_mix} grad log q_mix, is 0)."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D): depends on phi
    held = log_importance_weights(params, x1, x2, g, getval(means), getval(log_vars))   # getval: q's parameters held
    return np.mean(S.logsumexp(held, axis=0) - math.log(num_importance))


@S.checked
def doubly_reparameterised(params, x1, x2, means, log_vars, rng, num_importance):
    """The DReG estimator (Tucker et al. 2019) of the gradient of stratified_importance_weighted_elbo: for the encoders
    sum_k w~_k^2 (d log w_k / d g_k)(d g_k / d phi), for the decoders the IWAE gradient sum_k w~_k grad log w_k. Its
    surrogate: the weights w~ from a first pass on the values (what a hook on the samples reads), then
    (1/M) sum_{m,k} w~_mk log w_mk at g' = g_held + w~ (g - g_held), whose value is g and whose derivative in phi is w~ dg/dphi,
    with q's parameters held in log q. DReG's identity assumes the samples come from the q of the weight; here they
    come from q_m and the weight holds q_mix (its bias is measured in the tests). Its value is the objective itself."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D)
    values = log_importance_weights(_values_of(params), x1, x2, getval(g), getval(means), getval(log_vars))   # (K, M, N)
    weights = onp.exp(values - S.logsumexp(values, axis=0))                       # w~ over the K samples of a stratum
    rescaled = getval(g) + weights[..., None] * (g - getval(g))                   # value g; d/d phi scaled by w~
    surrogate = np.mean(np.sum(weights * log_importance_weights(params, x1, x2, rescaled, getval(means), getval(log_vars)), axis=0))
    objective = np.mean(S.logsumexp(values, axis=0) - math.log(num_importance))
    return surrogate + getval(objective - surrogate)                              # the value reported: the objective


def _values_of(params):
    """params with every array taken out of autograd's boxes (getval): a pass on it is not traced."""
    return S.tree_rebuild(params, iter([getval(leaf) for leaf in S.tree_leaves(params)]))


ESTIMATORS = {"iwae": stratified_importance_weighted_elbo, "stl": sticking_the_landing, "dreg": doubly_reparameterised}


@S.checked
def mmvae_iwae_objective(params, x1, x2, rng, num_importance=1, gradient="iwae"):
    """The MMVAE's objective (Eq. 5, the experts as components) with num_importance samples per stratum, differentiated
    by the gradient estimator `gradient` (GRADIENTS). Maximised; its value is the objective for every estimator."""
    return ESTIMATORS[gradient].__wrapped__(params, x1, x2, *S.unimodal_experts(params, x1, x2), rng, num_importance)


@S.checked
def mopoe_iwae_objective(params, x1, x2, rng, num_importance=1, gradient="iwae"):
    """MoPoE's objective (B1) with num_importance samples per stratum and the gradient estimator `gradient`. Maximised."""
    return ESTIMATORS[gradient].__wrapped__(params, x1, x2, *mopoe_components(params, x1, x2), rng, num_importance)


IWAE_OBJECTIVES = {"mmvae": mmvae_iwae_objective, "mopoe": mopoe_iwae_objective}     # what objective_of trains at K > 1


@S.checked
def k_sample_cross_term(params, x1, label_mean, label_log_var, rng, num_importance, replicates=200):
    """(1/N) sum_n E log (1/K) sum_k f_1(x1^(n) | tau_1(g_k)), g_k ~ N(label_mean, diag exp(label_log_var)), the label
    posterior that all rows of x1 share (one class): (mean, standard error) over `replicates` sets of K draws.
    At K = 1 it is L_1/N of Eq. (4); it does not decrease with K and tends to log p(x1|x2) (Burda et al. 2016).
    The constant class-mean decoder scores the bound of Eq. (7) at every K, and a decoder that follows g can beat it.
    A proxy: the K-sample objective's stratum M takes its log-mean-exp over f_1 p(x2|g) p(g) / q_mix(g), not over f_1
    alone: for K > 1 the objective's own term is not this one (on the pinwheel's MMVAE trained at K = 8, the two differ by
    0.76-0.79 nats per point at K = 4 and 0.79-0.83 at K = 8)."""
    mu = S.decode_mean_x1(params, S.sample_normal(label_mean, label_log_var, rng, (replicates, num_importance)))  # (R, K, D1)
    log_var = params["decoder_x1_log_var"]        # log f_1(x_n | mu_k) = a_n + b_nk, as in grid_log_p
    a = -0.5 * np.shape(x1)[1] * (S.LOG_2PI + log_var) - 0.5 * onp.sum(x1 * x1, axis=1) * onp.exp(-log_var)   # (N,)
    b = (mu @ x1.T - 0.5 * onp.sum(mu * mu, axis=-1)[..., None]) * onp.exp(-log_var)                         # (R, K, N)
    per_replicate = np.mean(a + S.logsumexp(b, axis=1), axis=-1) - math.log(num_importance)                   # (R,)
    return float(np.mean(per_replicate)), float(np.std(per_replicate, ddof=1) / np.sqrt(replicates))


def _with_fixed_decoder_std(objective, log_var):
    """objective with the x1 decoder's log-variance held at log_var (not learned: its gradient is 0, so Adam leaves it)."""
    return lambda params, *batch_and_rng: objective(dict(params, decoder_x1_log_var=log_var), *batch_and_rng)


# ---------------------------------------------------------------- B8. the paper's augmentation warning: paired views of digits

# x1 = an 8 x 8 digit, x2 = a second view of it, its 4 x 4 average-pooled image (a continuous modality with an
# isotropic Gaussian f_2 and an encoder on the real vector: Eq. 3 allows any f_m). The pairs are one-to-one;
# flip augmentation adds (mirror(x1), same x2) for every pair, so that each x2 describes two x1 (Sec. 1, 4).
VIEWS_KEYS = ("decoder_x2_log_var",)               # the paper's layout plus f_2's log-variance


@checked_with("DIGITS_CHECKS")
def mirror(images):
    """Each 8 x 8 image (N, 64) flipped left-right."""
    return onp.reshape(onp.reshape(images, (-1, 8, 8))[:, :, ::-1], (-1, 64))


@checked_with("DIGITS_CHECKS")
def pooled_view(images):
    """The second view: each 8 x 8 image (N, 64) averaged over 2 x 2 blocks, (N, 16)."""
    return onp.reshape(onp.reshape(images, (-1, 4, 2, 4, 2)).mean(axis=(2, 4)), (-1, 16))


@checked_with("DIGITS_CHECKS")
def digit_views(x1, augment):
    """The paired views (x1, x2) of the digits x1 (N, 64), with augment "none" (N one-to-one pairs) or "flip"
    (those and (mirror(x1_n), x2_n): 2N pairs, each x2 shared by a digit and its mirror image)."""
    x2 = pooled_view.__wrapped__(x1)
    return (x1, x2) if augment == "none" else (onp.concatenate([x1, mirror.__wrapped__(x1)]), onp.concatenate([x2, x2]))


@S.checked
def init_views_params(rng, latent_dim=8, data_dim=64, view_dim=16, hidden=(128,), decoder_std=0.1):
    """init_params for the views (x2 of view_dim reals in place of the label), and f_2's log-variance, one learned
    scalar starting at log decoder_std^2 like x1's."""
    return dict(S.init_params(rng, view_dim, latent_dim, data_dim, hidden, decoder_std), decoder_x2_log_var=np.array(2.0 * math.log(decoder_std)))


def views_x2_log_likelihood(params, x2, g):
    """Eq. (3) with f_2 isotropic Gaussian: log p_theta(x2|g) = log N(x2 | tau_2(g) = mlp(g), exp(log-variance) I). -> (..., N)."""
    return S.log_normal(x2, S.mlp(params["decoder_x2"], g), params["decoder_x2_log_var"])


@checked_with("VIEWS_CHECKS")
def views_objective(params, x1, x2, rng, model):
    """The paper's objective of model (Eq. 9 for the MVAE, Eq. 5 for the MMVAE), with views_x2_log_likelihood as f_2. Maximised.
    The paper's functions themselves, unchecked (their checks are for the label modality): no copy of them."""
    return S.OBJECTIVES[model].__wrapped__(params, x1, x2, rng, x2_log_likelihood=views_x2_log_likelihood)


@checked_with("VIEWS_CHECKS")
def train_views(model, x1, x2, seed=0, latent_dim=8, hidden=(128,), **options):
    """Train the MVAE or the MMVAE on paired views as S.train does (S.fit, x1 standardised; x2 as it is)."""
    start = init_views_params(S.init_rng(seed), latent_dim, np.shape(x1)[1], np.shape(x2)[1], hidden)
    return S.fit(lambda p, x1, x2, rng: views_objective.__wrapped__(p, x1, x2, rng, model), start, x1, x2, seed=seed, name=model, **options)


@checked_with("VIEWS_CHECKS")
def views_generate_x1(params, x2, rng, model):
    """x1 decoder means at one g ~ q(g|x2) per row of x2: the model's posterior given the view (S.label_posterior's rule)."""
    return S.sample_x1.__wrapped__(params, *S.label_posterior.__wrapped__(params, x2, model), rng)


@checked_with("DIGITS_CHECKS")
def mirror_asymmetry(images):
    """The mean left-right asymmetry of images (N, 64): the mean over images and pixels of |x - mirror(x)|."""
    return float(onp.mean(onp.abs(images - mirror.__wrapped__(images))))


@checked_with("DIGITS_CHECKS")
def nearest_of_three(generated, originals):
    """Fractions of generated x1 (N, 64) nearest (Euclidean) to their original digit, to its mirror image, and to the
    mirror average (original + mirror) / 2, row by row."""
    mirrored = mirror.__wrapped__(originals)
    candidates = onp.stack([originals, mirrored, 0.5 * (originals + mirrored)])   # (3, N, 64)
    nearest = onp.argmin(onp.sum((candidates - generated) ** 2, axis=-1), axis=0)                   # (N,)
    return {name: float(onp.mean(nearest == index)) for index, name in enumerate(("original", "mirror", "average"))}


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here, a building block called inside the
# differentiated objectives (their callers are checked) or a check itself. A test holds every public name to this.
UNCHECKED = ("mopoe_components", "auxiliary_of", "private_dim", "shared_dim", "auxiliary_log_vars", "private_prior_log_var",
             "mmvaeplus_experts", "expert_log_var", "log_importance_weights", "views_x2_log_likelihood",
             "checked_with", "check_mmvaeplus_params", "check_params_of_model", "check_private_dim", "check_auxiliary",
             "check_importance_samples", "check_gradient", "check_num_importance", "check_components", "check_log_weights",
             "check_digit_images", "check_labels_against", "check_leave_one_out_labels", "check_position", "check_sweep_labels")


def check_mmvaeplus_params(params, arguments=None):
    """MMVAE+'s layout: the paper's plus one parameterisation's two vectors a (AUXILIARY) of one length P below the
    latent size; or the paper's layout (private size 0)."""
    params = S.getval(params)
    if not isinstance(params, dict) or auxiliary_of(params) is None:
        return S.check_params(params)
    keys = AUXILIARY[auxiliary_of(params)]
    S.check_params(params, keys)
    shapes, latent = [onp.shape(S.getval(params[key])) for key in keys], onp.shape(params["decoder_x1"][0]["W"])[0]
    S.fail_unless(shapes[0] == shapes[1] and len(shapes[0]) == 1 and 0 < shapes[0][0] < latent,
                  f"params' auxiliary prior parameters {keys} must be two vectors of one length below the latent size "
                  f"{latent}, got shapes {shapes}")
    for key in keys:
        S.check_array(params[key], f"params[{key!r}]", 1)


def check_params_of_model(params, arguments):
    """MMVAE+'s parameters for model="mmvaeplus", the paper's layout for every other model."""
    if arguments.get("model") == "mmvaeplus":
        return check_mmvaeplus_params(params)
    S.check_params(params)


def check_private_dim(value, arguments):
    """None (the default), or an integer >= 0, given only with model="mmvaeplus"."""
    if value is None:
        return
    S.check_number(value, "private_dim", integer=True, minimum=0)
    S.fail_unless(arguments.get("model", "mmvaeplus") == "mmvaeplus",
                  f"private_dim applies to MMVAE+ only, not to {arguments.get('model')!r}")


def check_auxiliary(value, arguments):
    """None (the default), or one of AUXILIARY's parameterisations, given only with model="mmvaeplus"."""
    if value is None:
        return
    S.fail_unless(value in AUXILIARY, f"auxiliary must be one of {', '.join(AUXILIARY)}, got {value!r}")
    S.fail_unless(arguments.get("model", "mmvaeplus") == "mmvaeplus", f"auxiliary applies to MMVAE+ only, not to {arguments.get('model')!r}")


def check_importance_samples(value, arguments):
    """An integer >= 1; above 1 only for the MMVAE and MoPoE (the models with a K-sample objective here)."""
    S.check_number(value, "importance_samples", integer=True, positive=True)
    S.fail_unless(value == 1 or arguments.get("model") in ("mmvae", "mopoe"),
                  f"importance_samples > 1 applies to the MMVAE and MoPoE only, not to {arguments.get('model')!r}")


def check_gradient(value, arguments):
    """One of GRADIENTS; other than "iwae" only for the MMVAE and MoPoE (the models with a K-sample objective here)."""
    S.fail_unless(value in GRADIENTS, f"gradient must be one of {', '.join(GRADIENTS)}, got {value!r}")
    S.fail_unless(value == "iwae" or arguments.get("model", "mmvae") in ("mmvae", "mopoe"),
                  f"gradient {value!r} applies to the MMVAE and MoPoE only, not to {arguments.get('model')!r}")


def check_num_importance(value, arguments):
    """An integer >= 1; above 1 only for the MMVAE and MoPoE where a model is named."""
    S.check_number(value, "num_importance", integer=True, positive=True)
    S.fail_unless(value == 1 or arguments.get("model", "mmvae") in ("mmvae", "mopoe"),
                  f"num_importance > 1 applies to the MMVAE and MoPoE only, not to {arguments.get('model')!r}")


def check_components(name):
    """A check: means or log_vars of a mixture, (M, N, D) arrays of finite reals, D the decoder's input size, N x1's rows."""
    def check(value, arguments):
        S.check_array(value, name, 3)
        shape, latent = onp.shape(S.getval(value)), S.input_size(arguments, "decoder_x1")
        S.fail_unless(latent in (None, shape[-1]), f"{name} has {shape[-1]} latent dimensions but the decoder takes {latent}")
        S.fail_unless("x1" not in arguments or shape[1] == len(S.getval(arguments["x1"])), f"{name} has {shape[1]} rows but x1 has "
                      f"{len(S.getval(arguments['x1']))}")
        S.fail_unless(name == "means" or shape == onp.shape(S.getval(arguments["means"])), "log_vars must have means' shape")
    return check


def check_log_weights(value, arguments):
    """Log importance weights (K, N): a 2-D real array of at least 5 rows, without NaN or +inf (-inf: a weight of 0)."""
    S.fail_unless(isinstance(value, onp.ndarray) and value.ndim == 2 and value.dtype.kind in "iuf" and len(value) >= 5,
                  f"log_weights must be a 2-D real NumPy array of at least 5 rows (K, N), got {type(value).__name__} of shape {onp.shape(value)}")
    S.fail_unless(not onp.any(onp.isnan(value) | (value == onp.inf)), "log_weights contains NaN or +inf")


def check_digit_images(name, columns=64):
    """A check: name is an (N, 64) array of finite reals, the 8 x 8 digits (or the views' 16 pooled pixels)."""
    return lambda value, arguments: S.check_array(value, name, 2) or S.fail_unless(
        onp.shape(value)[1] == columns, f"{name} must hold {columns} columns (8 x 8 images), got {onp.shape(value)[1]}")


def check_labels_against(name, reference):
    """A check: the argument is a 1-D integer NumPy array of the reference array's length, with labels in
    0..C-1, C the number of reference labels (for conditioning_labels: those of reference_labels)."""
    def check(labels, arguments):
        S.fail_unless(isinstance(labels, onp.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu",
                      f"{name} must be a 1-D integer NumPy array, got {type(labels).__name__} of shape {onp.shape(labels)}")
        S.fail_unless(len(labels) == len(arguments[reference]), f"{name} must be {len(arguments[reference])} integer labels "
                      f"(one per row of {reference}), got {len(labels)}")
        classes = int(arguments["reference_labels"].max()) + 1 if name == "conditioning_labels" else None
        S.check_labels(labels, {"num_classes": classes} if classes else {}, name)
        S.fail_unless(labels.size == 0 or labels.min() >= 0, f"{name} must be labels >= 0, got {labels.min()}")
    return check


def check_leave_one_out_labels(labels, arguments):
    """S.check_labels, one label per row of x1, and at least two rows (a point needs another to be its neighbour)."""
    S.check_labels(labels, arguments)
    S.fail_unless(len(labels) == len(arguments["x1"]), f"labels has {len(labels)} entries but x1 has {len(arguments['x1'])} rows")
    S.fail_unless(len(labels) >= 2, f"leave-one-out coherence needs at least 2 points, got {len(labels)}")


def check_position(position, arguments):
    S.check_array(position, "position", 1)
    S.fail_unless(len(position) == len(arguments["labels"]), f"position has {len(position)} entries but labels has {len(arguments['labels'])}")


def check_sweep_labels(labels, arguments):
    """refine_labels' labels: 0..C-1, every label used, and k at most the smallest class's size."""
    S.check_labels(labels, {})
    S.fail_unless(labels.size > 0 and labels.min() >= 0, "labels must be a non-empty array of labels 0..C-1")
    counts = onp.bincount(labels)
    S.fail_unless(onp.all(counts > 0), f"label {int(onp.argmin(counts))} has no points; labels must be 0..C-1, each used")
    S.fail_unless(arguments["k"] <= counts.min(), f"k = {arguments['k']} exceeds the size of the smallest class ({counts.min()} points)")


ARGUMENT_CHECKS = {      # the model first, then its parameters; k before the labels it splits
    "model": lambda model, arguments: S.fail_unless(model in MODELS, f"unknown model {model!r}; expected one of {', '.join(MODELS)}"),
    "params": check_params_of_model, "k": S.number("k", integer=True, positive=True),
}
ARGUMENT_CHECKS.update({name: check for name, check in S.ARGUMENT_CHECKS.items() if name not in ARGUMENT_CHECKS})
ARGUMENT_CHECKS.update({
    "labels": lambda labels, arguments: (check_sweep_labels if "k" in arguments else check_leave_one_out_labels)(labels, arguments),
    "position": check_position, "private_dim": check_private_dim, "auxiliary": check_auxiliary, "beta": S.number("beta", minimum=0.0),
    "importance_samples": check_importance_samples, "gradient": check_gradient, "num_importance": S.number("num_importance", integer=True, positive=True),
    "replicates": S.number("replicates", integer=True, minimum=2),
    "decoder_std": lambda std, arguments: std is None or S.check_number(std, "decoder_std", positive=True),
    "label_mean": lambda m, arguments: S.check_array(m, "label_mean", 1) or S.fail_unless(
        S.input_size(arguments, "decoder_x1") in (None, len(m)), f"label_mean has {len(m)} entries but the decoder takes "
        f"{S.input_size(arguments, 'decoder_x1')} latent dimensions"),
    "label_log_var": lambda v, arguments: S.check_array(v, "label_log_var", 1) or S.fail_unless(
        onp.shape(v) == onp.shape(arguments["label_mean"]), "label_log_var must have label_mean's shape"),
    "private": lambda private, arguments: S.fail_unless(private in ("prior", "auxiliary") or (private == "zero" and "rng" in arguments),
                                                        f"private must be 'prior' or 'auxiliary'{' or zero' if 'rng' in arguments else ''}, got {private!r}"),
    "chunk_size": S.number("chunk_size", integer=True, positive=True),
    "augment": lambda augment, arguments: S.fail_unless(augment in ("none", "flip"), f"augment must be 'none' or 'flip', got {augment!r}"),
    "view_dim": S.number("view_dim", integer=True, positive=True),
    "reference_x1": lambda x, arguments: S.check_array(x, "reference_x1", 2, onp.shape(arguments["generated"])[1]),
    "reference_labels": check_labels_against("reference_labels", "reference_x1"),
    "conditioning_labels": check_labels_against("conditioning_labels", "generated"),
})
VIEWS_CHECKS = dict(ARGUMENT_CHECKS, params=lambda params, arguments: S.check_params(params, VIEWS_KEYS),
                    model=lambda model, arguments: S.fail_unless(model in S.PAPER_MODELS, f"unknown model {model!r}; the views "
                                                                 f"train the paper's models: {', '.join(S.PAPER_MODELS)}"),
                    x2=lambda x2, arguments: S.check_array(x2, "x2", 2, None, len(S.getval(arguments["x1"])) if "x1" in arguments else None) or
                    S.fail_unless("params" not in arguments or S.getval(x2).shape[1] == S.input_size(arguments, "encoder_x2"),
                                  "x2 does not fit the views' encoder"))
ARGUMENT_CHECKS.update({
    "num_modalities": S.number("num_modalities", integer=True, positive=True, maximum=20),
    "num_importance": check_num_importance, "first": S.number("first", integer=True, positive=True),
    "dim": S.number("dim", integer=True, positive=True), "max_nodes": S.number("max_nodes", integer=True, positive=True),
    "g": lambda g, arguments: S.check_array(g, "g", 2, S.input_size(arguments, "decoder_x1")),
    "log_weights": check_log_weights, "means": check_components("means"), "log_vars": check_components("log_vars"),
    "num_nodes": lambda n, arguments: S.check_number(n, "num_nodes", integer=True, minimum=2) or S.fail_unless(
        n ** len(arguments["label_mean"]) <= 2 * 10 ** 7, f"num_nodes {n} in {len(arguments['label_mean'])}-D is more than 2e7 nodes"),
    "path": lambda path, arguments: S.fail_unless(path is None or (isinstance(path, str) and path.strip()),
                                                  f"path must be None or a file's path, got {path!r}"),
})
MMVAEPLUS_CHECKS = dict(ARGUMENT_CHECKS, params=lambda params, arguments: check_mmvaeplus_params(params),
                        private_dim=S.number("private_dim", integer=True, minimum=0, maximum=10 ** 4),
                        auxiliary=lambda value, arguments: S.fail_unless(value in AUXILIARY, f"auxiliary must be one of "
                                                                         f"{', '.join(AUXILIARY)}, got {value!r}"))
DIGITS_CHECKS = dict(ARGUMENT_CHECKS, images=check_digit_images("images"), x1=check_digit_images("x1"),
                     generated=check_digit_images("generated"),
                     originals=lambda value, arguments: S.check_array(value, "originals", 2) or S.fail_unless(
                         onp.shape(value) == onp.shape(arguments["generated"]), f"originals has shape {onp.shape(value)} but generated "
                         f"{onp.shape(arguments['generated'])}: one original per generated row"))
LOG_P_CHECKS = dict(ARGUMENT_CHECKS, num_samples=S.number("num_samples (at least 100: Pareto k is fitted to the largest 20)", integer=True,
                                                          minimum=100),
                    grid_nodes=lambda n, arguments: n is None or S.check_number(n, "grid_nodes", integer=True, minimum=2))
