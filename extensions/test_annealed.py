"""Tests for annealed: AIS's gradient against finite differences, its HMC against a Gaussian it must leave invariant, its
log p(x1|x2) against exact answers (an affine closed form; 9 separated modes per point), BDMC's two bounds around the exact
value, and the second opinion that takes "reliable" from importance sampling where the two disagree."""
import numpy as onp
import pytest

from extensions import annealed as A
from extensions import log_likelihood as L
from extensions.test_log_likelihood import affine_problem, many_mode_exact, many_mode_problem
import surjvae_np as S


def rng(seed):
    return onp.random.default_rng(seed)


def test_the_schedule_runs_from_0_to_1_increasing():
    betas = A.sigmoid_schedule(50)
    assert betas[0] == 0.0 and betas[-1] == 1.0 and onp.all(onp.diff(betas) > 0)


def test_the_gradient_of_log_p_theta_in_whitened_coordinates_is_finite_differences():
    """d/du log p_theta(x1 | mean + scale u) against central differences, on a tanh decoder of two hidden layers."""
    params = S.init_params(rng(0), 2, 3, 4, (5, 6))
    x1, mean, scale = rng(1).normal(size=(2, 4)), rng(2).normal(size=3), onp.exp(rng(3).normal(size=3))
    u = rng(4).normal(size=(1, 2, 3))
    _, gradient = A._log_likelihood_and_gradient(params, x1, mean, scale, u)
    for d in range(3):
        shift = onp.zeros(3)
        shift[d] = 1e-6
        plus, _ = A._log_likelihood_and_gradient(params, x1, mean, scale, u + shift)
        minus, _ = A._log_likelihood_and_gradient(params, x1, mean, scale, u - shift)
        assert onp.allclose((plus - minus) / 2e-6, gradient[..., d], atol=1e-6)


def test_hmc_leaves_the_exact_gaussian_posterior_of_an_affine_decoder_invariant():
    """Exact posterior draws of an affine decoder (a Gaussian), moved by 50 HMC transitions at b = 1: their mean and covariance
    stay the exact ones (within 5 standard errors of 4000 draws)."""
    params, x1, x2, _ = affine_problem(2, 0.5, seed=3, num=1)
    W, mean, log_var = params["decoder_x1"][0]["W"], *(a[0] for a in S.label_posterior(params, x2, "mmvae"))
    precision = onp.diag(onp.exp(-log_var)) + W @ W.T / 0.25
    cov = onp.linalg.inv(precision)
    centre = cov @ (onp.exp(-log_var) * mean + W @ (x1[0] - params["decoder_x1"][0]["b"]) / 0.25)
    g = centre + rng(0).standard_normal((4000, 1, 2)) @ onp.linalg.cholesky(cov).T
    scale, u, r = onp.exp(0.5 * log_var), (g - mean) / onp.exp(0.5 * log_var), rng(1)
    state = A._log_ratio_and_gradient(params, x1, mean, scale, 1.0, u)
    for _ in range(50):
        u, state, _ = A._hmc(params, x1, mean, scale, 1.0, u, state, 1.0, onp.array([0.3]), r)
    moved = (mean + scale * u)[:, 0]
    assert onp.all(onp.abs(onp.mean(moved, axis=0) - centre) < 5 * onp.sqrt(onp.diag(cov) / 4000))
    assert onp.allclose(onp.cov(moved.T), cov, atol=5 * onp.max(onp.diag(cov)) * onp.sqrt(2 / 4000))


@pytest.mark.parametrize("latent", [2, 8])
def test_annealed_log_p_is_within_its_error_of_the_affine_closed_form(latent):
    """AIS (32 chains, 2000 temperatures) on the affine problem at sigma = 0.1: every point within 4 of its standard errors of
    the exact log p(x1|x2) (measured: |z| at most 3.0 and 2.1)."""
    params, x1, x2, exact = affine_problem(latent, 0.1, seed=latent)
    value, error = A.annealed_log_p_x1_given_x2(params, x1, x2, rng(1), "mmvae", temperatures=2000)
    assert onp.all(onp.abs(value - exact) < 4 * error), onp.max(onp.abs(value - exact) / error)


def test_annealed_log_p_with_9_modes_per_point_is_within_5_errors_of_the_exact_value():
    """The posterior of 9 separated modes of similar mass (sigma = 0.01) that importance sampling needs its class-mode seeding
    for: AIS, which searches no mode, lands within 5 of its standard errors at every one of 3 seeds x 20 points."""
    for seed in range(3):
        params, x1, x2 = many_mode_problem(seed, 2)
        exact = many_mode_exact(params, x1, 200001)
        value, error = A.annealed_log_p_x1_given_x2(params, x1, x2, rng(seed + 7), "mmvae", temperatures=3200)
        assert onp.all(onp.abs(value - exact) < 5 * error), (seed, onp.max(onp.abs(value - exact) / error))


def test_bdmc_brackets_the_exact_value_on_data_simulated_from_the_model():
    """x1 simulated from the 9-mode decoder at g ~ q(g|x2): forward AIS lies below the exact log p and the reverse run from g
    above it, on average over the points (within 3 standard errors of that average), and the gap narrows as the
    temperatures grow."""
    params, _, _ = many_mode_problem(0, 2)
    g = rng(5).standard_normal((20, 4))
    x1 = S.decode_mean_x1(params, g) + 0.01 * rng(6).standard_normal((20, 2))
    exact, gaps = many_mode_exact(params, x1, 200001), []
    for temperatures in (800, 3200):
        lower, lower_se, upper, upper_se = A.bdmc_bounds(params, x1, onp.zeros(4), onp.zeros(4), g, rng(temperatures), temperatures=temperatures)
        assert onp.mean(lower - exact) < 3 * onp.sqrt(onp.sum(lower_se ** 2)) / 20
        assert onp.mean(upper - exact) > -3 * onp.sqrt(onp.sum(upper_se ** 2)) / 20
        gaps.append(onp.mean(upper - lower))
    assert gaps[1] < gaps[0], gaps


def test_the_second_opinion_takes_reliable_from_points_where_importance_sampling_missed_modes(monkeypatch):
    """Importance sampling whose search keeps one mode per point (the first start's, from q(g|x2)'s mean), on 9 sharp modes:
    both runs miss the same 8, their draws never reach them (k stays low), and they agree: points called reliable, wrong
    beyond 5 SE. With AIS's agreement required none is (AIS searches no mode)."""
    search = L._search_modes
    monkeypatch.setattr(L, "_search_modes", lambda *args: (search(*args)[0][:1], 0))
    wrong_before = wrong_after = 0
    for seed in range(2):
        params, x1, x2 = many_mode_problem(seed, 2)
        exact = many_mode_exact(params, x1, 200001)
        found = L.log_p_x1_given_x2(params, x1, x2, rng(seed + 7), "mmvae", grid_nodes=None)
        checked = A.checked_by_annealing(found, *A.annealed_log_p_x1_given_x2(params, x1, x2, rng(seed), "mmvae", temperatures=3200))
        beyond = onp.abs(found["value"] - exact) > 5 * found["error"]
        wrong_before += int(onp.sum(found["reliable"] & beyond))
        wrong_after += int(onp.sum(checked["reliable"] & beyond))
    assert wrong_before >= 5 and wrong_after == 0, (wrong_before, wrong_after)


def test_the_paths_start_is_a_normalised_density_with_its_gradient():
    """r = (q + q widened) / 2 in 1-D integrates to 1 on a fine grid, and its gradient is central differences: AIS is unbiased
    only if Z_0 = 1."""
    t = onp.linspace(-40.0, 40.0, 200001)[:, None, None]
    assert abs(onp.sum(onp.exp(A._log_start(t, A.WIDEN)[0])) * (t[1, 0, 0] - t[0, 0, 0]) - 1.0) < 1e-9
    u = 2.0 * rng(0).normal(size=(1, 2, 3))
    gradient = A._log_start(u, A.WIDEN)[1]
    for d in range(3):
        shift = onp.zeros(3)
        shift[d] = 1e-6
        assert onp.allclose((A._log_start(u + shift, A.WIDEN)[0] - A._log_start(u - shift, A.WIDEN)[0]) / 2e-6, gradient[..., d], atol=1e-6)


@pytest.mark.parametrize("latent", [8, 16])
def test_on_a_sharp_affine_posterior_no_point_called_reliable_is_wrong(latent):
    """The affine problem at sigma = 0.01 in 8 and 16 dimensions: a posterior 100 times narrower than q(g|x2) in every
    direction, which AIS's chains reach only in part (measured: off by 10-800 nats, with a delta-method standard error near 1,
    since one chain carries the weights). There the standard error is no error bar, and checked_by_annealing must not
    call such a point reliable: every point it keeps lies within 5 combined standard errors of the exact log p."""
    params, x1, x2, exact = affine_problem(latent, 0.01, seed=latent, num=12)
    found = L.log_p_x1_given_x2(params, x1, x2, rng(1), "mmvae", grid_nodes=None)
    annealed, error = A.annealed_log_p_x1_given_x2(params, x1, x2, rng(2), "mmvae", temperatures=400)
    checked = A.checked_by_annealing(found, annealed, error)
    off = onp.abs(annealed - exact) > 5 * error
    assert not onp.any(off & (error < A.SINGLE_CHAIN_ERROR)), (annealed - exact, error)         # a small error is an error bar
    assert not onp.any(checked["reliable"] & (onp.abs(checked["value"] - exact) > 5 * onp.hypot(found["error"], error)))


def test_bad_input_is_a_value_error_naming_the_problem_before_any_work():
    """NaN or mis-sized data, too few chains, a mean of the wrong size, an exact sample of the wrong rows, and columns that do
    not pair with found: each a ValueError that names it."""
    params, x1, x2, _ = affine_problem(2, 0.1, seed=2, num=4)
    nan_x1 = x1.copy()
    nan_x1[0, 0] = onp.nan
    cases = [(lambda: A.annealed_log_p_x1_given_x2(params, nan_x1, x2, rng(0), "mmvae"), "x1 contains NaN"),
             (lambda: A.annealed_log_p_x1_given_x2(params, x1[:, :3], x2, rng(0), "mmvae"), "x1 has 3 columns"),
             (lambda: A.annealed_log_p_x1_given_x2(params, x1, x2, rng(0), "mmvae", chains=1), "chains"),
             (lambda: A.annealed_log_p_x1_given_x2(params, x1, x2, rng(0), "mmvae", temperatures=0), "temperatures"),
             (lambda: A.annealed_log_p_x1_given_x2(params, x1, x2, 0, "mmvae"), "rng must be a numpy.random.Generator"),
             (lambda: A.annealed_log_weights(params, x1, onp.zeros(3), onp.zeros(2), rng(0)), "mean must have the latent size 2"),
             (lambda: A.bdmc_bounds(params, x1, onp.zeros(2), onp.zeros(2), onp.zeros((3, 2)), rng(0)), "g_exact has 3 rows"),
             (lambda: A.annealed_log_weights(params, x1, onp.zeros(2), onp.zeros(2), rng(0), start=onp.zeros((5, 4, 2))), "start must be")]
    found = dict(value=onp.zeros(4), error=onp.ones(4), reliable=onp.ones(4, bool))
    cases += [(lambda: A.checked_by_annealing(dict(found, error=onp.ones(3)), onp.zeros(4), onp.ones(4)), "one length"),
              (lambda: A.checked_by_annealing(found, onp.zeros(3), onp.ones(3)), "annealed must have one entry per point"),
              (lambda: A.checked_by_annealing(found, onp.zeros(4), -onp.ones(4)), "annealed_error must be >= 0")]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_the_checks_annealed_flag_takes_reliable_from_a_row_where_ais_cannot_follow():
    """theorem_check's --annealed (config "annealed"): on the sharp 8-D affine problem (sigma = 0.01, where AIS's chains do not
    reach the posterior) the row's log p is reliable without it and wholly unreliable with it; at sigma = 0.3, where AIS
    (2000 temperatures) agrees at every point, reliable either way, with the same value (importance sampling draws first, from the same generator)."""
    import theorem_check as T
    from cli import configuration as C
    config = dict(C.QUICK, conditional_samples=200)
    for sigma, kept in ((0.01, False), (0.3, True)):
        params, x1, x2, _ = affine_problem(8, sigma, seed=8, num=12, classes=1)
        plain = T.conditional_columns(params, "mmvae", x1, x2, config, rng(1))
        checked = T.conditional_columns(params, "mmvae", x1, x2, dict(config, annealed=True), rng(1))
        assert plain["conditional_method"] == "IS" and plain["conditional_reliable"] and plain["conditional"] == checked["conditional"]
        assert checked["conditional_reliable"] is kept and checked["conditional_reliable_share"] == float(kept), (sigma, checked)
