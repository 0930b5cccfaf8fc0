"""k_samples: the K-sample objectives of the mixture posteriors and their gradient estimators, composed of surjvae_np's
functions. Eq. (5) with K importance samples per stratum (Shi et al.'s m_iwae_looser), differentiated by autograd (IWAE),
by sticking the landing (what the MMVAE's code computes) or by DReG (what it intends); and the K-sample cross term,
the quantity whose maximiser K moves away from Theorem 1's constant mean. Input checks at the end.
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd import grad
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S


# ---------------------------------------------------------------- 1. K importance samples per stratum, and their gradient estimators

# The gradient estimators of the K-sample objective (docs/collapse_strength.md): "iwae" autograd's gradient of it
# (this project's default; srl-ethz/mmvaeplus's m_dreg computes it too: its hook never fires and q is not detached);
# "stl" the MMVAE's official code as it runs (iffsid/mmvae, src/objectives.py, m_dreg_looser: q's parameters detached,
# the hook on a copy of the samples never fires); "dreg" Tucker et al. (2019) as intended (MultiVae after its PR #39), biased
# for the stratified mixture (its samples come from q_m, its weight holds q_mix); "dreg-mix" the doubly reparameterised
# gradient derived for the stratified mixture, unbiased (doubly_reparameterised_for_the_mixture).
GRADIENTS = ("iwae", "stl", "dreg", "dreg-mix")
# dreg-mix: the least weight v a sample carries in the surrogate, per precision, so that a / v <= 1 / v stays finite and v times a
# gradient stays a normal number (least normal: 2.2e-308 in float64, 1.2e-38 in float32; 1e-200 would be 0 in float32).
FLOOR = {onp.dtype(onp.float64): 1e-200, onp.dtype(onp.float32): 1e-30}


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
    return S.mean(S.logsumexp(log_importance_weights(params, x1, x2, g, means, log_vars), axis=0) - math.log(num_importance))


@S.checked
def sticking_the_landing(params, x1, x2, means, log_vars, rng, num_importance):
    """stratified_importance_weighted_elbo with q's parameters held in log q (Roeder et al. 2017): the same value; the
    gradient sum_k w~_k (d log w_k / d g_k) (d g_k / d phi) for the encoders (the score term d log q / d phi at fixed g
    dropped), the IWAE gradient for the decoders. What iffsid/mmvae's m_dreg_looser computes (src/objectives.py).
    Biased for K > 1 (Tucker et al. 2019); at K = 1, summed over the strata, unbiased (the dropped term's
    expectation, E_{q_mix} grad log q_mix, is 0)."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D): depends on phi
    held = log_importance_weights(params, x1, x2, g, getval(means), getval(log_vars))   # getval: q's parameters held
    return S.mean(S.logsumexp(held, axis=0) - math.log(num_importance))


@S.checked
def doubly_reparameterised(params, x1, x2, means, log_vars, rng, num_importance):
    """The DReG estimator (Tucker et al. 2019) of the gradient of stratified_importance_weighted_elbo: for the encoders
    sum_k w~_k^2 (d log w_k / d g_k)(d g_k / d phi), for the decoders the IWAE gradient sum_k w~_k grad log w_k. Its
    surrogate: the weights w~ from a first pass on the values (what a hook on the samples reads), then
    (1/M) sum_{m,k} w~_mk log w_mk at g' = g_held + w~ (g - g_held), whose value is g and whose derivative in phi is w~ dg/dphi,
    with q's parameters held in log q. DReG's identity assumes the samples come from the q of the weight; here they
    come from q_m and the weight holds q_mix: biased once the experts differ (measured against an exact gradient in the tests
    and docs/collapse_strength.md; doubly_reparameterised_for_the_mixture is the unbiased form). Its value is the objective itself."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D)
    values = log_importance_weights(_values_of(params), x1, x2, getval(g), getval(means), getval(log_vars))   # (K, M, N)
    weights = onp.exp(values - S.logsumexp(values, axis=0))                       # w~ over the K samples of a stratum
    rescaled = getval(g) + weights[..., None] * (g - getval(g))                   # value g; d/d phi scaled by w~
    surrogate = S.mean(np.sum(weights * log_importance_weights(params, x1, x2, rescaled, getval(means), getval(log_vars)), axis=0))
    objective = S.mean(S.logsumexp(values, axis=0) - math.log(num_importance))
    return surrogate + getval(objective - surrogate)                              # the value reported: the objective


@S.checked
def doubly_reparameterised_for_the_mixture(params, x1, x2, means, log_vars, rng, num_importance):
    """Eq. (5) with K samples per stratum (stratified_importance_weighted_elbo's value), differentiated by a doubly
    reparameterised gradient that is unbiased for the stratified mixture of M components. Maximised.

    Stratum m draws g_mk ~ q_m; the weight w(g) = p(g, x) / q_mix(g) holds q_mix = (1/M) sum_m' q_m'. The IWAE gradient
    for the encoders is (1/M) sum_{m,k} E[w~_mk (grad_g log w(g_mk) dg_mk/dphi - d log q_mix(g_mk)/dphi)]. Its score term,
    with F_mk(g) = E[w~_mk | g_mk = g] and d log q_mix / dphi = (1/(M q_mix)) sum_m' dq_m'/dphi, is
      -E_{q_m}[F_mk d log q_mix / dphi] = -(1/M) sum_m' int h_mk dq_m'/dphi dg = -(1/M) sum_m' E[grad_g h_mk(g_m'k) dg_m'k/dphi],
    h_mk = F_mk q_m / q_mix held, the last step reparameterising each q_m'. One unbiased value of h_mk at g' (independent
    of stratum m's other samples) puts g' in slot k of stratum m: h^_mk(g') = w^ q_m / q_mix, w^ = w(g') / (w(g') + S_m,-k),
    S_m,-k = sum_{j != k} w(g_mj); grad_g h^ = h^ [(1 - w^) grad log w + grad log q_m - grad log q_mix]. So sample s = (m', k)
    carries, for the encoders,
      a_s grad_g log w(g_s) dg_s/dphi - (1/M) sum_m h^_ms [grad_g log q_m(g_s) - grad_g log q_mix(g_s)] dg_s/dphi,
      a_s = w~_s - (1/M) sum_m h^_ms (1 - w^_ms),  -1/4 <= a_s <= 1 (w^ (1 - w^) <= 1/4 and sum_m q_m / q_mix = M);
    the decoders get the IWAE gradient. With M = 1, a = w~ - w~ (1 - w~) = w~^2: DReG (Tucker et al. 2019). At K = 1,
    a = 1 and the q terms cancel in sum: sticking the landing. The surrogate: (1/M) sum_s v_s log w(g'_s), v_s = w~_s,
    g' = g_held + (a_s / v_s)(g - g_held) (value g; d/dphi scaled by a_s / v_s), q's parameters held; plus the q terms at g
    with h^ held. Where w~_s underflows below FLOOR, v_s = FLOOR: the decoders' gradient then carries FLOOR grad log w_s
    more than IWAE's (at most 1e-200 of it in float64, 1e-30 in float32), and a_s / v_s stays finite. Its value is the objective itself."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D)
    held = getval(g), getval(means), getval(log_vars)
    values = log_importance_weights(_values_of(params), x1, x2, *held)           # (K, M, N): log w(g_s), s = (k, m')
    log_q = S.log_normal(g[..., None, :, :], *held[1:])                           # (K, M', M, N): log q_m(g_s), g live, once
    log_h, a = _mixture_dreg_coefficients(values, getval(log_q))                 # getval: the coefficients are held
    weights = onp.maximum(onp.exp(values - S.logsumexp(values, axis=0)), FLOOR[values.dtype])   # v = w~ of a stratum's K samples
    rescaled = held[0] + (a / weights)[..., None] * (g - held[0])                 # value g; d/dphi scaled by a / v
    pathwise = S.mean(np.sum(weights * log_importance_weights(params, x1, x2, rescaled, *held[1:]), axis=0))
    return _with_the_q_terms(pathwise, values, log_q, log_h, num_importance)


@S.checked
def doubly_reparameterised_for_the_mixture_in_one_pass(params, x1, x2, means, log_vars, rng, num_importance):
    """doubly_reparameterised_for_the_mixture (its definition, just above) with log w evaluated once, traced: the same value and
    gradient (tested to 1e-12). The samples enter log w through _path_scaled, whose value is g and whose derivative is scaled by
    a / v in the backward pass; a / v are read off that same evaluation's values. What training calls for "dreg-mix"."""
    g = S.sample_normal(means, log_vars, rng, (num_importance,))                  # (K, M, N, D)
    held_q, scale = (getval(means), getval(log_vars)), {}
    log_w = log_importance_weights(params, x1, x2, _path_scaled(g, scale), *held_q)   # (K, M, N): traced, the only pass
    values = getval(log_w)                                                        # getval: the coefficients are held
    log_q = S.log_normal(g[..., None, :, :], *held_q)                             # (K, M', M, N): log q_m(g_s), g live, once
    log_h, a = _mixture_dreg_coefficients(values, getval(log_q))
    weights = onp.maximum(onp.exp(values - S.logsumexp(values, axis=0)), FLOOR[values.dtype])   # v = w~ of a stratum's K samples
    scale["by"] = (a / weights)[..., None]                                        # read by _path_scaled's vjp, after this pass
    pathwise = S.mean(np.sum(weights * log_w, axis=0))
    return _with_the_q_terms(pathwise, values, log_q, log_h, num_importance)


@primitive
def _path_scaled(g, scale):
    """g itself, as one traced operation; its vjp multiplies g's cotangent by scale["by"] (K, M, N, 1). The forward pass sets
    scale["by"] after it has computed log w at g; autograd calls a vjp only in the backward pass, after the forward pass ends."""
    return g


defvjp(_path_scaled, lambda ans, g, scale: lambda cotangent: cotangent * scale["by"])


def _with_the_q_terms(pathwise, values, log_q, log_h, num_importance):
    """dreg-mix's surrogate from its pathwise part: minus the q terms at g with h^ held (doubly_reparameterised_for_the_mixture);
    the value it reports is the objective, from log w's values (K, M, N)."""
    num_components = np.shape(log_q)[-2]
    log_q_mix = S.logsumexp(log_q, axis=-2) - math.log(num_components)           # S.mixture_log_density, from log_q already at hand
    q_terms = np.sum(onp.exp(log_h) * (log_q - log_q_mix[..., None, :]), axis=-2)   # (K, M', N)
    surrogate = pathwise - S.mean(np.sum(q_terms, axis=0)) / num_components
    objective = S.mean(S.logsumexp(values, axis=0) - math.log(num_importance))
    return surrogate + getval(objective - surrogate)                              # the value reported: the objective


def _mixture_dreg_coefficients(values, component_log_q):
    """doubly_reparameterised_for_the_mixture's held coefficients, in log space, from log w(g_s) (K, M', N) and
    log q_m(g_s) (K, M', M, N), s = (k, m'): log h^_ms (K, M', M, N) and a_s (K, M', N). Memory linear in K."""
    strata = values.shape[1]
    log_rest = _log_sum_of_the_others(values)                                                      # log S_m,-k (K, M, N)
    log_share = values[:, :, None, :] - onp.logaddexp(values[:, :, None, :], log_rest[:, None, :, :])   # log w^_ms (K, M', M, N)
    log_q_ratio = component_log_q - (S.logsumexp(component_log_q, axis=2) - math.log(strata))[:, :, None, :]   # log q_m / q_mix
    own = onp.exp(values - S.logsumexp(values, axis=0))                                            # w~_s
    a = own - onp.sum(onp.exp(log_share + log_q_ratio) * -onp.expm1(log_share), axis=2) / strata
    return log_share + log_q_ratio, a


def _log_sum_of_the_others(values):
    """log S_-k = log sum_{j != k} exp(values_j) along axis 0, for every k: (K, ...) -> (K, ...), in O(K) memory (the plain form,
    a (K, K, ...) mask, is _log_sum_of_the_others_plain; tested equal). Below the largest value, S_-k = S - w_k with S >= w_max + w_k,
    so the difference keeps its digits; at the largest, the others are summed with it masked out. K = 1: S_-k = 0."""
    if values.shape[0] == 1:
        return onp.full_like(values, -onp.inf)
    top = onp.max(values, axis=0)                                                                  # (...)
    is_top = onp.arange(values.shape[0]).reshape((-1,) + (1,) * (values.ndim - 1)) == onp.argmax(values, axis=0)[None]
    total = onp.sum(onp.exp(values - top), axis=0)                                                 # S / w_max >= 1
    with onp.errstate(divide="ignore"):                                           # at the largest, total - 1 may be 0: not used there
        below = top + onp.log(total - onp.exp(values - top))                                       # k not the largest
    at_top = S.logsumexp(onp.where(is_top, -onp.inf, values), axis=0)                              # k the largest: the others
    return onp.where(is_top, at_top[None], below)


def _log_sum_of_the_others_plain(values):
    """_log_sum_of_the_others' definition: a (K, K, ...) mask with each k's own value left out, then logsumexp."""
    if values.shape[0] == 1:
        return onp.full_like(values, -onp.inf)
    eye = onp.eye(values.shape[0], dtype=bool).reshape(values.shape[:1] * 2 + (1,) * (values.ndim - 1))
    return S.logsumexp(onp.where(eye, -onp.inf, values[None]), axis=1)


def _values_of(params):
    """params with every array taken out of autograd's boxes (getval): a pass on it is not traced."""
    return S.tree_rebuild(params, iter([getval(leaf) for leaf in S.tree_leaves(params)]))


ESTIMATORS = {"iwae": stratified_importance_weighted_elbo, "stl": sticking_the_landing, "dreg": doubly_reparameterised,
              "dreg-mix": doubly_reparameterised_for_the_mixture_in_one_pass}


@S.checked
def mmvae_iwae_objective(params, x1, x2, rng, num_importance=1, gradient="iwae"):
    """The MMVAE's objective (Eq. 5, the experts as components) with num_importance samples per stratum, differentiated
    by the gradient estimator `gradient` (GRADIENTS). Maximised; its value is the objective for every estimator."""
    return ESTIMATORS[gradient].__wrapped__(params, x1, x2, *S.unimodal_experts(params, x1, x2), rng, num_importance)


@S.checked
def mopoe_iwae_objective(params, x1, x2, rng, num_importance=1, gradient="iwae"):
    """MoPoE's objective (mopoe_mmvaeplus) with num_importance samples per stratum and the gradient estimator `gradient`. Maximised."""
    return ESTIMATORS[gradient].__wrapped__(params, x1, x2, *MM.mopoe_components(params, x1, x2), rng, num_importance)


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



@S.checked
def label_stratum_term(params, x1, x2, means, log_vars, rng, num_importance, replicates=200):
    """Eq. (5)'s stratum m = M with K samples (term (1)'s stratum at K = 1), for rows of one class: (1/N) sum_n E log (1/K) sum_k w(g_k), g_k ~ the
    last component (the label expert r_M: the MMVAE's second expert, MoPoE's bare r_2), w = p(g) p(x1|g) p(x2|g) / q_mix(g)
    (log_importance_weights): (mean, standard error) over `replicates` sets of K draws. For every K it is at most
    l*(sigma) + log M, M the number of components: Jensen, then r_M / q_mix <= M and p(x2|g) <= 1 (npmle's docstring)."""
    g = S.sample_normal(means[-1], log_vars[-1], rng, (replicates, num_importance))             # (R, K, N, D)
    log_w = log_importance_weights(params, x1, x2, g[:, :, None], means, log_vars)[:, :, 0]     # (R, K, N)
    per_replicate = np.mean(S.logsumexp(log_w, axis=1), axis=-1) - math.log(num_importance)      # (R,)
    return float(np.mean(per_replicate)), float(np.std(per_replicate, ddof=1) / np.sqrt(replicates))


@S.checked
def k_sample_cross_term_objective(params, x1, x2, rng, num_importance):
    """Eq. (4) with K samples (L_1 / N at K = 1): the K-sample cross term as an objective of the x1 decoder and the label expert,
    per point. Maximised:
    (1/N) sum_n log (1/K) sum_k f_1(x1_n | tau_1(g_nk)), g_nk ~ r_M(g|x2_n) reparameterised, K draws per point. Over the rows
    of one class its expectation is k_sample_cross_term's value; at K = 1 it is L_1 / N of Eq. (4)."""
    mean, log_var = S.gaussian_expert(params["encoder_x2"], x2)                   # (N, D): r_M, the MMVAE's label expert
    g = S.sample_normal(mean, log_var, rng, (num_importance,))                    # (K, N, D)
    return S.mean(S.logsumexp(S.decoder_x1_log_likelihood(params, x1, g), axis=0)) - math.log(num_importance)


# ---------------------------------------------------------------- 2. the estimators measured, and the K-sample cross term's optimum

@S.checked
def encoder_gradients(params, objective, x1, x2, num_draws, seed_prefix):
    """The encoders' gradient of objective(params, x1, x2, rng) (a K-sample objective under some estimator), one row per draw:
    (num_draws, encoder coordinates). Draw s uses default_rng(seed_prefix + [s]) whatever the estimator: common random
    numbers, so two estimators' differences are paired."""
    vector, unflatten = S.flatten_params(params)
    encoder = onp.concatenate([onp.full(onp.size(leaf), key.startswith("encoder")) for key in sorted(params) for leaf in S.tree_leaves(params[key])])
    step = getattr(objective, "__wrapped__", objective)
    return onp.array([grad(lambda v: step(unflatten(v), x1, x2, onp.random.default_rng(list(seed_prefix) + [s])))(vector)[encoder]
                      for s in range(num_draws)])


@S.checked
def gradient_measures(samples, reference):
    """An estimator's gradient draws (R, P) against the IWAE gradient's on the same draws (R, P): its bias as |mean difference|
    / |mean IWAE|, chi^2 / df of the paired differences' z over the coordinates (about 1 if unbiased; 0 for IWAE itself), its
    signal-to-noise ratio |mean| / std per coordinate, the median over the coordinates (Rainforth et al. 2018), and its noise
    against IWAE's: the ratio of per-draw standard deviations per coordinate, its median ("noise_ratio") and the share of
    coordinates where it is above 1 ("noisier_share"), over the coordinates where IWAE's varies."""
    difference, size = samples - reference, len(samples)
    spread = difference.std(axis=0, ddof=1) / onp.sqrt(size)
    z = onp.where(spread > 0, difference.mean(axis=0) / onp.where(spread > 0, spread, 1.0), 0.0)
    varies = reference.std(axis=0, ddof=1) > 0
    ratio = samples.std(axis=0, ddof=1)[varies] / reference.std(axis=0, ddof=1)[varies]
    return dict(bias=float(onp.linalg.norm(difference.mean(axis=0)) / onp.linalg.norm(reference.mean(axis=0))),
                chi2_per_df=float(onp.mean(z ** 2)), snr=float(onp.median(onp.abs(samples.mean(axis=0)) / samples.std(axis=0, ddof=1))),
                noise_ratio=float(onp.median(ratio)) if len(ratio) else onp.nan, noisier_share=float(onp.mean(ratio > 1.0)) if len(ratio) else onp.nan)


@S.checked
def maximise_k_sample_cross_term(x1, c, num_classes, k, sigma, num_steps, latent_dim, hidden, seed):
    """Eq. (4) with K samples (k_sample_cross_term_objective) maximised alone over the x1 decoder and the label expert (the
    MMVAE's layout), for one class's rows x1 with label c, the decoder's std fixed at sigma, from a random start, full batch,
    the step size decaying linearly from 0.02 to 0 (the K version of theorem_check's direct maximisation of L_1): its final
    value (k_sample_cross_term, 200 replicates, with its standard error), spread ratio and the last 50 steps' mean objective."""
    x2 = S.one_hot(onp.full(len(x1), c), num_classes)
    start = S.init_params(onp.random.default_rng([seed, 13, k]), num_classes, latent_dim, x1.shape[1], hidden)
    fixed = onp.array(2.0 * onp.log(sigma))

    def objective(p, x1, x2, rng):                                               # checked at maximise's edge
        return k_sample_cross_term_objective.__wrapped__(dict(p, decoder_x1_log_var=fixed), x1, x2, rng, k)
    params, history = S.maximise(objective, dict(start, decoder_x1_log_var=fixed), x1, x2, seed=seed, num_steps=num_steps,
                                 batch_size=None, step_size=lambda t: 0.02 * (1.0 - t / num_steps), print_fn=None, name="L^K")
    params = dict(params, decoder_x1_log_var=fixed)
    mean, log_var = (a[0] for a in S.label_posterior.__wrapped__(params, x2[:1], "mmvae"))
    value, error = k_sample_cross_term.__wrapped__(params, x1, mean, log_var, onp.random.default_rng([seed, 14, k]), k)
    spread = S.spread_ratio(S.generate_from_labels(params, x2, onp.random.default_rng([seed, 15]), "mmvae"), x1)
    return dict(value=value, error=error, spread_ratio=spread, final_objective=float(onp.mean(history[-50:])))

# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("log_importance_weights", "check_importance_samples", "check_gradient", "check_num_importance", "check_components")


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


ARGUMENT_CHECKS = dict(MM.ARGUMENT_CHECKS)
ARGUMENT_CHECKS.update({
    "importance_samples": check_importance_samples, "gradient": check_gradient, "num_importance": check_num_importance,
    "replicates": S.number("replicates", integer=True, minimum=2),
    "label_mean": lambda m, arguments: S.check_array(m, "label_mean", 1) or S.fail_unless(
        S.input_size(arguments, "decoder_x1") in (None, len(m)), f"label_mean has {len(m)} entries but the decoder takes "
        f"{S.input_size(arguments, 'decoder_x1')} latent dimensions"),
    "label_log_var": lambda v, arguments: S.check_array(v, "label_log_var", 1) or S.fail_unless(
        onp.shape(v) == onp.shape(arguments["label_mean"]), "label_log_var must have label_mean's shape"),
    "means": check_components("means"), "log_vars": check_components("log_vars"),
    "objective": lambda f, arguments: S.fail_unless(callable(f), f"objective must be a function, got {f!r}"),
    "num_draws": S.number("num_draws", integer=True, minimum=2), "k": S.number("k", integer=True, positive=True),
    "seed_prefix": lambda prefix, arguments: S.fail_unless(isinstance(prefix, (list, tuple)) and all(isinstance(v, int) and v >= 0 for v in prefix),
                                                           f"seed_prefix must be a list of integers >= 0, got {prefix!r}"),
    "samples": lambda a, arguments: S.check_array(a, "samples", 2),
    "reference": lambda a, arguments: S.check_array(a, "reference", 2) or S.fail_unless(
        onp.shape(a) == onp.shape(arguments["samples"]), "reference must have samples' shape (draws, coordinates)"),
    "c": lambda c, arguments: S.check_number(c, "c", integer=True, minimum=0, maximum=arguments["num_classes"] - 1),
    "sigma": S.number("sigma", positive=True),
})
