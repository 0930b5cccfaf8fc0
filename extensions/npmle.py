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
MEAN_SHIFT_STEPS = 100    # mean-shift steps from every data point (and their mean) to the maxima of D: a search for new atoms
ATOM_ROUNDS = 2           # rounds of: mean-shift's maxima of D become atoms, EM again
LIFT_DIRECTIONS = 2       # beyond 2 dimensions, the certificate's principal directions (plus one for the rest: a 3-D grid)
MAX_EVALUATIONS = 2000000 # the branch and bound's budget of centres evaluated (each costs N kernel terms)
BATCH_CELLS = 65536       # centres evaluated per step of it
LIFT_PER_AXIS = 16        # its first grid's cells per axis (16^3; branch and bound refines where the bound needs it)


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


def grid_certificate(x, atoms, weights, sigma, per_axis=GRID_PER_AXIS, tolerance=1e-4, max_evaluations=MAX_EVALUATIONS):
    """A bound on log max D, for data of at most 2 dimensions: a proof, not an estimate (gaussian_sum_bound on D's own terms)."""
    return gaussian_sum_bound(x, _log_coefficients(x, atoms, weights, sigma), sigma, per_axis, tolerance, max_evaluations)


def lifted_certificate(x, atoms, weights, sigma, per_axis=LIFT_PER_AXIS, tolerance=1e-4, max_evaluations=MAX_EVALUATIONS, directions=LIFT_DIRECTIONS):
    """A bound on log max D in any dimension: a proof. With P the projection on the data's top k principal directions about
    their mean x_bar and Q = I - P, for every mu (reverse triangle inequality on the Q part)
      |x_n - mu|^2 = |P(x_n - mu)|^2 + |Q(x_n - mu)|^2 >= |y_n - z(mu)|^2,  y_n = (P(x_n - x_bar), |Q(x_n - x_bar)|),
      z(mu) = (P(mu - x_bar), |Q(mu - x_bar)|), so D(mu) <= D~(z(mu)) <= max_z D~, D~(z) = sum_n c_n exp(-|y_n - z|^2 / 2 sigma^2)
    with D's own coefficients c_n: a Gaussian sum in k + 1 dimensions, bounded by gaussian_sum_bound. Exact up to the fold
    when d = k + 1; looser as the data vary beyond k directions (docs/collapse_strength.md says how loose on digits)."""
    centred = x - onp.mean(x, axis=0)
    basis = onp.linalg.svd(centred, full_matrices=False)[2][:directions].T       # (d, k): the top k principal directions
    projected = centred @ basis                                                   # (N, k)
    residual = onp.linalg.norm(centred - projected @ basis.T, axis=1)             # (N,) |Q(x_n - x_bar)|
    lifted = onp.concatenate([projected, residual[:, None]], axis=1)              # (N, k + 1)
    return gaussian_sum_bound(lifted, _log_coefficients(x, atoms, weights, sigma), sigma, per_axis, tolerance, max_evaluations)


def _log_coefficients(x, atoms, weights, sigma):
    """log c_n of D(mu) = sum_n c_n exp(-|x_n - mu|^2 / 2 sigma^2): c_n = phi_sigma(0) / (N f_G^(x_n)), in x's dimension. -> (N,)."""
    with onp.errstate(divide="ignore"):
        log_f = S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)        # (N,)
    return -0.5 * x.shape[1] * (S.LOG_2PI + 2.0 * math.log(sigma)) - log_f - math.log(len(x))


def gaussian_sum_bound(y, log_c, sigma, per_axis=GRID_PER_AXIS, tolerance=1e-4, max_evaluations=MAX_EVALUATIONS):
    """log max_z E(z), E(z) = sum_n c_n exp(-|y_n - z|^2 / 2 sigma^2), y (N, e) with e small, bounded from above: a proof.
    E's stationary points z = sum_n c_n e_n(z) y_n / sum_n c_n e_n(z) lie in y's convex hull, so in its bounding box, which
    per_axis^e cells cover. Within r (a cell's half-diagonal) of its centre nu, E(z) <= E(nu) + |grad E(nu)| r + H r^2 / 2 with
    H = sum_n c_n / sigma^2 >= |Hessian of E| (each term's Hessian has norm at most c_n / sigma^2). Branch and bound, best first:
    cells whose bound is at most best (1 + tolerance), best the largest E at a centre so far, are closed; the open cells of the
    largest bounds are split in 2^e, until none is open or max_evaluations centres have been evaluated. Returned: the largest
    bound of the open cells, or best (1 + tolerance) (which bounds every closed cell) if larger."""
    low, high = onp.min(y, axis=0), onp.max(y, axis=0)
    half = onp.maximum(high - low, 1e-12) / (2.0 * per_axis)                      # (e,); 1e-12: a flat axis still gets a cell
    axes = [onp.linspace(a + h, b - h, per_axis) for a, b, h in zip(low, high, half)]
    centres = onp.stack(onp.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, y.shape[1])
    radii = onp.full(len(centres), float(onp.linalg.norm(half)))                  # (P,) each cell's half-diagonal
    scale = onp.max(log_c)                                                        # E is computed as exp(scale) E': no overflow
    curvature = float(onp.sum(onp.exp(log_c - scale))) / sigma ** 2
    children = onp.stack(onp.meshgrid(*[[-0.5, 0.5]] * y.shape[1], indexing="ij"), axis=-1).reshape(-1, y.shape[1])
    value, slope = _value_and_slope(centres, y, log_c - scale, sigma)
    bounds, best, evaluated = value + slope * radii + 0.5 * curvature * radii ** 2, float(onp.max(value)), len(centres)
    while True:
        open_ = bounds > best * (1.0 + tolerance)
        centres, radii, bounds = centres[open_], radii[open_], bounds[open_]
        if len(bounds) == 0 or evaluated >= max_evaluations:
            return scale + math.log(max(best * (1.0 + tolerance), float(onp.max(bounds, initial=0.0))))
        split = onp.argsort(-bounds)[:max(1, BATCH_CELLS // len(children))]        # the open cells of the largest bounds
        offsets = (radii[split] / onp.linalg.norm(half))[:, None, None] * 2.0 * (half / 2.0) * children[None]   # (B, 2^e, e)
        new = (centres[split][:, None, :] + offsets).reshape(-1, y.shape[1])
        new_radii = onp.repeat(radii[split] / 2.0, len(children))
        value, slope = _value_and_slope(new, y, log_c - scale, sigma)
        best, evaluated = max(best, float(onp.max(value))), evaluated + len(new)
        rest = onp.ones(len(bounds), dtype=bool)
        rest[split] = False
        centres, radii = onp.concatenate([centres[rest], new]), onp.concatenate([radii[rest], new_radii])
        bounds = onp.concatenate([bounds[rest], value + slope * new_radii + 0.5 * curvature * new_radii ** 2])


def _value_and_slope(centres, y, log_c, sigma, chunk=8192):
    """E(nu) and |grad E(nu)| at centres (P, e), E(nu) = sum_n c_n exp(-|y_n - nu|^2 / 2 sigma^2), in chunks of centres (memory
    chunk x N). -> (P,), (P,)."""
    values, slopes = [], []
    for part in onp.split(centres, range(chunk, len(centres), chunk)):
        squared = onp.sum(part * part, axis=1)[:, None] - 2.0 * part @ y.T + onp.sum(y * y, axis=1)[None, :]   # (chunk, N)
        terms = onp.exp(log_c[None, :] - 0.5 * onp.maximum(squared, 0.0) / sigma ** 2)
        values.append(onp.sum(terms, axis=1))
        slopes.append(onp.linalg.norm(terms @ y - values[-1][:, None] * part, axis=1) / sigma ** 2)
    return onp.concatenate(values), onp.concatenate(slopes)


def mean_shift_maxima(x, atoms, weights, sigma, starts, steps=MEAN_SHIFT_STEPS):
    """Local maxima of D sought by mean-shift from `starts` (P, d): mu <- sum_n c_n phi(x_n - mu) x_n / sum_n c_n phi(x_n - mu),
    c_n = 1 / f_G^(x_n), an ascent of D (Comaniciu and Meer 2002). A search: a maximum no start reaches is missed. -> (P, d)."""
    with onp.errstate(divide="ignore"):
        log_f = S.logsumexp(log_kernel(x, atoms, sigma) + onp.log(weights)[None, :], axis=1)
    mu = onp.array(starts, dtype=float)
    for _ in range(steps):
        log_c = log_kernel(mu, x, sigma) - log_f[None, :]                                         # (P, N)
        mu = onp.exp(log_c - S.logsumexp(log_c, axis=1)[:, None]) @ x
    return mu


# ---------------------------------------------------------------- 3. l*(sigma), bounded from both sides

@S.checked
def npmle_bounds(x, sigma, num_iterations=EM_ITERATIONS):
    """l*(sigma) of one class x (N, d), bounded: "lower" = l(G^) of EM's G^ (l* >= it: G^ is a mixing distribution), "upper" =
    l(G^) + a bound on log max D (the certificate; a proof in any dimension: grid_certificate on at most 2 dimensions,
    lifted_certificate beyond). Candidate atoms: the data points, on at most 2 dimensions a grid of GRID_PER_AXIS^d over the
    data's bounding box; and in ATOM_ROUNDS rounds, the maxima of D that mean-shift reaches from the data and their mean (a
    maximum inside the hull, as at the centroid of a simplex's vertices, is then an atom; EM restarts with a tenth of the mass on
    the new atoms). Also "estimate" = l(G^) + log D at mean-shift's best maximum: an estimate of l*, below "upper", named so.
    And the atoms, weights, and the spread tr Cov(G^) / tr Cov(x)."""
    atoms = x
    if x.shape[1] <= 2:
        axes = [onp.linspace(a, b, GRID_PER_AXIS) for a, b in zip(onp.min(x, axis=0), onp.max(x, axis=0))]
        atoms = onp.concatenate([x, onp.stack(onp.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, x.shape[1])])
    weights, history = em_weights.__wrapped__(x, atoms, sigma, num_iterations)
    starts = onp.concatenate([x, onp.mean(x, axis=0)[None, :]])
    for _ in range(ATOM_ROUNDS):
        found = mean_shift_maxima(x, atoms, weights, sigma, starts)
        atoms = onp.concatenate([atoms, found])
        start = onp.concatenate([0.9 * weights, onp.full(len(found), 0.1 / len(found))])
        weights, history = em_weights.__wrapped__(x, atoms, sigma, num_iterations, start)
    lower = mixture_log_likelihood.__wrapped__(x, atoms, weights, sigma)
    certify = grid_certificate if x.shape[1] <= 2 else lifted_certificate
    searched = log_gradient_function.__wrapped__(mean_shift_maxima(x, atoms, weights, sigma, starts), x, atoms, weights, sigma)
    mean = weights @ atoms
    spread = float(weights @ onp.sum((atoms - mean) ** 2, axis=1) / onp.sum(onp.var(x, axis=0)))
    return dict(lower=lower, upper=lower + max(certify(x, atoms, weights, sigma), 0.0), estimate=lower + max(float(onp.max(searched)), 0.0),
                certified="grid" if x.shape[1] <= 2 else "lifted grid", atoms=atoms, weights=weights, spread_ratio=spread, history=history)


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("log_kernel", "grid_certificate", "lifted_certificate", "gaussian_sum_bound", "mean_shift_maxima", "check_weights")


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
