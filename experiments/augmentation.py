"""augmentation: the paper's augmentation warning, tested (studies.py --data digit-views; docs/augmentation.md). x1 is an
8 x 8 digit, x2 its 4 x 4 pooled view: one-to-one pairs. Flip augmentation mirrors x1 only, so that each x2 then describes a
digit and its reflection: surjective data, made by augmenting. Theorem 1 per group of rows sharing one x2 (data_sets).
"""
import time

import autograd.numpy as np
import numpy.random as npr

from cli import configuration as C
from extensions import data_sets as D
from cli import runs as R
import surjvae_np as S
import theorem_check as T
from theorem_check import smallest


VIEWS = dict(latent_dim=8, hidden=(128,), steps=3000, peak_step_size=0.005, group_draws=64, shown=12)
VIEWS_QUICK = dict(VIEWS, hidden=(64,), steps=600, peak_step_size=0.02, group_draws=16)


def configure_views(args):
    """(config, Data) of a --data digit-views run: the arguments with VIEWS (or VIEWS_QUICK) and --steps, and the digits,
    read once (their labels are not used: the views pair each digit with its own pooled image)."""
    preset = VIEWS_QUICK if args.quick else VIEWS
    config = dict(vars(args), **dict(preset, steps=args.steps or preset["steps"], dtype=args.dtype))
    images, digits = D.load_digits()
    return config, C.Data(images, digits, None, 10, None, None, None)


def describe_views(config):
    """The configuration line of a views run."""
    return (f"seed={config['seed']}, data=digit-views (1797 digits paired with their 4 x 4 pooled view), augment={config['augment']}, "
            f"models={' '.join(config['models'])}, steps per model={config['steps']}, latent={config['latent_dim']}, "
            f"hidden={config['hidden']}, training dtype={config['dtype']}, jobs={config['jobs']}, quick={config['quick']}, json={config['json']}")


def views_checks(groups):
    """Inequality (6) per group, every model: PASS if every checked group's margin is >= 0; SKIP if no group has a finite bound."""
    if not all(g["checked"] for g in groups):
        return [("inequality (6) for every group of rows sharing one x2", None, float("nan"),
                 "every group is a single point: its MLE variance is 0 and its bound +inf; nothing to compare")]
    margin = smallest([g["smallest_margin"] for g in groups])
    listed = sorted({i for g in groups for i in g["infinite"]})
    return [(f"inequality (6) for every group of rows sharing one x2 ({groups[0]['checked']} groups per model)", margin >= 0, margin,
             f"smallest bound - L_1 + {D.GROUP_STANDARD_ERRORS:g} SE of one group, nats" + (f"; {len(listed)} group{'s' * (len(listed) > 1)} of infinite bound "
                                                                                          f"(rows {listed[:5]}) not checked" if listed else ""))]


def views_task(model, x1, augment, seed, config):
    """Train model on the views and evaluate it (in a worker process)."""
    views_x1, views_x2 = D.digit_views(x1, augment)
    params, history = D.train_views(model, views_x1, views_x2, seed=seed, latent_dim=config["latent_dim"], hidden=config["hidden"],
                                    num_steps=config["steps"], print_fn=None, step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]),
                                    dtype=getattr(np, config["dtype"]))
    row = dict(D.views_model_row(params, model, x1, npr.default_rng([seed, 12])), model=model)
    return params, history, row, D.views_group_check(params, model, x1, augment, npr.default_rng([seed, 13]), config["group_draws"])


def views_estimate(config, data):
    """Seconds of a views run, measured before it: each model's step on the views over T.TIMED_STEPS steps (a run
    of 2 + T.TIMED_STEPS steps less one of 2) times --steps, plus each model's evaluation (its row and its per-group check)
    timed on its untrained networks, the models on --jobs processes (R.makespan)."""
    views_x1, views_x2 = D.digit_views(data.x1, config["augment"])
    seconds = []
    for model in config["models"]:
        seconds.append(0.0)
        seconds[-1] += T.timed_step(lambda steps: D.train_views(model, views_x1, views_x2, seed=config["seed"], latent_dim=config["latent_dim"],
                                                            hidden=config["hidden"], num_steps=steps, print_fn=None)) * config["steps"]
        start, params = time.perf_counter(), D.init_views_params(S.init_rng(config["seed"]), config["latent_dim"], 64, 16, config["hidden"])
        D.views_model_row(params, model, data.x1, npr.default_rng([config["seed"], 12]))
        D.views_group_check(params, model, data.x1, config["augment"], npr.default_rng([config["seed"], 13]), config["group_draws"])
        seconds[-1] += time.perf_counter() - start
    return R.makespan(seconds, config["jobs"])


def run_views(config, data, print_fn):
    """--data digit-views: the MVAE and the MMVAE on the digits' paired views, with or without flip augmentation."""
    x1, augment, seed = data.x1, config["augment"], config["seed"]
    results = R.run_tasks([(f"trained and evaluated {model} on the views, --augment {augment}", views_task,
                            (model, x1, augment, seed, config)) for model in config["models"]], config["jobs"], print_fn, "the views")
    rows, groups = [r[2] for r in results], [r[3] for r in results]
    return {"format": T.JSON_FORMAT, "config": config, "views": rows, "groups": groups,
            "data_mirror_asymmetry": D.mirror_asymmetry(x1), "checks": T.as_dicts(views_checks(groups)),
            "findings": T.as_dicts(views_findings(rows, augment)), "shown": [int(i) for i in npr.default_rng([seed, 14]).choice(len(x1), config["shown"], replace=False)],
            "params": {r[2]["model"]: C.tree_to_lists(r[0]) for r in results}, "histories": {r[2]["model"]: r[1].tolist() for r in results}}


def views_findings(rows, augment):
    """What the MMVAE keeps of the digits' left-right asymmetry (a finding: it does not set the exit status)."""
    kept = {r["model"]: r for r in rows}
    if "mmvae" not in kept:
        return []
    asymmetry = kept["mmvae"]["mirror_asymmetry"]
    verdict = asymmetry < 0.5 if augment == "flip" else asymmetry > 0.8
    name = ("with flip augmentation the MMVAE keeps less than half the data's left-right asymmetry" if augment == "flip" else
            "without augmentation (one-to-one pairs) the MMVAE keeps more than 0.8 of the data's left-right asymmetry")
    return [(name, verdict, asymmetry, f"asymmetry of its x2 -> x1 samples / the data's; nearest the mirror average: "
                                       f"{kept['mmvae']['nearest']['average']:.3f}")]


def format_views(results):
    header = f"{'model':6s} {'asymmetry kept':>14s} {'nearest: original':>18s} {'mirror':>7s} {'average':>8s} {'sigma':>6s}"
    lines = [f"Digit views (beyond the paper), --augment {results['config']['augment']}: x1 = the 8 x 8 digit, x2 = its 4 x 4 pooled "
             f"view; x2 -> x1 samples (decoder means) of every digit. Asymmetry = mean |x - mirror(x)|, relative to the data's "
             f"{results['data_mirror_asymmetry']:.4f}", header, "-" * len(header)]
    for r in results["views"]:
        lines.append(f"{r['model']:6s} {r['mirror_asymmetry']:14.3f} {r['nearest']['original']:18.3f} {r['nearest']['mirror']:7.3f}"
                     f" {r['nearest']['average']:8.3f} {r['decoder_std']:6.3f}")
    group = results["groups"][0]
    if not group["checked"]:
        lines.append("Theorem 1 per group (the rows sharing one x2): every group is a single point (one-to-one pairs), so every "
                     "bound is +inf (MLE variance 0): the theorem has nothing to say, and the cross term nothing to average over")
        return "\n".join(lines)
    lines.append(f"Theorem 1 per group (the rows sharing one x2: a digit and its mirror image), {group['checked']} groups per model; "
                 f"margin = bound - L_1 + {D.GROUP_STANDARD_ERRORS:g} SE of the group's Monte Carlo L_1, nats: " + "; ".join(
                     f"{g['model']}: smallest {g['smallest_margin']:.2f} (group {g['smallest_margin_group']}), median {g['median_margin']:.2f}, "
                     f"smallest bound - L_1 {g['smallest_bound_minus_l1']:.2f}" for g in results["groups"]))
    lines.append(f"A group's bound grows without limit as its digit nears mirror symmetry (MLE variance -> 0): the most symmetric digit "
                 f"(asymmetry {group['smallest_group_asymmetry']:.4f} per pixel) has the largest finite bound, {group['largest_group_bound']:.1f} "
                 f"nats; groups of infinite bound (listed, not checked): {group['infinite'] or 'none'}")
    return "\n".join(lines)
