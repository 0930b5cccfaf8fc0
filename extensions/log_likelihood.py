"""log_likelihood: what the MMVAE loses, in nats, and where its samples land. log p(x1|x2) per datapoint for any model and
latent size (a grid where it converges, else importance sampling from Laplace proposals, judged by Pareto k), and label
coherence. Composed of surjvae_np's and beyond_the_paper's functions; input checks at the end.
"""
import functools
import itertools
import math

import autograd.numpy as np
import numpy as onp
from autograd import grad

from extensions import beyond_the_paper as B
from extensions import likelihoods as LK
from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S


def checked_with(registry):
    """S.checked with another registry of this module (at its end): MMVAEPLUS_CHECKS take MMVAE+'s params, LOG_P_CHECKS enough samples."""
    return lambda function: S.checked(function, registry)


# ---------------------------------------------------------------- 1. log p(x1|x2) per datapoint

# log p(x1|x2) = log int q(g|x2) p(x1|g) dg, per datapoint, for any latent size (log_p_x1_given_x2). Every point's posterior
# q(g|x2) p(x1|g) is searched for its modes (from many starts, and from the modes found at the class's other points), each
# mode's curvature taken from the true Hessian. On a latent of at most 3 dimensions a uniform grid that covers those modes,
# where it converges and resolves them; else importance sampling from Student-t proposals at the modes mixed with q(g|x2),
# run twice independently: a point is reliable only if both runs' Pareto k pass and the two agree (docs/log_likelihood.md).
GRID_HALF_WIDTH = 8.0         # the grid covers at least mean +- 8 std of q(g|x2), and every mode found +- 8 of its stds
MAX_HALF_WIDTH = 64.0         # ... up to +- 64 std of q(g|x2) (beyond: importance sampling)
COVERED = 1e-5                # ... every mode, that is, that holds at least this share of a point's Laplace evidence
GRID_TOLERANCE = 1e-3         # nats: the largest change over a label's points at which the doubling stops
MAX_GRID_POINTS = 2 ** 20     # nodes ** latent size, at most: 1024 per axis in 2-D (from 32), 64 in 3-D
MAX_GRID_NODES = 1024         # per axis
TILE_NODES = 4096             # the grid summed a tile at a time (64 x 64 nodes in 2-D), a tile skipped for a point whose
PRUNE = 40.0                  # integrand there is bounded this many nats below its estimate (less log of the nodes), unless
SLACK = 10.0                  # the point ends this far below that estimate: what is skipped, under e^-30 of it (grid_log_p)
STUDENT_DOF = 3               # the Laplace components: multivariate Student-t, 3 degrees of freedom,
WIDENING = 2.0                # with scale matrix 2 x the inverse Hessian (tails of non-Gaussian posteriors; docs/log_likelihood.md)
LABEL_SHARE = 0.2             # the proposal's share of q(g|x2) itself (half: every weight <= 10 p_theta(x1|g)) and of a Student-t
                              # with q's mean and WIDE times its scale (half: a mode far out in q that no search found is drawn)
EVIDENCE_SHARE = 0.5          # of the modes' share, this part by Laplace evidence, the rest equal over a point's distinct modes
PARETO_K_RELIABLE = 0.7       # Vehtari et al. (2024): above min(1 - 1 / log10 S, 0.7) an estimate from S draws is unreliable
LAPLACE_STEPS = 20            # damped Gauss-Newton steps to each mode, at most (the log posterior then moves < 1e-3 per point)
MIN_CURVATURE = 0.1           # in q(g|x2)'s std units: no mode is taken to be more than sqrt(10) times wider than q (_curvature)
TRUST = 1.0                   # ... each at most 1 std of q(g|x2) long: where p(x1|g) is flat, the Newton step is q's pull, to its
                              # mean, and would jump over a valley to the mode there instead of climbing to a far plateau's edge
RANDOM_STARTS = 2             # per point and run: draws of q(g|x2) and of q(g|x1), each
WIDE_STARTS = 6               # per point and run: draws of q(g|x2) widened WIDE times
WIDE = 3.0                    # a mode 3.8 std out in q(g|x2) is hit by 1 draw of q in 14000, by 1 of the widened q in 10
CLASS_MODES = 4               # a run's second round starts every point also from its class's most often found modes: these,
MAX_CLASS_MODES = 32          # and up to this many in all of those found at least CLASS_MODE_COUNT times (a posterior of many
CLASS_MODE_COUNT = 2          # modes, shared over the class, is then seeded everywhere: 9 and 27 in the tests; at 3, 2 of 80 points
                              # with 81 modes were called reliable and wrong; at 2 the digits check takes 1.11 times as long)
SAME_MODE = 1e-3              # modes closer than this in every coordinate (in q(g|x2)'s std units) are one
REGION = 0.5                  # class modes: the modes of a class's points grouped in cells of this size (q's std units)
RETRY_FACTOR = 4              # a point whose Pareto k is over the threshold is estimated once more, with 4 x the draws
AGREEMENT = 4.0               # the two runs must agree within 4 combined standard errors
NEGLIGIBLE = 30.0             # a stationary point whose Laplace evidence is e^30 below the point's best mode's is dropped
MODE_MASS = 0.05              # a mode with this share of a run's Laplace evidence must be found by the other run too
LOCAL_SHARE = 0.25            # of each mode's share, this part a Student-t at the mode with q(g|x2)'s scale (non-Gaussian modes)


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


def _decoder_jacobian_transposed(params, g):
    """decoder_jacobian (its definition, just above) as (mu (N, D1), (d mu / d g)^T (N, D, D1)), equal to it to 1e-12 (tested):
    the first two layers' W_1 diag(1 - h_1^2) W_2 of every point as one product (N, H_1) @ (H_1, D H_2), P[h, (d, e)] =
    W_1[d, h] W_2[h, e] (no (N, D, H_1) temporary), each further layer one product (N D, H) @ (H, H'). What _gauss_newton calls."""
    layers, (count, dim) = params["decoder_x1"], g.shape
    if len(layers) == 1:                                                                          # affine: J^T = W at every g
        return g @ layers[0]["W"] + layers[0]["b"], onp.broadcast_to(layers[0]["W"], (count,) + layers[0]["W"].shape)
    hidden, first, second = onp.tanh(g @ layers[0]["W"] + layers[0]["b"]), layers[0]["W"], layers[1]["W"]   # (N, H_1)
    pairs = (first.T[:, :, None] * second[:, None, :]).reshape(len(second), -1)                  # P (H_1, D H_2)
    transposed = ((1.0 - hidden ** 2) @ pairs).reshape(count, dim, -1)                            # (d a_2 / d g)^T (N, D, H_2)
    for layer, following in zip(layers[1:-1], layers[2:]):
        hidden = onp.tanh(hidden @ layer["W"] + layer["b"])                                       # (N, H)
        transposed = ((transposed * (1.0 - hidden ** 2)[:, None, :]).reshape(count * dim, -1) @ following["W"]).reshape(count, dim, -1)
    return hidden @ layers[-1]["W"] + layers[-1]["b"], transposed


def _log_posterior_unnormalised(params, x1, g, mean, log_var):
    """log q(g|x2) + log p_theta(x1|g), g (..., N, D), x1 (N, D1): the integrand of log p(x1|x2), in logs. -> (..., N)."""
    return S.log_normal(g, mean, log_var) + S.decoder_x1_log_likelihood(params, x1, g)


def _log_posterior_twice_differentiable(params, x1, g, mean, log_var):
    """_log_posterior_unnormalised through mlp's plain loop: the fused MLP's backward pass is raw NumPy, which autograd
    cannot differentiate again."""
    return S.log_normal(g, mean, log_var) + S.log_normal(x1, S.mlp(params["decoder_x1"], g, fused=False), params["decoder_x1_log_var"])


def posterior_hessian(params, x1, g, mean, log_var):
    """The true Hessian of -log q(g|x2) p_theta(x1|g) at each point's g (N, D) -> (N, D, D), by autograd: row d is the
    gradient of sum_n d f_n / d g_nd (the points do not interact, so the Hessian of the sum is block diagonal)."""
    gradient = grad(lambda h: np.sum(_log_posterior_twice_differentiable(params, x1, h, mean, log_var)))
    return -onp.stack([grad(lambda h, d=d: np.sum(gradient(h)[:, d]))(onp.array(g)) for d in range(g.shape[1])], axis=1)


def _gauss_newton(params, x1, mean, log_var, start):
    """Each point's posterior mode of q(g|x2) p_theta(x1_n|g) by damped Gauss-Newton from start (N, D): each step the Newton
    step, at most TRUST std of q long, halved up to 5 times where it does not raise the log posterior, else none, and then the
    point stops, as it does once its step is below 1e-6 of q's std (a stationary point of the log posterior is one of the
    iteration). -> (mode (N, D), the Gauss-Newton Hessian diag(1 / var) + J^T J / s^2 there (N, D, D), positive definite)."""
    precision, noise_precision, g = onp.exp(-log_var), onp.exp(-params["decoder_x1_log_var"]), onp.array(start, dtype=float)
    value, active = _log_posterior_unnormalised(params, x1, g, mean, log_var), onp.arange(len(g))  # (N,); the points still moving
    for _ in range(LAPLACE_STEPS):
        mu, transposed = _decoder_jacobian_transposed(params, g[active])                          # (A, D1), J^T (A, D, D1)
        hessian = onp.diag(precision) + noise_precision * (transposed @ onp.swapaxes(transposed, -1, -2))   # (A, D, D)
        gradient = -(g[active] - mean) * precision + noise_precision * (transposed @ (x1[active] - mu)[..., None])[..., 0]
        newton, step = onp.linalg.solve(hessian, gradient[..., None])[..., 0], onp.zeros_like(g)  # (A, D)
        length = onp.linalg.norm(newton * onp.exp(-0.5 * log_var), axis=1, keepdims=True)          # in q's std units
        step[active], todo = newton * onp.minimum(1.0, TRUST / onp.maximum(length, 1e-300)), active
        for _ in range(6):                                                                        # 1, 1/2, ..., 1/32
            candidate = g[todo] + step[todo]
            candidate_value = _log_posterior_unnormalised(params, x1[todo], candidate, mean, log_var)
            better = candidate_value >= value[todo]
            g[todo[better]], value[todo[better]] = candidate[better], candidate_value[better]
            todo = todo[~better]
            step[todo] *= 0.5
            if not len(todo):
                break
        moving = onp.max(onp.abs(step[active]) * onp.exp(-0.5 * log_var), axis=1) >= 1e-6        # in q's std units
        active = active[moving & ~onp.isin(active, todo)]                                         # no better point: done
        if not len(active):
            break
    transposed = _decoder_jacobian_transposed(params, g)[1]
    return g, onp.diag(precision) + noise_precision * (transposed @ onp.swapaxes(transposed, -1, -2))


def _curvature(params, x1, g, mean, log_var, gauss_newton):
    """The Hessian at each mode g (N, D): the true one (posterior_hessian) where it is positive definite, else (a saddle, or a
    search stopped short) the Gauss-Newton one, which always is. In q(g|x2)'s std units its eigenvalues are raised to at
    least MIN_CURVATURE: along a ridge where the likelihood's negative curvature nearly cancels q's, the local curvature
    promises a posterior many times wider than q, whose own tails bound it (on the pinwheel's trained MMVAE: 13 times)."""
    true = posterior_hessian(params, x1, g, mean, log_var)
    definite = onp.all(onp.linalg.eigvalsh(0.5 * (true + onp.swapaxes(true, -1, -2))) > 0, axis=-1)
    hessian, std = onp.where(definite[:, None, None], 0.5 * (true + onp.swapaxes(true, -1, -2)), gauss_newton), onp.exp(0.5 * log_var)
    values, vectors = onp.linalg.eigh(hessian * onp.outer(std, std))                               # in q's std units
    raised = (vectors * onp.maximum(values, MIN_CURVATURE)[..., None, :]) @ onp.swapaxes(vectors, -1, -2)
    return raised / onp.outer(std, std)


def _laplace_fit(params, x1, mean, log_var, start):
    """_gauss_newton from start (N, D), and _curvature there: (mode (N, D), Hessian (N, D, D))."""
    mode, gauss_newton = _gauss_newton(params, x1, mean, log_var, start)
    return mode, _curvature(params, x1, mode, mean, log_var, gauss_newton)


def _search_modes(params, x1, mean, log_var, own, rng):
    """One run's modes for every point of a class: _gauss_newton from the label's mean, q(g|x1)'s mean, RANDOM_STARTS draws
    each of q(g|x2) and of q(g|x1), and WIDE_STARTS of q(g|x2) widened WIDE times; then from the CLASS_MODES modes most often
    found at the class's points (grouped in cells of REGION), and every other cell found CLASS_MODE_COUNT times, up to
    MAX_CLASS_MODES. All starts of a round run as one batch; the true Hessian is
    computed once per distinct mode of a point (SAME_MODE) and shared by the starts that reach it.
    -> (fits [(mode (N, D), Hessian (N, D, D))], one per start; the number of class modes found at >= CLASS_MODE_COUNT points
    but not seeded, beyond MAX_CLASS_MODES: where it is above 0 the class has more modes than the search covers)."""
    shape, (own_mean, own_log_var) = own[0].shape, own
    starts = onp.concatenate([onp.broadcast_to(mean, (1,) + shape), own_mean[None],
                              S.sample_normal(onp.broadcast_to(mean, shape), log_var, rng, (RANDOM_STARTS,)),
                              S.sample_normal(onp.broadcast_to(mean, shape), log_var + 2.0 * math.log(WIDE), rng, (WIDE_STARTS,)),
                              S.sample_normal(own_mean, own_log_var, rng, (RANDOM_STARTS,))])                   # (F, N, D)
    modes, gauss_newton = _batched_gauss_newton(params, x1, mean, log_var, starts)
    flat = modes.reshape(-1, len(mean))
    cells, first, cell_of, counts = onp.unique(onp.round(flat * onp.exp(-0.5 * log_var) / REGION), axis=0, return_index=True,
                                               return_inverse=True, return_counts=True)
    order = onp.argsort(-counts, kind="stable")
    shared = onp.bincount(onp.unique(onp.stack([cell_of.ravel(), onp.arange(len(flat)) % shape[0]]), axis=1)[0], minlength=len(cells))
    wanted = [c for c in order[CLASS_MODES:] if shared[c] >= CLASS_MODE_COUNT]                      # more cells, found at >= 2 points
    common = flat[first[onp.concatenate([order[:CLASS_MODES], wanted[:MAX_CLASS_MODES - CLASS_MODES]]).astype(int)]]
    unseeded = max(len(wanted) - (MAX_CLASS_MODES - CLASS_MODES), 0)                               # class modes left out
    more, more_gauss_newton = _batched_gauss_newton(params, x1, mean, log_var, onp.broadcast_to(common[:, None], (len(common),) + shape))
    modes, gauss_newton = onp.concatenate([modes, more]), onp.concatenate([gauss_newton, more_gauss_newton])   # (F, N, D), (F, N, D, D)
    same = onp.all(onp.abs(modes[:, None] - modes[None]) * onp.exp(-0.5 * log_var) < SAME_MODE, axis=-1)   # (F, F, N)
    representative = onp.argmax(same, axis=1)                                                      # (F, N): the first fit at that mode
    fit, point = onp.nonzero(representative == onp.arange(len(modes))[:, None])
    hessians = onp.array(gauss_newton)
    hessians[fit, point] = _curvature(params, x1[point], modes[fit, point], mean, log_var, gauss_newton[fit, point])
    hessians = hessians[representative, onp.arange(shape[0])[None, :]]
    return [(modes[f], hessians[f]) for f in range(len(modes))], unseeded


def _batched_gauss_newton(params, x1, mean, log_var, starts):
    """_gauss_newton from every start (F, N, D) at once: (modes (F, N, D), Gauss-Newton Hessians (F, N, D, D))."""
    count, num, dim = starts.shape
    modes, hessians = _gauss_newton(params, onp.tile(x1, (count, 1)), mean, log_var, starts.reshape(-1, dim))
    return modes.reshape(count, num, dim), hessians.reshape(count, num, dim, dim)


def _proposal_weights(params, x1, mean, log_var, fits):
    """Each fit's share of a point's proposal, (N, F), and its share of the point's Laplace evidence (N, F): zero for a mode found before (closer than SAME_MODE in q's std units in
    every coordinate); over a point's distinct modes, (1 - LABEL_SHARE) x (EVIDENCE_SHARE x its Laplace evidence's share
    + the rest equally), the evidence log q p(mode) + (D/2) log 2 pi - (1/2) log |H|: a far mode that holds most of the
    mass gets most of the draws, and no mode found gets fewer than its equal part's half. A stationary point whose evidence is
    NEGLIGIBLE below the point's best (a search stopped in a valley) gets none."""
    modes, hessians = onp.stack([m for m, _ in fits], axis=1), onp.stack([h for _, h in fits], axis=1)   # (N, F, D), (N, F, D, D)
    scale = onp.exp(-0.5 * log_var) / SAME_MODE
    same = onp.all(onp.abs(modes[:, :, None] - modes[:, None, :]) * scale < 1.0, axis=-1)          # (N, F, F)
    distinct = ~onp.any(onp.tril(same, k=-1), axis=2)                                               # no earlier fit at it
    evidence = (_log_posterior_unnormalised(params, x1, onp.swapaxes(modes, 0, 1), mean, log_var).T
                + 0.5 * modes.shape[-1] * S.LOG_2PI - 0.5 * onp.linalg.slogdet(hessians)[1])       # (N, F)
    distinct &= evidence >= onp.max(evidence, axis=1, keepdims=True) - NEGLIGIBLE                   # a search stopped far below
    evidence = onp.where(distinct, evidence, -onp.inf)
    by_evidence = onp.exp(evidence - S.logsumexp(evidence, axis=1)[:, None])
    equal = distinct / onp.sum(distinct, axis=1, keepdims=True)
    return (1.0 - LABEL_SHARE) * (EVIDENCE_SHARE * by_evidence + (1.0 - EVIDENCE_SHARE) * equal), by_evidence


def _student_t_log_density(g, mode, precision, log_determinant):
    """log t_nu(g | mode, precision^-1) of g (..., D): log Gamma((nu + D)/2) - log Gamma(nu/2) - (D/2) log(nu pi)
    + (1/2) log|precision| - ((nu + D)/2) log(1 + d^T precision d / nu), d = g - mode; broadcasts. log|precision| is
    given (computed once per component, not once per batch of draws). _mixture_log_weights calls its fast path below."""
    nu, dim, residual = STUDENT_DOF, mode.shape[-1], g - mode
    quadratic = onp.einsum("...d,...de,...e->...", residual, precision, residual)
    constant = math.lgamma((nu + dim) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * dim * math.log(nu * math.pi)
    return constant + 0.5 * log_determinant - 0.5 * (nu + dim) * onp.log1p(quadratic / nu)


def _student_t_log_densities(g, point, modes, cholesky, log_determinant):
    """_student_t_log_density of draws g (k, N, D) under components given one per (point, component) pair: point (P,) whose,
    modes (P, D), precision = L L^T with L = cholesky (P, D, D): (k, P). The same value (tested to 1e-12), d^T L L^T d computed
    as |L^T d|^2, the rows d^T L of all draws of a pair in one batched matrix product; only the components a point has a
    share of (padded to the most any point has, they were 3.7 times as many densities on the quick digits check)."""
    nu, dim = STUDENT_DOF, modes.shape[-1]
    residual = onp.swapaxes(g, 0, 1)[point] - modes[:, None]                                      # (P, k, D)
    whitened = residual @ cholesky                                                                 # (P, k, D): rows (L^T d)^T
    quadratic = onp.einsum("pke,pke->kp", whitened, whitened)
    constant = math.lgamma((nu + dim) / 2.0) - math.lgamma(nu / 2.0) - 0.5 * dim * math.log(nu * math.pi)
    return constant + 0.5 * log_determinant[None] - 0.5 * (nu + dim) * onp.log1p(quadratic / nu)


def _logsumexp_by_point(terms, starts):
    """log sum over each point's pairs of exp(terms) (k, P) -> (k, N), the pairs in order of their point, point n's from
    starts[n] (every point has at least one)."""
    top = onp.maximum.reduceat(terms, starts, axis=1)                                              # (k, N)
    counts = onp.diff(onp.append(starts, terms.shape[1]))
    return top + onp.log(onp.add.reduceat(onp.exp(terms - onp.repeat(top, counts, axis=1)), starts, axis=1))


def _each_points_components(fits, shares):
    """The fits (F of (mode (N, D), precision (N, D, D))) and shares (N, F) as each point's own components, padded with share
    0: modes (N, C, D), precisions (N, C, D, D), shares (N, C), C the most components any point has a share of."""
    count = int(onp.max(onp.sum(shares > 0, axis=1)))
    order = onp.argsort(-shares, axis=1, kind="stable")[:, :count]                               # (N, C)
    modes, precisions = onp.stack([m for m, _ in fits], axis=1), onp.stack([h for _, h in fits], axis=1)
    pick = onp.arange(len(shares))[:, None]
    return modes[pick, order], precisions[pick, order], onp.take_along_axis(shares, order, axis=1)


def _mixture_log_weights(params, x1, mean, log_var, fits, shares, rng, num_samples, chunk=256):
    """Importance log weights (K, N) of log p(x1|x2): log q(g|x2) p_theta(x1|g) - log r(g), r per point the mixture of a
    Student-t at each fit (scale matrix WIDENING x precision^-1) with the point's shares (N, F), and q(g|x2) with the rest.
    Each draw picks its component by the shares (a Student-t draw is mode + L^-T z sqrt(nu / u), L L^T = precision,
    z ~ N(0, I), u ~ chi^2_nu); the weights use the whole mixture (unbiased)."""
    modes, precisions, shares = _each_points_components(fits, shares)                             # (N, C, D), (N, C, D, D), (N, C)
    precisions = precisions / WIDENING                                                             # scale WIDENING x precision^-1
    cholesky = onp.linalg.cholesky(precisions)
    root = onp.swapaxes(onp.linalg.inv(cholesky), -1, -2)                                          # L^-T (N, C, D, D)
    log_determinant = 2.0 * onp.sum(onp.log(onp.diagonal(cholesky, axis1=-2, axis2=-1)), axis=-1)  # log|precision| (N, C)
    pair, slot = onp.nonzero(shares > 0)                                                           # (P,): the components, by point
    starts, label_share = onp.searchsorted(pair, onp.arange(len(x1))), 1.0 - onp.sum(shares, axis=1)   # (N,)
    pairs = (modes[pair, slot], cholesky[pair, slot], log_determinant[pair, slot], onp.log(shares[pair, slot]))   # (P, ...)
    cumulative, points, log_weights = onp.cumsum(onp.concatenate([shares, label_share[:, None]], axis=1), axis=1), onp.arange(len(x1)), []
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        choice = onp.minimum((rng.random((size, len(x1), 1)) > cumulative[None]).sum(axis=-1), modes.shape[1])   # (k, N)
        z, u = rng.standard_normal((size, len(x1), len(mean))), rng.chisquare(STUDENT_DOF, (size, len(x1)))
        component = onp.minimum(choice, modes.shape[1] - 1)                                        # the label's: any, replaced below
        t_draw = modes[points, component] + onp.einsum("knde,kne->knd", root[points, component], z) * onp.sqrt(STUDENT_DOF / u)[..., None]
        g = onp.where((choice == modes.shape[1])[..., None], mean + onp.exp(0.5 * log_var) * z, t_draw)   # (k, N, D)
        components = _student_t_log_densities(g, pair, *pairs[:3])                                 # (k, P)
        log_proposal = onp.logaddexp(_logsumexp_by_point(components + pairs[3], starts), S.log_normal(g, mean, log_var) + onp.log(label_share))
        log_weights.append(_log_posterior_unnormalised(params, x1, g, mean, log_var) - log_proposal)
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
    if x[int(len(x) / 4 + 0.5) - 1] <= onp.finfo(float).tiny:                                   # 0, or below the normal floats:
        return onp.inf                                              # a few weights over a sea of equal ones (a gap of > 708 nats
                                                                    # left a subnormal, whose reciprocal overflows: k came out NaN)
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


def pareto_threshold(num_samples):
    """The Pareto k above which an estimate from num_samples draws is unreliable: min(1 - 1 / log10 S, 0.7) (Vehtari et al.
    2024, JMLR 25(72), Sec. 3.2.4): 0.70 at S = 2000, 0.63 at 500."""
    return min(1.0 - 1.0 / math.log10(num_samples), PARETO_K_RELIABLE)


@checked_with("MMVAEPLUS_CHECKS")
def grid_log_p(params, x1, label_mean, label_log_var, num_nodes, half_width=GRID_HALF_WIDTH, estimate=None):
    """log p(x1_n|x2) per point (N,) by the tensor-product trapezoid rule on mean +- half_width std of q(g|x2) =
    N(label_mean, diag exp(label_log_var)), num_nodes per axis: the points share q(g|x2), so the decoder runs once per node.
    log N(x_n | mu_k, s^2 I) = a_n + b_nk, a_n = -(D1/2) log(2 pi s^2) - |x_n|^2 / (2 s^2), b_nk = (x_n . mu_k - |mu_k|^2 / 2) / s^2.
    The nodes are summed a tile at a time (_grid_tiles). Given an estimate of each point's value (N,) (a coarser grid's), a
    tile is skipped for a point wherever _tile_bound puts all of it PRUNE nats below the estimate (all skipped tiles
    together: under e^-30 of the point's value, or the point is summed again over every tile: it ended SLACK below its
    estimate, which was too high). Without one: every tile for every point, the plain sum (tested equal to 1e-12)."""
    mean, log_var, axis = label_mean, label_log_var, onp.linspace(-half_width, half_width, num_nodes)
    noise_precision, centre = onp.exp(-params["decoder_x1_log_var"]), onp.mean(x1, axis=0)
    x1 = x1 - centre                                     # |x - mu|^2 expanded about the points' mean: no cancellation far from 0
    a = -0.5 * x1.shape[1] * (S.LOG_2PI + params["decoder_x1_log_var"]) - 0.5 * onp.sum(x1 * x1, axis=1) * noise_precision
    tiles = functools.partial(_grid_tiles, params, mean, log_var, axis, centre)                      # made again for a second pass
    if estimate is None:
        return a + _tile_sums(x1, tiles(), noise_precision, onp.full(len(x1), -onp.inf))
    floor = onp.nan_to_num(estimate - a - PRUNE - len(mean) * math.log(num_nodes), nan=-onp.inf)   # a NaN estimate: no tile skipped
    total = _tile_sums(x1, tiles(), noise_precision, floor)
    again = onp.flatnonzero(a + total < estimate - SLACK)
    total[again] = _tile_sums(x1[again], tiles(), noise_precision, onp.full(len(again), -onp.inf))
    return a + total


def _grid_tiles(params, mean, log_var, axis, centre):
    """The grid's nodes g = mean + std z, z on axis in every dimension, a tile of about TILE_NODES nodes at a time (a
    cube): (the decoder means there less centre (k, D1), log of q's density there times the cell's volume (k,)) per tile."""
    dim = len(mean)
    side = max(2, round(TILE_NODES ** (1.0 / dim)))
    for corner in itertools.product(range(0, len(axis), side), repeat=dim):
        z = onp.stack(onp.meshgrid(*[axis[c:c + side] for c in corner], indexing="ij"), axis=-1).reshape(-1, dim)   # (k, D)
        log_weights = -0.5 * onp.sum(z * z, axis=1) + dim * (math.log(axis[1] - axis[0]) - 0.5 * S.LOG_2PI)
        yield S.decode_mean_x1(params, mean + onp.exp(0.5 * log_var) * z) - centre, log_weights


def _tile_sums(x1, tiles, noise_precision, threshold):
    """log sum over the tiles' nodes of exp(b_nk) per point (N,), x1 centred as the tiles' means; a tile skipped for the
    points whose _tile_bound lies below their threshold (N,) (-inf: none skipped)."""
    total = onp.full(len(x1), -onp.inf)
    for mu, log_weights in tiles:                                                                  # (k, D1), (k,)
        near = onp.flatnonzero(_tile_bound(x1, mu, noise_precision) + onp.max(log_weights) >= threshold)
        b = (x1[near] @ mu.T - 0.5 * onp.sum(mu * mu, axis=1)) * noise_precision + log_weights       # (n, k)
        total[near] = onp.logaddexp(total[near], S.logsumexp(b, axis=1))
    return total


def _tile_bound(x1, mu, noise_precision):
    """max over the tile's nodes of (x_n . mu_k - |mu_k|^2 / 2) / s^2, bounded above per point (N,) by its max over the box
    around the tile's means: x_d m - m^2 / 2 is concave in m, largest over [low_d, high_d] at m = clip(x_d, low_d, high_d)."""
    nearest = onp.clip(x1, onp.min(mu, axis=0), onp.max(mu, axis=0))                             # (N, D1)
    return onp.sum(x1 * nearest - 0.5 * nearest * nearest, axis=1) * noise_precision


def _converged_grid(params, x1, mean, log_var, fits, start_nodes):
    """grid_log_p on mean +- h std of q(g|x2), h covering every point's modes that hold at least COVERED of its Laplace
    evidence (a mode it leaves out changes log p by about its share) +- 8 of their stds (at least GRID_HALF_WIDTH, at
    most MAX_HALF_WIDTH: a posterior beyond the grid would be cut off, and two grids then agree on a wrong value), the nodes
    doubled from start_nodes until no point's value moves by GRID_TOLERANCE or more and the spacing is at most twice the
    narrowest posterior std (a narrower peak can fall between the nodes; the trapezoid rule's relative error on a Gaussian
    of std w at spacing h is about 2 exp(-2 pi^2 w^2 / h^2)): (values, |last change| per point, nodes), or None if the
    counts run out first. The last change is a sign of convergence, not a bound on the error."""
    std, kept = onp.exp(0.5 * log_var), _proposal_weights(params, x1, mean, log_var, fits)[1].T >= COVERED   # (F, N): a point's mode
    hessians = onp.concatenate([hessian[mask] for (_, hessian), mask in zip(fits, kept)]) * onp.outer(std, std)   # in q's std units
    widths = onp.sqrt(onp.diagonal(onp.linalg.inv(hessians), axis1=-2, axis2=-1))
    reach = onp.abs(onp.concatenate([mode[mask] for (mode, _), mask in zip(fits, kept)]) - mean) / std + 8.0 * widths
    half_width = max(GRID_HALF_WIDTH, float(onp.max(reach)))
    narrowest = 1.0 / math.sqrt(onp.max(onp.linalg.eigvalsh(hessians)))
    previous = None
    for nodes in node_counts.__wrapped__(start_nodes, len(mean), MAX_GRID_NODES) if half_width <= MAX_HALF_WIDTH else []:
        values = grid_log_p.__wrapped__(params, x1, mean, log_var, nodes, half_width, previous)
        resolved = 2.0 * half_width / (nodes - 1) <= 2.0 * narrowest
        if previous is not None and resolved and onp.max(onp.abs(values - previous)) < GRID_TOLERANCE:
            return values, onp.abs(values - previous), nodes
        previous = values
    return None


@checked_with("LOG_P_CHECKS")
def log_p_x1_given_x2(params, x1, x2, rng, model, private="prior", num_samples=2000, grid_nodes=32):
    """log p(x1|x2) = log int q(g|x2) p_theta(x1|g) dg (the display under Eq. 4) per datapoint, as a dict of arrays (N,):
      "value";  "error": by importance sampling a standard error (delta method), by the grid |the last change|;
      "reliable": the grid converged, covered and resolved the modes found; or both importance-sampling runs have Pareto k
          <= pareto_threshold(draws) and agree within AGREEMENT combined standard errors, and no search left a class
          mode unseeded ("unseeded": how many it left; two runs that seed the same subset of many modes agree and
          are both wrong: 20 of 80 points called reliable 0.66 nats low with 81 modes before this rule);
      "method": "grid<nodes>" or "IS"; "pareto_k" (the larger of the runs'), "ess" (the smaller Kish ESS / K; NaN on the
      grid); "disagree": both runs' k passed but they differ by more than AGREEMENT combined standard errors.
    q(g|x2) = label_latent (MMVAE+: w_1 ~ p(w_1) with private="prior", ~ r_1 with "auxiliary"). Each run searches every point's
    modes (_search_modes) with its own random starts. On a latent of at most 3 dimensions the grid is tried first
    (_converged_grid, from grid_nodes per axis; None: never); else two runs, each importance sampling (num_samples draws per
    point; RETRY_FACTOR times as many again where its k is over the threshold) from Student-t components at its modes mixed
    with q(g|x2); the value is the mean of the runs' estimates of p, in logs. A posterior peak that no start of either run
    reaches and no draw hits is still missed (docs/log_likelihood.md)."""
    labels, out = onp.argmax(x2, axis=1), {key: onp.zeros(len(x1)) for key in ("value", "error", "pareto_k", "ess")}
    out.update(reliable=onp.zeros(len(x1), dtype=bool), disagree=onp.zeros(len(x1), dtype=bool), method=onp.empty(len(x1), dtype=object),
               unseeded=onp.zeros(len(x1), dtype=int))
    own = B.x1_latent.__wrapped__(params, x1, model)
    runs = rng.spawn(2)
    for label in onp.unique(labels):
        members = onp.flatnonzero(labels == label)
        mean, log_var = (a[0] for a in B.label_latent.__wrapped__(params, x2[members[:1]], model, private))
        fits, unseeded = _search_modes(params, x1[members], mean, log_var, [a[members] for a in own], runs[0])
        grid = _converged_grid(params, x1[members], mean, log_var, fits, grid_nodes) if grid_nodes and len(mean) <= 3 else None
        if grid is not None:                                                      # the grid integrates every mode in its box
            found = dict(value=grid[0], error=grid[1], pareto_k=onp.nan, ess=onp.nan, reliable=True, disagree=False, method=f"grid{grid[2]}")
        else:                                                                     # the proposals hold only the modes seeded
            other, more = _search_modes(params, x1[members], mean, log_var, [a[members] for a in own], runs[1])
            found = _two_runs(*(_sampled(params, x1[members], mean, log_var, f, r, num_samples) for f, r in ((fits, runs[0]), (other, runs[1]))), log_var)
            unseeded = max(unseeded, more)
            found.update(reliable=found["reliable"] & (unseeded == 0))
        found.update(unseeded=unseeded)
        for key, column in found.items():
            out[key][members] = column
    return out


# ---------------------------------------------------------------- 1b. log p(x1|x2) for another x1 likelihood (likelihoods), on a grid

FAMILY_EDGE = 1e-6        # a grid is wide enough where its outer ring of nodes holds under this share of each point's integral
FAMILY_PEAK = 0.05        # ... and fine enough where no node holds more than this share (a Gaussian peak over >= ~20 nodes)
FAMILY_HALF_WIDTH = 16.0  # each point's grid: its posterior mean +- 16 of its stds (a Laplace's tails fall as exp(-sqrt 2 t): 1e-10 there)
FAMILY_ZOOMS = 4          # ... and zoomed again, at most this often, while a box shrinks by half or more
FAMILY_FIRST_NODES = 128  # the first grid, over q(g|x2), that finds where each point's posterior lies
FAMILY_TOLERANCE = 1e-2   # nats: the doubling stops where no point moves by this (a Laplace's kink: the trapezoid rule converges as
                          # h^2, and the finer value's error is a quarter to a third of the change; tested against a closed form)


@checked_with("LOG_P_CHECKS")
def family_log_p_x1_given_x2(params, x1, x2, model, likelihood, grid_nodes=32):
    """log p(x1|x2) = log int q(g|x2) f_1(x1 | tau_1(g)) dg per datapoint with f_1 of likelihood's family (likelihoods), on a
    latent of at most 2 dimensions, as log_p_x1_given_x2's dict, by the grid rule (_converged_family_grid). It needs no mode
    search and no curvature (a Laplace decoder's log density has none at the median, a kink): each point's integral on a
    first grid over q(g|x2)'s mean +- GRID_HALF_WIDTH std tells where its posterior lies, and its own grid is then zoomed to
    its posterior mean +- FAMILY_HALF_WIDTH of its std. "reliable": converged, the outer ring of nodes
    holding under FAMILY_EDGE of each point's integral and no node over FAMILY_PEAK. "error": the last change, a sign of
    convergence (on a Laplace's kink the trapezoid rule converges as h^2 and the finer value's error is about a quarter
    of it; tested against a closed form), not a bound. Beyond 2-D: not estimated (method "none", unreliable)."""
    labels, out = onp.argmax(x2, axis=1), {key: onp.full(len(x1), onp.nan) for key in ("value", "error", "pareto_k", "ess")}
    out.update(reliable=onp.zeros(len(x1), dtype=bool), disagree=onp.zeros(len(x1), dtype=bool), method=onp.full(len(x1), "none", dtype=object),
               unseeded=onp.zeros(len(x1), dtype=int))
    for label in onp.unique(labels):
        members = onp.flatnonzero(labels == label)
        mean, log_var = (a[0] for a in B.label_latent.__wrapped__(params, x2[members[:1]], model))
        if len(mean) <= 2:
            value, error, nodes, reliable = _converged_family_grid(params, x1[members], mean, log_var, likelihood, grid_nodes)
            out["value"][members], out["error"][members], out["method"][members], out["reliable"][members] = value, error, f"grid{nodes}", reliable
    return out


def _converged_family_grid(params, x1, mean, log_var, likelihood, start_nodes):
    """The first grid (q's mean +- GRID_HALF_WIDTH std, FAMILY_FIRST_NODES per axis, for every point), then each point's own
    (family_grid_box, zoomed again while it shrinks by half), doubled from start_nodes per axis (_doubled_family_grid). A point
    whose outer ring still holds FAMILY_EDGE or more (the zoom cut off a mode the first grid's spacing hid, or the posterior
    reaches the first box's edge: a likelihood that grows towards q's tails) is done again on q's mean +- GRID_HALF_WIDTH std
    itself, then on twice that, ..., up to MAX_HALF_WIDTH. -> (values, errors, nodes, reliable (N,))."""
    wide = [(mean + sign * GRID_HALF_WIDTH * onp.exp(0.5 * log_var))[None] for sign in (-1, 1)]     # (1, D): one box for every point
    low, high = family_grid_box(*family_grid_log_p(params, x1, mean, log_var, likelihood, *wide, FAMILY_FIRST_NODES)[3:], *wide)
    for _ in range(FAMILY_ZOOMS):                    # a posterior narrower than the first grid's spacing: its std was overstated
        narrower = family_grid_box(*family_grid_log_p(params, x1, mean, log_var, likelihood, low, high, FAMILY_FIRST_NODES)[3:], low, high)
        if onp.all(narrower[1] - narrower[0] > 0.5 * (high - low)):
            break
        low, high = narrower
    values, errors, nodes, reliable, edge = _doubled_family_grid(params, x1, mean, log_var, likelihood, low, high, start_nodes)
    half_width = GRID_HALF_WIDTH
    while half_width <= MAX_HALF_WIDTH and onp.any(edge >= FAMILY_EDGE):
        again, box = onp.flatnonzero(edge >= FAMILY_EDGE), [mean + sign * half_width * onp.exp(0.5 * log_var) for sign in (-1, 1)]
        redone = _doubled_family_grid(params, x1[again], mean, log_var, likelihood, *(b[None] for b in box), start_nodes)
        values[again], errors[again], reliable[again], edge[again], nodes = redone[0], redone[1], redone[3], redone[4], max(nodes, redone[2])
        half_width *= 2.0
    return values, errors, nodes, reliable


def _doubled_family_grid(params, x1, mean, log_var, likelihood, low, high, start_nodes):
    """family_grid_log_p on the boxes low, high (N, D) or one shared box (1, D), doubled from start_nodes per axis until no
    point moves by FAMILY_TOLERANCE, or the counts run out: (values, errors, nodes, reliable, edge shares (N,)). A point's
    error is the largest |last change| over the points that settled (a point's own change can cross 0 while its error does
    not), or its own if it did not; reliable: it settled, its outer ring holds under FAMILY_EDGE and no node over FAMILY_PEAK."""
    previous, counts = None, node_counts.__wrapped__(start_nodes, len(mean), MAX_GRID_NODES)
    for nodes in counts:
        values, peak, edge, _, _ = family_grid_log_p(params, x1, mean, log_var, likelihood, low, high, nodes)
        change = onp.full(len(x1), onp.inf) if previous is None else onp.abs(values - previous)
        if onp.all(change < FAMILY_TOLERANCE) or nodes == counts[-1]:
            break
        previous = values
    settled = change < FAMILY_TOLERANCE
    errors = onp.where(settled, onp.max(change, initial=0.0, where=settled), change)
    return values, errors, nodes, settled & (peak < FAMILY_PEAK) & (edge < FAMILY_EDGE), edge


def family_grid_box(posterior_means, posterior_stds, low, high):
    """Each point's box (low, high) (N, D): its posterior mean +- FAMILY_HALF_WIDTH of its std (N, D), within the first grid's
    box (low, high) (N, D) or (1, D)."""
    return (onp.maximum(low, posterior_means - FAMILY_HALF_WIDTH * posterior_stds),
            onp.minimum(high, posterior_means + FAMILY_HALF_WIDTH * posterior_stds))


def family_grid_log_p(params, x1, label_mean, label_log_var, likelihood, low, high, num_nodes, chunk=64):
    """log p(x1_n|x2) per point by the grid rule on its own box low_n..high_n (N, D), num_nodes per axis: sum over the nodes
    g_nk of q(g_nk|x2) f_1(x1_n | tau_1(g_nk)) times the cell's volume (any family), chunk nodes at a time. A box (1, D) is every
    point's: the decoder then runs once per node, not once per node and point (the same numbers; tested). -> (log p (N,),
    the largest node's share of each point's integral (N,), its outer ring's share (N,) (the 2 outer nodes each side), each
    point's posterior mean and std on the grid (N, D) each)."""
    unit = onp.linspace(0.0, 1.0, num_nodes)
    u = onp.stack(onp.meshgrid(*[unit] * low.shape[1], indexing="ij"), axis=-1).reshape(-1, low.shape[1])    # (K, D)
    index = onp.rint(u * (num_nodes - 1))
    ring = onp.any((index < 2) | (index >= num_nodes - 3), axis=1)
    log_cell = onp.sum(onp.log((high - low) / (num_nodes - 1)), axis=1)                              # (N,)
    total, largest, edge = (onp.full(len(x1), -onp.inf) for _ in range(3))
    first, second = onp.zeros((len(x1), low.shape[1])), onp.zeros((len(x1), low.shape[1]))
    for start in range(0, len(u), chunk):
        g = low + (high - low) * u[start:start + chunk, None, :]                                     # (k, N, D), or (k, 1, D) shared
        b = LK.X1_LOG_LIKELIHOODS[likelihood](params, x1, g) + S.log_normal(g, label_mean, label_log_var) + log_cell   # (k, N)
        new_total = onp.logaddexp(total, onp.logaddexp.reduce(b, axis=0))
        weights, carry = onp.exp(b - new_total), onp.exp(total - new_total)[:, None]                 # this chunk's shares, the earlier ones'
        g = onp.broadcast_to(g, b.shape + g.shape[-1:])                                             # (k, N, D) for the moments
        first, second = carry * first + onp.einsum("kn,knd->nd", weights, g), carry * second + onp.einsum("kn,knd->nd", weights, g * g)
        total, largest = new_total, onp.maximum(largest, onp.max(b, axis=0))
        edge = onp.logaddexp(edge, onp.logaddexp.reduce(b[ring[start:start + chunk]], axis=0))     # (-inf where no ring node: no NaN)
    return total, onp.exp(largest - total), onp.exp(edge - total), first, onp.sqrt(onp.maximum(second - first * first, 0.0))


def _sampled(params, x1, mean, log_var, fits, rng, num_samples):
    """One run's importance_estimate of _mixture_log_weights, and whether its k passes pareto_threshold. Each mode gets two
    components: a Student-t with the Laplace scale (1 - LOCAL_SHARE of its share) and one with q(g|x2)'s (LOCAL_SHARE: where the
    likelihood is flat, a plateau, the posterior has q's shape, not the curvature's at its edge); half of LABEL_SHARE goes to a
    Student-t at q's mean with WIDE times its scale, the other half to q itself. A point whose k does
    not is estimated again from fresh draws, RETRY_FACTOR times as many, and that estimate replaces the first whatever it
    says (k from a few thousand weights is noisy: a true k of 0.5 reads above 0.7 at some points)."""
    shares, masses = _proposal_weights(params, x1, mean, log_var, fits)
    used = onp.flatnonzero(onp.any(shares > 0, axis=0))                                           # fits that are some point's mode
    fits, shares, masses = [fits[index] for index in used], shares[:, used], masses[:, used]
    modes = onp.stack([mode for mode, _ in fits], axis=1)                                          # (N, F, D), for _two_runs
    local = onp.broadcast_to(onp.diag(onp.exp(-log_var)), fits[0][1].shape)                        # q(g|x2)'s precision, at each mode
    fits, shares = fits + [(mode, local) for mode, _ in fits], onp.concatenate([(1 - LOCAL_SHARE) * shares, LOCAL_SHARE * shares], axis=1)
    fits.append((onp.broadcast_to(mean, fits[0][0].shape), local * WIDENING / WIDE ** 2))           # q's mean, WIDE x its scale
    shares = onp.concatenate([shares, onp.full((len(x1), 1), 0.5 * LABEL_SHARE)], axis=1)
    value, error, k, ess = importance_estimate.__wrapped__(_mixture_log_weights(params, x1, mean, log_var, fits, shares, rng, num_samples))
    passed = k <= pareto_threshold(num_samples)
    again = onp.flatnonzero(~passed)
    if len(again):
        subset = [(mode[again], hessian[again]) for mode, hessian in fits]
        weights = _mixture_log_weights(params, x1[again], mean, log_var, subset, shares[again], rng, RETRY_FACTOR * num_samples)
        value[again], error[again], k[again], ess[again] = importance_estimate.__wrapped__(weights)
        passed[again] = k[again] <= pareto_threshold(RETRY_FACTOR * num_samples)
    return value, error, k, ess, passed, modes, masses


def _two_runs(first, second, log_var):
    """log_p_x1_given_x2's columns from two independent runs (value, error, k, ess, passed, modes, masses): the value
    log((p_a + p_b) / 2), its standard error by the delta method sqrt(se_a^2 p_a^2 + se_b^2 p_b^2) / (p_a + p_b); reliable
    where both passed and agree: their values within AGREEMENT sqrt(se_a^2 + se_b^2), and each mode that holds MODE_MASS of a
    run's Laplace evidence found by the other run too (within REGION of q's std in every coordinate; a run that missed a
    heavy mode can be far off while its standard error, from draws that never visit that mode, stays small)."""
    (a, se_a, k_a, ess_a, pass_a, modes_a, mass_a), (b, se_b, k_b, ess_b, pass_b, modes_b, mass_b) = first, second
    top = onp.maximum(a, b)
    p_a, p_b = onp.exp(a - top), onp.exp(b - top)
    agree = (onp.abs(a - b) <= AGREEMENT * onp.sqrt(se_a ** 2 + se_b ** 2)) & _found_by(modes_a, mass_a, modes_b, log_var) \
        & _found_by(modes_b, mass_b, modes_a, log_var)
    return dict(value=top + onp.log(0.5 * (p_a + p_b)), error=onp.sqrt((se_a * p_a) ** 2 + (se_b * p_b) ** 2) / (p_a + p_b),
                pareto_k=onp.maximum(k_a, k_b), ess=onp.minimum(ess_a, ess_b), reliable=pass_a & pass_b & agree,
                disagree=pass_a & pass_b & ~agree, method="IS")


def _found_by(modes, masses, other_modes, log_var):
    """Per point, whether every mode (N, F, D) holding at least MODE_MASS of its run's evidence has one of other_modes (N, G, D)
    within REGION of q's std in every coordinate."""
    near = onp.all(onp.abs(modes[:, :, None] - other_modes[:, None]) * onp.exp(-0.5 * log_var) <= REGION, axis=-1)   # (N, F, G)
    return onp.all(onp.any(near, axis=2) | (masses < MODE_MASS), axis=1)


# ---------------------------------------------------------------- 2. label coherence

def _nearest_label(points, reference_x1, reference_labels):
    """The label of each point's nearest reference point (Euclidean): points (N, D) -> (N,). Distances expanded about the
    reference's mean (no cancellation far from the origin)."""
    centre = onp.mean(reference_x1, axis=0)
    points, reference_x1 = points - centre, reference_x1 - centre
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
    x1 = x1 - onp.mean(x1, axis=0)                                                # distances expanded about the mean
    squared = onp.sum(x1 ** 2, axis=1)[:, None] - 2.0 * x1 @ x1.T + onp.sum(x1 ** 2, axis=1)[None, :]   # (N, N)
    onp.fill_diagonal(squared, onp.inf)                                           # not its own neighbour
    same = labels[onp.argmin(squared, axis=1)] == labels
    return [float(onp.mean(same[labels == c])) for c in onp.unique(labels)]


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("posterior_hessian", "pareto_threshold", "family_grid_log_p", "family_grid_box", "checked_with", "check_log_weights", "check_labels_against", "check_leave_one_out_labels")


def check_log_weights(value, arguments):
    """Log importance weights (K, N): a 2-D real array of at least 5 rows, without NaN or +inf (-inf: a weight of 0)."""
    S.fail_unless(isinstance(value, onp.ndarray) and value.ndim == 2 and value.dtype.kind in "iuf" and len(value) >= 5,
                  f"log_weights must be a 2-D real NumPy array of at least 5 rows (K, N), got {type(value).__name__} of shape {onp.shape(value)}")
    S.fail_unless(not onp.any(onp.isnan(value) | (value == onp.inf)), "log_weights contains NaN or +inf")


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


ARGUMENT_CHECKS = dict(B.ARGUMENT_CHECKS)
ARGUMENT_CHECKS.update({
    "labels": check_leave_one_out_labels, "chunk_size": S.number("chunk_size", integer=True, positive=True),
    "reference_x1": lambda x, arguments: S.check_array(x, "reference_x1", 2, onp.shape(arguments["generated"])[1]),
    "reference_labels": check_labels_against("reference_labels", "reference_x1"),
    "conditioning_labels": check_labels_against("conditioning_labels", "generated"),
    "first": S.number("first", integer=True, positive=True),
    "dim": S.number("dim", integer=True, positive=True), "max_nodes": S.number("max_nodes", integer=True, positive=True),
    "g": lambda g, arguments: S.check_array(g, "g", 2, S.input_size(arguments, "decoder_x1")),
    "log_weights": check_log_weights,
    "half_width": S.number("half_width", positive=True),
    "num_nodes": lambda n, arguments: S.check_number(n, "num_nodes", integer=True, minimum=2) or S.fail_unless(
        n ** len(arguments["label_mean"]) <= 2 * 10 ** 7, f"num_nodes {n} in {len(arguments['label_mean'])}-D is more than 2e7 nodes"),
})
MMVAEPLUS_CHECKS = dict(ARGUMENT_CHECKS, params=lambda params, arguments: MM.check_mmvaeplus_params(params))
LOG_P_CHECKS = dict(ARGUMENT_CHECKS, num_samples=S.number("num_samples (at least 100: Pareto k is fitted to the largest 20)", integer=True,
                                                          minimum=100),
                    grid_nodes=lambda n, arguments: n is None or S.check_number(n, "grid_nodes", integer=True, minimum=2))
