"""Tests for data_sets: the sweep's labels, the digits file, the paired views."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads, as the scripts do

import numpy as onp
import pytest
from autograd.test_util import check_grads

from extensions import data_sets as D
import surjvae_np as S
from extensions.test_beyond_the_paper import rng  # noqa: F401  (fixtures)


def test_load_digits_shape_range_checksum_and_label_counts():
    x1, labels = D.load_digits()
    assert x1.shape == (1797, 64) and labels.shape == (1797,)
    assert x1.min() == 0.0 and x1.max() == 1.0 and onp.all(x1 * 16 == onp.round(x1 * 16))   # counts 0..16
    onp.testing.assert_array_equal(onp.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def test_load_digits_refuses_a_missing_or_altered_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read the digits file .*missing.csv.gz"):
        D.load_digits(str(tmp_path / "missing.csv.gz"))
    altered = bytearray(open(D.DIGITS_PATH, "rb").read())
    altered[-1] ^= 1
    (tmp_path / "altered.csv.gz").write_bytes(bytes(altered))
    with pytest.raises(ValueError, match="altered.csv.gz is altered: its SHA-256"):
        D.load_digits(str(tmp_path / "altered.csv.gz"))


def test_refine_labels_splits_each_arm_by_its_radial_coordinate():
    x1, labels, radial = S.make_pinwheel(num_classes=2, num_per_class=40, rng=rng(1), return_radial=True)
    fine, x2 = D.refine_labels(radial, labels, 4)
    assert x2.shape == (80, 8) and onp.array_equal(onp.argmax(x2, axis=1), fine)
    assert onp.array_equal(onp.bincount(fine), [10] * 8)
    assert onp.array_equal(fine // 4, labels)                       # sub-labels stay inside their arm
    for c in range(2):                                              # ordered from the centre outwards
        assert all(radial[fine == c * 4 + j].max() <= radial[fine == c * 4 + j + 1].min() for j in range(3))
    assert onp.array_equal(D.refine_labels(radial, labels, 1)[0], labels)
    with pytest.raises(ValueError, match="exceeds the size of the smallest class"):
        D.refine_labels(radial, labels, 41)
    with pytest.raises(ValueError, match="position must be of 1 axes"):
        D.refine_labels(x1, labels, 2)
    # A point with r < 0 (radius |r| large) belongs at the centre, not at the tip.
    radial_neg = radial.copy()
    radial_neg[0] = -1.5
    assert D.refine_labels(radial_neg, labels, 4)[0][0] == 0


def test_mirror_and_the_pooled_view():
    images = rng(1).random((3, 64))
    onp.testing.assert_array_equal(D.mirror(D.mirror(images)), images)
    onp.testing.assert_array_equal(D.mirror(images).reshape(3, 8, 8)[:, 2, 0], images.reshape(3, 8, 8)[:, 2, 7])
    pooled = D.pooled_view(images)
    assert pooled.shape == (3, 16)
    assert abs(pooled[1, 5] - images.reshape(3, 8, 8)[1, 2:4, 2:4].mean()) < 1e-15            # block (1, 1) of 4 x 4
    x1, x2 = D.digit_views(images, "flip")
    assert x1.shape == (6, 64) and onp.array_equal(x2[:3], x2[3:]) and onp.array_equal(x1[3:], D.mirror(images))
    assert onp.array_equal(D.digit_views(images, "none")[1], pooled)


def test_views_objective_is_the_papers_with_a_gaussian_second_modality():
    x1 = rng(2).random((6, 64))
    x2 = D.pooled_view(x1)
    params = D.init_views_params(rng(3), latent_dim=3, hidden=(5,))
    g = rng(4).standard_normal((2, 6, 3))
    onp.testing.assert_allclose(D.views_x2_log_likelihood(params, x2, g),
                                S.log_normal(x2, S.mlp(params["decoder_x2"], g, fused=False), params["decoder_x2_log_var"]), rtol=1e-12)
    for model in ("mvae", "mmvae"):
        expected = S.OBJECTIVES[model].__wrapped__(params, x1, x2, rng(5), x2_log_likelihood=D.views_x2_log_likelihood)
        assert D.views_objective(params, x1, x2, rng(5), model) == expected
        check_grads(lambda p: D.views_objective(p, x1, x2, rng(6), model), modes=["rev"], order=1)(params)


def test_nearest_of_three():
    originals = onp.zeros((3, 64))
    originals[:, 0] = 1.0                                                         # left column: mirror puts it right
    generated = onp.stack([originals[0], D.mirror(originals)[1], 0.5 * (originals[2] + D.mirror(originals)[2])])
    assert D.nearest_of_three(generated, originals) == {"original": 1 / 3, "mirror": 1 / 3, "average": 1 / 3}
    assert D.mirror_asymmetry(0.5 * (originals + D.mirror(originals))) == 0.0


def test_views_reject_bad_input():
    x1 = rng(2).random((6, 64))
    params = D.init_views_params(rng(3), latent_dim=3, hidden=(5,))
    with pytest.raises(ValueError, match="augment must be 'none' or 'flip'"):
        D.digit_views(x1, "rotate")
    with pytest.raises(ValueError, match="the views train the paper's models"):
        D.views_objective(params, x1, D.pooled_view(x1), rng(), "mopoe")
    with pytest.raises(ValueError, match="lacks"):
        D.views_objective(S.init_params(rng(3), 16, 3, 64, (5,)), x1, D.pooled_view(x1), rng(), "mmvae")
    with pytest.raises(ValueError, match="x2 has 5 rows but x1 has 6"):
        D.views_objective(params, x1, D.pooled_view(x1)[:5], rng(), "mmvae")


def test_stratified_split_holds_out_each_labels_share_reproducibly():
    labels = onp.repeat([0, 1, 2], [10, 50, 7])
    mask = D.stratified_split(labels, 0.2, onp.random.default_rng(3))
    assert [int(mask[labels == c].sum()) for c in range(3)] == [2, 10, 1]                    # round(0.2 n_c), 1.4 -> 1
    assert onp.array_equal(mask, D.stratified_split(labels, 0.2, onp.random.default_rng(3)))
    assert not onp.array_equal(mask, D.stratified_split(labels, 0.2, onp.random.default_rng(4)))
    for fraction, message in ((0.01, "holds out 0 of label 0's 10 points"), (0.9, "holds out 9 of label 0's 10 points"),
                              (1.0, "strictly between 0 and 1"), (float("nan"), "fraction must be a finite number")):
        with pytest.raises(ValueError, match=message):
            D.stratified_split(labels, fraction, onp.random.default_rng(3))
