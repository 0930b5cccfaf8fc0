"""configuration: a run's command line read once, into a configuration (a dict, the JSON's "config") and its data.

read_command_line(parser, argv) and from_keywords(add_arguments, **options) (check_arrays, plots.py) both end in
configure(args), which reads the data once (the pinwheel drawn, the digits file or yours read and hashed), holds points out
if asked, refuses what cannot run, and returns (config, Data). Everything below the scripts' main() receives those two and
never sees argparse. Also here: what the configuration trains (train_model, untrained_params) and the configuration line.
The refusals are together at the end. No mathematics here.
"""
import argparse
from typing import NamedTuple

import autograd.numpy as np
import numpy.random as npr

from extensions import beyond_the_paper as B
from extensions import data_sets as D
from extensions import likelihoods as LK
from extensions import log_likelihood as L
from cli import runs as R
import surjvae_np as S

# ================================================================ the settings a run starts from

# nodes: Gauss-Hermite nodes per latent dimension to start from, doubled up to max_nodes until L_1 stops moving, else
# Monte Carlo (mc_repeats x mc_draws per point: many repeats, so that its SE is itself well estimated). fixed_draws: the
# deterministic L_1's draws beyond 2 latent dimensions. log p(x1|x2) (L.log_p_x1_given_x2): the grid from grid_nodes
# per axis (at most 3 latent dimensions), else importance sampling with conditional_samples draws per point.
QUICK = dict(per_class=100, steps=250, nodes=32, max_nodes=256, mc_repeats=40, mc_draws=4, direct_steps=150, directions=4, grid_nodes=32,
             conditional_samples=500, latent_dim=2, hidden=(32,), peak_step_size=S.STEP_SIZE, fixed_draws=256, direct_peak_step_size=0.05, direct_samples=4,
             likelihood="gaussian")     # the paper's f_1; --likelihood sets it (the presets serve as configurations in the tests)
FULL = dict(QUICK, per_class=500, steps=None, nodes=64, mc_repeats=80, direct_steps=300, directions=8, conditional_samples=2000)
# Digits (beyond the paper): all 1797 images, 10 labels, latent 8 (docs/digits.md). Direct maximisation: 1200 steps at peak
# 0.01 (600 steps at 0.02 leave class 8 of seed 0 0.065 nats per image short of the bound; these, every class within 0.002).
DIGITS = dict(FULL, per_class=None, steps=3000, latent_dim=8, hidden=(128,), peak_step_size=0.005, direct_steps=1200,
              direct_peak_step_size=0.01, direct_samples=2, private_dim=4)
DIGITS_QUICK = dict(DIGITS, steps=600, peak_step_size=0.02, mc_repeats=40, directions=4, hidden=(64,), direct_steps=600,
                    direct_peak_step_size=0.02, conditional_samples=200, fixed_draws=64)
MIN_PER_CLASS = 20              # smaller classes are too few points for the direct-maximisation check
STEPS_BEYOND_TWO_CLASSES = 3 * S.NUM_STEPS    # 3+ pinwheel classes (2: S.NUM_STEPS): doubling either moves the spread less than the seeds
SPLIT_SEED = 7                  # the digits' and your data's held-out points: one split for every --seed, so seeds are compared on the same points
HELD_OUT_SOURCE = {"pinwheel": "a fresh pinwheel sample, default_rng([seed, 7])",
                   "split": "a stratified split of the data, the same for every seed (default_rng(7))"}


class Data(NamedTuple):
    """A run's data, read once."""
    x1: np.ndarray               # (N, D) the points trained on
    labels: np.ndarray           # (N,) their classes 0..C-1
    radial: np.ndarray | None    # the pinwheel's radial coordinate (the sweep refines labels by it); None for other data
    num_classes: int
    held_out: tuple | None       # (x1, labels, num_classes) never trained on (--test-fraction), or None
    label_names: list | None     # your data's labels as the file or arrays have them, by class; None for the pinwheel and digits
    sha256: str | None           # your file's SHA-256; None for arrays, the pinwheel and digits


# ================================================================ the command line, and keywords, read once

def add_check_arguments(parser, data_choices=("pinwheel", "digits")):
    """The flags of the check, which studies.py takes too, in groups: the data, the models and their training, K and the
    gradient estimator, the output."""
    add = parser.add_argument_group("the data").add_argument
    add("--data", type=R.data_choice(data_choices), default="pinwheel", metavar="{" + ",".join(data_choices) + ",PATH}",
        help="the paper's pinwheel (default), handwritten digits" + (", paired views of digits (digit-views, the augmentation test)"
        if "digit-views" in data_choices else "") + ", or your own data: a .csv with a header and a label column (its separator "
        f"sniffed), or a .npz holding x1 and labels; every label needs {MIN_PER_CLASS} points or more")
    add("--label-column", default=None, metavar="NAME", help="with --data FILE.csv: the column of labels (default label)")
    add("--drop-columns", nargs="+", default=None, metavar="NAME", help="with --data FILE.csv: columns to leave out of x1 (an id, say)")
    add("--test-fraction", type=R.fraction, default=None, metavar="F", help="also measure log p(x1|x2), coherence and the spread ratio "
        "on points never trained on, F of all points: on the pinwheel a fresh sample (another seed); on digits and your data a "
        "stratified split, the same for every --seed (default: none held out)")
    add("--classes", type=R.int_at_least(2), default=2, help="the pinwheel only: its number of arms (labels), >= 2 (default 2)")
    add("--per-class", type=R.int_at_least(MIN_PER_CLASS), default=None,
        help=f"the pinwheel only: points per class (default {FULL['per_class']}, --quick {QUICK['per_class']})")
    add = parser.add_argument_group("the models and their training").add_argument
    add("--models", nargs="+", choices=B.MODELS, default=list(S.PAPER_MODELS),
        help="models to train and check: the paper's (default mvae mmvae), and beyond it mopoe (MoPoE) and mmvaeplus (MMVAE+)")
    add("--seed", type=R.int_at_least(0, S.MAX_SEED), default=0, help="seed for data, initialisation and training (default 0)")
    add("--latent", type=R.int_at_least(1), default=None, help="latent size (default 2; 8 on digits)")
    add("--hidden", type=R.int_at_least(1), nargs="+", default=None, metavar="H",
        help="hidden layer sizes of every network (default 32; 128 on digits)")
    add("--steps", type=R.int_at_least(1), default=None, help=f"training steps per model (default {S.NUM_STEPS} for 2 classes, "
        f"{STEPS_BEYOND_TWO_CLASSES} for more, {DIGITS['steps']} on digits; --quick {QUICK['steps']}, {DIGITS_QUICK['steps']})")
    add("--decoder-std", type=R.positive_number, default=None, metavar="S", help="fix the x1 decoder's std at S in x1's units (default learned)")
    add("--likelihood", choices=LK.FAMILIES, default="gaussian", help="the x1 decoder's family f_1: the paper's isotropic gaussian "
        "(default), laplace (one scale, as the MMVAE's images; --decoder-std fixes the scale) or bernoulli (per pixel, as the MVAE's "
        "binarised images: --data digits binarised at pixel >= 8 of 16, or your own data of 0s and 1s); the MVAE and the MMVAE, K = 1")
    add("--private-dim", type=R.int_at_least(1), default=None, help="MMVAE+'s private latent size (default 1 on the pinwheel, 4 on digits)")
    add("--auxiliary", choices=tuple(B.AUXILIARY), default=None, help="MMVAE+'s auxiliary priors: free log-variances (default), "
        "softplus scales (the authors' Normal variant) or softmax scales of mean one (the authors' Laplace variant)")
    add("--dtype", choices=("float64", "float32"), default="float64", help="the training's precision (default float64); float32 "
        "steps cost about half. Every check, L_1 and log p is evaluated in float64 on the trained parameters")
    add("--jobs", type=R.int_at_least(1), default=2, help="processes for training (default 2; results do not depend on it)")
    add("--quick", action="store_true", help="smaller everything (for tests; on your data its shorter direct maximisation "
        "can stop short of the bound and FAIL: run the default, twice as long)")
    add = parser.add_argument_group("K importance samples and the gradient estimator (the MMVAE and MoPoE)").add_argument
    add("--importance-samples", type=R.int_at_least(1), default=1, metavar="K",
        help="train the MMVAE and MoPoE with K importance samples per stratum (Shi et al.'s m_iwae_looser; default 1, Eq. 5)")
    add("--gradient", choices=B.GRADIENTS, default="iwae", help="the MMVAE's and MoPoE's gradient estimator: iwae (autograd's gradient "
        "of the objective, default), stl (what the MMVAE's official code computes), dreg (Tucker et al.'s, as intended; biased for "
        "the mixture) or dreg-mix (DReG made unbiased for the stratified mixture)")
    add = parser.add_argument_group("log p(x1|x2)").add_argument
    add("--annealed", action="store_true", help="where log p(x1|x2) is importance-sampled (beyond 3 latent dimensions), call a "
        "point reliable only where annealed importance sampling (extensions/annealed.py), which searches no mode, agrees too: "
        "a second opinion at about a hundred times importance sampling's cost per point (docs/log_likelihood.md)")
    add = parser.add_argument_group("the output").add_argument
    add("--json", metavar="PATH", type=R.output_file, help="write every number and check to PATH")
    add("--quiet", action="store_true", help="print only the table, the checks and the time")
    add("--save-params", action="store_true", help="write the trained parameters into the --json file too (plots.py --from-json "
        "draws Fig. 2 and 3 from them); without it the file holds every number and the data, not the parameters")


def read_command_line(parser, argv, flags_not_applying):
    """(config, Data) of argv, parsed by parser (its flags added); parser.error names the first thing that cannot run, before
    any work. flags_not_applying(args): [(flag, what it applies to)] of flags given where they do not apply."""
    args = R.refuse_repeats(parser, argv)
    not_applying = flags_not_applying(args)
    if not_applying:
        parser.error("; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    try:
        return configure(args)
    except ValueError as error:
        parser.error(str(error))


def from_keywords(add_arguments, flags_not_applying, arrays=None, finish=None, configure_with=None, **options):
    """(config, Data) as read_command_line gives for the same flags, from Python values by the flags' names (seed=1,
    hidden=(64,), quick=True, ...): each checked by its flag's own type and choices. arrays: (x1, labels), your data as
    arrays (config["data"] "arrays"). finish(args): a script's defaults that depend on other flags, then configure_with(args)
    (configure unless given). A bad name or value is a ValueError naming it."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    actions = {action.dest: action for action in parser._actions}                 # argparse's list of every flag, groups included
    args = parser.parse_args([])                                                  # the defaults
    for name, value in options.items():
        S.fail_unless(name in actions, f"unknown option {name!r}; the options are {', '.join(sorted(actions))}")
        setattr(args, name, keyword_value(actions[name], value))
    if arrays is not None:
        args.data, args.arrays = "arrays", arrays
    not_applying = flags_not_applying(args)
    S.fail_unless(not not_applying, "; ".join(f"{flag} applies only to {reason}" for flag, reason in not_applying))
    return (configure_with or configure)(finish(args) if finish else args)


def keyword_value(action, value):
    """value for a flag's action, checked as the flag's text is (its type, its choices, a list for nargs="+")."""
    flag = f"argument {action.option_strings[0]}"
    if action.nargs == 0:                                                     # a switch: store_true
        S.fail_unless(isinstance(value, bool), f"{flag}: must be True or False, got {value!r}")
        return value
    many = action.nargs == "+"
    S.fail_unless(not many or (isinstance(value, (list, tuple)) and len(value) > 0), f"{flag}: must be a non-empty list, got {value!r}")
    values = list(value) if many else [value]
    try:
        values = [action.type(v) if action.type else v for v in values]
    except argparse.ArgumentTypeError as error:
        raise ValueError(f"{flag}: {error}") from None
    for v in values:
        S.fail_unless(action.choices is None or v in action.choices,
                      f"{flag}: invalid choice: {v!r} (choose from {', '.join(map(str, action.choices or ()))})")
    S.fail_unless(not many or len(set(map(str, values))) == len(values), f"{flag}: lists a value twice (give each once)")
    return values if many else values[0]


def configure(args):
    """(config, Data): the settings of the run (the arguments, and the preset they choose with what they change) and its
    data, read once. ValueError names what cannot run."""
    table = own_table(args)
    preset = preset_config(args, table)
    config = dict({name: value for name, value in vars(args).items() if name not in ("arrays", "latent")}, **preset)   # latent_dim: as run
    data = read_data(config, table)
    if config["data"] != "pinwheel":                                     # the configuration as run: the data's labels, no pinwheel sizes
        config.update(classes=data.num_classes, per_class=None)
    refuse_small_labels(config, data)
    refuse_far_offset(data)
    refuse_far_decoder_std(config, data)
    refuse_large_steps(config, data)
    refuse_non_binary(config, data)
    return config, data


def preset_config(args, table):
    """The run's sizes and architecture: QUICK, FULL or the digits', with --per-class, --steps, --latent, --hidden and
    --private-dim, and the training's options."""
    options = dict(decoder_std=args.decoder_std, importance_samples=args.importance_samples, gradient=args.gradient,
                   auxiliary=args.auxiliary or "free", dtype=args.dtype, likelihood=args.likelihood)
    if args.data == "digits":
        preset = DIGITS_QUICK if args.quick else DIGITS
        return dict(preset, steps=args.steps or preset["steps"], private_dim=args.private_dim or preset["private_dim"], **options,
                    latent_dim=args.latent or preset["latent_dim"], hidden=tuple(args.hidden) if args.hidden else preset["hidden"])
    preset = dict(QUICK if args.quick else FULL, private_dim=args.private_dim or 1, **options)
    preset["per_class"] = args.per_class or preset["per_class"]
    classes = args.classes if table is None else len(table[2])
    preset["steps"] = args.steps or preset["steps"] or (S.NUM_STEPS if classes == 2 else STEPS_BEYOND_TWO_CLASSES)
    return dict(preset, latent_dim=args.latent or preset["latent_dim"], hidden=tuple(args.hidden) if args.hidden else preset["hidden"])


# ================================================================ the data, read once

def own_table(args):
    """Your data (--data FILE, or from_keywords' arrays) as (x1, labels, label names, SHA-256 or None); None for the pinwheel
    and digits. The file is read and hashed here, once per run."""
    if getattr(args, "arrays", None) is not None:
        x1, labels = np.asarray(args.arrays[0]), args.arrays[1]
        S.check_array(x1, "x1", 2)
        S.fail_unless(np.ndim(labels) == 1 and len(labels) == len(x1), f"labels must be one per row of x1: {np.shape(labels)} for {np.shape(x1)}")
        S.fail_unless(len(np.unique(labels)) >= 2, f"the data need at least two labels, got {len(np.unique(labels))}")
        return (np.asarray(x1, dtype=float), *D.label_indices(np.asarray(labels)), None)
    if args.data in ("pinwheel", "digits", "digit-views"):
        return None
    return D.load_table(args.data, args.label_column or "label", args.drop_columns or ())


def read_data(config, table):
    """The Data of the run: the pinwheel drawn from its seed, the digits or your table less the points --test-fraction holds
    out (a stratified split, the same for every seed), and those held-out points (the pinwheel's: a fresh sample)."""
    if config["data"] == "pinwheel":
        x1, labels, radial = S.make_pinwheel(num_classes=config["classes"], num_per_class=config["per_class"],
                                             rng=npr.default_rng([config["seed"], 3]), return_radial=True)
        return Data(x1, labels, radial, config["classes"], pinwheel_held_out(config), None, None)
    x1, labels, names, sha256 = (*D.load_digits(), list(range(10)), None) if config["data"] == "digits" else table
    if config["data"] == "digits" and config["likelihood"] == "bernoulli":
        x1 = (x1 >= 0.5).astype(float)                                        # binarised: pixel >= 8 of 16 (x1 is the count / 16)
    num_classes = len(names)
    if not config["test_fraction"]:
        return Data(x1, labels, None, num_classes, None, None if table is None else list(names), sha256)
    try:
        held = D.stratified_split(labels, config["test_fraction"], npr.default_rng(SPLIT_SEED))
    except ValueError as error:
        raise ValueError(f"--test-fraction: {error}") from None
    return Data(x1[~held], labels[~held], None, num_classes, (x1[held], labels[held], num_classes),
                None if table is None else list(names), sha256)


def pinwheel_held_out(config):
    """The pinwheel's held-out points (x1, labels, num_classes), or None without --test-fraction F: a fresh sample from its
    generator under another seed, round(F n / (1 - F)) points per class (F of all points, as a split's)."""
    fraction = config["test_fraction"]
    if not fraction:
        return None
    per_class = int(round(config["per_class"] * fraction / (1.0 - fraction)))
    S.fail_unless(per_class >= 1, f"--test-fraction: a held-out fraction of {fraction:g} holds out no pinwheel point "
                  f"({config['per_class']} per class)")
    x1, labels = S.make_pinwheel(num_classes=config["classes"], num_per_class=per_class, rng=npr.default_rng([config["seed"], 7]))
    return x1, labels, config["classes"]


def held_out_record(config, held_out):
    """The JSON's "held_out": the points, their labels, their own label coherence and where they come from."""
    return {"x1": held_out[0].tolist(), "labels": held_out[1].tolist(), "coherence": L.leave_one_out_coherence(*held_out[:2]),
            "source": HELD_OUT_SOURCE["pinwheel" if config["data"] == "pinwheel" else "split"]}


def data_file_record(config, data):
    """The JSON's "data_file" for your data: its name ("arrays" for arrays), SHA-256 and label names."""
    return {"name": config["data"], "sha256": data.sha256, "label_names": [str(name) for name in data.label_names]}


def tree_to_lists(tree):
    """Parameters as nested lists, for JSON."""
    return S.tree_rebuild(tree, iter([np.asarray(leaf).tolist() for leaf in S.tree_leaves(tree)]))


# ================================================================ what the configuration trains

def train_model(model, x1, x2, seed, config, print_fn=None):
    """One model trained with the run's configuration (B.train): (params in float64, objective per step). The x1 decoder's
    std (None: learned), the precision, K and the gradient (the MMVAE and MoPoE), MMVAE+'s private latent. print_fn: 5 lines."""
    return B.train(model, x1, x2, seed, config["latent_dim"], config["hidden"], num_steps=config["steps"], print_fn=print_fn,
                   log_every=max(1, config["steps"] // 5), step_size=S.decaying_step_size(config["peak_step_size"], config["steps"]),
                   dtype=getattr(np, config["dtype"]), **model_options(model, config))


def model_options(model, config):
    """B.train's options that depend on the model: the decoder std, K and the gradient (MMVAE, MoPoE), MMVAE+'s private latent."""
    options = {"decoder_std": config["decoder_std"], "likelihood": config["likelihood"]}
    if model in ("mmvae", "mopoe"):
        options.update(importance_samples=config["importance_samples"], gradient=config["gradient"])
    if model == "mmvaeplus":
        options.update(private_dim=config["private_dim"], auxiliary=config["auxiliary"])
    return options


def untrained_params(model, config, x1, num_classes, seed):
    """The same networks as a trained model's at step 0 (B.train's start, its decoder std fixed if set), in x1's units."""
    shift, scale = B.x1_units(x1, config["likelihood"])
    params = B.init_model_params(model, S.init_rng(seed), num_classes, config["latent_dim"], np.shape(x1)[1], config["hidden"],
                                 *(model_options(model, config).get(key) for key in ("private_dim", "auxiliary")))
    fixed = {} if config["decoder_std"] is None else {"decoder_x1_log_var": np.array(2.0 * np.log(config["decoder_std"] / scale))}
    return S.change_x1_units.__wrapped__(dict(params, **fixed), shift, scale)


# ================================================================ the configuration line

def describe(config, data):
    """The configuration line printed first: what the run will use, defaults filled in."""
    mmvaeplus = f", MMVAE+ private dim={config['private_dim']}, auxiliary={config['auxiliary']}" if "mmvaeplus" in config["models"] else ""
    return (f"{describe_data(config, data)}, models={' '.join(config['models'])}{mmvaeplus}, steps per model={config['steps']}, latent={config['latent_dim']}, hidden={config['hidden']}, "
            f"f_1={config['likelihood']}, decoder {'scale' if config['likelihood'] == 'laplace' else 'std'}="
            f"{config['decoder_std'] or ('none' if config['likelihood'] == 'bernoulli' else 'learned')}, importance samples K={config['importance_samples']}, "
            f"gradient={config['gradient']}, training dtype={config['dtype']}, held out={describe_held_out(config, data)}, "
            f"{'log p checked by AIS, ' if config.get('annealed') else ''}"
            f"jobs={config['jobs']}, quick={config['quick']}, json={config['json']}")


def describe_data(config, data):
    """The configuration line's start: the seed and the data."""
    where = {"digits": "digits (1797 images, 10 labels" + (", binarised at pixel >= 8 of 16)" if config["likelihood"] == "bernoulli" else ")"), "pinwheel": f"pinwheel ({config['classes']} classes x {config['per_class']} points)"}
    return f"seed={config['seed']}, data={where.get(config['data']) or describe_own_data(config, data)}"


def describe_own_data(config, data):
    """Your data in the configuration line: the file (or "arrays"), its points, columns and labels."""
    points = len(data.x1) + (0 if data.held_out is None else len(data.held_out[0]))
    return f"{config['data']} ({points} points, {data.x1.shape[1]} columns, {data.num_classes} labels)"


def describe_held_out(config, data):
    """--test-fraction in the configuration line: "none", or the fraction and how many points it holds out."""
    return "none" if data.held_out is None else f"{config['test_fraction']:g} ({len(data.held_out[0])} points, never trained on)"


# ================================================================ refusals, before any work (ValueError; the scripts' parser.error)

def flags_not_applying(args):
    """[(flag, what it applies to)] for every flag of the check given where it does not apply."""
    pinwheel, plus, mixtures = args.data == "pinwheel", "mmvaeplus" in args.models, bool({"mmvae", "mopoe"} & set(args.models))
    return [(flag, reason) for flag, given, reason in (
        ("--classes", args.classes != 2 and not pinwheel, "the pinwheel"), ("--per-class", args.per_class is not None and not pinwheel, "the pinwheel"),
        ("--test-fraction", args.test_fraction is not None and args.data == "digit-views", "the pinwheel, digits and your data"),
        ("--label-column", args.label_column is not None and not str(args.data).endswith(".csv"), "--data FILE.csv"),
        ("--drop-columns", args.drop_columns is not None and not str(args.data).endswith(".csv"), "--data FILE.csv"),
        ("--private-dim", args.private_dim is not None and not plus, "MMVAE+ (--models ... mmvaeplus)"),
        ("--auxiliary", args.auxiliary is not None and not plus, "MMVAE+ (--models ... mmvaeplus)"),
        ("--importance-samples", args.importance_samples > 1 and not mixtures, "the MMVAE and MoPoE (--models ... mmvae)"),
        ("--gradient", args.gradient != "iwae" and not mixtures, "the MMVAE and MoPoE (--models ... mmvae)"),
        ("--likelihood", args.likelihood != "gaussian" and (not set(args.models) <= set(S.PAPER_MODELS) or args.importance_samples > 1
                                                          or args.gradient != "iwae"), "the mvae and the mmvae at K = 1 with the iwae gradient"),
        ("--likelihood bernoulli", args.likelihood == "bernoulli" and args.data in ("pinwheel", "digit-views"), "--data digits (binarised) "
         "or your data of 0s and 1s"),
        ("--decoder-std", args.decoder_std is not None and args.likelihood == "bernoulli", "the gaussian and laplace likelihoods"),
        ("--annealed", args.annealed and args.likelihood != "gaussian", "the gaussian likelihood (the other families' log p is a grid)"))
        if given]


def refuse_small_labels(config, data):
    """Every label of the digits or your data keeps at least MIN_PER_CLASS points to train on (the pinwheel's --per-class
    is refused below it by its flag)."""
    small = [c for c in range(data.num_classes) if np.sum(data.labels == c) < MIN_PER_CLASS]
    names = data.label_names or list(range(data.num_classes))
    S.fail_unless(not small or config["data"] == "pinwheel", f"labels {', '.join(str(names[c]) for c in small)} have fewer than "
                  f"{MIN_PER_CLASS} points to train on: too few for the checks (direct maximisation and Monte Carlo per class); "
                  + ("hold out fewer (--test-fraction)" if config["test_fraction"] else "merge or drop them"))


def refuse_non_binary(config, data):
    """--likelihood bernoulli on your data: every value of x1 is 0 or 1 (the digits are binarised by read_data)."""
    values = np.unique(data.x1)
    S.fail_unless(config["likelihood"] != "bernoulli" or np.all(np.isin(values, (0.0, 1.0))), "--likelihood bernoulli needs x1 of 0s and "
                  f"1s; the data hold {len(values)} distinct values (e.g. {values[len(values) // 2]:g}): binarise them first")


OFFSET_LIMIT = 1e8     # a column's mean over x1's spread beyond which float64 holds under 1e-8 of that spread


def refuse_far_offset(data):
    """x1 with variation (S.x1_standardisation refuses constant data), and not so far from the origin, compared with its
    spread, that float64 loses the spread's digits (any scale is handled: the training standardises x1, and every
    density the check evaluates is expanded about the data's mean)."""
    shift, scale = S.x1_standardisation(data.x1)
    column = int(np.argmax(np.abs(shift)))
    if abs(shift[column]) > OFFSET_LIMIT * scale:
        raise ValueError(f"x1's column {column} (counting from 0) lies {abs(shift[column]) / scale:.2g} times the data's spread from the "
                         f"origin (mean {shift[column]:.6g}, spread {scale:.3g}): float64 keeps only about "
                         f"{abs(shift[column]) / scale * 2.2e-16:.1g} of the spread there; subtract an offset (the column's mean, say) first")


DECODER_STD_RANGE = (1e-4, 1e4)   # --decoder-std over the data's std: beyond it the standardised log-variance over- or underflows


def refuse_far_decoder_std(config, data):
    """--decoder-std within DECODER_STD_RANGE times the data's std (the training's standardised units)."""
    ratio = (config["decoder_std"] or 1.0) / S.x1_standardisation(data.x1)[1]
    if config["decoder_std"] is not None and not DECODER_STD_RANGE[0] <= ratio <= DECODER_STD_RANGE[1]:
        raise ValueError(f"--decoder-std {config['decoder_std']:g} is {ratio:.3g} x the data's std; it must lie within "
                         f"{DECODER_STD_RANGE[0]:g}..{DECODER_STD_RANGE[1]:g} x (float64 would over- or underflow)")


MEMORY_BUDGET_GIB = 4.0           # a run whose training step would hold more is refused before it starts


def refuse_large_steps(config, data):
    """--importance-samples or --private-dim whose training step would hold more than MEMORY_BUDGET_GIB (step_bytes)."""
    latent = config["latent_dim"] + (config["private_dim"] if "mmvaeplus" in config["models"] else 0)
    for flag, samples, given in (("--importance-samples", config["importance_samples"], config["importance_samples"] > 1),
                                 ("--private-dim", 1, config["private_dim"] is not None and "mmvaeplus" in config["models"])):
        gib = step_bytes(samples, latent, np.shape(data.x1)[1], data.num_classes, config["hidden"]) / 2 ** 30
        S.fail_unless(not given or gib <= MEMORY_BUDGET_GIB, f"{flag}: a training step would hold about {gib:.3g} GiB, more than "
                      f"this script's budget of {MEMORY_BUDGET_GIB:g} GiB")


def step_bytes(samples, latent, data_dim, num_classes, hidden):
    """An estimate of a training step's memory: 8 bytes (float64) x 3 copies (the forward value, its cotangent, one temporary)
    of what scales with the samples, K samples x 2 strata x S.BATCH_SIZE rows of the decoders' activations (two decoders'
    hidden layers, the latent's sample, mean, log-variance and noise, and the outputs), plus the weight matrices (each
    network's first and last layer at the widest hidden size, twice: value and gradient)."""
    activations = 2 * sum(hidden) + 4 * latent + data_dim + num_classes
    weights = (data_dim + num_classes + 2 * latent) * max(hidden) * 2
    return 8.0 * 3 * (samples * 2 * S.BATCH_SIZE * activations + weights)
