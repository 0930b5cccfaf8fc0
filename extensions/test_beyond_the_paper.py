"""Tests for beyond_the_paper (every model behind one interface, training with a fixed decoder std or K samples), and for
the scripts that run the extensions: studies.py, plots.py's study figures and bench.py. Each checks a math identity or a
behaviour, and can fail. The subject modules' tests are beside them: test_mopoe_mmvaeplus.py, test_k_samples.py,
test_log_likelihood.py, test_data_sets.py."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # before NumPy loads, as the scripts do: small matrices, no BLAS threads

import json
import re
import sys

import numpy as onp
import pytest

from experiments import augmentation as A
from extensions import beyond_the_paper as B
from experiments import collapse_study as CS
from cli import configuration as C
from extensions import data_sets as D
import figure_data as F
from extensions import k_samples as K
from extensions import log_likelihood as L
from extensions import mopoe_mmvaeplus as MM
import bench
import plots as P
import studies as ST
import surjvae_np as S
from experiments import sweep as SW
from experiments import theorem_beyond_k as BK
import theorem_check as T
from test_surjvae_np import adam_dtypes, all_float32, no_fail_and_jensen_at_worst_skipped, refused


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))     # the scripts and docs/ lie there


def rng(seed=0):
    return onp.random.default_rng(seed)


@pytest.fixture(scope="module")
def small_problem():
    x1, labels = S.make_pinwheel(num_per_class=4, rng=rng(2))
    return S.init_params(rng(3), hidden=(5,)), x1, S.one_hot(labels, 2)


@pytest.fixture(scope="module")
def good_input():
    x1, labels = S.make_pinwheel(num_per_class=5, rng=rng(0))
    return S.init_params(rng(0)), x1, S.one_hot(labels, 2)


# ---------------------------------------------------------------- B1. MoPoE


# ---------------------------------------------------------------- B4. log p(x1|x2) and coherence


# ---------------------------------------------------------------- B2. MMVAE+


# ---------------------------------------------------------------- B6. digits


def test_quick_digits_run_shows_the_effect_on_real_images(tmp_path, monkeypatch):
    path = tmp_path / "digits.json"
    assert T.main(["--data", "digits", "--quick", "--quiet", "--models", "mvae", "mmvae", "--save-params", "--json", str(path)]) == 0
    results = json.loads(path.read_text())
    trained = {(r["model"], r["class"]): r for r in results["rows"] if r["decoder"] == "trained"}
    assert len(trained) == 2 * 10 and all(r["l1_method"] == "MC" for r in results["rows"])    # latent 8
    mmvae = onp.array([trained["mmvae", c]["spread_ratio"] for c in range(10)])
    mvae = onp.array([trained["mvae", c]["spread_ratio"] for c in range(10)])
    # Measured (quick: hidden 64, 600 steps): MMVAE 0.020-0.057, MVAE 0.51-1.18; ratio at most 0.058.
    assert onp.all(mmvae < 0.2 * mvae), (mmvae, mvae)
    assert min(results["data_coherence"]) > 0.9                                  # the 1-NN yardstick works
    P.plot_digit_samples(F.read_results(str(path), want_sweep=False), 0, str(tmp_path / "digits.png"))
    assert (tmp_path / "digits.png").read_bytes()[:4] == b"\x89PNG"
    for name in ("plot_digit_samples", "plot_theorem", "plot_training"):            # plots.main picks the digits'
        monkeypatch.setattr(P, name, lambda *arguments: open(arguments[-1], "wb").close())
    assert P.main(["--from-json", str(path), "--out", str(tmp_path / "figures")]) == 0
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["digits_samples.png", "theorem1_digits.png",
                                                                       "training_digits.png"]


def test_quick_sweep_runs_checks_and_plots(tmp_path):
    path = tmp_path / "sweep.json"
    argv = ["--quick", "--quiet", "--sweep", "--sweep-ks", "1", "4", "--models", "mmvae", "--save-params", "--json", str(path)]
    assert ST.main(argv) == 0
    results = json.loads(path.read_text())
    assert [p["k"] for p in results["sweep"]] == [1, 4]
    assert [p["num_labels"] for p in results["sweep"]] == [2, 8]
    sweep_findings = [f for f in results["findings"] if f["name"].startswith("sweep:")]
    assert len(sweep_findings) == 3 and no_fail_and_jensen_at_worst_skipped(results["checks"])
    assert [f["passed"] for f in sweep_findings] == [True, True, True]            # measured at seed 0, quick
    first, second = results["sweep"]
    assert second["data_within_label_variance"] < 0.5 * first["data_within_label_variance"]
    F.read_results(str(path), want_sweep=True)                       # what plots.py --sweep checks first
    P.plot_sweep(results, str(tmp_path / "surjectivity_sweep.png"))   # (the other figures: the plots tests)
    assert (tmp_path / "surjectivity_sweep.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- bad input on the extensions' surfaces

@pytest.mark.parametrize("call, message", [
    (lambda p, x1, x2: D.refine_labels(onp.arange(6.0), onp.array([0, 0, 2, 2, 0, 2]), 1), "label 1 has no points"),
    (lambda p, x1, x2: L.leave_one_out_coherence(onp.full((3, 2), onp.nan), onp.array([0, 1, 0])), "NaN"),
    (lambda p, x1, x2: L.leave_one_out_coherence(onp.eye(3), onp.array([0, 1])), "labels has 2 entries but x1 has 3"),
    (lambda p, x1, x2: L.label_coherence(onp.eye(2), onp.array([0]), onp.eye(2), onp.array([0, 1])),
     "conditioning_labels must be 2 integer labels"),
    (lambda p, x1, x2: MM.mopoe_objective(p, x1, x2 * 2, rng()), "one-hot"),
    (lambda p, x1, x2: B.train("vae", x1, x2), "unknown model 'vae'"),
    (lambda p, x1, x2: B.train("mmvae", x1, x2, private_dim=2), "private_dim applies to MMVAE\\+ only"),
    (lambda p, x1, x2: S.mmvae_objective(MM.init_mmvaeplus_params(rng(), private_dim=2), x1, x2, rng()),
     "MMVAE\\+'s go to beyond_the_paper"),
    (lambda p, x1, x2: B.label_latent(MM.init_mmvaeplus_params(rng(), private_dim=2), x2, "mmvae"), "which this model does not"),
])
def test_extensions_reject_bad_input(good_input, call, message):
    params, x1, x2 = good_input
    with pytest.raises(ValueError, match=message):
        call(params, x1, x2)


# ---------------------------------------------------------------- bench.py

def test_bench_times_a_step_in_a_fresh_interpreter_and_reads_the_peers_output(tmp_path):
    step = bench.time_case(bench.HERE, ("mmvae", (8,), 16, "float64"))         # a median over 200 steps, in seconds
    assert onp.isfinite(step) and step > 0                                      # how long is bench's business, not a test's
    fake_peer = tmp_path / "peer.py"
    fake_peer.write_text("print('MVAE: median step (fwd+bwd+Adam, bs 128) with 1 thread(s): 3.035 ms   [x]')\n"
                         "print('MVAE: median step (fwd+bwd+Adam, bs 128) with 2 thread(s): 2.9 ms')\n"
                         "print('MMVAE: median step (fwd+bwd+Adam, bs 128) with 1 thread(s): 2.987 ms')\n")
    assert bench.peer_step_milliseconds(sys.executable, str(fake_peer)) == {("mvae", 128): 3.035, ("mmvae", 128): 2.987}


@pytest.mark.parametrize("argv, message", [
    (["--rounds", "0"], "--rounds: must be >= 1"),
    (["--torch-python", ""], "the path is empty"),
    (["--torch-python", sys.executable], "go together"),
    (["--against", "/nonexistent"], "not a folder with a surjvae_np.py"),
])
def test_bench_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err


def test_mmvaeplus_jensen_compares_like_with_like():
    """A constant-mean decoder that responds only to w, with a narrow r_1: L_1 (w~ ~ r_1) sits at the bound, while
    log p(x1|x2) with w ~ p(w) lies below L_1/N. Jensen links L_1 only to log p under r_1, which the check uses."""
    x1, labels = S.make_pinwheel(num_per_class=60, rng=rng(5))
    params = MM.init_mmvaeplus_params(rng(6), hidden=(4,), private_dim=1)
    x1_class = x1[labels == 0]
    params["decoder_x1"] = [{"W": onp.array([[0.0, 0.0], [0.0, 0.0], [3.0, 3.0]]), "b": x1_class.mean(axis=0)}]   # g ignored
    params["decoder_x1_log_var"] = onp.array(onp.log(T.mle_variance(x1_class)))
    params[MM.AUXILIARY_KEYS[0]] = onp.array([-12.0])                               # r_1: std 0.0025
    row = T.evaluate_class(params, "mmvaeplus", x1, labels, 2, 0, C.QUICK, [7])
    assert abs(row["l1"] - row["bound"]) < 0.01 and T.jensen_check([row])[1] is True
    prior_mean, prior_log_var = (a[0] for a in B.label_latent(params, S.one_hot(onp.array([0]), 2), "mmvaeplus", private="prior"))
    under_prior = onp.mean(L.grid_log_p(params, x1_class, prior_mean, prior_log_var, 64))
    assert under_prior < row["l1"] - 1.0                                       # measured: 3.35 nats per point below


@pytest.mark.parametrize("script, message", [
    ("import sys; sys.exit('No module named torch')", "No module named torch"),
    ("print('hello')", "printed no step time"),
])
def test_bench_shows_the_peers_own_error(tmp_path, script, message):
    peer = tmp_path / "peer.py"
    peer.write_text(script)
    with pytest.raises(SystemExit, match=message):
        bench.peer_step_milliseconds(sys.executable, str(peer))


def test_bench_rejects_a_python_that_is_not_executable(tmp_path, capsys):
    not_executable = tmp_path / "python"
    not_executable.write_text("")
    peer = tmp_path / "peer.py"
    peer.write_text("")
    with pytest.raises(SystemExit):
        bench.main(["--torch-python", str(not_executable), "--peer", str(peer)])
    assert "is not executable" in capsys.readouterr().err


@pytest.mark.parametrize("call, message", [
    (lambda p, x1, x2: L.label_coherence(x1, onp.array([5] * len(x1)), x1, onp.zeros(len(x1), dtype=int)),
     "conditioning_labels must lie in 0..0"),
    (lambda p, x1, x2: L.label_coherence(x1, onp.zeros(len(x1), dtype=int), x1, -onp.ones(len(x1), dtype=int)),
     "reference_labels must be labels >= 0"),
    (lambda p, x1, x2: L.leave_one_out_coherence(x1[:1], onp.array([0])), "at least 2 points"),
    (lambda p, x1, x2: S.change_x1_units(p, onp.array([onp.nan, 0.0]), 2.0), "shift contains NaN"),
    (lambda p, x1, x2: S.change_x1_units(p, onp.array([onp.inf, 0.0]), 2.0), "shift contains NaN or infinite"),
    (lambda p, x1, x2: S.train("mmvae", x1, x2, num_steps=3, step_size="0.01"), "step_size must be a number"),
    (lambda p, x1, x2: S.mmvae_objective(dict(p, decoder_x1_log_var=onp.array(onp.nan)), x1, x2, rng()), "contains NaN"),
    (lambda p, x1, x2: S.mmvae_objective(dict(p, encoder_x1=[{"W": [[1.0]], "b": [0.0]}]), x1, x2, rng()), "must be a NumPy array"),
    (lambda p, x1, x2: B.train("mmvaeplus", x1, x2, private_dim=-1), "private_dim must be an integer >= 0"),
    (lambda p, x1, x2: MM.mmvaeplus_objective(dict(MM.init_mmvaeplus_params(rng()), **{MM.AUXILIARY_KEYS[0]: onp.array([onp.inf])}),
                                             x1, x2, rng()), "contains NaN or infinite"),
])
def test_new_surfaces_reject_bad_input(good_input, call, message):
    params, x1, x2 = good_input
    with pytest.raises(ValueError, match=message):
        call(params, x1, x2)


# ---------------------------------------------------------------- B7. what controls the collapse's strength


def test_a_fixed_decoder_std_stays_fixed_and_the_rest_trains():
    x1, labels = S.make_pinwheel(num_per_class=40, rng=rng(0))
    x2 = S.one_hot(labels, 2)
    fixed, _ = B.train("mmvae", x1, x2, seed=1, num_steps=30, decoder_std=0.07, print_fn=None)
    learned, _ = B.train("mmvae", x1, x2, seed=1, num_steps=30, print_fn=None)
    assert abs(onp.exp(0.5 * fixed["decoder_x1_log_var"]) - 0.07) < 1e-12
    assert abs(onp.exp(0.5 * learned["decoder_x1_log_var"]) - 0.1 * S.x1_standardisation(x1)[1]) > 1e-3   # learned: it moved
    start = S.init_params(S.init_rng(1))
    assert not onp.array_equal(fixed["decoder_x1"][0]["W"], start["decoder_x1"][0]["W"])                  # the rest trained
    wrapped, (vector, unflatten) = B._with_fixed_decoder_std(S.mmvae_objective.__wrapped__, onp.array(-1.0)), S.flatten_params(start)
    gradient = unflatten(S.value_and_grad(lambda v: wrapped(unflatten(v), x1, x2, rng(2)))(vector)[1])
    assert gradient["decoder_x1_log_var"] == 0.0 and onp.abs(gradient["decoder_x1"][0]["W"]).max() > 0


def test_train_takes_a_gradient_estimator_and_refuses_it_where_it_does_not_apply():
    x1, labels = S.make_pinwheel(num_per_class=10, rng=rng(2))
    x2 = S.one_hot(labels, 2)
    runs = {gradient: B.train("mmvae", x1, x2, num_steps=5, importance_samples=3, gradient=gradient, print_fn=None)[1] for gradient in B.GRADIENTS}
    assert len({runs[gradient][0] for gradient in B.GRADIENTS}) == 1            # step 0: the same draws, the objective's value
    finals = [runs[gradient][-1] for gradient in B.GRADIENTS]                   # then the gradients differ: every pair
    assert len(set(finals)) == len(finals), finals
    for call, message in ((lambda: B.train("mvae", x1, x2, num_steps=5, gradient="dreg"), "applies to the MMVAE and MoPoE only"),
                          (lambda: B.train("mmvae", x1, x2, num_steps=5, gradient="reinforce"), "gradient must be one of")):
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("model, options", [(model, {}) for model in B.MODELS] + [("mmvae", {"decoder_std": 0.07})]
                         + [(model, {"importance_samples": 3, "gradient": gradient}) for model in ("mmvae", "mopoe") for gradient in B.GRADIENTS])
def test_float32_training_of_every_model_and_estimator_stays_float32(monkeypatch, model, options):
    x1, labels = S.make_pinwheel(num_per_class=10, rng=rng(2))
    seen = adam_dtypes(monkeypatch)
    B.train(model, x1, S.one_hot(labels, 2), num_steps=3, print_fn=None, dtype=onp.float32, **options)
    assert all_float32(seen, 3), seen


def test_float32_training_of_the_views_stays_float32(monkeypatch):
    images, digits = D.load_digits()
    x1, x2 = D.digit_views(images[:40], "flip")
    seen = adam_dtypes(monkeypatch)
    D.train_views("mmvae", x1, x2, num_steps=3, hidden=(16,), print_fn=None, dtype=onp.float32)
    assert all_float32(seen, 3), seen


@pytest.mark.parametrize("argv, message", [
    (["--importance-samples", "4", "--models", "mvae"], "--importance-samples applies only to the MMVAE and MoPoE"),
    (["--gradient", "dreg", "--models", "mvae"], "--gradient applies only to the MMVAE and MoPoE"), (["--gradient", "score"], "invalid choice"),
    (["--auxiliary", "softplus"], "--auxiliary applies only to MMVAE+"),
    (["--decoder-std", "-0.1"], "must be a finite number > 0"), (["--decoder-std", "nan"], "must be a finite number > 0"),
    (["--study-seeds", "1", "--sweep"], "--study-seeds applies only to --study"),
    (["--gradient-study", "--test-fraction", "0.2"], "--test-fraction applies only to the check and --study"),
    (["--bound-study", "--test-fraction", "0.2"], "--test-fraction applies only to the check and --study"),
    (["--gradient-study", "--dtype", "float32"], "--dtype applies only to the check, --study, --sweep and the views"),
    (["--dtype", "float16"], "invalid choice"),
    (["--study", "auxiliary", "--models", "mvae"], "--models applies only to the check"),
    (["--study", "weights"], "invalid choice"), (["--models", "mvae", "mmvae"], "nothing beyond the check"),
    (["--sweep", "--sweep-ks", "600"], "exceeds the 500 points"), (["--quick", "--sweep", "--sweep-ks", "101"], "exceeds the 100"),
    (["--sweep-ks", "1", "2"], "--sweep-ks applies only to --sweep"), (["--data", "digits", "--sweep"], "--sweep applies only"),
])
def test_studies_reject_flags_that_do_not_apply(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        (ST.main if "study" in " ".join(argv) or "sweep" in " ".join(argv) or "nothing" in message else T.main)(argv)
    assert error.value.code == 2 and message in capsys.readouterr().err


def test_quick_study_trains_every_setting_checks_eq6_and_draws(tmp_path):
    path = tmp_path / "study.json"
    assert ST.main(["--quick", "--quiet", "--study", "auxiliary", "--study-seeds", "0", "--json", str(path)]) == 0
    study = json.loads(path.read_text())
    settings = {(e["value"], e["model"]) for e in study["study"]}
    assert settings == {("free", "mmvaeplus"), ("softplus", "mmvaeplus"), ("softmax", "mmvaeplus"), (None, "mvae"), (None, "mmvae")}
    assert no_fail_and_jensen_at_worst_skipped(study["checks"]) and len(study["checks"]) == 2
    softmax = [r for e in study["study"] if e["value"] == "softmax" for r in e["rows"]]
    assert all(len(r["auxiliary_std"]) == 1 for r in softmax)                    # P = 1: s = P softmax(a) = 1 by construction,
    free = [r for e in study["study"] if e["value"] == "free" for r in e["rows"]]  # while the free parameterisation's s moved
    assert all(abs(std - 1.0) > 1e-3 for r in free for std in r["auxiliary_std"]), [r["auxiliary_std"] for r in free]
    assert P.main(["--study-json", str(path), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "collapse_strength.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- B8. the augmentation warning: paired views


def test_group_bound_and_cross_term_are_eq7_per_group():
    x1 = rng(7).random((5, 64))
    groups = onp.stack([x1, D.mirror(x1)], axis=1)                               # (N, 2, 64)
    bounds = D.group_bound(groups)
    onp.testing.assert_allclose(bounds, [T.constant_mean_bound(group) for group in groups], rtol=1e-12)
    assert onp.all(onp.isinf(D.group_bound(x1[:, None, :])))                    # one point: MLE variance 0
    symmetric = 0.5 * (x1 + D.mirror(x1))
    assert onp.isinf(D.group_bound(onp.stack([symmetric, D.mirror(symmetric)], axis=1))[0])
    params = D.init_views_params(rng(8), latent_dim=3, hidden=(5,))
    per_group = D.group_cross_term(params, "mmvae", groups, D.pooled_view(x1), rng(9), 4)           # (S, N)
    mean, log_var = S.label_posterior.__wrapped__(params, D.pooled_view(x1), "mmvae")
    g = S.sample_normal(mean, log_var, rng(9), (4,))                                                 # the same draws
    direct = sum(S.decoder_x1_log_likelihood(params, groups[:, i, :], g) for i in (0, 1))            # (S, N)
    onp.testing.assert_allclose(per_group, direct, rtol=1e-12)


def test_views_check_is_per_group_and_lists_the_groups_of_infinite_bound():
    """One group whose decoder beats its bound fails the check even when the other groups' slack would hide it in a sum."""
    x1 = rng(7).random((6, 64))
    x1[2] = 0.5 * (x1[2] + D.mirror(x1[2:3])[0])                                      # exactly symmetric: bound +inf
    params = D.init_views_params(rng(8), latent_dim=3, hidden=(5,))
    found = D.views_group_check(params, "mmvae", x1, "flip", rng(9), 8)
    assert found["checked"] == 5 and found["infinite"] == [2] and found["smallest_margin"] > 0
    checks = A.views_checks([found])
    assert checks[0][1] is True and "(rows [2]) not checked" in checks[0][3]
    beaten = dict(found, smallest_margin=-0.1)                                    # what one group below its bound reports
    assert A.views_checks([found, beaten])[0][1] is False
    assert A.views_checks([D.views_group_check(params, "mmvae", x1, "none", rng(9), 8)])[0][1] is None


@pytest.fixture(scope="module")
def quick_views(tmp_path_factory):
    """The folder of flip.json and none.json, quick digit-views runs of studies.py."""
    folder = tmp_path_factory.mktemp("views")
    for augment in ("flip", "none"):
        assert ST.main(["--data", "digit-views", "--augment", augment, "--quick", "--quiet", "--json", str(folder / f"{augment}.json")]) == 0
    return folder


def test_quick_digit_views_collapse_with_flip_and_not_without(quick_views, tmp_path):
    runs = {augment: json.loads((quick_views / f"{augment}.json").read_text()) for augment in ("flip", "none")}
    kept = {a: {r["model"]: r["mirror_asymmetry"] for r in run["views"]} for a, run in runs.items()}
    # Measured (quick, seed 0): flip MMVAE 0.19, MVAE 0.61; none MMVAE 0.92, MVAE 0.89.
    assert kept["flip"]["mmvae"] < 0.3 and kept["flip"]["mvae"] > 2 * kept["flip"]["mmvae"] and kept["none"]["mmvae"] > 0.8
    assert runs["flip"]["checks"][0]["passed"] is True and runs["none"]["checks"][0]["passed"] is None   # one-point groups: SKIP
    assert P.main(["--views-json", str(quick_views / "flip.json"), str(quick_views / "none.json"), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "augmentation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["--augment", "flip"], "--augment applies only to --data digit-views"),
    (["--data", "digit-views", "--augment", "rotate"], "invalid choice"),
    (["--data", "digit-views", "--models", "mopoe"], "--models applies only to the check"),
    (["--data", "digit-views", "--importance-samples", "4"], "--importance-samples applies only to the check"),
    (["--data", "digit-views", "--study", "auxiliary"], "--study applies only to --data pinwheel or digits"),
    (["--data", "digit-views", "--test-fraction", "0.2"], "--test-fraction applies only to the pinwheel, digits and your data"),
])
def test_studies_reject_bad_view_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as error:
        ST.main(argv)
    assert error.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(views=[]), "with a non-empty views"), (lambda r: r["params"].update(mopoe={}), "params must hold some of"),
    (lambda r: r["views"][0].update(mirror_asymmetry="0.2"), "mirror_asymmetry'\\] must be int or float"),
    (lambda r: r["views"][0].update(mirror_asymmetry=float("nan")), "NaN"),
    (lambda r: r.update(views=[v for v in r["views"] if v["model"] != "mmvae"]), "must hold one row of mmvae"),
    (lambda r: r["config"].update(seed=-1), "config.seed must be an integer"),
    (lambda r: r.update(shown=[5000]), "shown must be a non-empty list"),
])
def test_plots_rejects_a_broken_views_json(quick_views, tmp_path, change, message, capsys):
    run = json.loads((quick_views / "flip.json").read_text())
    change(run)
    broken = tmp_path / "views.json"
    broken.write_text(json.dumps(run))
    refused(capsys, lambda: P.main(["--views-json", str(broken), "--out", str(tmp_path / "figures")]), message)
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("content, message", [
    ({"format": T.JSON_FORMAT, "study": []}, "not studies.py --study --json output"),
    ({"format": 2, "study": [{"part": "auxiliary"}]}, "not studies.py --study --json output"),
    ({"format": T.JSON_FORMAT, "config": {"data": "pinwheel"}, "study": [{"part": "auxiliary", "model": "vae", "rows": [{}]}]},
     "unknown model"),
    ({"format": T.JSON_FORMAT, "config": {"data": "pinwheel"},
      "study": [{"part": "auxiliary", "model": "mmvae", "rows": [{"spread_ratio": float("nan"), "decoder_std": 0.1}]}]}, "NaN"),
])
def test_plots_rejects_a_broken_study_json(tmp_path, content, message, capsys):
    broken = tmp_path / "study.json"
    broken.write_text(json.dumps(content))
    refused(capsys, lambda: P.main(["--study-json", str(broken), "--out", str(tmp_path)]), message)


def test_plots_draws_one_kind_of_figure_at_a_time(tmp_path, capsys):
    with pytest.raises(SystemExit):
        P.main(["--study-json", __file__, "--views-json", __file__, "--out", str(tmp_path)])
    assert "draws its figure only" in capsys.readouterr().err


# ---------------------------------------------------------------- every entry point refuses bad input at once (issue 25's list)

def library_cases():
    x1, labels = S.make_pinwheel(num_per_class=5, rng=rng(0))
    x2, params = S.one_hot(labels, 2), S.init_params(rng(0))
    means, log_vars = S.unimodal_experts(params, x1, x2)
    digits = rng(1).random((40, 64))
    nan_digits = digits.copy()
    nan_digits[3, 5] = onp.nan
    return [
        (lambda: S.x1_standardisation(x1 * 1e200), "x1's variance overflows"),
        (lambda: S.train("mmvae", x1 * 1e200, x2, num_steps=2), "x1's variance overflows"),
        (lambda: S.init_rng(2 ** 64), "seed must be an integer <="), (lambda: S.train("mmvae", x1, x2, seed=-1), "seed"),
        (lambda: S.decaying_step_size(-0.1, 10), "peak must be a positive"),
        (lambda: S.sample_x1(params, means[0][:, :1], log_vars[0][:, :1], rng()), "mean has 1 columns"),
        (lambda: S.total_variance(onp.ones(3)), "points must be of 2 axes"),
        (lambda: K.stratified_importance_weighted_elbo(params, x1, x2, means, log_vars, rng(), 0), "num_importance must be a positive"),
        (lambda: K.stratified_importance_weighted_elbo(params, x1, x2, means, log_vars, rng(), 2.5), "num_importance must be an integer"),
        (lambda: K.sticking_the_landing(params, x1, x2, means[:, :3], log_vars, rng(), 2), "means has 3 rows but x1 has 10"),
        (lambda: K.k_sample_cross_term(params, x1, onp.zeros(3), onp.zeros(3), rng(), 2), "label_mean has 3 entries"),
        (lambda: MM.init_mmvaeplus_params(rng(), auxiliary=None), "auxiliary must be one of"),
        (lambda: MM.init_mmvaeplus_params(rng(), private_dim=None), "private_dim must be an integer"),
        (lambda: B.objective_of("mvae", 4), "num_importance > 1 applies to the MMVAE and MoPoE only"),
        (lambda: B.objective_of("mvae", 1, "stl"), "gradient 'stl' applies to the MMVAE and MoPoE only"),
        (lambda: D.digit_views(digits[:, :63], "flip"), "x1 must hold 64 columns"), (lambda: D.digit_views(onp.ones((3, 128)), "none"), "x1 must hold 64"),
        (lambda: D.mirror(onp.ones((3, 128))), "images must hold 64 columns"), (lambda: D.pooled_view(D.pooled_view(digits)), "images must hold 64"),
        (lambda: D.nearest_of_three(digits[:1], digits), "originals has shape"), (lambda: D.mirror_asymmetry(nan_digits), "images contains NaN"),
        (lambda: D.nearest_of_three(nan_digits, digits), "generated contains NaN"), (lambda: D.load_digits(""), "path must be None or"),
        (lambda: L.pareto_k(onp.full((10, 2), onp.nan)), "log_weights contains NaN"), (lambda: L.node_counts(0, 2, 64), "first must be"),
        (lambda: L.grid_log_p(params, x1, onp.zeros(2), onp.zeros(2), 10 ** 5), "more than 2e7 nodes"),
        (lambda: L.decoder_jacobian(params, onp.zeros((3, 5))), "g has 5 columns"),
    ]


@pytest.mark.parametrize("index", range(len(library_cases())))
def test_the_library_refuses_bad_input_naming_it(index):
    call, message = library_cases()[index]
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("script, argv, message", [
    ("T", ["--decoder-std", "1e-300"], "--decoder-std 1e-300 is"), ("T", ["--decoder-std", "1e300"], "must lie within"),
    ("T", ["--importance-samples", str(10 ** 9)], "--importance-samples: a training step would hold about"),
    ("T", ["--models", "mmvaeplus", "--private-dim", str(10 ** 9)], "--private-dim: a training step would hold"),
    ("T", ["--seed", str(2 ** 64)], "argument --seed: must be >= 0 and <="), ("T", ["--seed", "9" * 5000], "argument --seed"),
    ("ST", ["--study", "decoder-std", "decoder-std"], "--study lists decoder-std twice"),
    ("ST", ["--study", "auxiliary", "--study-seeds", "0", "0"], "--study-seeds lists 0 twice"),
    ("ST", ["--sweep", "--sweep-ks", "2", "2"], "--sweep-ks lists 2 twice"),
    ("bench", ["--json", "/nonexistent-folder/b.json"], "does not exist"), ("bench", ["--json", "."], "is a folder"),
    ("bench", ["--json", ""], "the path is empty"), ("bench", ["--rou", "2"], "unrecognized arguments"),
    ("T", ["--seed", "0", "--seed", "1"], "--seed given more than once"), ("T", ["--seed=0", "--seed", "1"], "--seed given more than once"),
    ("T", ["--models", "mvae", "mvae"], "--models lists mvae twice"), ("P", ["--seed", "1", "--seed", "2"], "--seed given more than once"),
    ("ST", ["--study", "decoder-std", "--study-seeds", str(2 ** 64)], "argument --study-seeds: must be >= 0 and <="),
    ("P", ["--seed", str(2 ** 64)], "argument --seed: must be >= 0 and <="), ("bench", ["--rounds", "1", "--rounds", "2"], "--rounds given more than once"),
    ("ST", ["--gradient-study", "--importance-samples", "4"], "--importance-samples applies only to the check (the studies set their own)"),
    ("ST", ["--bound-study", "--decoder-std", "0.1"], "--decoder-std applies only to the check"),
    ("ST", ["--bound-study", "--gradient", "dreg-mix"], "--gradient applies only to the check (the studies set their own)"),
])
def test_the_scripts_refuse_bad_input_with_an_argparse_error(script, argv, message, capsys, tmp_path):
    main = {"T": T.main, "ST": ST.main, "P": P.main, "bench": bench.main}[script]
    before = set(os.listdir(tmp_path))
    err = refused(capsys, lambda: main(argv), re.escape(message))
    assert err.strip().splitlines()[-1].startswith(f"{ {'T': 'theorem_check', 'ST': 'studies', 'P': 'plots', 'bench': 'bench'}[script]}.py: error:")
    assert set(os.listdir(tmp_path)) == before


def study_json(tmp_path, change):
    """A small valid study JSON with one change applied (a function of the dict), written to a file: its path."""
    rows = [{"spread_ratio": 0.2, "decoder_std": 0.2, "coherence": 1.0, "conditional": 0.1, "conditional_reliable": True}]
    entries = [{"part": "decoder-std", "value": value, "model": model, "gradient": "iwae", "seed": 0, "rows": rows}
               for value in (None, 0.1) for model in ("mvae", "mmvae")]
    study = {"format": T.JSON_FORMAT, "config": {"data": "pinwheel"}, "study": entries, "data_coherence": [1.0, 1.0]}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(change(study) or study))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(study=[e for e in s["study"] if e["model"] != "mmvae"]), "lacks the MMVAE"),
    (lambda s: s["study"][0]["rows"][0].update(spread_ratio="0.2"), "spread_ratio'\\] must be int or float"),
    (lambda s: s["study"][1]["rows"][0].update(spread_ratio=-0.2), "spread ratio or decoder std <= 0"),
    (lambda s: s["study"][2]["rows"][0].update(decoder_std=-1.0), "spread ratio or decoder std <= 0"),
    (lambda s: s["study"][0].update(part="weights"), "\\['part'\\] must be one of"),
    (lambda s: s["study"][3].update(value="big"), "is not a setting of decoder-std"),
    (lambda s: s.update(data_coherence=[2.0]), "data_coherence must be a list of fractions"),
    (lambda s: s["study"][0].update(seed=-3), "\\['seed'\\] must be an integer >= 0"),
])
def test_plots_validates_the_study_json_before_drawing(tmp_path, change, message, capsys):
    assert P.main(["--study-json", str(study_json(tmp_path, lambda s: None)), "--out", str(tmp_path / "valid")]) == 0   # unchanged: drawn
    refused(capsys, lambda: P.main(["--study-json", str(study_json(tmp_path, change)), "--out", str(tmp_path / "broken")]), message)
    assert not (tmp_path / "broken").exists()


# ---------------------------------------------------------------- studies.py's checks and findings, each way

def k_terms(values, errors=(0.01, 0.01, 0.01), constant_offset=0.0):
    return [{"model": "mmvae", "class": 0, "k": [1, 2, 4], "values": list(values), "errors": list(errors),
             "constant_decoder": [-0.2 + constant_offset] * 3, "bound": -0.2}]


def test_k_sample_checks_and_finding_each_way():
    checks = lambda terms: [c[1] for c in BK.k_sample_checks(terms)]
    assert checks(k_terms([-2.0, -1.0, -0.5])) == [True, True]
    assert checks(k_terms([-2.0, -1.0, -0.5], constant_offset=0.5e-9)) == [True, True]
    assert checks(k_terms([-2.0, -1.0, -0.5], constant_offset=2e-9))[0] is False
    assert checks(k_terms([-2.0, -1.0, -1.0 - 4 * onp.hypot(0.01, 0.01) + 1e-6]))[1] is True     # a dip within 4 SE
    assert checks(k_terms([-2.0, -1.0, -1.0 - 4 * onp.hypot(0.01, 0.01) - 1e-6]))[1] is False
    assert BK.k_sample_findings(k_terms([-2.0, -1.0, -0.2 + 0.041]))[0][1] is True                 # above the bound by > 4 SE
    assert BK.k_sample_findings(k_terms([-2.0, -1.0, -0.2 + 0.039]))[0][1] is False


def test_npmle_checks_each_way():
    """The proposition's checks: an estimate may exceed l*(sigma) by less than 4 SE, not by more; the constant mean never."""
    def terms(last, constant=-1.0, certified="grid"):
        return [dict(k_terms([-2.0, -1.0, last])[0], l_star_upper=0.5, constant_at_sigma=constant, certified=certified)]
    verdicts = lambda items: [c[1] for c in BK.npmle_checks(items)]
    assert verdicts(terms(0.5 + 0.04 - 1e-6)) == [True, True] and verdicts(terms(0.5 + 0.04 + 1e-6)) == [False, True]
    assert verdicts(terms(0.0, constant=0.5 - 1e-9)) == [True, True] and verdicts(terms(0.0, constant=0.5 + 1e-9)) == [True, False]
    assert "grid: a proof" in BK.npmle_checks(terms(0.0))[0][0] and "lifted grid: a proof" in BK.npmle_checks(terms(0.0, certified="lifted grid"))[0][0]
    with_stratum = lambda value: [dict(terms(0.0)[0], stratum_values=[value], stratum_errors=[0.01], num_components=2)]
    bound = 0.5 + onp.log(2)                                                   # l* + log M
    assert verdicts(with_stratum(bound + 0.04 - 1e-6))[0] is True and verdicts(with_stratum(bound + 0.04 + 1e-6))[0] is False


def sweep_points(lost, data=0.1, per_label=(500, 125, 31)):
    return [{"k": k, "points_per_label": p, "data_within_label_variance": data, "models": {"mmvae": {"lost_variance": l}}}
            for k, p, l in zip((1, 4, 16), per_label, lost)]


def test_sweep_findings_each_way():
    findings = lambda lost: [f[1] for f in SW.sweep_findings(sweep_points(lost))]
    assert findings([0.09, 0.06, 0.01]) == [True, True, True]
    assert findings([0.09, 0.06, -0.001])[0] is False                        # the MMVAE varies more than the data at k = 16
    assert findings([0.09, 0.095, 0.01])[1] is False                         # lost variance grew from k = 1 to 4
    assert findings([0.049, 0.04, 0.01])[2] is False and findings([0.051, 0.051, 0.01])[2] is True   # half of 0.1 where >= 100 per label
    assert findings([0.09, float("nan"), 0.01]) == [False, False, False]     # a NaN decides nothing in its favour


def test_views_findings_each_way():
    row = lambda asymmetry: [{"model": "mmvae", "mirror_asymmetry": asymmetry, "nearest": {"average": 0.9}}]
    assert A.views_findings(row(0.49), "flip")[0][1] is True and A.views_findings(row(0.51), "flip")[0][1] is False
    assert A.views_findings(row(0.81), "none")[0][1] is True and A.views_findings(row(0.79), "none")[0][1] is False
    assert A.views_findings([dict(row(0.3)[0], model="mvae")], "flip") == []


def test_study_checks_each_way():
    row = {"bound": 0.0, "l1": -1.0, "l1_error": 1e-3, "conditional": -0.5, "conditional_error": 1e-3, "conditional_reliable": True}
    assert [c[1] for c in CS.study_checks([row, row])] == [True, True]
    assert [c[1] for c in CS.study_checks([row, dict(row, l1=0.01)])][0] is False
    assert [c[1] for c in CS.study_checks([row, dict(row, conditional=-1.5)])][1] is False
    assert [c[1] for c in CS.study_checks([row, dict(row, conditional=-1.5, conditional_reliable=False)])][1] is None


@pytest.mark.parametrize("main, abbreviated", [(T.main, "--mod"), (ST.main, "--stud"), (P.main, "--model"), (bench.main, "--quic")])
def test_every_parser_shows_each_default_once_and_refuses_abbreviations(main, abbreviated, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "(default: None)" not in text
    options = re.split(r"\n  (?=-)", text.split("options:")[1])
    assert all(option.count("default") <= 1 for option in options), [o for o in options if o.count("default") > 1]
    refused(capsys, lambda: main([abbreviated, "x"]), "unrecognized arguments")


def test_seed_interval_is_the_t_interval_of_the_mean():
    """Three seeds: t_0.975(2) = 4.303; 2.776 for five; one seed gives no interval."""
    mean, low, high = CS.seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(high - 2.0 - 4.303 / onp.sqrt(3)) < 1e-12 and abs(2.0 - low - 4.303 / onp.sqrt(3)) < 1e-12
    assert abs(CS.seed_interval([1.0, 2.0, 3.0, 4.0, 5.0])[2] - 3.0 - 2.776 * onp.sqrt(2.5) / onp.sqrt(5)) < 1e-12
    assert onp.isnan(CS.seed_interval([0.4])[1])
    entries = [{"rows": [{"conditional": 1.0, "conditional_reliable": True}] * 2}, {"rows": [{"conditional": 5.0, "conditional_reliable": False}]}]
    assert CS.setting_summary(entries, "conditional")[0] == 1.0 and CS.setting_summary(entries, "conditional")[3] == 1   # unreliable seed left out


def test_quick_gradient_study_measures_every_estimator_and_draws(tmp_path, capsys):
    """--gradient-study --quick: every (stage, K, estimator) row, and the rows at K = 4 after training at K = 4 (dreg-mix); IWAE
    against itself has bias 0 and noise ratio 1; sticking the landing's paired difference is far beyond noise at K = 4 once
    trained (chi^2/df > 4); the figure is drawn, and a broken file refused."""
    path = tmp_path / "gradients.json"
    assert ST.main(["--gradient-study", "--quick", "--jobs", "1", "--json", str(path)]) == 0
    assert "] estimate: about" in capsys.readouterr().err                       # estimated before it runs, as every study
    rows = json.loads(path.read_text())["gradient_study"]
    assert len(rows) == (3 * 2 + 1) * len(B.GRADIENTS) and all(r["bias"] == 0 and r["noise_ratio"] == 1 for r in rows if r["gradient"] == "iwae")
    assert {(r["stage"], r["k"]) for r in rows if r["trained_k"] == 4} == {(max(r["stage"] for r in rows), 4)}
    assert all(r["chi2_per_df"] > 4 for r in rows if r["gradient"] == "stl" and r["k"] == 4 and r["stage"] > 0)
    assert P.main(["--gradient-json", str(path), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "gradient_estimators.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "broken.json").write_text(json.dumps({"format": T.JSON_FORMAT, "gradient_study": [dict(rows[0], snr="x")]}))
    with pytest.raises(SystemExit):
        P.main(["--gradient-json", str(tmp_path / "broken.json"), "--out", str(tmp_path / "figures")])
    assert "snr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ST.main(["--gradient-study", "--data", "digits"])
    assert "--gradient-study applies only to --data pinwheel" in capsys.readouterr().err


def test_quick_bound_study_checks_the_proposition_and_theorem_1_at_k_1(tmp_path, capsys):
    """--bound-study --quick: every check passes; at K = 1 the maximiser is the constant mean; at K = 30 the maximised K-sample
    cross term is far above it (the optimum has moved) and below l*(sigma); and the checks fail on the other side."""
    path = tmp_path / "bound.json"
    assert ST.main(["--bound-study", "--quick", "--quiet", "--jobs", "1", "--json", str(path)]) == 0
    results = json.loads(path.read_text())
    assert all(c["passed"] for c in results["checks"]) and len(results["checks"]) == 4
    for r in results["bound_study"]:
        assert r["value"] - 4 * r["error"] <= r["l_star_upper"] and (r["k"] > 1 or r["spread_ratio"] < 0.05)
        assert r["k"] < 30 or r["value"] > r["constant"] + 1.0, r
    broken = [dict(results["bound_study"][0], value=results["bound_study"][0]["l_star_upper"] + 1.0)]
    assert [c[1] for c in BK.bound_checks(broken)][0] is False
    ones = [dict(r, spread_ratio=0.06) for r in results["bound_study"] if r["k"] == 1]
    assert [c[1] for c in BK.bound_checks(ones)][-1] is False
    assert P.main(["--bound-json", str(path), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "theorem1_beyond_k.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "broken.json").write_text(json.dumps(dict(results, bound_study=[dict(results["bound_study"][0], value=float("nan"))])))
    for broken, message in ((tmp_path / "broken.json", "NaN"), (tmp_path / "missing.json", "is not a file")):
        with pytest.raises(SystemExit):
            P.main(["--bound-json", str(broken), "--out", str(tmp_path / "figures")])
        assert message in capsys.readouterr().err



def test_plots_draws_the_studies_of_every_gradient_estimator(tmp_path):
    """A --study importance-samples and a --gradient-study file holding every name of k_samples.GRADIENTS are drawn (each
    estimator its own colour), not refused or ended by a missing colour."""
    rows = [{"spread_ratio": 0.5, "decoder_std": 0.1, "coherence": 0.9}]
    entries = ([{"part": "importance-samples", "value": k, "model": model, "gradient": gradient, "seed": seed, "rows": rows}
                for gradient in K.GRADIENTS for model in ("mmvae", "mopoe") for k in (1, 4) for seed in (0, 1)]
               + [{"part": "importance-samples", "value": None, "model": model, "gradient": "iwae", "seed": seed, "rows": rows}
                  for model in ("mvae", "mmvae") for seed in (0, 1)])
    study = {"format": T.JSON_FORMAT, "config": {"data": "pinwheel"}, "study": entries, "data_coherence": [1.0, 1.0]}
    gradient_rows = [{"stage": stage, "k": k, "gradient": gradient, "chi2_per_df": 1.0 + k, "snr": 2.0}
                     for stage in (0, 800) for k in (1, 4) for gradient in K.GRADIENTS]
    (tmp_path / "study.json").write_text(json.dumps(study))
    (tmp_path / "gradients.json").write_text(json.dumps({"format": T.JSON_FORMAT, "gradient_study": gradient_rows}))
    assert set(P.GRADIENT_COLOURS) == set(K.GRADIENTS) and len(set(P.GRADIENT_COLOURS.values())) == len(K.GRADIENTS)
    assert P.main(["--study-json", str(tmp_path / "study.json"), "--out", str(tmp_path / "figures")]) == 0
    assert P.main(["--gradient-json", str(tmp_path / "gradients.json"), "--out", str(tmp_path / "figures")]) == 0
    assert all((tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
               for name in ("collapse_strength.png", "robustness.png", "gradient_estimators.png"))


def test_studies_with_no_task_says_so_in_one_line(capsys):
    """No task: one line on stderr naming what to give (not the 15-line usage first), exit status 2."""
    with pytest.raises(SystemExit) as error:
        ST.main([])
    err = capsys.readouterr().err.strip()
    assert error.value.code == 2 and len(err.splitlines()) == 1 and "nothing beyond the check" in err and "usage" not in err


def test_the_library_refuses_a_decoder_std_beyond_float64s_range_and_integer_labels():
    x1, labels = S.make_pinwheel(num_per_class=10, rng=rng(0))
    for std in (1e-300, 1e300):
        with pytest.raises(ValueError, match="must lie within 1e-4..1e4 times x1's standard deviation"):
            B.train("mmvae", x1, S.one_hot(labels, 2), decoder_std=std, num_steps=2)
    B.train("mmvae", x1, S.one_hot(labels, 2), decoder_std=0.05, num_steps=2, print_fn=None)          # within: trains
    with pytest.raises(ValueError, match=r"make them with one_hot\(labels, C\)"):
        S.train("mmvae", x1, labels, num_steps=2)


# ---------------------------------------------------------------- your own data: --data FILE, check_arrays

@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    """The quick pinwheel as a CSV (labels as text in a column named kind) and as an NPZ."""
    folder = tmp_path_factory.mktemp("own")
    x1, labels = S.make_pinwheel(num_per_class=60, rng=rng(5))
    with open(folder / "mine.csv", "w") as f:
        f.write("a,b,kind\n" + "".join(f"{a:.17g},{b:.17g},{('left', 'right')[c]}\n" for (a, b), c in zip(x1, labels)))
    onp.savez(folder / "mine.npz", x1=x1, labels=labels)
    return folder, x1, labels


def test_theorem_check_on_a_csv_and_an_npz_records_the_file_and_matches_the_arrays(own_files, tmp_path, capsys):
    """--data FILE.csv (--label-column) and FILE.npz read the same data as check_arrays; the JSON names the file and its
    SHA-256; --latent and --hidden reach the models; check_arrays returns the --json file's keys and reports progress on stderr."""
    folder, x1, labels = own_files
    runs = {}
    for name, extra in (("mine.csv", ["--label-column", "kind", "--save-params"]), ("mine.npz", [])):
        path = tmp_path / (name + ".json")
        assert T.main(["--data", str(folder / name), *extra, "--quick", "--quiet", "--jobs", "1", "--steps", "60", "--latent", "1", "--hidden", "16",
                       "--json", str(path)]) == 0
        runs[name] = json.loads(path.read_text())
    import hashlib
    assert runs["mine.csv"]["data_file"]["sha256"] == hashlib.sha256((folder / "mine.csv").read_bytes()).hexdigest()
    assert runs["mine.csv"]["data_file"]["label_names"] == ["left", "right"] and runs["mine.npz"]["data_file"]["label_names"] == ["0", "1"]
    onp.testing.assert_allclose(runs["mine.csv"]["data"]["x1"], x1, rtol=1e-15)
    assert [r["spread_ratio"] for r in runs["mine.csv"]["rows"]] == [r["spread_ratio"] for r in runs["mine.npz"]["rows"]]
    assert onp.shape(runs["mine.csv"]["params"]["mmvae"]["decoder_x1"][0]["W"]) == (1, 16) and "params" not in runs["mine.npz"]   # on request
    assert len((tmp_path / "mine.npz.json").read_bytes()) < 0.7 * len((tmp_path / "mine.csv.json").read_bytes())
    assert any(f["measures"].endswith(("label left", "label right")) for f in runs["mine.csv"]["findings"])   # findings name labels
    config = runs["mine.csv"]["config"]                                       # the configuration as run, once each
    assert config["classes"] == 2 and config["per_class"] is None and config["latent_dim"] == 1 and "latent" not in config
    capsys.readouterr()
    arrays = T.check_arrays(x1, onp.array(["left", "right"])[labels], quick=True, jobs=1, steps=60, latent=1, hidden=(16,))
    out, err = capsys.readouterr()
    assert not out and "[1/4] trained mmvae" in err and "evaluated the untrained mmvae, class 1" in err
    assert [r["spread_ratio"] for r in arrays["rows"]] == [r["spread_ratio"] for r in runs["mine.npz"]["rows"]]
    assert sorted(arrays) == sorted(runs["mine.npz"]) and arrays["all_passed"] is True and arrays["seconds"] > 0
    assert json.loads(json.dumps(arrays))["data_file"] == {"name": "arrays", "sha256": None, "label_names": ["left", "right"]}   # JSON as --json


@pytest.mark.parametrize("content, argv, message", [
    ("a,b,label\n1,2,x\n3,4,y\n", [], "have fewer than 20 points"), ("a,b\n1,2\n", [], "no column named 'label'"),
    ("a,b,label\n1,2,x\n1,oops,x\n", [], "line 3, column 'b' holds 'oops', not a number"),
    ("id,a,label\nr1,2,x\n", [], "line 2, column 'id' holds 'r1', not a number"),
    ("a,b,label\n1,,x\n", [], "line 2, column 'b' holds '', not a number (an empty field)"),
    ("a,b,kind\n1,2,x\n", ["--label-column", "a"], "line 2, column 'kind' holds 'x', not a number; the labels are in column 'a'"),
    ("a;b;label\n1;2;x\n", ["--label-column", "kind"], "no column named 'kind' (the columns, separated by ';': a, b, label)"),
    ("a,b,label\n1,2,x\n", ["--drop-columns", "c"], "--drop-columns names 'c', not a column of x1"),
    ("a,label\n1,x\n", ["--drop-columns", "a"], "no column is left for x1"),
    ("a,b,label\n1,nan,x\n1,2,y\n", [], "NaN or infinite"),
    ("a,b,label\n" + "1,2,x\n" * 30, [], "at least two labels"), ("a,b,label\n1,2\n", [], "line 2 has 2 fields"),
    ("a,b,label\n" + "1,2,x\n" * 30 + "1,2,y\n" * 30, [], "x1 has no variation (all rows equal): nothing to model"),
    ("a,b,label\n" + "1,2,x\n" * 30 + "3,4,y\n" * 30, ["--classes", "3"], "--classes applies only to the pinwheel"),
])
def test_theorem_check_refuses_a_bad_data_file_before_any_work(tmp_path, content, argv, message, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    err = refused(capsys, lambda: T.main(["--data", str(path), *argv]), re.escape(message))
    assert err.strip().splitlines()[-1].startswith("theorem_check.py: error:")


def test_your_data_at_any_scale_gives_the_same_answer_and_log_p_moves_by_the_log_jacobian():
    """x1 times 1e12 or 1e-12, or shifted by 1e5 times its spread: the same verdicts, spread ratios and coherences, and every
    log-density per point (bound, L_1, log p) moved by exactly -D log(scale); shifted 1e12 times its spread (float64 then
    keeps 1e-4 of it) the data is refused, naming the column and the scale."""
    x1, labels = S.make_pinwheel(num_per_class=40, rng=rng(4))
    options = dict(quick=True, jobs=1, steps=60, hidden=(16,), quiet=True)
    runs = {factor: T.check_arrays(x1 * factor + offset, labels, **options) for factor, offset in ((1.0, 0.0), (1e12, 0.0), (1e-12, 0.0), (1.0, 3e5))}
    base = runs[1.0]
    for factor, run in runs.items():
        assert [c["passed"] for c in run["checks"] + run["findings"]] == [c["passed"] for c in base["checks"] + base["findings"]]
        for ours, theirs in zip(run["rows"], base["rows"]):
            onp.testing.assert_allclose([ours[k] for k in ("spread_ratio", "coherence")], [theirs[k] for k in ("spread_ratio", "coherence")], rtol=1e-6)
            onp.testing.assert_allclose([ours[k] for k in ("bound", "l1", "conditional")],
                                        [theirs[k] - 2 * onp.log(factor) for k in ("bound", "l1", "conditional")], rtol=1e-7, atol=1e-6)
    with pytest.raises(ValueError, match=r"x1's column \d \(counting from 0\) lies 1.4e\+12 times the data's spread from the origin \(mean 1e\+12"):
        T.check_arrays(x1 + 1e12, labels, **options)


def test_plots_draws_your_datas_figures_in_its_principal_plane_with_the_labels_names(tmp_path, capsys):
    """plots.py --from-json on a 3-column CSV's check: Fig. 2 (x1 projected on its first two principal axes, the legend by
    label name), Fig. 3 (a 2-D latent), the theorem's figure and the training curves."""
    x1, labels = S.make_pinwheel(num_per_class=40, rng=rng(6))
    x1 = onp.concatenate([x1, x1[:, :1] * x1[:, 1:] + 0.1 * rng(7).standard_normal((len(x1), 1))], axis=1)
    (tmp_path / "three.csv").write_text("a,b,c,kind\n" + "".join(f"{a},{b},{c},{('north', 'south')[k]}\n" for (a, b, c), k in zip(x1, labels)))
    assert T.main(["--data", str(tmp_path / "three.csv"), "--label-column", "kind", "--quick", "--quiet", "--jobs", "1", "--steps", "40",
                   "--save-params", "--json", str(tmp_path / "three.json")]) == 0
    assert P.main(["--from-json", str(tmp_path / "three.json"), "--out", str(tmp_path / "figures")]) == 0
    drawn = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert drawn == ["fig2_samples.png", "fig3_latents.png", "theorem1.png", "training.png"], drawn
    plane, names = P.projection(x1)
    centred = x1 - x1.mean(axis=0)
    kept = onp.sum(plane(x1) ** 2) / onp.sum(centred ** 2)                                     # the plane keeps the most variance
    assert names[0].startswith("x1's 1st principal axis (of 3)") and kept >= max(onp.sum(centred[:, [i, j]] ** 2) / onp.sum(centred ** 2)
                                                                                    for i, j in ((0, 1), (0, 2), (1, 2))) - 1e-12
    assert P.label_names(json.loads((tmp_path / "three.json").read_text()), 2) == ["north", "south"]


def test_an_npz_with_other_keys_is_refused_naming_the_keys_it_holds(tmp_path, capsys):
    path = tmp_path / "wrong.npz"
    onp.savez(path, data=onp.zeros((40, 2)), y=onp.zeros(40))
    refused(capsys, lambda: T.main(["--data", str(path)]), re.escape("arrays named x1 (N, D) and labels (N,) is needed; it holds data, y"))


def test_a_semicolon_csv_with_an_id_column_dropped_reads_as_the_comma_csv_and_numeric_labels_sort_as_numbers(own_files, tmp_path):
    """The separator is sniffed; --drop-columns leaves the id out; labels 1, 2, 10 are classes 0, 1, 2 in that order."""
    _, x1, labels = own_files
    names = onp.array(["2", "10"])[labels]
    (tmp_path / "semi.csv").write_text("id;a;b;label\n" + "".join(f"r{i};{a:.17g};{b:.17g};{n}\n" for i, ((a, b), n) in enumerate(zip(x1, names))))
    _, data = T.parse_args(["--data", str(tmp_path / "semi.csv"), "--drop-columns", "id"])
    onp.testing.assert_array_equal(data.x1, x1)
    assert data.label_names == ["2", "10"] and onp.array_equal(data.labels, labels)
    assert D.label_indices(onp.array(["10", "2", "1", "2"]))[1].tolist() == ["1", "2", "10"]
    assert D.label_indices(onp.array(["b", "a", "10"]))[1].tolist() == ["10", "a", "b"]          # not all numbers: as text


def test_check_arrays_refuses_bad_arguments_with_a_value_error(own_files):
    _, x1, labels = own_files
    for call, message in ((lambda: T.check_arrays(x1, labels[:-1]), "labels must be one per row"),
                          (lambda: T.check_arrays(x1, labels, seed=-1), "argument --seed"),
                          (lambda: T.check_arrays(x1, labels, classes=3), "--classes applies only to the pinwheel"),
                          (lambda: T.check_arrays(x1, onp.zeros(len(x1))), "at least two labels")):
        with pytest.raises(ValueError, match=message):
            call()


# ---------------------------------------------------------------- held-out data: --test-fraction

def test_held_out_pinwheel_is_a_fresh_sample_and_changes_no_training_number(tmp_path, capsys):
    """--test-fraction on the pinwheel: the training rows are those of the run without it (the held-out columns draw from
    their own generator); F of all points held out, none of them trained on; the held-out spread ratio divides the same
    generations by the held-out class's spread (an identity); the held-out table and finding are printed."""
    runs = {}
    for name, extra in (("plain", []), ("held", ["--test-fraction", "0.2"])):
        path = tmp_path / f"{name}.json"
        assert T.main(["--quick", "--jobs", "1", "--steps", "60", "--json", str(path), *extra]) == 0
        runs[name] = json.loads(path.read_text())
    out = capsys.readouterr().out
    plain, held = runs["plain"], runs["held"]
    assert [{k: v for k, v in r.items() if k != "held_out"} for r in held["rows"]] == plain["rows"] and held["data"] == plain["data"]
    x1_test, labels_test = onp.array(held["held_out"]["x1"]), onp.array(held["held_out"]["labels"])
    assert onp.bincount(labels_test).tolist() == [25, 25] and held["held_out"]["source"].startswith("a fresh pinwheel sample")
    assert not any(onp.any(onp.all(x == onp.array(held["data"]["x1"]), axis=1)) for x in x1_test)
    x1, labels = onp.array(held["data"]["x1"]), onp.array(held["data"]["labels"])
    for r in held["rows"]:
        h = r["held_out"]
        onp.testing.assert_allclose(h["spread_ratio"] * S.total_variance(x1_test[labels_test == r["class"]]),
                                    r["spread_ratio"] * S.total_variance(x1[labels == r["class"]]), rtol=1e-10)
        assert h["num_points"] == 25 and onp.isfinite(h["conditional"]) and 0 <= h["coherence"] <= 1
    assert "Held-out points (never trained on)" in out and "log p(x1|x2) on held-out points" in out
    assert "held out=none" in out and "held out=0.2 (50 points, never trained on)" in out          # the configuration lines
    assert [f["name"].split(":")[0] for f in held["findings"]][-1] == "log p(x1|x2) on held-out points"


def test_held_out_columns_on_the_training_points_are_the_training_row():
    """An identity: given the training points as the held-out ones, every held-out column is the row's own (the grid's
    log p is deterministic, so to rounding; spread and coherence exactly)."""
    config, data = T.parse_args(["--quick"])
    x1, labels, num_classes = data.x1, data.labels, data.num_classes
    for model in ("mvae", "mmvae"):
        params = C.untrained_params(model, config, x1, num_classes, 0)
        row = T.evaluate_class(params, model, x1, labels, num_classes, 1, config, [0, 4, 1], held_out=(x1, labels, num_classes))
        held = row["held_out"]
        assert held["spread_ratio"] == row["spread_ratio"] and held["coherence"] == row["coherence"] and held["num_points"] == row["num_points"]
        assert row["conditional_method"].startswith("grid") and held["conditional_method"] == row["conditional_method"]
        onp.testing.assert_allclose([held["conditional"], held["conditional_points_se"]], [row["conditional"], row["conditional_points_se"]], rtol=1e-10)


def test_held_out_digits_and_own_data_are_a_stratified_split_fixed_across_seeds(own_files):
    """On the digits, F of every label held out, disjoint from the training points and together all of them, the same
    points for every --seed; check_arrays takes test_fraction too."""
    x1_all, labels_all = D.load_digits()
    splits = []
    for seed in ("0", "1"):
        _, data = T.parse_args(["--data", "digits", "--test-fraction", "0.2", "--seed", seed])
        (x1, labels), (x1_test, labels_test, _) = data[:2], data.held_out
        splits.append(x1_test)
        assert len(x1) + len(x1_test) == len(x1_all) and onp.bincount(labels_test).tolist() == [
            int(round(0.2 * n)) for n in onp.bincount(labels_all)]
        together = onp.concatenate([x1, x1_test])
        assert sorted(map(tuple, together)) == sorted(map(tuple, x1_all))          # disjoint, and nothing lost
    assert onp.array_equal(*splits)
    _, x1, labels = own_files
    result = T.check_arrays(x1, labels, quick=True, jobs=1, steps=40, test_fraction=0.25)
    assert [r["held_out"]["num_points"] for r in result["rows"]][:2] == [15, 15] and len(result["data"]["x1"]) == 90


@pytest.mark.parametrize("argv, message", [
    (["--test-fraction", "0"], "must be a number strictly between 0 and 1, got 0"), (["--test-fraction", "1"], "strictly between 0 and 1"),
    (["--test-fraction", "nan"], "strictly between 0 and 1, got nan"), (["--test-fraction", "x"], "expected a number, got 'x'"),
    (["--data", "digits", "--test-fraction", "0.95"], "fewer than 20 points to train on.*hold out fewer"),
    (["--per-class", "20", "--test-fraction", "0.01"], "--test-fraction: a held-out fraction of 0.01 holds out no pinwheel point"),
])
def test_a_bad_test_fraction_is_refused_before_any_work(argv, message, capsys):
    refused(capsys, lambda: T.main(argv), message)


def test_a_long_run_is_estimated_before_it_starts_and_prose_fits_100_columns(capsys):
    """--steps 10^11: the estimate (from steps timed here, none of the 10^11 run) says weeks (a step under 12 microseconds
    would be needed for less); the quick run's prose lines (configuration, legends, notes, verdicts) fit 100 columns, its
    tables 140, and its progress goes to stderr."""
    training, evaluation, text, _ = T.run_estimate(*T.parse_args(["--quick", "--steps", str(10 ** 11)]))
    assert training > 2 * 604800 and 0 < evaluation < 600 and "weeks in all" in text and f"{10 ** 11} steps per model" in text
    assert T.main(["--quick", "--jobs", "1", "--steps", "60", "--test-fraction", "0.2"]) == 0
    out, err = capsys.readouterr()
    table = re.compile(r"^(mvae|mmvae|model|-{20})")
    assert all(len(line) <= (140 if table.match(line) else 100) for line in out.splitlines()), max(out.splitlines(), key=len)
    assert "estimate: about" in err and "[1/4] trained mmvae" in err and "left in the run" in err and "[1/4]" not in out


def test_quiet_prints_the_estimate_only_for_a_long_run(monkeypatch, capsys):
    argv = ["--quick", "--quiet", "--jobs", "1", "--steps", "30", "--models", "mmvae"]
    assert T.main(argv) == 0 and "estimate: about" not in capsys.readouterr().err
    monkeypatch.setattr(T, "LONG_RUN", 0.0)                                   # every run is long
    assert T.main(argv) == 0
    out, err = capsys.readouterr()
    assert "estimate: about" in err and "[1/" not in err and "estimate: about" not in out


def test_the_study_reports_held_out_columns(tmp_path, capsys):
    path = tmp_path / "study.json"
    assert ST.main(["--quick", "--quiet", "--study", "importance-samples", "--study-seeds", "0", "--study-gradients", "iwae",
                    "--test-fraction", "0.2", "--steps", "60", "--json", str(path)]) == 0
    study, out = json.loads(path.read_text()), capsys.readouterr().out
    assert "On held-out points (never trained on)" in out and study["held_out"]["source"].startswith("a fresh pinwheel sample")
    assert all(onp.isfinite(r["held_out"]["conditional"]) and r["held_out"]["num_points"] == 25 for e in study["study"] for r in e["rows"])


def test_the_readmes_python_example_runs_as_a_file_from_anywhere(tmp_path):
    """docs/own_data_example.py, saved as it is, run from another folder: every check passes, the MMVAE's spread is small."""
    import subprocess
    done = subprocess.run([sys.executable, os.path.join(REPOSITORY, "docs", "own_data_example.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "PASS inequality (6)" in done.stdout and "FAIL" not in done.stdout and "mmvae class 1: spread ratio" in done.stdout
