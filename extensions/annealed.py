"""annealed: a second estimate of log p(x1|x2) that shares nothing with the first one's mode search: annealed importance
sampling (Neal 2001) from q(g|x2) to the posterior p(g|x1, x2) ∝ q(g|x2) p_theta(x1|g), along the geometric path
pi_b(g) ∝ q(g|x2) p_theta(x1|g)^b, 0 = b_0 < ... < b_T = 1, with Hamiltonian Monte Carlo transitions; and its check by
bidirectional Monte Carlo (Grosse et al. 2015; Wu et al. 2017): on x1 simulated from the model, an exact posterior sample is
known, and AIS run backwards from it bounds log p from above as the forward run bounds it from below. Plain NumPy (never
differentiated); composed of surjvae_np's and log_likelihood's functions. docs/log_likelihood.md.
"""
import numpy as onp

from extensions import beyond_the_paper as B
from extensions import log_likelihood as L
import surjvae_np as S

CHAINS = 32                # AIS chains per point
TEMPERATURES = 2000        # b_1 < ... < b_T = 1: on an 8-D affine posterior at sigma = 0.1, 400 left 9 of 12 points' standard
                           # errors above SINGLE_CHAIN_ERROR or beyond agreement, 2000 one (test_annealed.py)
LEAPFROGS = 5              # leapfrog steps per HMC transition
TARGET_ACCEPTANCE = 0.65   # each point's step size is adapted toward this acceptance rate over its chains
WIDEN = 3.0                # the path starts at (q(g|x2) + q(g|x2) widened 3 times) / 2: chains reach posterior mass far out
                           # in q (14 std on untrained digits, docs/log_likelihood.md), which AIS from q itself missed
NARROW_SHARE = 0.5         # ... of which this share is q itself: precise on sharp posteriors (0: 0.5 nats low at sigma = 0.01, z to -6)
SINGLE_CHAIN_ERROR = 0.5   # AIS's standard error at which its weights are taken to be one chain's (checked_by_annealing): a
                           # relative standard error of p near 1 marks a single heavy chain, whose delta-method error then
                           # says nothing (measured: SE 1.0 at 10-800 nats off on a sharp 8- and 16-D affine posterior)
SCHEDULE_WIDTH = 4.0       # the sigmoid schedule of Grosse et al. (2015): b_t ∝ sigmoid(delta (2 t / T - 1)), rescaled to [0, 1]


def sigmoid_schedule(temperatures, width=SCHEDULE_WIDTH):
    """b_0 = 0 < b_1 < ... < b_T = 1: sigmoid(width (2 t / T - 1)) rescaled so its ends are 0 and 1 (dense at both ends,
    where log p_theta(x1|g) changes fastest relative to b). -> (T + 1,)."""
    s = 1.0 / (1.0 + onp.exp(-width * (2.0 * onp.arange(temperatures + 1) / temperatures - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])


def _log_likelihood_and_gradient(params, x1, mean, scale, u):
    """log p_theta(x1|g) at g = mean + scale u (u (C, N, D)), and its gradient in u: scale J^T (x1 - mu) / sigma^2, with J the
    decoder's Jacobian (log_likelihood's decoder_jacobian, just above its fast path). -> ((C, N), (C, N, D))."""
    chains, count, dim = u.shape
    g = (mean + scale * u).reshape(chains * count, dim)
    mu, transposed = L._decoder_jacobian_transposed(params, g)                               # (C N, D1), (C N, D, D1)
    residual = (onp.tile(x1, (chains, 1)) - mu) * onp.exp(-params["decoder_x1_log_var"])      # (x1 - mu) / sigma^2
    log_f = S.log_normal(onp.tile(x1, (chains, 1)), mu, params["decoder_x1_log_var"])
    gradient = (transposed @ residual[:, :, None])[:, :, 0]                                    # J^T (x1 - mu) / sigma^2
    return log_f.reshape(chains, count), scale * gradient.reshape(chains, count, dim)


def _log_start(u, widen):
    """log r(u) and its gradient: r = NARROW_SHARE q + (1 - NARROW_SHARE) q_wide, the path's start, in q(g|x2)'s whitened
    coordinates u = (g - mean) / scale: q = N(0, I), q_wide = N(0, widen^2 I). -> ((C, N), (C, N, D))."""
    squared, dim = onp.sum(u * u, axis=-1), u.shape[-1]
    wide = -0.5 * squared / widen ** 2 - 0.5 * dim * onp.log(2 * onp.pi * widen ** 2)
    if NARROW_SHARE == 0.0:
        return wide, -u / widen ** 2
    narrow = -0.5 * squared - 0.5 * dim * onp.log(2 * onp.pi) + onp.log(NARROW_SHARE)
    wide = wide + onp.log1p(-NARROW_SHARE)
    log_r = onp.logaddexp(narrow, wide)
    share = onp.exp(narrow - log_r)                                                             # the narrow part's responsibility
    return log_r, -u * (share + (1.0 - share) / widen ** 2)[..., None]


def _log_ratio_and_gradient(params, x1, mean, scale, widen, u):
    """h(u) = log q(g|x2) + log p_theta(x1|g) - log r(g) at g = mean + scale u, r the path's start (_log_start), and its
    gradient in u; and log r with its gradient. -> (h (C, N), dh/du (C, N, D), log r, d log r / du)."""
    log_f, gradient = _log_likelihood_and_gradient(params, x1, mean, scale, u)
    log_r, r_gradient = _log_start(u, widen)
    log_q = -0.5 * onp.sum(u * u, axis=-1) - 0.5 * u.shape[-1] * onp.log(2 * onp.pi)
    return log_q + log_f - log_r, -u + gradient - r_gradient, log_r, r_gradient


def _hmc(params, x1, mean, scale, widen, u, state, beta, step, rng):
    """One HMC transition (LEAPFROGS steps of size step (N,), identity mass) that leaves pi_beta invariant, in u:
    log pi_beta(u) = log r(u) + beta h(u). state is _log_ratio_and_gradient at u, carried from the previous transition (each
    transition then evaluates the decoder LEAPFROGS times, not LEAPFROGS + 2). -> (u, its state, acceptance probability (C, N))."""
    def energy_and_force(at):
        h, gradient, log_r, r_gradient = at
        return -log_r - beta * h, r_gradient + beta * gradient
    energy, force = energy_and_force(state)
    momentum = rng.standard_normal(u.shape)
    eps = step[None, :, None]
    v, p = u, momentum + 0.5 * eps * force
    for leap in range(LEAPFROGS):
        v = v + eps * p
        proposed = _log_ratio_and_gradient(params, x1, mean, scale, widen, v)
        new_energy, new_force = energy_and_force(proposed)
        p = p + (eps if leap < LEAPFROGS - 1 else 0.5 * eps) * new_force
    log_accept = energy - new_energy + 0.5 * onp.sum(momentum ** 2 - p ** 2, axis=-1)
    accept = onp.log(rng.random(log_accept.shape)) < onp.minimum(log_accept, 0.0)             # NaN (overflow): rejected
    state = tuple(onp.where(accept.reshape(accept.shape + (1,) * (a.ndim - 2)), a, b) for a, b in zip(proposed, state))
    return onp.where(accept[..., None], v, u), state, onp.exp(onp.minimum(onp.nan_to_num(log_accept, nan=-onp.inf), 0.0))


@S.checked
def annealed_log_weights(params, x1, mean, log_var, rng, chains=CHAINS, temperatures=TEMPERATURES, start=None, widen=WIDEN):
    """AIS's log weights (C, N) along the path pi_b ∝ r^(1 - b) (q(g|x2) p_theta(x1|g))^b, b_0 = 0 .. b_T = 1 of
    sigmoid_schedule, r = (q(g|x2) + q(g|x2) widened widen times) / 2, chains C per point: log w = sum_t (b_t - b_(t-1))
    h(g_(t-1)), h = log (q p_theta / r), each g_t an HMC transition from g_(t-1) that leaves pi_(b_t) invariant. start None:
    g_0 ~ r, and mean exp(log w) estimates p(x1|x2) without bias (a lower bound in logs, on average). start g (C, N, D), exact
    posterior samples: the path runs backwards (b from 1 to 0), and mean exp(log w) estimates 1 / p(x1|x2) without bias
    (BDMC's upper bound, in logs, on average). Each point's step size starts at 0.5 (q's std units) and is multiplied by
    exp(acceptance - TARGET_ACCEPTANCE) after each transition, from its chains' mean acceptance (adapted from the past, as Wu
    et al. 2017 do)."""
    scale, betas, shape = onp.exp(0.5 * onp.asarray(log_var)), sigmoid_schedule(temperatures), (chains,) + x1.shape[:1] + onp.shape(mean)[-1:]
    if start is None:                                                                           # g_0 ~ r: half q, half q widened
        u = rng.standard_normal(shape) * onp.where(rng.random(shape[:2]) < NARROW_SHARE, 1.0, widen)[..., None]
    else:
        u, betas = (start - mean) / scale, betas[::-1]
    log_w, step = onp.zeros((chains, len(x1))), onp.full(len(x1), 0.5)
    state = _log_ratio_and_gradient(params, x1, mean, scale, widen, u)
    for previous, beta in zip(betas[:-1], betas[1:]):
        log_w += (beta - previous) * state[0]                                                  # pi_t / pi_(t-1) at g_(t-1)
        u, state, acceptance = _hmc(params, x1, mean, scale, widen, u, state, beta, step, rng)
        step *= onp.exp(onp.mean(acceptance, axis=0) - TARGET_ACCEPTANCE)
    return log_w


@S.checked
def annealed_log_p_x1_given_x2(params, x1, x2, rng, model, private="prior", chains=CHAINS, temperatures=TEMPERATURES, widen=WIDEN):
    """log p(x1|x2) = log int q(g|x2) p_theta(x1|g) dg per datapoint by AIS, label by label (q(g|x2) = label_latent, as
    log_likelihood.log_p_x1_given_x2 takes it): (value (N,), its standard error (N,)). No mode search: the chains find the
    modes by annealing from q(g|x2)."""
    labels, value, error = onp.argmax(x2, axis=1), onp.zeros(len(x1)), onp.zeros(len(x1))
    for label, stream in zip(onp.unique(labels), rng.spawn(len(onp.unique(labels)))):
        members = onp.flatnonzero(labels == label)
        mean, log_var = (a[0] for a in B.label_latent.__wrapped__(params, x2[members[:1]], model, private))
        value[members], error[members] = annealed_estimate(annealed_log_weights.__wrapped__(params, x1[members], mean, log_var, stream, chains, temperatures,
                                                                                        widen=widen))
    return value, error


@S.checked
def bdmc_bounds(params, x1, mean, log_var, g_exact, rng, chains=CHAINS, temperatures=TEMPERATURES):
    """Bidirectional Monte Carlo on x1 simulated from the model at g_exact (N, D) ~ q(g|x2), x1 ~ p_theta(x1|g_exact), so that
    g_exact is an exact posterior sample: (forward AIS's log p (N,), its standard error, the reverse run's log p (N,), its
    standard error). On average over runs the first lies below log p(x1|x2) and the second above: their gap bounds either
    one's error on such data (Grosse et al. 2015)."""
    forward = annealed_estimate(annealed_log_weights.__wrapped__(params, x1, mean, log_var, rng, chains, temperatures))
    inverse, error = annealed_estimate(annealed_log_weights.__wrapped__(params, x1, mean, log_var, rng, chains, temperatures,
                                                            start=onp.broadcast_to(g_exact, (chains,) + g_exact.shape)))
    return forward[0], forward[1], -inverse, error


@S.checked
def checked_by_annealing(found, annealed, annealed_error, agreement=L.AGREEMENT):
    """log_p_x1_given_x2's columns with "reliable" kept only where AIS (annealed (N,), its standard error) agrees within
    agreement combined standard errors, and AIS's own weights are not carried by one chain (its error under SINGLE_CHAIN_ERROR);
    adds the columns "annealed", "annealed_error"."""
    agree = (onp.abs(found["value"] - annealed) <= agreement * onp.sqrt(found["error"] ** 2 + annealed_error ** 2)) \
        & (annealed_error < SINGLE_CHAIN_ERROR)
    return dict(found, reliable=found["reliable"] & agree, annealed=annealed, annealed_error=annealed_error)


def annealed_estimate(log_weights):
    """(log mean exp of the log weights over the chains (N,), its standard error by the delta method sd(w) / (sqrt(C) mean(w)))."""
    top = onp.max(log_weights, axis=0)
    w = onp.exp(log_weights - top)
    mean = onp.mean(w, axis=0)
    return top + onp.log(mean), onp.std(w, axis=0, ddof=1) / (onp.sqrt(len(w)) * mean)



# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("sigmoid_schedule", "annealed_estimate", "check_latent_vector", "check_found", "check_column")


def check_latent_vector(name):
    """A check: a 1-D array of finite reals, one per latent dimension (the decoder's input), as mean and log_var of q(g|x2)."""
    def check(value, arguments):
        S.check_array(value, name, 1)
        latent = S.input_size(arguments, "decoder_x1")
        S.fail_unless(onp.shape(value) == (latent,), f"{name} must have the latent size {latent} (the decoder's input), got shape {onp.shape(value)}")
    return check


def check_found(found, arguments):
    """log_p_x1_given_x2's columns: a dict whose "value", "error" and "reliable" are 1-D arrays of one length."""
    S.fail_unless(isinstance(found, dict) and {"value", "error", "reliable"} <= set(found),
                  f"found must be log_p_x1_given_x2's dict of columns (value, error, reliable), got {type(found).__name__}")
    S.fail_unless(len({onp.shape(found[key]) for key in ("value", "error", "reliable")}) == 1 and onp.ndim(found["value"]) == 1,
                  "found's value, error and reliable must be 1-D arrays of one length")


def check_column(name):
    """A check: a 1-D array of reals, one per point of found, finite (an error: also >= 0)."""
    def check(value, arguments):
        S.check_array(value, name, 1)
        S.fail_unless(onp.shape(value) == onp.shape(arguments["found"]["value"]), f"{name} must have one entry per point of found "
                      f"({len(arguments['found']['value'])}), got shape {onp.shape(value)}")
        S.fail_unless(name != "annealed_error" or onp.all(value >= 0), "annealed_error must be >= 0")
    return check


ARGUMENT_CHECKS = dict(L.ARGUMENT_CHECKS)
ARGUMENT_CHECKS.update({
    "mean": check_latent_vector("mean"), "log_var": check_latent_vector("log_var"),
    "chains": S.number("chains (at least 2: the standard error is over chains)", integer=True, minimum=2),
    "temperatures": S.number("temperatures", integer=True, positive=True), "widen": S.number("widen", minimum=1.0),
    "start": lambda start, arguments: start is None or S.check_array(start, "start", 3) or S.fail_unless(
        onp.shape(start) == (arguments.get("chains", CHAINS), len(arguments["x1"]), S.input_size(arguments, "decoder_x1")),
        f"start must be (chains, N, latent) posterior draws, got shape {onp.shape(start)}"),
    "g_exact": lambda g, arguments: S.check_array(g, "g_exact", 2, S.input_size(arguments, "decoder_x1"), len(arguments["x1"])),
    "found": check_found, "annealed": check_column("annealed"), "annealed_error": check_column("annealed_error"),
    "agreement": S.number("agreement", positive=True),
})
