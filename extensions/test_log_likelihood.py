"""Tests for log_likelihood: log p(x1|x2) against closed forms, grids and sharp posteriors; coherence."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads, as the scripts do

import numpy as onp
import pytest

from extensions import log_likelihood as L
import surjvae_np as S
import theorem_check as T
from extensions.test_beyond_the_paper import rng, good_input  # noqa: F401  (fixtures)
from test_surjvae_np import slow


def affine_problem(latent, sigma, seed, num=40, classes=3, data_dim=None):
    """An affine decoder (hidden=()): p(x1|x2) = N(x1; m W + b, W^T diag(s^2) W + sigma^2 I) exactly, for q(g|x2) =
    N(m, diag s^2). x1 drawn from the model itself. (params, x1, x2, exact log p(x1|x2) (N,))."""
    r = rng(seed)
    data_dim = data_dim or max(2, 4 * latent)
    params = S.init_params(r, num_classes=classes, latent_dim=latent, data_dim=data_dim, hidden=(), decoder_std=sigma)
    params["encoder_x2"][0]["W"] = r.standard_normal(params["encoder_x2"][0]["W"].shape)     # labels that say something
    x2 = S.one_hot(r.integers(0, classes, num), classes)
    mean, log_var = S.label_posterior(params, x2, "mmvae")
    x1 = S.decode_mean_x1(params, S.sample_normal(mean, log_var, r)) + sigma * r.standard_normal((num, data_dim))
    W, b = params["decoder_x1"][0]["W"], params["decoder_x1"][0]["b"]
    exact = []
    for n in range(num):
        cov = W.T @ onp.diag(onp.exp(log_var[n])) @ W + sigma ** 2 * onp.eye(data_dim)
        residual = x1[n] - mean[n] @ W - b
        exact.append(-0.5 * (residual @ onp.linalg.solve(cov, residual) + onp.linalg.slogdet(2 * onp.pi * cov)[1]))
    return params, x1, x2, onp.array(exact)


def test_decoder_jacobian_is_autograds_jacobian():
    from autograd import jacobian
    params = S.init_params(rng(1), latent_dim=3, data_dim=5, hidden=(6, 4))
    g = rng(2).standard_normal((7, 3))
    mu, J = L.decoder_jacobian(params, g)
    onp.testing.assert_allclose(mu, S.decode_mean_x1(params, g), rtol=1e-12)
    for n in range(7):
        onp.testing.assert_allclose(J[n], jacobian(lambda point: S.decode_mean_x1(params, point))(g[n]), rtol=1e-10, atol=1e-12)
    for hidden in ((6, 4), (5,), ()):                                                              # the fast path, any depth
        params = S.init_params(rng(1), latent_dim=3, data_dim=5, hidden=hidden)
        (mu, J), (fast_mu, transposed) = L.decoder_jacobian(params, g), L._decoder_jacobian_transposed(params, g)
        onp.testing.assert_allclose(fast_mu, mu, rtol=1e-12, atol=1e-14)
        onp.testing.assert_allclose(onp.swapaxes(transposed, -1, -2), J, rtol=1e-12, atol=1e-14)


def test_laplace_fit_of_an_affine_decoder_is_the_exact_posterior():
    params, x1, x2, _ = affine_problem(3, 0.2, seed=4, num=6)
    mean, log_var = (a[0] for a in S.label_posterior(params, x2[:1], "mmvae"))
    W = params["decoder_x1"][0]["W"]
    precision = onp.diag(onp.exp(-log_var)) + W @ W.T / 0.2 ** 2                      # the Gaussian posterior's, exactly
    exact_mode = onp.linalg.solve(precision, (onp.exp(-log_var) * mean)[:, None] + W @ (x1 - params["decoder_x1"][0]["b"]).T / 0.04).T
    mode, hessian = L._laplace_fit(params, x1, mean, log_var, onp.zeros_like(exact_mode))
    onp.testing.assert_allclose(mode, exact_mode, rtol=1e-9, atol=1e-9)
    onp.testing.assert_allclose(hessian, onp.broadcast_to(precision, hessian.shape), rtol=1e-9)

def test_the_student_t_density_integrates_to_one_and_its_fast_path_is_it():
    """The proposal's component: a 2-D Student-t (3 dof) integrates to 1 on a grid (its tails fall as |d|^-5); the fast path
    (|L^T d|^2 for d^T L L^T d, every (point, component) pair at once) equals the plain definition to 1e-12 in 8 dimensions,
    and the mixture summed per point over its pairs is the logsumexp over its own components alone."""
    precision = onp.array([[2.0, 0.6], [0.6, 1.0]])
    axis = onp.linspace(-200.0, 200.0, 2001)
    g = onp.stack(onp.meshgrid(axis, axis, indexing="ij"), axis=-1)
    density = onp.exp(L._student_t_log_density(g, onp.array([0.3, -0.2]), precision, onp.linalg.slogdet(precision)[1]))
    assert abs(onp.sum(density) * (axis[1] - axis[0]) ** 2 - 1.0) < 2e-4                       # the tails beyond 200: ~1e-5
    generator = rng(3)
    root = generator.standard_normal((7, 3, 8, 8))
    precisions = root @ onp.swapaxes(root, -1, -2) + 0.1 * onp.eye(8)                             # (N, C, D, D)
    cholesky, draws, modes = onp.linalg.cholesky(precisions), generator.standard_normal((5, 7, 8)), generator.standard_normal((7, 3, 8))
    log_determinant = onp.linalg.slogdet(precisions)[1]
    plain = L._student_t_log_density(draws[:, :, None], modes[None], precisions[None], log_determinant[None])   # (k, N, C)
    point, component = onp.nonzero(onp.arange(3)[None] <= onp.arange(7)[:, None] % 3)             # point n: its first n % 3 + 1
    pairs = L._student_t_log_densities(draws, point, modes[point, component], cholesky[point, component], log_determinant[point, component])
    onp.testing.assert_allclose(pairs, plain[:, point, component], rtol=1e-12, atol=1e-12)
    own = onp.where(onp.arange(3)[None, None] <= onp.arange(7)[None, :, None] % 3, plain, -onp.inf)
    by_point = L._logsumexp_by_point(pairs, onp.searchsorted(point, onp.arange(7)))
    onp.testing.assert_allclose(by_point, S.logsumexp(own, axis=-1), rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("shape", [0.2, 0.5, 0.9])
def test_pareto_k_recovers_the_shape_of_a_pareto_tail(shape):
    """Weights U^-shape, U uniform, have a Pareto tail of exactly that shape; 20 sets of 4000 (measured SD of one k: 0.07-0.19)."""
    k = L.pareto_k(-shape * onp.log(rng(5).uniform(size=(4000, 20))))
    assert abs(onp.mean(k) - shape) < 4 * onp.std(k) / onp.sqrt(20) + 0.05, (onp.mean(k), onp.std(k))
    assert onp.all(L.pareto_k(onp.zeros((100, 2))) == -onp.inf)                          # equal weights: no tail at all


def test_one_weight_hundreds_of_nats_above_the_rest_has_an_infinite_pareto_k_not_nan():
    """A weight 712 nats above 1999 others (a sharp posterior that one draw hit): the exceedances under it are subnormal
    floats, whose reciprocal overflowed, and k came out NaN (an untrusted estimate then read as neither passing nor failing,
    and a study's JSON could not be drawn). It is +inf: the estimate is not to be trusted."""
    log_weights = rng(3).normal(size=(2000, 3))
    log_weights[0] = onp.max(log_weights, axis=0) + onp.array([712.0, 650.0, 800.0])        # subnormal, normal, 0 exceedances
    k = L.pareto_k(log_weights)
    assert k[0] == onp.inf and k[2] == onp.inf and onp.isfinite(k[1]) and k[1] > L.PARETO_K_RELIABLE, k


@pytest.mark.parametrize("latent", [2, 8, 16])
@pytest.mark.parametrize("sigma", [1.0, 0.1, 0.01])
def test_log_p_is_within_its_error_of_the_affine_closed_form(latent, sigma):
    """Importance sampling (the grid switched off): every reliable point within 4 of its standard errors of the exact value
    (a 4 SE error allows 6e-5 of 40 points to miss; none may), and most points reliable (measured: all, ESS / K 0.24-0.50)."""
    params, x1, x2, exact = affine_problem(latent, sigma, seed=latent)
    found = L.log_p_x1_given_x2(params, x1, x2, rng(1), "mmvae", num_samples=1000, grid_nodes=None)
    assert set(found["method"]) == {"IS"} and onp.mean(found["reliable"]) >= 0.9
    z = (found["value"] - exact)[found["reliable"]] / found["error"][found["reliable"]]
    assert onp.all(onp.abs(z) < 4), onp.max(onp.abs(z))


def test_the_standard_error_of_log_p_is_the_spread_of_the_estimate():
    """The delta-method standard error of the two runs' combination against the standard deviation of 200 independent
    combinations (K = 200 draws per run) of the same points, each run with its own modes: their ratio within 0.8..1.25."""
    from extensions import beyond_the_paper as B
    params, x1, x2, _ = affine_problem(8, 0.1, seed=5, num=4)
    mean, log_var = (a[0] for a in B.label_latent(params, x2[:1], "mmvae"))
    own = B.x1_latent(params, x1, "mmvae")
    fits = [L._search_modes(params, x1, mean, log_var, own, rng(s))[0] for s in (1, 2)]
    runs = [L._two_runs(*(L._sampled(params, x1, mean, log_var, fits[i], rng(100 + 2 * r + i), 200) for i in (0, 1)), log_var) for r in range(200)]
    spread = onp.std([run["value"] for run in runs], axis=0, ddof=1)
    stated = onp.sqrt(onp.mean([run["error"] ** 2 for run in runs], axis=0))
    assert onp.all((0.8 < stated / spread) & (stated / spread < 1.25)), stated / spread


def sharp_problem(sigma, seed, num=30):
    """A tanh decoder, a sharp f_1 and every x1 from a g 3 std away from the label's mean: a fixed proposal q(g|x2)
    rarely lands where p(x1|g) is. The exact value by the grid (2-D), which converges here (change < 1e-10)."""
    r = rng(seed)
    params = S.init_params(r, num_classes=2, latent_dim=2, data_dim=4, hidden=(16,), decoder_std=sigma)
    x2 = S.one_hot(onp.zeros(num, dtype=int), 2)
    mean, log_var = (a[0] for a in S.label_posterior(params, x2[:1], "mmvae"))
    g = mean + onp.exp(0.5 * log_var) * (3.0 + 0.3 * r.standard_normal((num, 2)))
    x1 = S.decode_mean_x1(params, g) + sigma * r.standard_normal((num, 4))
    return params, x1, x2, mean, log_var, L.grid_log_p(params, x1, mean, log_var, 2048)


@pytest.mark.parametrize("sigma", [0.1, 0.01])
def test_log_p_where_a_fixed_proposal_fails_is_right_or_says_unreliable(sigma):
    params, x1, x2, mean, log_var, exact = sharp_problem(sigma, seed=1)
    found = L.log_p_x1_given_x2(params, x1, x2, rng(2), "mmvae", num_samples=1000, grid_nodes=None)
    z = (found["value"] - exact) / found["error"]
    assert not onp.any(found["reliable"] & (onp.abs(z) >= 4)), z[found["reliable"]]     # never confidently wrong
    assert onp.mean(found["reliable"]) >= 0.7                                             # measured: 0.77-1.0 over seeds
    g = S.sample_normal(mean, log_var, rng(3), (1000, len(x1)))                            # the fixed proposal q(g|x2)
    value, _, k, _ = L.importance_estimate(S.decoder_x1_log_likelihood(params, x1, g))
    assert onp.max(exact - value) > 0.5 and onp.all(k > L.PARETO_K_RELIABLE)             # measured: 0.7-600 nats too low


def test_a_point_of_high_pareto_k_is_estimated_again_with_four_times_the_draws(monkeypatch):
    """The retry, in each of the two runs: exactly the points whose k exceeded pareto_threshold(K) at K draws are estimated
    again from 4 K fresh draws; no point called reliable is beyond 4 SE of the grid's value."""
    params, x1, x2, mean, log_var, exact = sharp_problem(0.1, seed=2)
    calls, original = [], L._mixture_log_weights
    monkeypatch.setattr(L, "_mixture_log_weights", lambda p, x, *rest: calls.append((len(x), rest[-1], original(p, x, *rest))) or calls[-1][2])
    found = L.log_p_x1_given_x2(params, x1, x2, rng(2), "mmvae", num_samples=500, grid_nodes=None)
    firsts = [index for index, call in enumerate(calls) if call[1] == 500]
    assert len(firsts) == 2                                                      # two independent runs
    for first in firsts:
        flagged = int(onp.sum(L.pareto_k(calls[first][2]) > L.pareto_threshold(500)))
        retry = calls[first + 1][:2] if first + 1 < len(calls) and calls[first + 1][1] == 2000 else None
        assert retry == ((flagged, 2000) if flagged else None), (flagged, retry)
    assert any(call[1] == 2000 for call in calls)                                # the case has points to retry
    assert not onp.any(found["reliable"] & (onp.abs(found["value"] - exact) >= 4 * found["error"]))


def test_the_grid_pruned_by_an_estimate_is_the_plain_grid(monkeypatch):
    """grid_log_p given a coarser grid's values skips, per point, the tiles whose bound lies far below them: on a sharp
    tanh decoder (s = 0.05, 40 points drawn from the model) it sums under half the (point, node) pairs and equals the plain
    sum to 1e-12; an estimate 50 nats too high (the point is summed again) or NaN (nothing skipped) changes nothing."""
    params = S.init_params(rng(5), num_classes=2, latent_dim=2, data_dim=2, hidden=(8,))
    for layer in params["decoder_x1"]:
        layer["W"] = 3.0 * layer["W"]
    params["decoder_x1_log_var"] = onp.array(2 * onp.log(0.05))
    mean, log_var = (a[0] for a in S.label_posterior(params, S.one_hot(onp.zeros(1, int), 2), "mmvae"))
    x1 = S.decode_mean_x1(params, mean + onp.exp(0.5 * log_var) * rng(6).normal(size=(40, 2))) + 0.05 * rng(7).normal(size=(40, 2))
    plain, coarse = (L.grid_log_p(params, x1, mean, log_var, nodes) for nodes in (256, 128))
    pairs, logsumexp = [], S.logsumexp
    monkeypatch.setattr(S, "logsumexp", lambda b, axis: pairs.append(b.size) or logsumexp(b, axis))
    pruned = L.grid_log_p(params, x1, mean, log_var, 256, estimate=coarse)
    assert sum(pairs) < 0.5 * 40 * 256 ** 2
    onp.testing.assert_allclose(pruned, plain, rtol=0, atol=1e-12)
    wrong = onp.where(onp.arange(40) % 3 == 0, coarse + 50.0, onp.where(onp.arange(40) % 3 == 1, onp.nan, coarse))
    onp.testing.assert_allclose(L.grid_log_p(params, x1, mean, log_var, 256, estimate=wrong), plain, rtol=0, atol=1e-12)


def test_the_grid_in_any_dimension_is_the_trapezoid_sum_over_every_node():
    """grid_log_p's tiles in 1 to 4 dimensions (a tile is a cube of about TILE_NODES nodes, the last one cut at the grid's
    edge) sum each node once: the log of the sum over the full tensor grid of q(g|x2) p(x1|g) times the cell's volume."""
    for dim, nodes in ((1, 5000), (2, 100), (3, 20), (4, 9)):
        params = S.init_params(rng(dim), num_classes=2, latent_dim=dim, data_dim=3, hidden=(6,))
        mean, log_var, x1 = rng(9).normal(size=dim), 0.3 * rng(10).normal(size=dim), rng(11).normal(size=(5, 3))
        axis = onp.linspace(-8.0, 8.0, nodes)
        g = mean + onp.exp(0.5 * log_var) * onp.stack(onp.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
        cell = (axis[1] - axis[0]) ** dim * onp.prod(onp.exp(0.5 * log_var))
        exact = S.logsumexp(S.log_normal(g, mean, log_var)[:, None] + S.decoder_x1_log_likelihood(params, x1, g[:, None, :]), axis=0)
        onp.testing.assert_allclose(L.grid_log_p(params, x1, mean, log_var, nodes), exact + onp.log(cell), rtol=1e-12, atol=1e-12)


def test_the_grid_is_not_trusted_where_the_posterior_falls_between_its_nodes():
    """A decoder that steps from -1 to 1 within 0.01 of g_1 = 0, halfway between nodes: x1 = 0 is explained only there
    (a posterior peak of std 0.001), so every node sees the same constant likelihood and two grids agree to 1e-9 on a
    value 44 nats too low (the trap of a rule that only asks for convergence). The Laplace search from q(g|x1) (which,
    as a trained encoder's would, points at the peak) finds the peak's width, the grid is not trusted, and importance
    sampling gets it right. The exact value: a 1-D trapezoid rule over g_1 at spacing 8e-5 (g_2 and x1[1] factor out)."""
    sigma, steepness = 0.1, 100.0
    params = S.init_params(rng(0), num_classes=1, latent_dim=2, data_dim=2, hidden=(1,), decoder_std=sigma)
    params["decoder_x1"] = [{"W": onp.array([[steepness], [0.0]]), "b": onp.zeros(1)}, {"W": onp.array([[1.0, 0.0]]), "b": onp.zeros(2)}]
    for layer in params["encoder_x1"] + params["encoder_x2"]:
        layer["W"], layer["b"] = onp.zeros_like(layer["W"]), onp.zeros_like(layer["b"])   # q(g|x2) = N(0, I)
    params["encoder_x1"][-1]["b"] = onp.array([0.0, 0.0, -6.0, -6.0])                     # q(g|x1) at the peak
    x1, x2 = onp.zeros((3, 2)), onp.ones((3, 1))
    g1 = onp.linspace(-8.0, 8.0, 200_001)
    integrand = onp.exp(-0.5 * g1 ** 2 - 0.5 * (onp.tanh(steepness * g1) / sigma) ** 2) / (2 * onp.pi) ** 1.5 / sigma ** 2
    exact = onp.log(onp.sum(integrand) * (g1[1] - g1[0]))
    coarse, finer = (L.grid_log_p(params, x1, onp.zeros(2), onp.zeros(2), nodes) for nodes in (32, 64))
    assert onp.max(onp.abs(finer - coarse)) < 1e-4 and onp.min(exact - finer) > 40.0
    found = L.log_p_x1_given_x2(params, x1, x2, rng(4), "mmvae")
    assert set(found["method"]) == {"IS"} and onp.all(found["reliable"])
    assert onp.all(onp.abs(found["value"] - exact) < 4 * found["error"]), (found["value"], exact, found["error"])


def test_log_p_of_the_constant_decoder_is_the_bound():
    """For theta_hat (decoder = class mean, variance = MLE) p(x1|g) does not depend on g: log p(x1|x2) summed over the
    class is exactly the right side of Eq. (7), by the grid (2-D) and by importance sampling (every weight equal to
    q/r: the estimate is exact only in expectation; each point within 4 SE)."""
    x1, labels = S.make_pinwheel(num_per_class=30, rng=rng(3))
    params = T.constant_mean_decoder(S.init_params(rng(4)), x1[labels == 0])
    x2 = S.one_hot(labels[labels == 0], 2)
    grid = L.log_p_x1_given_x2(params, x1[labels == 0], x2, rng(5), "mmvae")
    assert grid["method"][0].startswith("grid") and abs(onp.sum(grid["value"]) - T.constant_mean_bound(x1[labels == 0])) < 1e-9
    sampled = L.log_p_x1_given_x2(params, x1[labels == 0], x2, rng(5), "mmvae", grid_nodes=None)
    exact = grid["value"]                                                     # per point: log f_1(x_n | theta_hat), the bound's terms
    assert set(sampled["method"]) == {"IS"} and onp.all(sampled["reliable"])
    assert onp.all(onp.abs(sampled["value"] - exact) < 4 * sampled["error"]), onp.max(onp.abs(sampled["value"] - exact) / sampled["error"])


def test_log_p_rejects_bad_input(good_input):
    params, x1, x2 = good_input
    for call, message in ((lambda: L.log_p_x1_given_x2(params, x1, x2, rng(), "mmvae", num_samples=1), "num_samples"),
                          (lambda: L.log_p_x1_given_x2(params, x1[:-1], x2, rng(), "mmvae"), "rows"),
                          (lambda: L.log_p_x1_given_x2(params, x1, x2, rng(), "vae"), "unknown model"),
                          (lambda: L.log_p_x1_given_x2(params, x1, x2, rng(), "mmvae", grid_nodes=1), "grid_nodes")):
        with pytest.raises(ValueError, match=message):
            call()


def test_label_coherence_counts_samples_nearest_their_own_class():
    reference = onp.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    reference_labels = onp.array([0, 0, 1, 1])
    generated = onp.array([[0.05, 0.0], [4.9, 5.0], [0.2, 0.1], [5.0, 4.8]])
    assert L.label_coherence(generated, onp.array([0, 1, 1, 1]), reference, reference_labels) == 0.75
    onp.testing.assert_array_equal(L._nearest_label(generated, reference, reference_labels), [0, 1, 0, 1])


def test_leave_one_out_coherence_of_separated_and_mixed_classes():
    separated = onp.array([[0.0], [0.1], [5.0], [5.1]])
    assert L.leave_one_out_coherence(separated, onp.array([0, 0, 1, 1])) == [1.0, 1.0]
    assert L.leave_one_out_coherence(separated, onp.array([0, 1, 0, 1])) == [0.0, 0.0]


# ---------------------------------------------------------------- exact answers beyond affine decoders

def with_expert(params, key, mean, log_var):
    """params whose encoder `key` outputs (mean, log_var) for every input: its last layer W = 0, b = (mean, log_var)."""
    layers = [dict(layer) for layer in params[key]]
    layers[-1] = {"W": onp.zeros_like(layers[-1]["W"]), "b": onp.concatenate([mean, log_var])}
    return dict(params, **{key: layers})


def beyond_reach_problem(seed, num=5, latent=5, sigma=0.1):
    """A tanh decoder (hidden 8) of (g1, g2) only, x1 in R^2 at 1.5 times its reach in random directions, q(g|x2) = q(g|x1) =
    N(0, I): the posterior has several modes, at saturation, some beyond 8 std of q."""
    params = S.init_params(rng(seed), 2, latent, 2, (8,))
    first = dict(params["decoder_x1"][0], W=onp.concatenate([params["decoder_x1"][0]["W"][:2], onp.zeros((latent - 2, 8))]))
    params = dict(params, decoder_x1=[first, params["decoder_x1"][1]], decoder_x1_log_var=onp.array(2 * onp.log(sigma)))
    params = with_expert(with_expert(params, "encoder_x2", onp.zeros(latent), onp.zeros(latent)), "encoder_x1", onp.zeros(latent), onp.zeros(latent))
    reach = onp.sum(onp.abs(params["decoder_x1"][1]["W"]), axis=0) + onp.abs(params["decoder_x1"][1]["b"])
    angles = rng(seed + 100).uniform(0, 2 * onp.pi, num)
    return params, 1.5 * reach * onp.stack([onp.cos(angles), onp.sin(angles)], axis=1), S.one_hot(onp.zeros(num, dtype=int), 2)


def beyond_reach_exact(params, x1, half_width, nodes):
    """The exact log p(x1|x2) of beyond_reach_problem: g3.. integrate out (the decoder ignores them), leaving a 2-D
    trapezoid rule over (g1, g2) on +- half_width, written apart from the library's grid."""
    layer, last, variance = params["decoder_x1"][0], params["decoder_x1"][1], onp.exp(params["decoder_x1_log_var"])
    axis = onp.linspace(-half_width, half_width, nodes)
    g = onp.stack(onp.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    mu = onp.tanh(g @ layer["W"][:2] + layer["b"]) @ last["W"] + last["b"]                        # (G, 2)
    log_q = -0.5 * onp.sum(g * g, axis=1) - onp.log(2 * onp.pi) + 2 * onp.log(axis[1] - axis[0])
    terms = -0.5 * onp.sum((x1[:, None] - mu[None]) ** 2, axis=-1) / variance - onp.log(2 * onp.pi * variance) + log_q[None]
    return S.logsumexp(terms, axis=1)


@slow
def test_log_p_beyond_the_decoders_reach_is_right_where_called_reliable_over_20_seeds():
    """20 seeds x 5 points: every point called reliable within 5 SE of the exact value (the reference converged: 512 and 1024
    nodes on +- 24 agree to 1e-6), and most are called reliable (docs/log_likelihood.md gives the measured shares, and the
    previous estimator's errors on the same points)."""
    reliable = 0
    for seed in range(20):
        params, x1, x2 = beyond_reach_problem(seed)
        exact, check = beyond_reach_exact(params, x1, 24.0, 1024), beyond_reach_exact(params, x1, 24.0, 512)
        assert onp.max(onp.abs(exact - check)) < 1e-6
        found = L.log_p_x1_given_x2(params, x1, x2, rng(seed + 7), "mmvae")
        z = (found["value"] - exact) / found["error"]
        assert not onp.any(found["reliable"] & (onp.abs(z) > 5)), (seed, z[found["reliable"]])
        reliable += int(onp.sum(found["reliable"]))
    assert reliable >= 75, reliable                                              # the estimator is useful, not only careful


def far_heavy_mode_problem(seed, num=5, latent=5, sigma=1e-4):
    """x1 in R^1, a decoder of g1 only: mu = 1.5 tanh(3 g1) - 0.75 tanh(20 (g1 - 3.55)) - 0.75 crosses x ~ 0 steeply at
    g1 = 0 (a narrow mode where q(g|x1) sits) and approaches it on the plateau g1 > 3.8, 3.8 std out in q(g|x2) = N(0, I),
    which holds 61-71 % of the mass at sigma = 1e-4."""
    params = S.init_params(rng(seed), 2, latent, 1, (2,))
    first = onp.zeros((latent, 2))
    first[0] = [3.0, 20.0]
    params = dict(params, decoder_x1=[{"W": first, "b": onp.array([0.0, -20.0 * 3.55])}, {"W": onp.array([[1.5], [-0.75]]), "b": onp.array([-0.75])}],
                  decoder_x1_log_var=onp.array(2 * onp.log(sigma)))
    params = with_expert(with_expert(params, "encoder_x2", onp.zeros(latent), onp.zeros(latent)), "encoder_x1", onp.zeros(latent), onp.zeros(latent))
    return params, rng(seed + 50).normal(0.0, sigma, (num, 1)), S.one_hot(onp.zeros(num, dtype=int), 2)


def far_heavy_mode_exact(params, x1, nodes):
    """The exact log p(x1|x2) of far_heavy_mode_problem: g2.. integrate out, leaving the trapezoid rule over g1 on [-12, 12]
    with nodes nodes, and as many on [-0.01, 0.01] where the narrow mode is (its width is 3e-5)."""
    layer, last, variance = params["decoder_x1"][0], params["decoder_x1"][1], onp.exp(params["decoder_x1_log_var"])
    g = onp.unique(onp.concatenate([onp.linspace(-12.0, 12.0, nodes), onp.linspace(-0.01, 0.01, nodes)]))
    mu = onp.tanh(g[:, None] * layer["W"][0] + layer["b"]) @ last["W"][:, 0] + last["b"][0]
    log_f = -0.5 * g ** 2 - 0.5 * onp.log(2 * onp.pi) - 0.5 * (x1 - mu[None]) ** 2 / variance - 0.5 * onp.log(2 * onp.pi * variance)
    top = onp.max(log_f, axis=1, keepdims=True)
    return top[:, 0] + onp.log(onp.sum(0.5 * (onp.exp(log_f - top)[:, 1:] + onp.exp(log_f - top)[:, :-1]) * onp.diff(g), axis=1))


@slow
def test_log_p_with_a_far_heavy_mode_is_right_where_called_reliable_over_20_seeds():
    """20 seeds x 5 points: every point called reliable within 5 SE of the exact value (the reference converged: 200001 and
    400001 nodes agree to 1e-9), and some are called reliable; the previous estimator called points reliable 1.1 nats too low."""
    reliable = 0
    for seed in range(20):
        params, x1, x2 = far_heavy_mode_problem(seed)
        exact = far_heavy_mode_exact(params, x1, 400001)
        assert onp.max(onp.abs(exact - far_heavy_mode_exact(params, x1, 200001))) < 1e-9
        found = L.log_p_x1_given_x2(params, x1, x2, rng(seed + 7), "mmvae")
        z = (found["value"] - exact) / found["error"]
        assert not onp.any(found["reliable"] & (onp.abs(z) > 5)), (seed, z[found["reliable"]])
        reliable += int(onp.sum(found["reliable"]))
    assert reliable >= 25, reliable


def many_mode_problem(seed, coordinates, num=20, sigma=0.01):
    """x1 in R^c, c = coordinates, decoded coordinate by coordinate: mu_i = f(g_i), f(t) = tanh(3 t - 3) + tanh(3 t + 3) -
    1.8 tanh(3 t), which crosses 0 three times (t = 0 and about +-1.3); latent 2 c (the rest ignored), q(g|x2) = q(g|x1) =
    N(0, I), x1 ~ N(0, sigma^2 I): each point's posterior has 3^c separated modes (9, 27, 81) of similar mass."""
    latent = 2 * coordinates
    params = S.init_params(rng(seed), 2, latent, coordinates, (3 * coordinates,))
    first, last = onp.zeros((latent, 3 * coordinates)), onp.zeros((3 * coordinates, coordinates))
    for i in range(coordinates):
        first[i, 3 * i:3 * i + 3], last[3 * i:3 * i + 3, i] = 3.0, [1.0, 1.0, -1.8]
    params = dict(params, decoder_x1=[{"W": first, "b": onp.tile([-3.0, 3.0, 0.0], coordinates)}, {"W": last, "b": onp.zeros(coordinates)}],
                  decoder_x1_log_var=onp.array(2 * onp.log(sigma)))
    params = with_expert(with_expert(params, "encoder_x2", onp.zeros(latent), onp.zeros(latent)), "encoder_x1", onp.zeros(latent), onp.zeros(latent))
    return params, rng(seed + 50).normal(0.0, sigma, (num, coordinates)), S.one_hot(onp.zeros(num, dtype=int), 2)


def many_mode_exact(params, x1, nodes):
    """The exact log p(x1|x2) of many_mode_problem: a sum over coordinates of 1-D trapezoid rules over g_i on [-12, 12]
    (the coordinates and the ignored g factor out), written apart from the library's decoder."""
    t, variance = onp.linspace(-12.0, 12.0, nodes), float(onp.exp(params["decoder_x1_log_var"]))
    f = onp.tanh(3.0 * t[:, None] + onp.array([-3.0, 3.0, 0.0])) @ onp.array([1.0, 1.0, -1.8])
    total = onp.zeros(len(x1))
    for i in range(x1.shape[1]):
        log_f = -0.5 * t ** 2 - 0.5 * onp.log(2 * onp.pi) - 0.5 * (x1[:, i:i + 1] - f[None]) ** 2 / variance - 0.5 * onp.log(2 * onp.pi * variance)
        total += S.logsumexp(log_f, axis=1) + onp.log(t[1] - t[0])
    return total


def many_mode_errors(coordinates, seeds):
    """Over seeds: (points called reliable, those beyond 5 SE of the exact value, all points, the largest unseeded count)."""
    reliable = wrong = total = unseeded = 0
    for seed in seeds:
        params, x1, x2 = many_mode_problem(seed, coordinates)
        exact = many_mode_exact(params, x1, 400001)
        assert onp.max(onp.abs(exact - many_mode_exact(params, x1, 200001))) < 1e-9
        found = L.log_p_x1_given_x2(params, x1, x2, rng(seed + 7), "mmvae")
        z = (found["value"] - exact) / found["error"]
        reliable, wrong = reliable + int(onp.sum(found["reliable"])), wrong + int(onp.sum(found["reliable"] & (onp.abs(z) > 5)))
        total, unseeded = total + len(x1), max(unseeded, int(onp.max(found["unseeded"])))
    return reliable, wrong, total, unseeded


@pytest.mark.parametrize("coordinates", [2, 3])
def test_log_p_with_9_and_27_modes_per_point_is_right_where_called_reliable(coordinates):
    """6 seeds x 20 points, each posterior of 9 (27) separated modes of similar mass: every point called reliable within 5 SE
    of the exact value, and nearly all called reliable (measured: 120 of 120 both); every class mode found at two points or
    more is seeded at every point. With the former seeding (the 4 busiest cells only) on 9 modes, both runs missed the same
    modes: a point called reliable 0.16 nats (6 SE) low; on 27, none called reliable."""
    reliable, wrong, total, unseeded = many_mode_errors(coordinates, range(6))
    assert wrong == 0 and reliable >= 0.9 * total and unseeded == 0, (reliable, wrong, total, unseeded)


def test_the_former_seeding_calls_a_point_reliable_that_is_wrong_with_9_modes(monkeypatch):
    """The case can fail: with only the CLASS_MODES busiest cells seeded (no other cell qualifies), the two runs miss the same
    modes and agree."""
    monkeypatch.setattr(L, "CLASS_MODE_COUNT", 10 ** 9)
    reliable, wrong, total, _ = many_mode_errors(2, range(6))
    assert wrong >= 1, (reliable, wrong, total)


def test_with_more_class_modes_than_are_seeded_no_point_is_called_reliable():
    """81 modes per point (4 coordinates): more class modes are found at two points or more than MAX_CLASS_MODES, so the
    search says so ("unseeded" > 0) and no point is called reliable. Without that rule 20 of 80 were, 0.66 nats (> 5 SE) low."""
    reliable, wrong, total, unseeded = many_mode_errors(4, range(4))
    assert reliable == 0 and unseeded > 0, (reliable, wrong, total, unseeded)


def test_the_grid_trap_is_found_by_a_search_that_starts_away_from_the_peak():
    """The decoder of the grid test above (a step within 0.01 of g_1 = 0), but q(g|x1) at (-1.5, 1.5), far from the peak, with
    std 0.05: the encoder gives the search no help. The search from q(g|x2)'s mean (at the peak's g_1 = 0) and its draws still
    finds the peak's width; importance sampling gets the value within 4 SE, every point reliable."""
    sigma, steepness = 0.1, 100.0
    params = S.init_params(rng(0), num_classes=1, latent_dim=2, data_dim=2, hidden=(1,), decoder_std=sigma)
    params["decoder_x1"] = [{"W": onp.array([[steepness], [0.0]]), "b": onp.zeros(1)}, {"W": onp.array([[1.0, 0.0]]), "b": onp.zeros(2)}]
    params = with_expert(with_expert(params, "encoder_x2", onp.zeros(2), onp.zeros(2)), "encoder_x1", onp.array([-1.5, 1.5]),
                         onp.full(2, 2 * onp.log(0.05)))
    x1, x2 = onp.zeros((3, 2)), onp.ones((3, 1))
    g1 = onp.linspace(-8.0, 8.0, 200_001)
    integrand = onp.exp(-0.5 * g1 ** 2 - 0.5 * (onp.tanh(steepness * g1) / sigma) ** 2) / (2 * onp.pi) ** 1.5 / sigma ** 2
    exact = onp.log(onp.sum(integrand) * (g1[1] - g1[0]))
    found = L.log_p_x1_given_x2(params, x1, x2, rng(4), "mmvae")
    assert set(found["method"]) == {"IS"} and onp.all(found["reliable"])
    assert onp.all(onp.abs(found["value"] - exact) < 4 * found["error"]), (found["value"], exact, found["error"])
