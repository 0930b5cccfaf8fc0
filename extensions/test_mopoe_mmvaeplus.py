"""Tests for mopoe_mmvaeplus: MoPoE against closed forms and finite differences, MMVAE+ against its terms written out."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads, as the scripts do

import numpy as onp
import pytest
from autograd.test_util import check_grads

from extensions import beyond_the_paper as B
from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S
from extensions.test_beyond_the_paper import rng, small_problem  # noqa: F401  (fixtures)
from test_surjvae_np import mixture_objective_equals_evidence_minus_kl_on_a_grid, stratified_objective_exceeds_the_analytic_kl_form_by_the_mixture_divergence


def test_nonempty_subsets():
    onp.testing.assert_array_equal(MM.nonempty_subsets(2), [[1, 1], [1, 0], [0, 1]])
    subsets = MM.nonempty_subsets(3)
    assert subsets.shape == (7, 3) and len({tuple(row) for row in subsets}) == 7
    onp.testing.assert_array_equal(MM.SUBSETS_OF_TWO, S.ELBO_SUBSETS)        # the MVAE's three ELBOs, in order


def test_mopoe_components_follow_sutter_et_al():
    """Full set: PoE with the prior expert (Eq. 8); one-modality components: the bare experts."""
    params = S.init_params(rng(3), hidden=(5,))
    x1, labels = S.make_pinwheel(num_per_class=3, rng=rng(2))
    x2 = S.one_hot(labels, 2)
    means, log_vars = S.unimodal_experts(params, x1, x2)
    mopoe_means, mopoe_log_vars = MM.mopoe_components(params, x1, x2)
    full_mean, full_log_var = S.product_of_experts(means, log_vars, onp.array([[1.0, 1.0]]))
    onp.testing.assert_allclose(mopoe_means, onp.concatenate([full_mean, means]), rtol=1e-12, atol=1e-15)
    onp.testing.assert_allclose(mopoe_log_vars, onp.concatenate([full_log_var, log_vars]), rtol=1e-12)
    label_mean, label_log_var = B.label_latent(params, x2, "mopoe")
    assert onp.array_equal(label_mean, means[1]) and onp.array_equal(label_log_var, log_vars[1])


def mopoe_mixture(means, log_vars):
    """MoPoE's components from the experts, written out: the full PoE with the prior, then the bare experts."""
    full = S.product_of_experts(means, log_vars, onp.array([[1.0, 1.0]]))
    return onp.concatenate([full[0], means]), onp.concatenate([full[1], log_vars])


def test_mopoe_objective_equals_evidence_minus_kl_on_a_grid():
    mixture_objective_equals_evidence_minus_kl_on_a_grid(MM.mopoe_objective, mopoe_mixture)


def test_mopoe_objective_exceeds_the_analytic_kl_form_by_the_mixture_divergence():
    stratified_objective_exceeds_the_analytic_kl_form_by_the_mixture_divergence(MM.mopoe_components)


def test_mopoe_gradient_matches_finite_differences(small_problem):
    params, x1, x2 = small_problem
    check_grads(lambda p: MM.mopoe_objective(p, x1, x2, rng(11)), modes=["rev"], order=1)(params)


def test_mopoe_float32_stays_float32():
    x1, labels = S.make_pinwheel(num_per_class=20, rng=rng(2))
    vector, unflatten = S.flatten_params(S.init_params(rng(3)))
    value, gradient = S.value_and_grad(lambda v: MM.mopoe_objective(unflatten(v), x1.astype(onp.float32),
                                                                   S.one_hot(labels, 2).astype(onp.float32), rng(4)))(vector.astype(onp.float32))
    assert gradient.dtype == onp.float32 and onp.result_type(value) == onp.float32


def test_mmvaeplus_with_no_private_latent_is_the_mmvae_for_the_same_noise(small_problem):
    params, x1, x2 = small_problem
    for seed in range(3):
        # Equal up to the order of the floating-point additions (measured: 1 ulp).
        assert abs(MM.mmvaeplus_objective(params, x1, x2, rng(seed)) - S.mmvae_objective(params, x1, x2, rng(seed))) < 1e-12
    zero_private = MM.init_mmvaeplus_params(rng(3), hidden=(5,), private_dim=0)
    assert all(onp.array_equal(a, b) for a, b in zip(S.tree_leaves(zero_private), S.tree_leaves(params)))   # the paper's exactly


def test_mmvaeplus_gradient_matches_finite_differences(small_problem):
    _, x1, x2 = small_problem
    params = MM.init_mmvaeplus_params(rng(4), hidden=(5,), private_dim=2)
    params[MM.AUXILIARY_KEYS[0]] = onp.array([0.3, -0.4])                     # the auxiliary scales get gradients too
    check_grads(lambda p: MM.mmvaeplus_objective(p, x1, x2, rng(11), beta=0.7), modes=["rev"], order=1)(params)


def log_softmax(logits):
    return logits - onp.log(onp.sum(onp.exp(logits), axis=-1, keepdims=True))


def test_mmvaeplus_objective_is_its_terms_written_out(small_problem):
    """Stratum by stratum, with the same draws, the objective is the mean of the terms in its docstring."""
    _, x1, x2 = small_problem
    params = MM.init_mmvaeplus_params(rng(5), hidden=(5,), private_dim=1)
    params[MM.AUXILIARY_KEYS[1]] = onp.array([-0.5])
    beta, value = 0.6, MM.mmvaeplus_objective(params, x1, x2, rng(7), beta=0.6)
    draws = rng(7)
    means, log_vars = S.unimodal_experts(params, x1, x2)                         # (2, N, 3): (g, w)
    u = means + onp.exp(0.5 * log_vars) * draws.standard_normal(means.shape)
    aux = [params[MM.AUXILIARY_KEYS[1]], params[MM.AUXILIARY_KEYS[0]]]      # stratum 1 borrows r_2, stratum 2 r_1
    w_other = onp.stack([onp.exp(0.5 * aux[m]) * e for m, e in enumerate(draws.standard_normal((2, len(x1), 1)))])
    total = 0.0
    for m in (0, 1):
        g, w = u[m, :, :2], u[m, :, 2:]
        z1, z2 = (onp.hstack([g, w]), onp.hstack([g, w_other[m]])) if m == 0 else (onp.hstack([g, w_other[m]]), onp.hstack([g, w]))
        log_px = S.decoder_x1_log_likelihood(params, x1, z1) + onp.sum(x2 * log_softmax(S.mlp(params["decoder_x2"], z2, fused=False)), axis=-1)
        q_mix = onp.log(0.5 * sum(onp.exp(S.log_normal(g, means[k, :, :2], log_vars[k, :, :2])) for k in (0, 1)))
        log_ratio = (S.log_normal(g, 0.0, 0.0) + S.log_normal(w, 0.0, 0.0) - q_mix
                     - S.log_normal(w, means[m, :, 2:], log_vars[m, :, 2:]))
        total = total + onp.mean(log_px + beta * log_ratio) / 2
    assert abs(value - total) < 1e-10


def test_mmvaeplus_generation_and_bad_input(small_problem):
    _, x1, x2 = small_problem
    params = MM.init_mmvaeplus_params(rng(6), hidden=(5,), private_dim=2)
    for private in ("prior", "auxiliary", "zero"):
        assert B.generate_from_labels(params, x2, rng(1), "mmvaeplus", private=private).shape == x1.shape
    mean, log_var = B.label_latent(params, x2, "mmvaeplus", private="auxiliary")
    assert mean.shape == (len(x2), 4) and onp.all(mean[:, 2:] == 0)
    onp.testing.assert_array_equal(log_var[:, 2:], onp.broadcast_to(params[MM.AUXILIARY_KEYS[0]], (len(x2), 2)))
    with pytest.raises(ValueError, match="beta"):
        MM.mmvaeplus_objective(params, x1, x2, rng(), beta=-1.0)
    with pytest.raises(ValueError, match="private must be"):
        B.label_latent(params, x2, "mmvaeplus", private="posterior")
    with pytest.raises(ValueError, match="private must be"):
        B.generate_from_labels(S.init_params(rng()), x2, rng(), "mmvae", private="posterior")
    with pytest.raises(ValueError, match="private_dim must be an integer >= 0"):
        MM.init_mmvaeplus_params(rng(), private_dim=-1)
    broken = dict(params, **{MM.AUXILIARY_KEYS[1]: onp.zeros(3)})
    with pytest.raises(ValueError, match="auxiliary prior"):
        MM.mmvaeplus_objective(broken, x1, x2, rng())


def test_mmvaeplus_parameterisations_of_the_auxiliary_priors():
    a = onp.array([0.3, -1.2, 0.5])
    for auxiliary, expected_std, prior_std in (("free", onp.exp(0.5 * a), 1.0), ("softplus", onp.log1p(onp.exp(a)), onp.log(2.0)),
                                               ("softmax", 3 * onp.exp(a) / onp.exp(a).sum(), 1.0)):
        params = MM.init_mmvaeplus_params(rng(1), latent_dim=2, hidden=(4,), private_dim=3, auxiliary=auxiliary)
        assert MM.auxiliary_of(params) == auxiliary
        params = dict(params, **{key: a for key in B.AUXILIARY[auxiliary]})
        onp.testing.assert_allclose(onp.exp(0.5 * MM.auxiliary_log_vars(params)), [expected_std, expected_std], rtol=1e-12)
        assert abs(onp.exp(0.5 * MM.private_prior_log_var(params)) - prior_std) < 1e-15
        x1, labels = S.make_pinwheel(num_per_class=3, rng=rng(2))
        x2 = S.one_hot(labels, 2)
        check_grads(lambda p: MM.mmvaeplus_objective(p, x1, x2, rng(3)), modes=["rev"], order=1)(params)
        mean, log_var = B.label_latent(params, x2, "mmvaeplus")                    # generation: w_1 ~ p(w_1)
        onp.testing.assert_allclose(onp.exp(0.5 * log_var[:, 2:]), prior_std, rtol=1e-12)
    one = dict(MM.init_mmvaeplus_params(rng(1), private_dim=1, auxiliary="softmax"), **{B.AUXILIARY["softmax"][0]: onp.array([5.0])})
    assert MM.auxiliary_log_vars(one)[0, 0] == 0.0                                 # P = 1: r_1 is p(w) whatever a is


def test_mmvaeplus_experts_take_their_scales_from_the_parameterisation():
    """The authors' encoders: softplus scales, or n softmax over g's entries and, apart, over w's (srl-ethz/mmvaeplus)."""
    x1, labels = S.make_pinwheel(num_per_class=3, rng=rng(2))
    x2 = S.one_hot(labels, 2)
    for auxiliary in B.AUXILIARY:
        params = MM.init_mmvaeplus_params(rng(1), latent_dim=3, hidden=(4,), private_dim=2, auxiliary=auxiliary)
        params["encoder_x1"][-1]["W"] = 3.0 * params["encoder_x1"][-1]["W"] + 0.5        # raw outputs far from 0
        raw = S.gaussian_expert(params["encoder_x1"], x1)[1]                            # (N, 5)
        std = onp.exp(0.5 * B.x1_latent(params, x1, "mmvaeplus")[1])
        expected = {"free": onp.exp(0.5 * raw), "softplus": onp.log1p(onp.exp(raw)),
                    "softmax": onp.concatenate([3 * onp.exp(raw[:, :3]) / onp.exp(raw[:, :3]).sum(1, keepdims=True),
                                                2 * onp.exp(raw[:, 3:]) / onp.exp(raw[:, 3:]).sum(1, keepdims=True)], axis=1)}[auxiliary]
        onp.testing.assert_allclose(std, expected, rtol=1e-12)
        onp.testing.assert_allclose(onp.exp(0.5 * MM.mmvaeplus_experts(params, x1, x2)[1][0]), expected, rtol=1e-12)
