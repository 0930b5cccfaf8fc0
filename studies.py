"""studies.py: the experiments beyond the paper, each built on theorem_check.py's training and row evaluation, each in a
module of its own (named below, with its docs page); this script reads the command line and runs them.

  --sweep             the degree of surjectivity: each pinwheel arm split into k sub-labels (sweep.py, docs/sweep.md)
  --importance-samples K (> 1)  what becomes of Theorem 1 with K importance samples: the K-sample cross term (theorem_beyond_k.py)
  --models ... mmvaeplus        where MMVAE+'s private latent carries x1's variation (private_latent.py, docs/mmvaeplus.md)
  --study PARTS       what controls the collapse's strength, over seeds (collapse_study.py, docs/collapse_strength.md)
  --gradient-study    the gradient estimators where training goes (collapse_study.py)
  --bound-study       the K-sample cross term maximised alone against l*(sigma) (theorem_beyond_k.py)
  --data digit-views  the paper's augmentation warning, tested on digits paired with a pooled view (augmentation.py,
                      docs/augmentation.md)

Without --study, --gradient-study, --bound-study or --data digit-views, the run is theorem_check.py's check (its table,
checks and findings) with the experiments' tables, checks and findings added; its --json is theorem_check's with their
results added, and plots.py --from-json reads it as it reads theorem_check's. Exit status 0 only if no check FAILs.
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")        # before NumPy loads: small matrices, no BLAS threads

import argparse  # noqa: E402
import time  # noqa: E402

import numpy.random as npr  # noqa: E402

from experiments import augmentation as A  # noqa: E402
from extensions import beyond_the_paper as B  # noqa: E402
from experiments import collapse_study as CS  # noqa: E402
from cli import configuration as C  # noqa: E402
from experiments import private_latent as P  # noqa: E402
from cli import runs as R  # noqa: E402
import surjvae_np as S  # noqa: E402
from experiments import sweep as SW  # noqa: E402
from cli import tables  # noqa: E402
from experiments import theorem_beyond_k as BK  # noqa: E402
import theorem_check as T  # noqa: E402


# ================================================================ the command line, read once

def add_study_arguments(parser):
    """The flags of the experiments."""
    add = parser.add_argument_group("the experiments (beside the check, or instead of it)").add_argument
    add("--sweep", action="store_true", help="the surjectivity sweep, beside the check on the pinwheel (about a minute)")
    add("--sweep-ks", nargs="+", type=R.int_at_least(1), default=None, metavar="K",
        help="sub-labels per arm for --sweep (default 1 2 4 8 16 32)")
    add("--study", nargs="+", choices=tuple(CS.STUDY_PARTS), default=None,
        help="instead of the check: what controls the collapse's strength, over seeds (half an hour on the pinwheel; "
             "hours on digits, where one K = 30 training takes minutes)")
    add("--study-seeds", nargs="+", type=R.int_at_least(0, S.MAX_SEED), default=None, metavar="SEED",
        help="seeds of --study (default 0-4 on the pinwheel, 0-2 on digits); runs of other seeds can be drawn together")
    add("--study-gradients", nargs="+", choices=B.GRADIENTS, default=list(B.GRADIENTS), metavar="GRADIENT",
        help="the gradient estimators of --study importance-samples (default all: iwae stl dreg dreg-mix)")
    add("--bound-study", action="store_true",
        help="instead of the check: Theorem 1 beyond K = 1, direct maximisation of the K-sample cross term at fixed sigma "
             "against l*(sigma), the NPMLE bound (about 15 minutes on the pinwheel, an hour on digits)")
    add("--gradient-study", action="store_true",
        help="instead of the check: each gradient estimator's bias and signal-to-noise ratio against K, at the initial, "
             "part-way and trained pinwheel MMVAE (about 15 minutes)")
    add("--augment", choices=("none", "flip"), default=None,
        help="with --data digit-views: flip adds (mirrored x1, the same x2) for every pair (default none)")


def study_flags_not_applying(args):
    """[(flag, what it applies to)] for every flag given where it does not apply."""
    views, study = args.data == "digit-views", bool(args.study)
    sets_its_own = study or args.gradient_study or args.bound_study            # these train their own settings
    return [(flag, reason) for flag, given, reason in (
        ("--sweep", args.sweep and (args.data != "pinwheel" or study), "the check on the pinwheel"),
        ("--sweep-ks", args.sweep_ks is not None and not args.sweep, "--sweep, which is not given"),
        ("--auxiliary", args.auxiliary is not None and sets_its_own, "MMVAE+ in the check (the studies set their own)"),
        ("--importance-samples", args.importance_samples > 1 and (views or sets_its_own), "the check (the studies set their own)"),
        ("--decoder-std", args.decoder_std is not None and (views or sets_its_own), "the check on the pinwheel or digits"),
        ("--models", (views and not set(args.models) <= set(S.PAPER_MODELS)) or (sets_its_own and args.models != list(S.PAPER_MODELS)),
         "the check (the studies set their own; the views train the paper's two)"),
        ("--study", study and args.data not in ("pinwheel", "digits"), "--data pinwheel or digits"),
        ("--gradient-study", args.gradient_study and (study or args.data != "pinwheel" or args.sweep), "--data pinwheel, without --study or --sweep"),
        ("--bound-study", args.bound_study and (study or args.data not in ("pinwheel", "digits") or args.sweep or args.gradient_study),
         "--data pinwheel or digits, alone"),
        ("--study-seeds", args.study_seeds is not None and not study, "--study, which is not given"),
        ("--study-gradients", args.study_gradients != list(B.GRADIENTS) and not (study and "importance-samples" in args.study),
         "--study importance-samples"),
        ("--gradient", args.gradient != "iwae" and (views or sets_its_own), "the check (the studies set their own)"),
        ("--test-fraction", args.test_fraction is not None and (args.gradient_study or args.bound_study), "the check and --study"),
        ("--dtype", args.dtype != "float64" and (args.gradient_study or args.bound_study), "the check, --study, --sweep and the views"),
        ("--augment", args.augment is not None and not views, "--data digit-views"),
        ("--likelihood", args.likelihood != "gaussian" and (views or sets_its_own or args.sweep),
         "the check (the studies, the sweep and the views train the paper's Gaussian decoder)")) if given]


def add_arguments(parser):
    """Every flag of studies.py: the check's (with --data digit-views) and the experiments'."""
    C.add_check_arguments(parser, data_choices=("pinwheel", "digits", "digit-views"))
    add_study_arguments(parser)


def flags_not_applying(args):
    """[(flag, what it applies to)] of the check's and the experiments' flags."""
    return C.flags_not_applying(args) + study_flags_not_applying(args)


def settle(args):
    """The experiments' defaults that depend on other flags: --sweep-ks, --augment. ValueError: a --sweep-ks beyond the points."""
    per_class = args.per_class or (C.QUICK if args.quick else C.FULL)["per_class"]
    S.fail_unless(not args.sweep or max(args.sweep_ks or [1]) <= per_class,
                  f"--sweep-ks: k = {max(args.sweep_ks or [1])} exceeds the {per_class} points per class")
    args.sweep_ks = args.sweep_ks or [1, 2, 4, 8, 16, 32]
    args.augment = args.augment or ("none" if args.data == "digit-views" else None)
    return args


def configure(args):
    """(config, Data): the views' own (augmentation.configure_views) or the check's (configuration.configure)."""
    return A.configure_views(args) if args.data == "digit-views" else C.configure(args)


def parse_args(argv):
    """The command line read once: (config, Data); parser.error names the first thing that cannot run, before any work."""
    parser = argparse.ArgumentParser(prog="studies.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    add_arguments(parser)
    args = R.refuse_repeats(parser, argv)
    not_applying = flags_not_applying(args)
    if not_applying:
        parser.error("; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    if not (args.sweep or args.study or args.gradient_study or args.bound_study or args.data == "digit-views"
            or args.importance_samples > 1 or "mmvaeplus" in args.models):
        print("studies.py: nothing beyond the check: give --sweep, --study, --gradient-study, --bound-study, --data digit-views, "
              "--importance-samples K > 1 or --models ... mmvaeplus (the check alone is theorem_check.py; --help lists every flag)",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        return configure(settle(args))
    except ValueError as error:
        parser.error(str(error))


def from_keywords(**options):
    """(config, Data) of studies.py's flags given as Python values by name (configuration.from_keywords): plots.py's sweep."""
    return C.from_keywords(add_arguments, flags_not_applying, finish=settle, configure_with=configure, **options)


# ================================================================ the run

def run_check_with_experiments(config, data, print_fn, later=0.0, done=None):
    """theorem_check's check, and the experiments that apply: the sweep, the K-sample cross term, MMVAE+'s private latent.
    later, done: the check's evaluation's estimated seconds and the rows evaluated for it (T.run_estimate)."""
    results, trained = T.check(config, data, print_fn, later, done)
    checks, findings = [], []
    if config["sweep"]:
        results["sweep"] = SW.run_sweep(config, data, print_fn)
        findings += SW.sweep_findings(results["sweep"]) if "mmvae" in config["models"] else []
    if "mmvaeplus" in trained:
        results["mmvaeplus_diagnostics"] = P.private_latent_diagnostics(trained["mmvaeplus"][0], data.x1, data.labels, data.num_classes,
                                                                        npr.default_rng([config["seed"], 8]))
    if config["importance_samples"] > 1:
        added, k_checks, k_findings = BK.k_sample_experiment(config, data, trained)
        results.update(added)
        checks, findings = checks + k_checks, findings + k_findings
    results["checks"] += T.as_dicts(checks)
    results["findings"] += T.as_dicts(findings)
    return results


def runner(config):
    """The run config asks for: a study, the gradient or bound study, the views, or the check with its experiments."""
    return (CS.run_study if config["study"] else CS.run_gradient_study if config["gradient_study"] else BK.run_bound_study
            if config["bound_study"] else A.run_views if config["data"] == "digit-views" else run_check_with_experiments)


def estimate_of(run):
    """The seconds a run other than the check is estimated to take, measured before it (each experiment's own estimate)."""
    return {CS.run_study: CS.study_estimate, CS.run_gradient_study: CS.gradient_study_estimate, BK.run_bound_study: BK.bound_study_estimate,
            A.run_views: A.views_estimate}[run]


def print_experiments(results, config):
    """The tables: the check's and the experiments', or the study's, or the views'."""
    if "study" in results:
        print(CS.format_study(results))
    elif "bound_study" in results:
        print(BK.format_bound_study(results["bound_study"]))
    elif "gradient_study" in results:
        print(CS.format_gradient_study(results["gradient_study"]))
    elif "views" in results:
        print(A.format_views(results))
    else:
        print(tables.format_table(results["rows"]))
        if "held_out" in results:
            print(tables.format_held_out(results["rows"]))
        print(R.wrap(tables.format_notes(results, config)))
    if results.get("mmvaeplus_diagnostics"):
        print("\n" + P.format_private_diagnostics(results["mmvaeplus_diagnostics"]))
    if results.get("sweep"):
        print("\n" + SW.format_sweep(results["sweep"], config["models"]))
    if results.get("k_sample_cross_terms"):
        print("\n" + BK.format_k_sample(results["k_sample_cross_terms"]))


def describe(config, data):
    """The configuration line printed first: what the run will use."""
    if config["data"] == "digit-views":
        return A.describe_views(config)
    run = f"jobs={config['jobs']}, quick={config['quick']}, json={config['json']}"
    if config["bound_study"]:
        return f"{C.describe_data(config, data)}, bound study (K {' '.join(map(str, BK.BOUND_KS))}), {run}"
    if config["gradient_study"]:
        return f"{C.describe_data(config, data)}, gradient study of mmvae, {run}"
    if config["study"]:
        return f"{C.describe_data(config, data)}, {CS.describe_study(config)}, held out={C.describe_held_out(config, data)}, {run}"
    return C.describe(config, data) + (f", sweep ks={' '.join(map(str, config['sweep_ks']))}" if config["sweep"] else "")


def main(argv=None):
    R.keep_freed_memory()
    config, data = parse_args(argv)
    start = time.perf_counter()

    def body():
        progress, run = None if config["quiet"] else R.progress(start), runner(config)
        if run is run_check_with_experiments:                                          # the check's run estimated first
            trainings = 1 + (len(config["sweep_ks"]) if config["sweep"] else 0)             # the sweep's: one per k and model
            results = run(config, data, progress, *T.announce("studies", describe(config, data), config, data, start, trainings))
        else:
            print(R.wrap("studies configuration: " + describe(config, data)), flush=True)
            seconds = estimate_of(run)(config, data)                                    # estimated first, as the check's
            if not config["quiet"] or seconds > T.LONG_RUN:
                R.print_progress(start, f"estimate: about {R.duration(seconds)} in all (each kind of step timed here)")
            results = run(config, data, progress)
        print_experiments(results, config)
        return R.report(results, config["json"], start, tables.format_per_label(results) if "rows" in results else "")
    return R.interruptible(body)


if __name__ == "__main__":
    sys.exit(main())
