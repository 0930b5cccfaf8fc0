"""Tests for npmle: the NPMLE of a Gaussian location mixture against a known mixture, an independent solver and its own
certificate; and the proposition's chain L^K <= l*(sigma) on a decoder."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads, as the scripts do

import numpy as onp
import pytest

from extensions import k_samples as K
from extensions import npmle as NP
import surjvae_np as S
import theorem_check as T
from extensions.test_beyond_the_paper import rng


def two_atom_sample(num, sigma, seed):
    """num points of 0.3 N(a, sigma^2 I) + 0.7 N(b, sigma^2 I) in 2-D, a = (0, 0), b = (1, 0.5): (x, atoms, weights)."""
    atoms, weights = onp.array([[0.0, 0.0], [1.0, 0.5]]), onp.array([0.3, 0.7])
    which = rng(seed).choice(2, num, p=weights)
    return atoms[which] + sigma * rng(seed + 1).standard_normal((num, 2)), atoms, weights


@pytest.mark.parametrize("sigma", [0.1, 0.3])
def test_npmle_beats_the_true_mixing_distribution_and_its_certificate_bounds_it(sigma):
    """l(G^) >= l(G_true) (the NPMLE maximises l; EM gets within its certificate), upper >= lower, and the gap is small."""
    x, atoms, weights = two_atom_sample(200, sigma, seed=3)
    found = NP.npmle_bounds(x, sigma)
    assert found["lower"] >= NP.mixture_log_likelihood(x, atoms, weights, sigma) - 1e-12
    assert found["upper"] >= found["lower"] and found["upper"] - found["lower"] < 0.02, (found["lower"], found["upper"])


def frank_wolfe_npmle(x, atoms, sigma, steps=3000):
    """An independent solver: Frank-Wolfe (the vertex direction method, Lindsay 1983) on the weights of fixed atoms, each step
    towards the atom of largest gradient function, with its step length by bisection on the concave l."""
    kernel = onp.exp(NP.log_kernel(x, atoms, sigma))                              # (N, J): 1-D, sigma not small: no underflow
    w = onp.full(len(atoms), 1.0 / len(atoms))
    for _ in range(steps):
        f = kernel @ w
        j = onp.argmax(kernel.T @ (1.0 / f))
        low, high = 0.0, 1.0
        for _ in range(40):                                                       # d l / d alpha, decreasing in alpha
            alpha = 0.5 * (low + high)
            if onp.sum((kernel[:, j] - f) / ((1 - alpha) * f + alpha * kernel[:, j])) > 0:
                low = alpha
            else:
                high = alpha
        w = (1 - low) * w + low * onp.eye(len(atoms))[j]
    return onp.mean(onp.log(kernel @ w))


def test_npmle_in_1d_agrees_with_an_independent_solver_within_its_certificate():
    x = onp.concatenate([rng(1).normal(-1.0, 0.3, 40), rng(2).normal(1.5, 0.5, 60)])[:, None]
    found, grid = NP.npmle_bounds(x, 0.4), onp.linspace(x.min(), x.max(), 400)[:, None]
    independent = frank_wolfe_npmle(x, grid, 0.4)
    assert independent <= found["upper"] + 1e-12                                  # the certificate is a proof
    assert abs(independent - found["lower"]) < 1e-3 and found["upper"] - found["lower"] < 1e-3, (independent, found["lower"], found["upper"])


def test_the_certificate_gap_shrinks_as_em_runs():
    x, _, _ = two_atom_sample(100, 0.2, seed=5)
    atoms = onp.concatenate([x, rng(6).uniform(x.min(axis=0), x.max(axis=0), (200, 2))])
    gaps = []
    for iterations in (3, 30, 300):
        weights, history = NP.em_weights(x, atoms, 0.2, iterations)
        assert onp.all(onp.diff(history) >= -1e-12)                              # EM never lowers l
        gaps.append(NP.grid_certificate(x, atoms, weights, 0.2))
    assert gaps[0] > gaps[1] > gaps[2] > 0, gaps


def test_the_grid_certificate_bounds_the_gradient_function_everywhere():
    """The bound holds off the grid too: max of D over 20000 random points in a box larger than the data's is below it."""
    x, _, _ = two_atom_sample(60, 0.15, seed=7)
    atoms = x
    weights, _ = NP.em_weights(x, atoms, 0.15, 50)
    bound = NP.grid_certificate(x, atoms, weights, 0.15, per_axis=12)
    points = rng(8).uniform(x.min(axis=0) - 0.5, x.max(axis=0) + 0.5, (20000, 2))
    assert onp.max(NP.log_gradient_function(points, x, atoms, weights, 0.15)) <= bound


def test_the_k_sample_cross_term_lies_below_l_star_and_the_constant_mean_too():
    """The proposition's chain on a random decoder at a fixed sigma: L^K / N <= l*(sigma) at K = 1, 4, 32 (within 4 SE), and
    the constant mean's (1/N) sum_n log phi_sigma(x_n - mean) <= l*(sigma); at a small sigma l* is far above the constant mean."""
    x1, labels = S.make_pinwheel(num_per_class=60, rng=rng(3))
    x = x1[labels == 0]
    params = dict(S.init_params(rng(4), hidden=(16,)), decoder_x1_log_var=onp.array(2 * onp.log(0.1)))
    found = NP.npmle_bounds(x, 0.1)
    for k in (1, 4, 32):
        value, error = K.k_sample_cross_term(params, x, onp.zeros(2), onp.zeros(2), rng(k), k, replicates=50)
        assert value - 4 * error <= found["upper"], (k, value, found["upper"])
    constant = NP.mixture_log_likelihood(x, onp.mean(x, axis=0)[None, :], onp.ones(1), 0.1)
    assert constant < found["lower"] - 1.0, (constant, found["lower"])
    assert constant <= T.constant_mean_bound(x) / len(x)                          # at the MLE sigma, Theorem 1's bound, it is larger


def test_npmle_rejects_bad_input():
    x = onp.zeros((3, 2))
    for call, message in ((lambda: NP.npmle_bounds(x, 0.0), "sigma must be a positive"),
                          (lambda: NP.npmle_bounds(x[:1], 0.1), "at least 2 points"),
                          (lambda: NP.mixture_log_likelihood(x, x, onp.ones(2) / 2, 0.1), "weights has 2 entries"),
                          (lambda: NP.em_weights(x, onp.zeros((2, 3)), 0.1), "columns"),
                          (lambda: NP.npmle_bounds(onp.full((3, 2), onp.nan), 0.1), "NaN")):
        with pytest.raises(ValueError, match=message):
            call()
