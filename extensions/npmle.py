"""npmle: Theorem 1 beyond K = 1. An upper bound on the K-sample cross term that holds for every K: the nonparametric maximum
likelihood of a Gaussian location mixture at the decoder's sigma (Kiefer and Wolfowitz 1956; Lindsay 1983), computed by EM
on candidate atoms, with a certificate that bounds it from above. Composed of surjvae_np's functions; input checks at the end.

Proposition (docs/collapse_strength.md). Take one class x_1..x_N in R^d, a decoder f_1(x|tau(g)) = N(x | mu(g), sigma^2 I) with
any mean map mu, any label posterior r_M, and G = mu#r_M the law of mu(g), g ~ r_M. For every K >= 1,
  L^K / N = (1/N) sum_n E log (1/K) sum_k phi_sigma(x_n - mu(g_k))       (k_samples.k_sample_cross_term)
          <= (1/N) sum_n log E_G phi_sigma(x_n - mu)                        (Jensen; Burda et al. 2016, Theorem 1)
          <= sup_G l(G) = l*(sigma),  l(G) = (1/N) sum_n log int phi_sigma(x_n - mu) dG(mu),
the sup over all mixing distributions, attained by one with at most N atoms (Lindsay 1983). At K = 1 the constant class mean
maximises L^1 (Theorem 1); as K grows the bound's own limit is l*(sigma). Certificate: for any G^ and any G,
  l(G) - l(G^) = (1/N) sum_n log (f_G(x_n) / f_G^(x_n)) <= log int D dG <= log max_mu D(mu),
  D(mu) = (1/N) sum_n phi_sigma(x_n - mu) / f_G^(x_n)   (Jensen over n, then Fubini),
so l*(sigma) <= l(G^) + log max D, with max D = 1 at the NPMLE (Lindsay's gradient characterisation).
The objective's label stratum itself (k_samples.label_stratum_term): E log (1/K) sum_k w(g_k), g_k ~ r_M,
w = p(g) f_1(x_n|g) p(x2|g) / q_mix(g), is at most log E_{r_M} w (Jensen) <= log M + log int p(g) f_1(x_n|g) dg (r_M <= M q_mix,
p(x2|g) <= 1 for a categorical x2), and (1/N) sum_n of the last is at most l*(sigma) (G = mu#p(g)): so <= l*(sigma) + log M.
"""
import math

import numpy as onp

import surjvae_np as S

EM_ITERATIONS = 2000      # EM steps on the atoms' weights (each raises l(G); the certificate says how far from l* it stopped)
GRID_PER_AXIS = 48        # candidate atoms and certificate nodes per axis on data of at most 2 dimensions
MEAN_SHIFT_STEPS = 100    # beyond 2 dimensions: mean-shift steps from every data point to the maxima of D (a heuristic)


# ---------------------------------------------------------------- 1. the mixture likelihood and EM on the atoms' weights

def log_kernel(x, atoms, sigma):
    """log phi_sigma(x_n - a_j) = log N(x_n | a_j, sigma^2 I): x (N, d), atoms (J, d) -> (N, J)."""
    squared = onp.sum(x * x, axis=1)[:, None] - 2.0 * x @ atoms.T + onp.sum(atoms * atoms, axis=1)[None, :]
    return -0.5 * x.shape[1] * (S.LOG_2PI + 2.0 * math.log(sigma)) - 0.5 * onp.maximum(squared, 0.0) / sigma ** 2


@S.checked
def mixture_log_likelihood(x, atoms, weights, sigma):
    """l(G) = (1/N) sum_n log sum_j w_j phi_sigma(x_n - a_j), G = sum_j w_j delta(a_j), in log space."""
    with onp.errstate(divide="ignore"):                                          # a weight of 0: log 0 = -inf, left out
        return float(onp.mean(S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)))


@S.checked
def em_weights(x, atoms, sigma, num_iterations=EM_ITERATIONS, weights=None):
    """The NPMLE's weights on fixed atoms by EM (Laird 1978): w_j <- w_j (1/N) sum_n phi_nj / f(x_n), f = sum_j w_j phi_nj,
    from equal weights (or `weights`). Each step raises l(G), a concave function of w. Rows of the kernel are scaled by their
    largest entry (l(G) is then shifted by the known log of that scale): no underflow. -> (weights (J,), l(G) per step)."""
    log_k = log_kernel(x, atoms, sigma)
    shift = onp.max(log_k, axis=1)                                                # (N,)
    kernel = onp.exp(log_k - shift[:, None])                                      # (N, J), largest entry 1 per row
    w = onp.full(len(atoms), 1.0 / len(atoms)) if weights is None else onp.array(weights, dtype=float)
    history = onp.zeros(num_iterations)
    for t in range(num_iterations):
        f = kernel @ w                                                            # (N,) f(x_n) / exp(shift_n)
        history[t] = onp.mean(onp.log(f) + shift)
        w = w * (kernel.T @ (1.0 / f)) / len(x)
    return w / onp.sum(w), history


# ---------------------------------------------------------------- 2. the certificate: l* <= l(G^) + log max D

@S.checked
def log_gradient_function(points, x, atoms, weights, sigma):
    """log D(mu) at points (P, d): D(mu) = (1/N) sum_n phi_sigma(x_n - mu) / f_G^(x_n), G^ = (atoms, weights). -> (P,)."""
    with onp.errstate(divide="ignore"):
        log_f = S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)        # (N,)
    return S.logsumexp(log_kernel(points, x, sigma) - log_f[None, :], axis=1) - math.log(len(x))


def grid_certificate(x, atoms, weights, sigma, per_axis=GRID_PER_AXIS, tolerance=1e-4, max_cells=200000):
    """A bound on log max D, for data of at most 2 dimensions: a proof, not an estimate. D's stationary points
    mu = sum_n c_n(mu) x_n / sum_n c_n(mu) lie in the data's convex hull, so in its bounding box, which a grid of per_axis^d
    cells covers. Within r (the half-diagonal) of a cell's centre nu, D(mu) <= D(nu) + |grad D(nu)| r + H r^2 / 2, with
    H = (1/N) sum_n phi_sigma(0) / (sigma^2 f(x_n)) >= |Hessian of D| (|Hessian of phi_sigma| <= phi_sigma(0) / sigma^2).
    Branch and bound: cells whose bound exceeds the largest D at a centre so far are split in 2^d, until the largest bound
    is within `tolerance` (relative) of it, or max_cells cells would be needed (then the bound is looser, still a bound)."""
    low, high = onp.min(x, axis=0), onp.max(x, axis=0)
    half = (high - low) / (2.0 * per_axis)                                        # (d,) half-widths of a cell
    axes = [onp.linspace(a + h, b - h, per_axis) for a, b, h in zip(low, high, half)]
    centres = onp.stack(onp.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, x.shape[1])
    with onp.errstate(divide="ignore"):
        log_f = S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)        # (N,)
    log_peak = -0.5 * x.shape[1] * (S.LOG_2PI + 2.0 * math.log(sigma))                             # log phi_sigma(0)
    curvature = float(onp.exp(S.logsumexp(log_peak - 2.0 * math.log(sigma) - log_f, axis=0) - math.log(len(x))))
    children = onp.stack(onp.meshgrid(*[[-0.5, 0.5]] * x.shape[1], indexing="ij"), axis=-1).reshape(-1, x.shape[1])
    best, upper = 0.0, onp.inf
    while True:
        terms = onp.exp(log_kernel(centres, x, sigma) - log_f[None, :] - math.log(len(x)))          # (P, N): D's terms
        value = onp.sum(terms, axis=1)
        slope = onp.linalg.norm(terms @ x - value[:, None] * centres, axis=1) / sigma ** 2        # |grad D| at the centres
        radius = float(onp.linalg.norm(half))
        bounds = value + slope * radius + 0.5 * curvature * radius ** 2
        best = max(best, float(onp.max(value)))
        upper = max(best, float(onp.max(bounds)))
        keep = centres[bounds > best * (1.0 + tolerance)]
        if len(keep) == 0 or len(keep) * len(children) > max_cells:
            return math.log(upper)
        half = half / 2.0
        centres = (keep[:, None, :] + 2.0 * half * children[None, :, :]).reshape(-1, x.shape[1])


def mean_shift_certificate(x, atoms, weights, sigma, steps=MEAN_SHIFT_STEPS):
    """log max D sought by mean-shift from every data point: mu <- sum_n c_n phi(x_n - mu) x_n / sum_n c_n phi(x_n - mu),
    c_n = 1 / f_G^(x_n), an ascent of D (Comaniciu and Meer 2002). A heuristic: a maximum no start reaches is missed."""
    with onp.errstate(divide="ignore"):
        log_f = S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)
    mu = onp.array(x, dtype=float)
    for _ in range(steps):
        log_c = log_kernel(mu, x, sigma) - log_f[None, :]                                         # (P, N)
        mu = onp.exp(log_c - S.logsumexp(log_c, axis=1)[:, None]) @ x
    return float(onp.max(log_gradient_function.__wrapped__(mu, x, atoms, weights, sigma)))


# ---------------------------------------------------------------- 3. l*(sigma), bounded from both sides

@S.checked
def npmle_bounds(x, sigma, num_iterations=EM_ITERATIONS):
    """l*(sigma) of one class x (N, d), bounded: "lower" = l(G^) of EM's G^ (l* >= it: G^ is a mixing distribution), "upper" =
    l(G^) + log max D (the certificate). Candidate atoms: the data points, and on at most 2 dimensions also a grid of
    GRID_PER_AXIS^d over the data's bounding box, where grid_certificate proves "upper"; beyond, mean_shift_certificate
    ("certified": "mean-shift", a heuristic). Also the atoms, weights, and the spread tr Cov(G^) / tr Cov(x)."""
    atoms = x
    if x.shape[1] <= 2:
        axes = [onp.linspace(a, b, GRID_PER_AXIS) for a, b in zip(onp.min(x, axis=0), onp.max(x, axis=0))]
        atoms = onp.concatenate([x, onp.stack(onp.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, x.shape[1])])
    weights, history = em_weights.__wrapped__(x, atoms, sigma, num_iterations)
    lower = mixture_log_likelihood.__wrapped__(x, atoms, weights, sigma)
    certify = grid_certificate if x.shape[1] <= 2 else mean_shift_certificate
    mean = weights @ atoms
    spread = float(weights @ onp.sum((atoms - mean) ** 2, axis=1) / onp.sum(onp.var(x, axis=0)))
    return dict(lower=lower, upper=lower + max(certify(x, atoms, weights, sigma), 0.0), certified="grid" if x.shape[1] <= 2 else
                "mean-shift", atoms=atoms, weights=weights, spread_ratio=spread, history=history)


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("log_kernel", "grid_certificate", "mean_shift_certificate", "check_weights")


def check_weights(weights, arguments):
    """A 1-D array of non-negative finite weights, one per atom, summing to 1 (within 1e-9)."""
    S.check_array(weights, "weights", 1)
    S.fail_unless(len(weights) == len(arguments["atoms"]), f"weights has {len(weights)} entries but atoms has {len(arguments['atoms'])} rows")
    S.fail_unless(onp.all(weights >= 0) and abs(onp.sum(weights) - 1.0) < 1e-9, "weights must be >= 0 and sum to 1")


ARGUMENT_CHECKS = {
    "x": lambda x, arguments: S.check_array(x, "x", 2) or S.fail_unless(len(x) >= 2, f"x needs at least 2 points, got {len(x)}"),
    "atoms": lambda atoms, arguments: S.check_array(atoms, "atoms", 2, onp.shape(arguments["x"])[1]),
    "points": lambda points, arguments: S.check_array(points, "points", 2, onp.shape(arguments["x"])[1]),
    "sigma": S.number("sigma", positive=True),
    "num_iterations": S.number("num_iterations", integer=True, positive=True),
}
ARGUMENT_CHECKS["weights"] = lambda w, arguments: w is None or check_weights(w, arguments)
