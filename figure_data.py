"""figure_data: the JSON files plots.py draws from, read and checked before any figure is drawn: theorem_check.py's and
studies.py's --json output (--from-json), and the studies' (--study-json, --bound-json, --gradient-json, --views-json). A file
that cannot be drawn ends the run with one line naming the file and the problem (exit status 2), before any figure is written.
"""
import json
import sys

import numpy as np

from extensions import beyond_the_paper as B
from experiments import collapse_study as CS
from extensions import data_sets as D
from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S
import theorem_check as T

NAMES = {"mvae": "MVAE (PoE)", "mmvae": "MMVAE (MoE)", "mopoe": "MoPoE", "mmvaeplus": "MMVAE+ (private w)"}


def params_from_json(tree):
    """The nested dict of arrays that theorem_check's --json stored as lists."""
    return {key: ([{name: np.array(array, dtype=float) for name, array in layer.items()} if isinstance(layer, dict) else layer
                   for layer in value] if isinstance(value, list) and value and isinstance(value[0], dict) else np.array(value, dtype=float))
            for key, value in tree.items()}


def check_study_entry(entry, index):
    """One entry of studies.py --study output: its part, model, gradient, seed and value, and rows a figure can draw."""
    where = f"study[{index}]"
    S.fail_unless(isinstance(entry, dict) and entry.get("part") in CS.STUDY_PARTS, f"{where}['part'] must be one of {list(CS.STUDY_PARTS)}")
    S.fail_unless(entry.get("model") in NAMES and entry.get("gradient", "iwae") in B.GRADIENTS, f"{where}: unknown model or gradient")
    S.fail_unless(isinstance(entry.get("seed"), int) and entry["seed"] >= 0, f"{where}['seed'] must be an integer >= 0")
    value, part = entry.get("value"), entry["part"]
    valid = value is None or {"decoder-std": isinstance(value, NUMBER) and not isinstance(value, bool) and value > 0,
                              "importance-samples": isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                              "auxiliary": value in B.AUXILIARY}[part]
    S.fail_unless(valid, f"{where}['value'] {value!r:.40} is not a setting of {part}")
    check_fields(entry.get("rows"), f"{where}['rows']", {"spread_ratio": NUMBER, "decoder_std": NUMBER, "coherence": NUMBER})
    S.fail_unless(entry["rows"], f"{where} has no rows")
    for row in entry["rows"]:
        S.fail_unless(row["spread_ratio"] > 0 and row["decoder_std"] > 0 and 0 <= row["coherence"] <= 1,
                      f"{where}: a spread ratio or decoder std <= 0, or a coherence outside [0, 1]")


def check_study_has_what_it_draws(entries, where):
    """Each part present has the rows its panel needs: the MVAE's and the MMVAE's, the MVAE's reference at K = 1."""
    parts = {e["part"] for e in entries}
    needs = {"decoder-std": [("mvae", None), ("mmvae", None), ("mmvae", "fixed")], "importance-samples": [("mmvae", "fixed"), ("mvae", None)],
             "auxiliary": [("mmvaeplus", "fixed")]}
    for part in parts:
        for model, kind in needs[part]:
            S.fail_unless(any(e["part"] == part and e["model"] == model and (e["value"] is None) == (kind is None) for e in entries),
                          f"{where}: the {part} part lacks the {NAMES[model]}'s {'reference' if kind is None else 'settings'}")


def read_study(path):
    """studies.py --study --json output, validated before the figure is drawn; an argparse-style error names the problem."""
    try:
        with open(path) as f:
            study = json.load(f)
        S.fail_unless(isinstance(study, dict) and study.get("format") == T.JSON_FORMAT and isinstance(study.get("study"), list)
                      and study["study"], f"it is not studies.py --study --json output of format {T.JSON_FORMAT}")
        S.fail_unless(isinstance(study.get("config"), dict) and study["config"].get("data") in ("pinwheel", "digits"), "config.data is missing")
        finite_numbers(study["study"], "study")
        for index, entry in enumerate(study["study"]):
            check_study_entry(entry, index)
        check_study_has_what_it_draws(study["study"], path)
        coherence = study.get("data_coherence")
        S.fail_unless(isinstance(coherence, list) and coherence and all(isinstance(c, NUMBER) and 0 <= c <= 1 for c in coherence),
                      "data_coherence must be a list of fractions in [0, 1]")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as error:
        usage_error(f"cannot draw the study from {path}: {error}")
    return study


def read_bound_study(path):
    """studies.py --bound-study --json output (or an --importance-samples run's, at a fixed --decoder-std: its trained K-sample
    cross terms are drawn beside), validated before the figure is drawn."""
    return read_rows(path, "--bound-json", ["bound_study", "k_sample_cross_terms"], {
        "bound_study": {"class": NUMBER, "k": NUMBER, "sigma": NUMBER, "value": NUMBER, "error": NUMBER, "constant": NUMBER,
                        "l_star_lower": NUMBER, "l_star_upper": NUMBER},
        "k_sample_cross_terms": {"class": NUMBER, "k": (list,), "values": (list,), "sigma": NUMBER}})


def read_rows(path, flag, keys, fields):
    """A studies.py --json file whose keys hold lists of rows with fields (name -> types), finite, at least one row in all,
    checked before any figure is drawn: the run's dict. An argparse-style error names the file and the problem."""
    try:
        with open(path) as f:
            run = json.load(f)
        S.fail_unless(isinstance(run, dict) and run.get("format") == T.JSON_FORMAT and any(run.get(key) for key in keys),
                      f"it is not studies.py --json output of format {T.JSON_FORMAT} holding {' or '.join(keys)}")
        for key in keys:
            check_fields(run.get(key) or [], key, fields[key])
            finite_numbers({key: run.get(key) or []}, "the file")
    except (OSError, ValueError) as error:
        usage_error(f"{flag} {path}: {error}")
    return run


def read_gradient_study(path):
    """studies.py --gradient-study --json output's rows, validated before the figure is drawn."""
    rows = read_rows(path, "--gradient-json", ["gradient_study"], {"gradient_study": {"stage": NUMBER, "k": NUMBER, "gradient": (str,),
                                                                                        "chi2_per_df": NUMBER, "snr": NUMBER}})["gradient_study"]
    if not {row["gradient"] for row in rows} <= set(B.GRADIENTS):
        usage_error(f"--gradient-json {path}: a gradient outside {', '.join(B.GRADIENTS)}")
    return rows


def read_views(path):
    """studies.py --data digit-views --json output, validated before the figure is drawn; an argparse-style error names the problem."""
    try:
        with open(path) as f:
            run = json.load(f)
        S.fail_unless(isinstance(run, dict) and run.get("format") == T.JSON_FORMAT and isinstance(run.get("views"), list) and run["views"],
                      f"it is not studies.py --data digit-views --json output of format {T.JSON_FORMAT} (with a non-empty views)")
        config = run.get("config")
        S.fail_unless(isinstance(config, dict) and config.get("augment") in ("none", "flip"), "config.augment is missing")
        S.fail_unless(isinstance(config.get("seed"), int) and not isinstance(config["seed"], bool) and 0 <= config["seed"] <= S.MAX_SEED,
                      f"config.seed must be an integer 0..{S.MAX_SEED}, got {config.get('seed')!r:.40}")
        S.fail_unless(isinstance(run.get("params"), dict) and run["params"] and set(run["params"]) <= set(S.PAPER_MODELS),
                      f"params must hold some of {S.PAPER_MODELS}")
        finite_numbers({"params": run["params"], "views": run["views"]}, "the file")
        check_fields(run["views"], "views", {"model": (str,), "mirror_asymmetry": NUMBER, "nearest": (dict,)})
        for model, tree in run["params"].items():
            S.check_params(params_from_json(tree), D.VIEWS_KEYS)
            rows = [r for r in run["views"] if r["model"] == model]
            S.fail_unless(len(rows) == 1 and rows[0]["mirror_asymmetry"] >= 0, f"views must hold one row of {model} with an asymmetry >= 0")
        shown = run.get("shown")
        S.fail_unless(isinstance(shown, list) and shown and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1797 for i in shown),
                      "shown must be a non-empty list of digit indices 0..1796")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as error:
        usage_error(f"cannot draw the views from {path}: {error}")
    return run


def usage_error(message):
    """An argparse-style refusal: one line on stderr, exit status 2."""
    print(f"plots.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


INFINITE_ALLOWED = ("conditional_pareto_k",)      # +inf: one weight carries a point's estimate (log_likelihood.pareto_k)


def finite_numbers(value, where):
    """ValueError unless every number inside the nested lists and dicts of value is a finite float (an integer
    beyond float range is not), but for +inf in a field of INFINITE_ALLOWED."""
    if isinstance(value, dict):
        return [finite_numbers(item, f"{where}.{key}") for key, item in value.items()]
    if isinstance(value, list):
        return [finite_numbers(item, where) for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        allowed = value == float("inf") and where.rsplit(".", 1)[-1] in INFINITE_ALLOWED
        S.fail_unless(allowed or (abs(value) < 1e308 and np.isfinite(float(value))), f"{where} holds {value!r}: NaN, infinite or beyond float range")


def check_fields(items, where, fields):
    """items is a list of dicts, each with these fields of these types."""
    S.fail_unless(isinstance(items, list), f"{where} must be a list, got {type(items).__name__}")
    for index, item in enumerate(items):
        S.fail_unless(isinstance(item, dict), f"{where}[{index}] must be a dict, got {type(item).__name__}")
        for field, kinds in fields.items():
            S.fail_unless(isinstance(item.get(field), kinds) and (bool in kinds or not isinstance(item.get(field), bool)),
                          f"{where}[{index}]['{field}'] must be {' or '.join(kind.__name__ for kind in kinds)}, got {item.get(field)!r}")


NUMBER = (int, float)


ROW_FIELDS = {"model": (str,), "decoder": (str,), "class": (int,), "bound": NUMBER, "l1": NUMBER, "conditional": NUMBER + (type(None),), "gap": NUMBER,
              "conditional_reliable": (bool,)}


DIRECT_FIELDS = {"class": (int,), "bound": NUMBER, "final": NUMBER, "history": (list,)}


def check_results(results, want_sweep):
    """ValueError naming the first thing in theorem_check's --json output that plots.py cannot draw from."""
    S.fail_unless(isinstance(results, dict) and results.get("format") == T.JSON_FORMAT,
                  f"it has format {results.get('format') if isinstance(results, dict) else type(results).__name__!r}, this plots.py "
                  f"reads format {T.JSON_FORMAT}; write it again with this theorem_check.py --json")
    S.fail_unless("params" in results, "it holds no trained parameters: write it with --save-params (theorem_check.py or studies.py)")
    for key, kind in (("config", dict), ("params", dict), ("data", dict), ("histories", dict)):
        S.fail_unless(isinstance(results.get(key), kind), f"{key} must be a {kind.__name__}, got {results.get(key)!r:.60}")
    finite_numbers({key: results.get(key) for key in ("params", "data", "rows", "histories", "direct_maximisation", "sweep")}, "the file")
    seed = results["config"].get("seed", 0)
    S.fail_unless(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, f"config.seed must be an integer >= 0, got {seed!r}")
    S.fail_unless(isinstance(results["config"].get("data", "pinwheel"), str), "config.data must name the data")
    x1 = np.array(results["data"].get("x1"), dtype=float)
    S.check_array(x1, "data.x1", 2)
    labels = results["data"].get("labels")
    S.fail_unless(isinstance(labels, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in labels),
                  "data.labels must be a list of integers")
    D.check_sweep_labels(np.array(labels, dtype=int), {"k": 1})
    S.fail_unless(len(labels) == len(x1), f"data.labels has {len(labels)} entries but data.x1 has {len(x1)} rows")
    check_models(results, x1.shape[1], max(labels) + 1, want_sweep)


def check_models(results, data_dim, num_classes, want_sweep):
    """The parameters, histories, rows and direct maximisations of check_results: one per model and class."""
    models = list(results["params"])
    S.fail_unless(models and all(model in NAMES for model in models), f"params has models {models}; expected some of {list(NAMES)}")
    for model in models:
        params = params_from_json(results["params"][model])
        MM.check_params_of_model(params, {"model": model})
        S.fail_unless(S.input_size({"params": params}, "encoder_x1") == data_dim and
                      S.input_size({"params": params}, "encoder_x2") == num_classes,
                      f"params[{model!r}] do not fit the stored data's {data_dim} columns and {num_classes} classes")
    S.fail_unless(sorted(results["histories"]) == sorted(models), f"histories has models {sorted(results['histories'])}, params {sorted(models)}")
    S.fail_unless(all(isinstance(h, list) and h for h in results["histories"].values()), "every history must be a non-empty list")
    check_fields(results.get("rows"), "rows", ROW_FIELDS)
    trained = {(r["model"], r["class"]) for r in results["rows"] if r["decoder"] == "trained"}
    missing = [(m, c) for m in models for c in range(num_classes) if (m, c) not in trained]
    S.fail_unless(not missing, f"rows lacks the trained rows of (model, class) {missing[:4]}")
    check_fields(results.get("direct_maximisation"), "direct_maximisation", DIRECT_FIELDS)
    S.fail_unless(len(results["direct_maximisation"]) > 0, "direct_maximisation is empty")
    if want_sweep or results.get("sweep"):
        S.fail_unless(isinstance(results.get("sweep"), list) and results["sweep"], "it has no sweep; write it with studies.py --sweep --json")
        check_fields(results["sweep"], "sweep", {"k": (int,), "points_per_label": NUMBER, "data_within_label_variance": NUMBER, "models": (dict,)})


def read_results(path, want_sweep):
    """theorem_check.py --json output, validated before any figure is drawn; SystemExit names the problem."""
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:    # ValueError: bad JSON, or an integer of 5000 digits
        usage_error(f"cannot read --from-json {path}: {error}")
    try:
        check_results(results, want_sweep)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, IndexError) as error:
        usage_error(f"{path} cannot be drawn: {error}")
    return results
