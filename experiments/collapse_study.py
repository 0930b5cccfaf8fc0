"""collapse_study: what controls the collapse's strength, over seeds (studies.py --study; docs/collapse_strength.md): the x1
decoder's std, K importance samples under each gradient estimator, MMVAE+'s auxiliary priors; and the gradient estimators
measured where training goes (studies.py --gradient-study).
"""
import time

import autograd.numpy as np
import numpy.random as npr

from extensions import beyond_the_paper as B
from cli import configuration as C
from extensions import k_samples as K
from extensions import log_likelihood as L
from extensions import mopoe_mmvaeplus as MM
from cli import runs as R
import surjvae_np as S
import theorem_check as T
from theorem_check import smallest


# ================================================================ what controls the collapse's strength (--study)

# The settings the study varies, one at a time: the x1 decoder's std fixed in x1's units (None: learned), from about
# a class's spread (0.26 on the pinwheel, 0.16-0.24 on digits) down to a tenth of the smallest; K importance samples
# per stratum under each gradient estimator (30: Shi et al.'s K for MNIST-SVHN); MMVAE+'s auxiliary-prior parameterisation.
STUDY = {"pinwheel": {"decoder-std": [None, 0.25, 0.15, 0.1, 0.05, 0.025], "seeds": [0, 1, 2, 3, 4]},
         "digits": {"decoder-std": [None, 0.2, 0.1, 0.05, 0.02], "seeds": [0, 1, 2]}}
STUDY_KS = [1, 2, 4, 8, 16, 30]
STUDY_PARTS = {"decoder-std": ("decoder_std", ("mvae", "mmvae")), "importance-samples": ("importance_samples", ("mmvae", "mopoe")),
               "auxiliary": ("auxiliary", ("mmvaeplus",))}
STUDY_CONDITIONAL_SAMPLES = 1000     # draws per point for log p(x1|x2) beyond 3 latent dimensions (the check's: 2000)


def study_settings(parts, data, gradients=B.GRADIENTS):
    """[(part, value, model, gradient)] of the study: every value of each part for its models (K under every gradient
    estimator), and the learned-std MVAE and MMVAE at K = 1, the reference of every part."""
    settings = []
    for part in parts:
        option, models = STUDY_PARTS[part]
        values = {"decoder-std": STUDY[data]["decoder-std"], "importance-samples": STUDY_KS, "auxiliary": list(B.AUXILIARY)}[part]
        for gradient in (gradients if part == "importance-samples" else ("iwae",)):
            settings += [(part, value, model, gradient) for value in values for model in models]
        settings += [(part, None, reference, "iwae") for reference in ("mvae", "mmvae") if reference not in models]   # reference rows
    return settings


def study_key(part, value, model, gradient):
    """The training a study setting needs: (model, decoder std, K, auxiliary, gradient); equal keys train once. At K = 1
    "dreg" is "stl" exactly (every weight w~ is 1), so it trains once as "stl"."""
    option = STUDY_PARTS[part][0] if value is not None else None
    importance_samples = value if option == "importance_samples" else 1
    return (model, value if option == "decoder_std" else None, importance_samples,
            (value if option == "auxiliary" else "free") if model == "mmvaeplus" else None,
            "stl" if gradient == "dreg" and importance_samples == 1 else gradient)


def describe_key(key):
    """A study training in words: "mmvae, K = 8, dreg", "mvae, decoder std 0.1", "mmvaeplus, auxiliary softmax"."""
    model, decoder_std, importance_samples, auxiliary, gradient = key
    setting = ([f"decoder std {decoder_std}"] * (decoder_std is not None) + [f"K = {importance_samples}"] * (importance_samples > 1)
               + [f"auxiliary {auxiliary}"] * (auxiliary is not None) + [f"{gradient} gradient"] * (gradient != "iwae"))
    return ", ".join([model] + (setting or ["the reference setting"]))


def study_task(key, x1, labels, num_classes, seed, config, held_out=None):
    """Train one study setting and evaluate its trained rows, on held_out (x1, labels, num_classes) too if given (run in a
    worker process)."""
    model, decoder_std, importance_samples, auxiliary, gradient = key
    config = dict(config, decoder_std=decoder_std, importance_samples=importance_samples, auxiliary=auxiliary or "free",
                  gradient=gradient, conditional_samples=STUDY_CONDITIONAL_SAMPLES)
    params, _ = C.train_model(model, x1, S.one_hot(labels, num_classes), seed, config)
    rows = [T.evaluate_class(params, model, x1, labels, num_classes, c, config, [seed, 10, c], held_out) for c in range(num_classes)]
    if model == "mmvaeplus":
        for row in rows:
            x2_class = S.one_hot(np.full(row["num_points"], row["class"]), num_classes)
            row.update({f"spread_w_{source}": S.spread_ratio(MM.mmvaeplus_generate_from_labels(
                params, x2_class, npr.default_rng([seed, 11, row["class"]]), source), x1[labels == row["class"]]) for source in ("prior", "auxiliary", "zero")})
            row["auxiliary_std"] = np.exp(0.5 * MM.auxiliary_log_vars(params)[0]).tolist()
    return rows


def run_study(config, data, print_fn):
    """Every setting of --study for every seed: trained rows, the study's checks (Eq. 6 and Jensen on every row)."""
    x1, labels, num_classes = data.x1, data.labels, data.num_classes
    settings, seeds = study_settings(config["study"], config["data"], config["study_gradients"]), study_seeds(config)
    keys = list(dict.fromkeys(study_key(*setting) for setting in settings))
    jobs = sorted([(key, seed) for key in keys for seed in seeds], key=lambda job: -job[0][2])     # the largest K first
    evaluated = R.run_tasks([(f"trained and evaluated {describe_key(key)}, seed {seed}", study_task, (key, x1, labels, num_classes, seed, config, data.held_out))
                             for key, seed in jobs], config["jobs"], print_fn, "the study")
    rows = {(key, seed): rows for (key, seed), rows in zip(jobs, evaluated)}
    entries = [{"part": part, "value": value, "model": model, "gradient": gradient, "seed": seed, "rows": rows[study_key(part, value, model, gradient), seed]}
               for part, value, model, gradient in settings for seed in seeds]
    all_rows = [row for key_rows in rows.values() for row in key_rows]
    held = {} if data.held_out is None else {"held_out": C.held_out_record(config, data.held_out)}
    return {"format": T.JSON_FORMAT, "config": config, "study": entries, **held, "data_coherence": L.leave_one_out_coherence(x1, labels),
            "checks": T.as_dicts(study_checks(all_rows)), "findings": []}


def study_seeds(config):
    """The seeds of the study: --study-seeds, else STUDY's for the data."""
    return config["study_seeds"] or STUDY[config["data"]]["seeds"]


def describe_study(config):
    """The study in the configuration line: its parts, seeds and trainings."""
    keys = dict.fromkeys(study_key(*setting) for setting in study_settings(config["study"], config["data"], config["study_gradients"]))
    return f"study={' '.join(config['study'])}, seeds={' '.join(map(str, study_seeds(config)))}, {len(keys) * len(study_seeds(config))} trainings"


def study_checks(rows):
    """Eq. (6) and Jensen on every trained row of the study: they hold at every setting, including K > 1 and a fixed std."""
    margin = smallest([r["bound"] - r["l1"] + r["l1_error"] for r in rows])
    return [("inequality (6): bound >= L_1 for every setting, seed and class of the study", margin >= 0, margin,
             "smallest (bound - L_1 + L_1's error) per point"),
            T.jensen_check(rows, "every setting, seed and class of the study")]


T_QUANTILE_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def seed_interval(per_seed):
    """(mean, low, high): the mean over seeds of per-seed values and its 95 % t interval, mean +- t_0.975(S - 1) SD / sqrt(S)
    (beyond 10 degrees of freedom the normal quantile 1.96 with Fisher's correction (z^3 + z) / (4 df)); NaN bounds for one seed."""
    values, count = np.asarray(per_seed, dtype=float), len(per_seed)
    if count < 2:
        return float(np.mean(values)), float("nan"), float("nan")
    quantile = T_QUANTILE_975.get(count - 1, 1.96 + (1.96 ** 3 + 1.96) / (4 * (count - 1)))
    half = quantile * np.std(values, ddof=1) / np.sqrt(count)
    return float(np.mean(values)), float(np.mean(values) - half), float(np.mean(values) + half)


def setting_summary(entries, field, held_out=False):
    """seed_interval of the class mean of field (held_out: on the held-out points), each seed one value; for log p(x1|x2)
    only seeds whose every class is reliable count. (mean, low, high, seeds left out)."""
    rows_of = (lambda e: [r["held_out"] for r in e["rows"]]) if held_out else (lambda e: e["rows"])
    per_seed = [np.mean([r[field] for r in rows_of(e)]) for e in entries
                if field != "conditional" or all(r["conditional_reliable"] for r in rows_of(e))]
    return seed_interval(per_seed) + (len(entries) - len(per_seed),) if per_seed else (float("nan"),) * 3 + (len(entries),)


def summarise(summary):
    """'mean [low, high]' of setting_summary, and '(k seeds unreliable)' when log p left seeds out."""
    mean, low, high, left_out = summary
    return f"{mean:8.3f} [{low:7.3f}, {high:7.3f}]" + (f" ({left_out} unreliable)" if left_out else "")


STUDY_FIELDS = ("spread_ratio", "spread_ratio_sampled", "gap", "conditional", "coherence")


def format_study(results):
    """One table per part: each setting and model, the mean over seeds of the class mean, with its 95 % interval."""
    lines, entries = [], results["study"]
    for part in dict.fromkeys(e["part"] for e in entries):
        header = (f"{'setting':>10s} {'model':9s} {'gradient':8s}" + "".join(f" {name:>26s}" for name in
                  ("spread ratio", "sampled spread", "gap to bound", "log p(x1|x2)", "coherence")) + f" {'sigma':>7s}")
        lines += [R.wrap(f"Study: {part} (beyond the paper); mean over seeds of each seed's class mean [95 % interval over seeds]; gap "
                         "and log p per point; log p over the seeds whose every class is reliable"), header, "-" * len(header)]
        for setting, model, gradient, chosen in setting_groups(entries, part):
            lines.append(f"{setting:>10s} {model:9s} {gradient:8s} " + " ".join(summarise(setting_summary(chosen, field)) for field in STUDY_FIELDS)
                         + f" {np.mean([r['decoder_std'] for e in chosen for r in e['rows']]):7.3f}")
        if part == "auxiliary":
            lines.append(format_auxiliary_study(entries))
        if "held_out" in results:
            lines.append(format_held_out_study(entries, part))
        lines.append("")
    return "\n".join(lines)


HELD_OUT_FIELDS = ("spread_ratio", "conditional", "coherence")


def setting_groups(entries, part):
    """(setting in words, model, gradient, its entries: one per seed) for every setting and model of part, in study order."""
    for value, model, gradient in dict.fromkeys((e["value"], e["model"], e.get("gradient", "iwae")) for e in entries if e["part"] == part):
        setting = "learned" if value is None and part == "decoder-std" else ("-" if value is None else str(value))
        yield setting, model, gradient, [e for e in entries if (e["part"], e["value"], e["model"], e.get("gradient", "iwae")) == (part, value, model, gradient)]


def format_held_out_study(entries, part):
    """The held-out points' spread ratio, log p(x1|x2) and coherence per setting and model of part, as format_study's."""
    header = f"{'setting':>10s} {'model':9s} {'gradient':8s}" + "".join(f" {name:>26s}" for name in ("held-out spread", "held-out log p", "held-out coher."))
    lines = ["On held-out points (never trained on): the same generations' spread ratio against each held-out class's spread, "
             "log p(x1|x2) per point, coherence against the held-out points", header, "-" * len(header)]
    for setting, model, gradient, chosen in setting_groups(entries, part):
        lines.append(f"{setting:>10s} {model:9s} {gradient:8s} " + " ".join(summarise(setting_summary(chosen, field, True)) for field in HELD_OUT_FIELDS))
    return "\n".join([R.wrap(lines[0])] + lines[1:])


def format_auxiliary_study(entries):
    """MMVAE+'s label -> x1 spread with w_1 from p(w_1), r_1 and 0, and r_1's learned std, per parameterisation."""
    lines = [f"{'MMVAE+':>10s} {'w_1 ~ p(w_1)':>26s} {'w_1 ~ r_1':>26s} {'w_1 = 0':>26s}  r_1 std (over seeds)"]
    for value in dict.fromkeys(e["value"] for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus"):
        stds = sorted({round(s, 3) for e in entries if e["part"] == "auxiliary" and e["value"] == value and e["model"] == "mmvaeplus"
                       for s in e["rows"][0]["auxiliary_std"]})
        chosen = [e for e in entries if e["part"] == "auxiliary" and e["model"] == "mmvaeplus" and e["value"] == value]
        lines.append(f"{value:>10s} " + " ".join(summarise(setting_summary(chosen, f"spread_w_{source}")) for source in ("prior", "auxiliary", "zero"))
                     + f"  {stds[0]:.3f}..{stds[-1]:.3f}")
    return "\n".join(lines)


# ================================================================ the gradient estimators where training goes (--gradient-study)

GRADIENT_STAGES = (0, 200, 800)      # Adam steps (K = 1, iwae) before the gradients are measured: initial, part-way, trained
GRADIENT_KS = (1, 2, 4, 8, 16, 30)



def gradient_study_task(model, stage, x1, x2, seed, ks, draws, trained_k=None):
    """At the parameters after `stage` training steps (0: the initial ones; at K = 1 with iwae, or with trained_k: at that K with
    dreg-mix, as the K study trains): gradient_measures of every estimator at every K, on one batch of 128 points (what a
    training step sees). Rows carry trained_k (1 for the K = 1 stages)."""
    options = {} if trained_k is None else dict(importance_samples=trained_k, gradient="dreg-mix")
    params = (B.train(model, x1, x2, seed=seed, num_steps=stage, print_fn=None, **options)[0] if stage else
              S.change_x1_units(B.init_model_params(model, S.init_rng(seed)), *S.x1_standardisation(x1)))
    batch = npr.default_rng([seed, 11]).choice(len(x1), 128, replace=False)
    rows = []
    for k in ks:
        gradients = {g: K.encoder_gradients(params, B.objective_of(model, k, g), x1[batch], x2[batch], draws, [seed, 10, k]) for g in B.GRADIENTS}
        rows += [dict(model=model, stage=stage, trained_k=trained_k or 1, k=k, gradient=g, **K.gradient_measures(gradients[g], gradients["iwae"]))
                 for g in B.GRADIENTS]
    return rows


def gradient_study_plan(config):
    """(Ks, draws, stages) of --gradient-study; --quick: fewer of each."""
    if config["quick"]:
        return (1, 4), 40, (0, config["steps"] // 4, config["steps"])
    return GRADIENT_KS, 400, GRADIENT_STAGES


def run_gradient_study(config, data, print_fn):
    """--gradient-study: each estimator's bias, signal-to-noise ratio and noise against iwae's at K in GRADIENT_KS, at
    GRADIENT_STAGES of K = 1 training, and after the last stage's steps of training at each K with dreg-mix, seed --seed."""
    (ks, draws, stages), seed, x2 = gradient_study_plan(config), config["seed"], S.one_hot(data.labels, data.num_classes)
    tasks = ([(f"gradients of mmvae after {stage} steps", gradient_study_task, ("mmvae", stage, data.x1, x2, seed, ks, draws)) for stage in stages]
             + [(f"gradients of mmvae after {stages[-1]} steps at K = {k}", gradient_study_task, ("mmvae", stages[-1], data.x1, x2, seed, [k], draws, k))
                for k in ks if k > 1])
    rows = [row for part in R.run_tasks(tasks, config["jobs"], print_fn, "the gradient study") for row in part]
    return {"format": T.JSON_FORMAT, "config": dict(config, draws=draws), "gradient_study": rows, "checks": [],
            "findings": T.as_dicts(gradient_findings(rows))}


def gradient_findings(rows):
    """Which estimators differ from the IWAE gradient beyond their noise (chi^2/df of the paired differences above 3; about 1
    if unbiased) at K > 1, at the initial and at the trained parameters."""
    findings = []
    for gradient in ("stl", "dreg", "dreg-mix"):
        for stage in sorted({r["stage"] for r in rows}):
            chosen = [r["chi2_per_df"] for r in rows if r["gradient"] == gradient and r["stage"] == stage and r["k"] > 1]
            findings.append((f"{gradient} after {stage} steps: paired difference from iwae beyond noise (chi^2/df > 3) at some K > 1",
                             bool(max(chosen) > 3), max(chosen), "largest chi^2/df over K > 1"))
    return findings


def format_gradient_study(rows):
    """One line per (steps, training K, K): each estimator's bias (a fraction of the IWAE gradient's norm), chi^2/df and SNR;
    then its per-draw noise against iwae's (median std ratio over the encoder coordinates, and the share of them above 1)."""
    groups = list(dict.fromkeys((row["stage"], row.get("trained_k", 1), row["k"]) for row in rows))
    cells = {group: {row["gradient"]: row for row in rows if (row["stage"], row.get("trained_k", 1), row["k"]) == group} for group in groups}
    lines = ["steps  at   K " + "".join(f"{g:>25s}" for g in B.GRADIENTS), " " * 13 + f"{'bias  chi2/df    SNR':>25s}" * len(B.GRADIENTS)]
    lines += [f"{stage:5d} {at:3d} {k:3d} " + "".join(f"{cells[(stage, at, k)][g]['bias']:9.3f} {cells[(stage, at, k)][g]['chi2_per_df']:8.2f} "
                                                     f"{cells[(stage, at, k)][g]['snr']:6.3f}" for g in B.GRADIENTS) for stage, at, k in groups]
    others = [g for g in B.GRADIENTS if g != "iwae"]
    lines += ["", "per-draw noise against iwae's: median std ratio over the encoder coordinates / share of coordinates above 1",
              "steps  at   K " + "".join(f"{g:>16s}" for g in others)]
    lines += [f"{stage:5d} {at:3d} {k:3d} " + "".join(f"{cells[(stage, at, k)][g].get('noise_ratio', np.nan):9.3f} "
                                                     f"{cells[(stage, at, k)][g].get('noisier_share', np.nan):6.2f}" for g in others)
              for stage, at, k in groups]
    return "\n".join(lines)


# ================================================================ the studies' estimates, before they run (studies.py prints them)

def linear_in_k(cost, ks):
    """{k: seconds} for every k in ks from cost(k) timed at the smallest and the largest k only (a step's work grows linearly in K)."""
    low, high = min(ks), max(ks)
    at = {low: cost(low), high: cost(high)} if high > low else {low: cost(low)}
    return {k: at[low] + (at[high] - at[low]) * (k - low) / (high - low) if high > low else at[low] for k in ks}


def study_estimate(config, data):
    """Seconds of --study: each training's step timed at its model and K (linear_in_k, iwae) times --steps, and its labels'
    rows, one untrained row of its model timed; the trainings on --jobs processes (R.makespan)."""
    x2, seed, settings = S.one_hot(data.labels, data.num_classes), config["seed"], study_settings(config["study"], config["data"], config["study_gradients"])
    keys, seeds = list(dict.fromkeys(study_key(*setting) for setting in settings)), study_seeds(config)
    steps, rows = {}, {}
    for model in dict.fromkeys(key[0] for key in keys):
        settings = dict(config, decoder_std=None, auxiliary="free", gradient="iwae", conditional_samples=STUDY_CONDITIONAL_SAMPLES)
        steps[model] = linear_in_k(lambda k: T.timed_step(lambda n: C.train_model(model, data.x1, x2, seed, dict(settings, steps=n, importance_samples=k))),
                                   [key[2] for key in keys if key[0] == model])
        start = time.perf_counter()
        T.evaluate_class(C.untrained_params(model, settings, data.x1, data.num_classes, seed), model, data.x1, data.labels, data.num_classes, 0,
                         settings, [seed, 15], data.held_out)
        rows[model] = time.perf_counter() - start
    return R.makespan([steps[key[0]][key[2]] * config["steps"] + rows[key[0]] * data.num_classes for key in keys] * len(seeds), config["jobs"])


def gradient_study_estimate(config, data):
    """Seconds of --gradient-study: the training to each stage (a step timed; at each K, a step timed at the smallest and the
    largest K, linear_in_k) and every estimator's draws at every K (one draw timed per estimator at the smallest and the largest
    K, linear_in_k), the stages on --jobs processes (R.makespan)."""
    (ks, draws, stages), seed = gradient_study_plan(config), config["seed"]
    x2, batch = S.one_hot(data.labels, data.num_classes), npr.default_rng([seed, 11]).choice(len(data.x1), 128, replace=False)
    params = S.change_x1_units(B.init_model_params("mmvae", S.init_rng(seed)), *S.x1_standardisation(data.x1))
    step = T.timed_step(lambda n: B.train("mmvae", data.x1, x2, seed=seed, num_steps=n, print_fn=None))
    per_stage = sum(sum(linear_in_k(lambda k: T.timed_step(lambda n: K.encoder_gradients(params, B.objective_of("mmvae", k, g), data.x1[batch],
                                                                                         x2[batch], n, [seed, 10, k])), ks).values())
                        for g in B.GRADIENTS) * draws
    step_at = linear_in_k(lambda k: T.timed_step(lambda n: B.train("mmvae", data.x1, x2, seed=seed, num_steps=n, print_fn=None,
                                                                   importance_samples=k, gradient="dreg-mix")), ks)
    at_k = [step_at[k] * stages[-1] + per_stage / len(ks) for k in ks if k > 1]                     # one K's draws each
    return R.makespan([step * stage + per_stage for stage in stages] + at_k, config["jobs"])

