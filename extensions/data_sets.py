"""data_sets: the data beyond the paper's pinwheel. The surjectivity sweep's finer labels; real surjective data, handwritten
digits; your own data from a file, and the stratified split that holds some of it out; and the paper's augmentation
warning as an experiment, paired views of digits, one-to-one until x1 is mirrored. Composed of surjvae_np's functions; input checks at the end. surjvae_np never imports this module.
"""
import csv
import gzip
import hashlib
import io
import math
import os

import autograd.numpy as np
import numpy as onp

import surjvae_np as S


def checked_with(registry):
    """S.checked with another registry of this module (at its end): DIGITS_CHECKS take 8 x 8 images, VIEWS_CHECKS the views' params."""
    return lambda function: S.checked(function, registry)


# ---------------------------------------------------------------- 1. the surjectivity sweep's labels

@S.checked
def refine_labels(position, labels, k):
    """Split each class into k sub-labels of (near) equal size by position along its pinwheel arm.

    position (N,): the radial coordinate r of make_pinwheel(return_radial=True) (|x1| would misplace
    the rare points with r < 0). Sub-label j of class c is c k + j, j = 0 nearest the centre; k = 1 is
    the paper's setting. Returns (fine_labels (N,), x2 one-hot (N, C k)).
    """
    num_classes, fine = int(labels.max()) + 1, onp.zeros(len(labels), dtype=int)
    for c in range(num_classes):
        members = onp.flatnonzero(labels == c)
        order = members[onp.argsort(position[members], kind="stable")]            # centre -> tip
        fine[order] = c * k + (onp.arange(len(order)) * k) // len(order)
    return fine, S.one_hot(fine, num_classes * k)


# ---------------------------------------------------------------- 2. real surjective data: handwritten digits

# UCI Optical Recognition of Handwritten Digits, test set (E. Alpaydin and C. Kaynak; CC BY 4.0), the copy
# inside scikit-learn's wheel, unchanged: 1797 rows of 64 pixel counts 0..16 (8 x 8 images), then the label.
DIGITS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "digits.csv.gz")   # the repository's data/
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def regular_simplex(d):
    """The d + 1 vertices of a regular simplex in R^d, at distance 1 from their centroid, the origin: (d + 1, d). Tight clusters
    there are the hard case of npmle's certificate (D peaks at the centroid, inside the data's hull, at no data point)."""
    S.fail_unless(isinstance(d, int) and d >= 1, f"d must be an integer >= 1, got {d!r}")
    centred = onp.eye(d + 1) - 1.0 / (d + 1)                                     # d + 1 points in a d-dimensional hyperplane
    vertices = centred @ onp.linalg.svd(centred)[2][:d].T                         # their coordinates in it
    return vertices / onp.linalg.norm(vertices, axis=1, keepdims=True)


@S.checked
def load_digits(path=None):
    """The digits as x1 (N, 64) in [0, 1] (pixel counts / 16) and integer labels (N,) in 0..9, from path
    (default DIGITS_PATH). Checks the file's SHA-256 first: a missing or altered file is a ValueError naming it."""
    path = DIGITS_PATH if path is None else path
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise ValueError(f"cannot read the digits file {path}: {error.strerror}; it ships in the repository "
                         "as data/digits.csv.gz") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{path} is altered: its SHA-256 is {digest}, expected {DIGITS_SHA256}")
    table = onp.loadtxt(io.StringIO(gzip.decompress(content).decode("ascii")), delimiter=",")   # (N, 65)
    return table[:, :64] / 16.0, table[:, 64].astype(int)



# ---------------------------------------------------------------- 2b. your own data: a CSV or NPZ file of x1 and labels

@S.checked
def load_table(path, label_column="label", drop_columns=()):
    """A user's paired data: (x1 (N, D) floats, labels (N,) in 0..C-1, label names (C,), the file's SHA-256). A .csv file has a
    header; its column `label_column` holds the labels (any text), every other column not in drop_columns a number of x1; its
    separator is sniffed (comma, semicolon, tab or bar). A .npz file holds arrays x1 (N, D) and labels (N,). Labels that are all
    numbers are ordered as numbers (1, 2, 10), others as text. Refused with a ValueError naming the file, and the line and
    column where there is one: unreadable, not numeric, not finite, no label column, fewer than two labels."""
    S.fail_unless(path is not None and path.endswith((".csv", ".npz")), f"path must name a .csv or .npz file, got {path!r}")
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    x1, names = (_npz_table(path, content) if path.endswith(".npz") else
                 _csv_table(path, content.decode("utf-8", "replace"), label_column, tuple(drop_columns)))
    S.fail_unless(x1.ndim == 2 and x1.shape[1] >= 1 and len(x1) == len(names), f"{path}: x1 must be (N, D) with one label per row")
    S.fail_unless(onp.all(onp.isfinite(x1)), f"{path}: x1 contains NaN or infinite values")
    labels, values = label_indices(names)
    S.fail_unless(len(values) >= 2, f"{path}: the data need at least two labels, got {len(values)}")
    return x1, labels, values, hashlib.sha256(content).hexdigest()


@S.checked
def stratified_split(labels, fraction, rng):
    """Held-out points: a mask (N,), True on round(fraction n_c) points of every label c, drawn by rng (a fixed one gives the
    same split for every training seed). Refused if a label would hold out none, or keep fewer than two for training."""
    held_out = onp.zeros(len(labels), dtype=bool)
    for c in onp.unique(labels):
        members = onp.flatnonzero(labels == c)
        count = int(round(fraction * len(members)))
        S.fail_unless(1 <= count <= len(members) - 2, f"a held-out fraction of {fraction:g} holds out {count} of label {c}'s "
                      f"{len(members)} points; at least one must be held out and two kept")
        held_out[rng.choice(members, size=count, replace=False)] = True
    return held_out


def label_indices(values):
    """Labels of any kind (N,) as indices 0..C-1 (N,), and the C distinct values in that order: as numbers if every label
    reads as a number (so that 2 comes before 10), else as text."""
    values = onp.asarray(values)
    try:
        numbers = values.astype(float) if values.dtype.kind in "iufUS" else None
    except ValueError:
        numbers = None
    if numbers is None or not onp.all(onp.isfinite(numbers)):
        distinct, index = onp.unique(values, return_inverse=True)
        return index.astype(int), distinct
    order, index = onp.unique(numbers, return_inverse=True)
    distinct = onp.array([values[onp.flatnonzero(numbers == number)[0]] for number in order])      # each as the file has it
    return index.astype(int), distinct


CSV_SEPARATORS = ",;\t|"


def _csv_table(path, text, label_column, drop_columns):
    """x1 and the label of each row from a CSV text with a header (load_table)."""
    lines = [line for line in text.splitlines() if line.strip()]
    S.fail_unless(len(lines) >= 2, f"{path}: a header and at least one row are needed")
    separator = max(CSV_SEPARATORS, key=lambda candidate: lines[0].count(candidate))                # the header's commonest
    rows = list(csv.reader(lines, delimiter=separator))
    header = [name.strip() for name in rows[0]]
    S.fail_unless(label_column in header, f"{path}: no column named {label_column!r} (the columns, separated by {separator!r}: "
                  f"{', '.join(header)}); name the label column with --label-column")
    unknown = [name for name in drop_columns if name not in header or name == label_column]
    S.fail_unless(not unknown, f"{path}: --drop-columns names {', '.join(map(repr, unknown))}, not a column of x1 (the columns: {', '.join(header)})")
    index, kept = header.index(label_column), [c for c, name in enumerate(header) if name != label_column and name not in drop_columns]
    S.fail_unless(kept, f"{path}: no column is left for x1 once the label column and --drop-columns are left out")
    x1 = onp.zeros((len(rows) - 1, len(kept)))
    for number, row in enumerate(rows[1:], start=2):
        S.fail_unless(len(row) == len(header), f"{path}: line {number} has {len(row)} fields, the header {len(header)}")
        for position, column in enumerate(kept):
            try:
                x1[number - 2, position] = float(row[column])
            except ValueError:
                raise ValueError(f"{path}: line {number}, column {header[column]!r} holds {row[column].strip()[:40]!r}, not a number"
                                 + (" (an empty field)" if not row[column].strip() else "")
                                 + f"; the labels are in column {label_column!r} (--label-column), and --drop-columns leaves "
                                 "columns out of x1") from None
    return x1, onp.array([row[index].strip() for row in rows[1:]])


def _npz_table(path, content):
    """x1 and the labels from an NPZ file's arrays x1 and labels (load_table)."""
    try:
        arrays = onp.load(io.BytesIO(content), allow_pickle=False)
        found = list(arrays.keys())
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    S.fail_unless({"x1", "labels"} <= set(found), f"{path}: an .npz file with arrays named x1 (N, D) and labels (N,) is needed; "
                  f"it holds {', '.join(found) or 'no array'}")
    try:
        x1, labels = onp.asarray(arrays["x1"]), onp.asarray(arrays["labels"])
    except ValueError as error:                                                   # an object array, say
        raise ValueError(f"{path}: its arrays x1 and labels cannot be read without pickle ({error})") from None
    S.fail_unless(x1.dtype.kind in "iuf" and labels.ndim == 1, f"{path}: x1 must be numbers and labels one per row")
    return x1.astype(float), labels

# ---------------------------------------------------------------- 3. the paper's augmentation warning: paired views of digits

# x1 = an 8 x 8 digit, x2 = a second view of it, its 4 x 4 average-pooled image (a continuous modality with an
# isotropic Gaussian f_2 and an encoder on the real vector: Eq. 3 allows any f_m). The pairs are one-to-one;
# flip augmentation adds (mirror(x1), same x2) for every pair, so that each x2 describes two x1 (Sec. 1, 4).
VIEWS_KEYS = ("decoder_x2_log_var",)               # the paper's layout plus f_2's log-variance


@checked_with("DIGITS_CHECKS")
def mirror(images):
    """Each 8 x 8 image (N, 64) flipped left-right."""
    return onp.reshape(onp.reshape(images, (-1, 8, 8))[:, :, ::-1], (-1, 64))


@checked_with("DIGITS_CHECKS")
def pooled_view(images):
    """The second view: each 8 x 8 image (N, 64) averaged over 2 x 2 blocks, (N, 16)."""
    return onp.reshape(onp.reshape(images, (-1, 4, 2, 4, 2)).mean(axis=(2, 4)), (-1, 16))


@checked_with("DIGITS_CHECKS")
def digit_views(x1, augment):
    """The paired views (x1, x2) of the digits x1 (N, 64), with augment "none" (N one-to-one pairs) or "flip"
    (those and (mirror(x1_n), x2_n): 2N pairs, each x2 shared by a digit and its mirror image)."""
    x2 = pooled_view.__wrapped__(x1)
    return (x1, x2) if augment == "none" else (onp.concatenate([x1, mirror.__wrapped__(x1)]), onp.concatenate([x2, x2]))


@S.checked
def init_views_params(rng, latent_dim=8, data_dim=64, view_dim=16, hidden=(128,), decoder_std=0.1):
    """init_params for the views (x2 of view_dim reals in place of the label), and f_2's log-variance, one learned
    scalar starting at log decoder_std^2 like x1's."""
    return dict(S.init_params(rng, view_dim, latent_dim, data_dim, hidden, decoder_std), decoder_x2_log_var=np.array(2.0 * math.log(decoder_std)))


def views_x2_log_likelihood(params, x2, g):
    """Eq. (3) with f_2 isotropic Gaussian: log p_theta(x2|g) = log N(x2 | tau_2(g) = mlp(g), exp(log-variance) I). -> (..., N)."""
    return S.log_normal(x2, S.mlp(params["decoder_x2"], g), params["decoder_x2_log_var"])


@checked_with("VIEWS_CHECKS")
def views_objective(params, x1, x2, rng, model):
    """The paper's objective of model (Eq. 9 for the MVAE, Eq. 5 for the MMVAE), with views_x2_log_likelihood as f_2. Maximised.
    The paper's functions themselves, unchecked (their checks are for the label modality): no copy of them."""
    return S.OBJECTIVES[model].__wrapped__(params, x1, x2, rng, x2_log_likelihood=views_x2_log_likelihood)


@checked_with("VIEWS_CHECKS")
def train_views(model, x1, x2, seed=0, latent_dim=8, hidden=(128,), **options):
    """Train the MVAE or the MMVAE on paired views as S.train does (S.fit, x1 standardised; x2 as it is)."""
    start = init_views_params(S.init_rng(seed), latent_dim, np.shape(x1)[1], np.shape(x2)[1], hidden)
    return S.fit(lambda p, x1, x2, rng: views_objective.__wrapped__(p, x1, x2, rng, model), start, x1, x2, seed=seed, name=model, **options)


@checked_with("VIEWS_CHECKS")
def views_generate_x1(params, x2, rng, model):
    """x1 decoder means at one g ~ q(g|x2) per row of x2: the model's posterior given the view (S.label_posterior's rule)."""
    return S.sample_x1.__wrapped__(params, *S.label_posterior.__wrapped__(params, x2, model), rng)


@checked_with("DIGITS_CHECKS")
def mirror_asymmetry(images):
    """The mean left-right asymmetry of images (N, 64): the mean over images and pixels of |x - mirror(x)|."""
    return float(onp.mean(onp.abs(images - mirror.__wrapped__(images))))


@checked_with("DIGITS_CHECKS")
def nearest_of_three(generated, originals):
    """Fractions of generated x1 (N, 64) nearest (Euclidean) to their original digit, to its mirror image, and to the
    mirror average (original + mirror) / 2, row by row."""
    mirrored = mirror.__wrapped__(originals)
    candidates = onp.stack([originals, mirrored, 0.5 * (originals + mirrored)])   # (3, N, 64)
    nearest = onp.argmin(onp.sum((candidates - generated) ** 2, axis=-1), axis=0)                   # (N,)
    return {name: float(onp.mean(nearest == index)) for index, name in enumerate(("original", "mirror", "average"))}


@S.checked
def group_bound(x1_groups):
    """Eq. (7), right, for each group of G rows sharing one x2 (x1_groups (N, G, D)): -(G D / 2)(log(2 pi v) + 1), v the
    group's isotropic MLE variance. +inf where v = 0: a group of one point, or a digit equal to its mirror image."""
    variance = onp.mean((x1_groups - onp.mean(x1_groups, axis=1, keepdims=True)) ** 2, axis=(1, 2))      # (N,)
    size = onp.shape(x1_groups)[1] * onp.shape(x1_groups)[2]
    with onp.errstate(divide="ignore"):
        return -0.5 * size * (onp.log(2.0 * onp.pi * variance) + 1.0)


@checked_with("VIEWS_CHECKS")
def group_cross_term(params, model, x1_groups, x2, rng, num_draws):
    """Eq. (7), first line, for each group (x1_groups (N, G, D), one x2 row each): E_{g ~ q(g|x2_n)} sum over the group
    of log f_1(x | tau_1(g)), through the group's statistics as theorem_check.class_log_likelihood: per draw and group (S, N)."""
    mean, log_var = S.label_posterior.__wrapped__(params, x2, model)              # (N, D)
    mu = S.decode_mean_x1(params, S.sample_normal(mean, log_var, rng, (num_draws,)))   # (S, N, D1)
    size, dim = onp.shape(x1_groups)[1], onp.shape(x1_groups)[2]
    x_bar, log_var_x = onp.mean(x1_groups, axis=1), params["decoder_x1_log_var"]   # (N, D1)
    scatter = onp.sum((x1_groups - x_bar[:, None, :]) ** 2, axis=(1, 2))           # (N,)
    per_group = (-0.5 * size * dim * (onp.log(2.0 * onp.pi) + log_var_x)
                 - 0.5 * (scatter + size * onp.sum((x_bar - mu) ** 2, axis=-1)) * onp.exp(-log_var_x))     # (S, N)
    return per_group


@checked_with("VIEWS_CHECKS")
def views_model_row(params, model, x1, rng):
    """What model generates from the pooled views of the digits x1: asymmetry kept, and what each sample is nearest."""
    generated = views_generate_x1.__wrapped__(params, pooled_view.__wrapped__(x1), rng, model)
    return {"mirror_asymmetry": mirror_asymmetry.__wrapped__(generated) / mirror_asymmetry.__wrapped__(x1),
            "mirror_asymmetry_absolute": mirror_asymmetry.__wrapped__(generated), "nearest": nearest_of_three.__wrapped__(generated, x1),
            "decoder_std": float(onp.exp(0.5 * params["decoder_x1_log_var"]))}


GROUP_STANDARD_ERRORS = 5.0     # per group: 1797 groups at 4 SE would see one false FAIL in 16 runs; at 5, one in 2000


@checked_with("VIEWS_CHECKS")
def views_group_check(params, model, x1, augment, rng, num_draws):
    """Inequality (6) for every group S_c = the rows sharing one x2 ({x1, mirror(x1)} with flip, {x1} without): the smallest
    bound - L_1 + GROUP_STANDARD_ERRORS x its Monte Carlo SE over the groups of finite bound, with the group it belongs to;
    the groups of infinite bound (one point, or a digit equal to its mirror image: MLE variance 0) are listed, not checked."""
    groups = onp.stack([x1, mirror.__wrapped__(x1)], axis=1) if augment == "flip" else x1[:, None, :]      # (N, G, D1)
    bounds = group_bound.__wrapped__(groups)
    finite = onp.flatnonzero(onp.isfinite(bounds))
    if not len(finite):
        return {"model": model, "groups": len(bounds), "checked": 0, "infinite": [int(i) for i in range(len(bounds))]}
    draws = group_cross_term.__wrapped__(params, model, groups[finite], pooled_view.__wrapped__(x1)[finite], rng, num_draws)   # (S, N)
    l1, l1_se = onp.mean(draws, axis=0), onp.std(draws, axis=0, ddof=1) / onp.sqrt(len(draws))
    margins = bounds[finite] - l1 + GROUP_STANDARD_ERRORS * l1_se
    worst = int(onp.argmin(margins)) if onp.all(onp.isfinite(margins)) else int(onp.flatnonzero(~onp.isfinite(margins))[0])
    return {"model": model, "groups": len(bounds), "checked": len(finite), "infinite": [int(i) for i in onp.flatnonzero(~onp.isfinite(bounds))],
            "smallest_margin": float(onp.min(margins)), "smallest_margin_group": int(finite[worst]), "median_margin": float(onp.median(margins)),
            "smallest_bound_minus_l1": float(onp.min(bounds[finite] - l1)), "largest_group_bound": float(onp.max(bounds[finite])),
            "smallest_group_asymmetry": float(onp.min(onp.mean(onp.abs(x1 - mirror.__wrapped__(x1)), axis=1)))}


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("regular_simplex", "views_x2_log_likelihood", "label_indices", "checked_with", "check_digit_images", "check_position", "check_sweep_labels")


def check_digit_images(name, columns=64):
    """A check: name is an (N, 64) array of finite reals, the 8 x 8 digits (or the views' 16 pooled pixels)."""
    return lambda value, arguments: S.check_array(value, name, 2) or S.fail_unless(
        onp.shape(value)[1] == columns, f"{name} must hold {columns} columns (8 x 8 images), got {onp.shape(value)[1]}")


def check_position(position, arguments):
    S.check_array(position, "position", 1)
    S.fail_unless(len(position) == len(arguments["labels"]), f"position has {len(position)} entries but labels has {len(arguments['labels'])}")


def check_sweep_labels(labels, arguments):
    """refine_labels' labels: 0..C-1, every label used, and k at most the smallest class's size."""
    S.check_labels(labels, {})
    S.fail_unless(labels.size > 0 and labels.min() >= 0, "labels must be a non-empty array of labels 0..C-1")
    counts = onp.bincount(labels)
    S.fail_unless(onp.all(counts > 0), f"label {int(onp.argmin(counts))} has no points; labels must be 0..C-1, each used")
    S.fail_unless("k" not in arguments or arguments["k"] <= counts.min(), f"k = {arguments.get('k')} exceeds the size of the smallest "
                  f"class ({counts.min()} points)")


ARGUMENT_CHECKS = {"k": S.number("k", integer=True, positive=True)}      # k before the labels it splits
ARGUMENT_CHECKS.update(S.ARGUMENT_CHECKS)
ARGUMENT_CHECKS.update({
    "labels": check_sweep_labels, "position": check_position,
    "augment": lambda augment, arguments: S.fail_unless(augment in ("none", "flip"), f"augment must be 'none' or 'flip', got {augment!r}"),
    "view_dim": S.number("view_dim", integer=True, positive=True), "num_draws": S.number("num_draws", integer=True, minimum=2),
    "x1_groups": lambda groups, arguments: S.check_array(groups, "x1_groups", 3),
    "path": lambda path, arguments: S.fail_unless(path is None or (isinstance(path, str) and path.strip()),
                                                  f"path must be None or a file's path, got {path!r}"),
    "fraction": lambda fraction, arguments: S.check_number(fraction, "fraction") or S.fail_unless(
        0 < fraction < 1, f"fraction must lie strictly between 0 and 1, got {fraction}"),
    "label_column": lambda name, arguments: S.fail_unless(isinstance(name, str) and name.strip(), f"label_column must be a column's name, got {name!r}"),
    "drop_columns": lambda names, arguments: S.fail_unless(isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names),
                                                           f"drop_columns must be a list of column names, got {names!r}"),
})
VIEWS_CHECKS = dict(ARGUMENT_CHECKS, params=lambda params, arguments: S.check_params(params, VIEWS_KEYS),
                    model=lambda model, arguments: S.fail_unless(model in S.PAPER_MODELS, f"unknown model {model!r}; the views "
                                                                 f"train the paper's models: {', '.join(S.PAPER_MODELS)}"),
                    x2=lambda x2, arguments: S.check_array(x2, "x2", 2, None, len(S.getval(arguments["x1"])) if "x1" in arguments else None) or
                    S.fail_unless("params" not in arguments or S.getval(x2).shape[1] == S.input_size(arguments, "encoder_x2"),
                                  "x2 does not fit the views' encoder"))
DIGITS_CHECKS = dict(ARGUMENT_CHECKS, images=check_digit_images("images"), x1=check_digit_images("x1"),
                     generated=check_digit_images("generated"),
                     originals=lambda value, arguments: S.check_array(value, "originals", 2) or S.fail_unless(
                         onp.shape(value) == onp.shape(arguments["generated"]), f"originals has shape {onp.shape(value)} but generated "
                         f"{onp.shape(arguments['generated'])}: one original per generated row"))
