"""surjvae_np: a NumPy/autograd reference implementation of

    J. Wolff, T. Klein, M. Nabi, R. G. Krishnan, S. Nakajima,
    "Mixture-of-experts VAEs can disregard variation in surjective multimodal data".

Read it beside the paper: every function that implements an equation opens its
docstring with "Eq. (N)" and the formula in the paper's notation. Sections follow
the paper: data, networks, distributions, posteriors, objectives, training,
generation, metrics. Then, marked "beyond the paper": B1 log p(x1|x2) and label
coherence, B2 handwritten digits, B3 MMVAE+, B9 the speed benchmark.

Conventions
- Modalities: x1 in R^D1 (a pinwheel point, or a digit image) and x2 = one-hot label
  (the label modality x_M of the paper, M = 2). Experts are stacked on axis 0: (M, N, D).
- Log-densities and objectives are to be *maximised*; the only negation is the
  loss handed to Adam in `maximise` (which `train` calls).
- Every random draw comes from an explicit numpy.random.Generator. Training
  step t draws from a generator made from (seed, t) only (`step_rng`), so
  logging and evaluation never change the result.
"""
import argparse
import gzip
import hashlib
import io
import math
import os
import re
import subprocess
import sys
import time

import autograd.numpy as np
import numpy as onp        # plain NumPy, for raw arrays only: input checks and inside primitives
import numpy.random as npr
from autograd import value_and_grad
from autograd.core import SparseObject
from autograd.extend import defvjp, defvjp_argnums, primitive, vspace
from autograd.tracer import getval

LOG_2PI = math.log(2.0 * math.pi)    # a Python float: it keeps float32 arithmetic float32 (NumPy 2)
MODELS = ("mvae", "mmvae", "mopoe")          # the paper's models (MoPoE: Sutter et al. 2021)
EXTENSION_MODELS = ("mmvaeplus",)            # beyond the paper: MMVAE+ (Palumbo et al. 2023), section B3
# Training defaults: Adam steps, peak step size (decayed over the second half, decaying_step_size)
# and batch size. With these the 2-class MMVAE is past its transient (README, "Design choices").
NUM_STEPS, STEP_SIZE, BATCH_SIZE = 800, 0.05, 128


# ---------------------------------------------------------------- 0. input checks

def check_labels(labels, num_rows, name="labels"):
    """labels as a 1-D integer array of num_rows entries; ValueError naming them otherwise."""
    labels = onp.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != num_rows:
        raise ValueError(f"{name} must be {num_rows} integer labels, got {labels.dtype} of shape {labels.shape}")
    return labels


def check_rng(rng):
    """Raise ValueError unless rng is a numpy.random.Generator (no hidden global state)."""
    if not isinstance(rng, npr.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def check_positive_int(value, name):
    """Raise ValueError unless value is an integer >= 1."""
    is_integer = hasattr(value, "__index__") and not isinstance(value, bool)      # int or NumPy integer
    if not is_integer or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_model(model):
    """Raise ValueError unless model is one of MODELS or EXTENSION_MODELS."""
    if model not in MODELS + EXTENSION_MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS + EXTENSION_MODELS)}")


def check_seed(seed):
    """Raise ValueError unless seed is an integer >= 0 (what numpy.random.default_rng accepts)."""
    is_integer = hasattr(seed, "__index__") and not isinstance(seed, bool)
    if not is_integer or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def check_real_number(value, name, minimum=None):
    """Raise ValueError unless value is a finite real number (>= minimum if given)."""
    if isinstance(value, (bool, str)) or not onp.isscalar(value) and onp.ndim(value) != 0:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise ValueError(f"{name} must be a finite number{f' >= {minimum}' if minimum is not None else ''}, got {value!r}")


def real_array(x, name):
    """x (or the value in an autograd box) as an array; ValueError unless it holds real numbers."""
    try:
        array = onp.asarray(getval(x))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not an array of numbers: {error}") from None
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return array


def check_x1(x1, expected_dim=None):
    """Raise ValueError unless x1 is a finite, non-empty (N, D1) real array (D1 = expected_dim if given)."""
    x1 = real_array(x1, "x1")
    if x1.ndim != 2:
        raise ValueError(f"x1 must have shape (N, D1), got shape {x1.shape}")
    if x1.shape[0] == 0 or x1.shape[1] == 0:
        raise ValueError(f"x1 is empty: shape {x1.shape}")
    if not onp.all(onp.isfinite(x1)):
        raise ValueError("x1 contains NaN or infinite values")
    if expected_dim is not None and x1.shape[1] != expected_dim:
        raise ValueError(f"x1 has {x1.shape[1]} columns but the model expects {expected_dim}")


def check_one_hot(x2, num_classes=None):
    """Raise ValueError unless x2 is a non-empty (N, C) array whose rows are one-hot labels."""
    x2 = real_array(x2, "x2")
    if x2.ndim != 2:
        raise ValueError(f"x2 must be one-hot labels of shape (N, C), got shape {x2.shape}")
    if x2.shape[0] == 0:
        raise ValueError(f"x2 is empty: shape {x2.shape}")
    if not onp.all(onp.isfinite(x2)):
        raise ValueError("x2 contains NaN or infinite values")
    if not (onp.all((x2 == 0) | (x2 == 1)) and onp.all(onp.sum(x2, axis=1) == 1)):
        raise ValueError("x2 must be one-hot: every row needs exactly one 1 and zeros elsewhere")
    if num_classes is not None and x2.shape[1] != num_classes:
        raise ValueError(f"x2 has {x2.shape[1]} classes but the model expects {num_classes}")


NETWORKS = ("encoder_x1", "encoder_x2", "decoder_x1", "decoder_x2")
PRIVATE_PRIOR_KEYS = ("auxiliary_prior_log_var_x1", "auxiliary_prior_log_var_x2")      # MMVAE+ only (B3)


def check_network(layers, name, input_size=None, output_size=None):
    """Raise ValueError unless layers is [{"W": (d_in, d_out), "b": (d_out,)}, ...] with chained sizes."""
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ValueError(f"params[{name!r}] must be a non-empty list of layers, got {type(layers).__name__}")
    for index, layer in enumerate(layers):
        if not (isinstance(layer, dict) and set(layer) == {"W", "b"}):
            raise ValueError(f"params[{name!r}][{index}] must be a dict with keys 'W' and 'b'")
        shape_w, shape_b = onp.shape(layer["W"]), onp.shape(layer["b"])
        if len(shape_w) != 2 or shape_b != shape_w[1:]:
            raise ValueError(f"params[{name!r}][{index}]: W {shape_w} and b {shape_b} do not fit (d_in, d_out), (d_out,)")
        if index and shape_w[0] != onp.shape(layers[index - 1]["W"])[1]:
            raise ValueError(f"params[{name!r}][{index}] takes {shape_w[0]} inputs but layer {index - 1} gives {onp.shape(layers[index - 1]['W'])[1]}")
    for size, expected, what in ((onp.shape(layers[0]["W"])[0], input_size, "inputs"),
                                 (onp.shape(layers[-1]["W"])[1], output_size, "outputs")):
        if expected is not None and size != expected:
            raise ValueError(f"params[{name!r}] has {size} {what}, expected {expected}")


def check_params(params):
    """Raise ValueError unless params has the layout of init_params with sizes that fit together."""
    params = getval(params)                    # grad with respect to a dict hands in a box of it
    expected = set(NETWORKS) | {"decoder_x1_log_var"}
    if not isinstance(params, dict) or not expected <= set(params):
        missing = sorted(expected - set(params)) if isinstance(params, dict) else sorted(expected)
        raise ValueError(f"params lacks {missing}; make it with init_params")
    data_dim, num_classes = onp.shape(params["decoder_x1"][-1]["W"])[1], onp.shape(params["decoder_x2"][-1]["W"])[1]
    latent_dim = onp.shape(params["decoder_x1"][0]["W"])[0]             # shared g plus private w (MMVAE+)
    check_network(params["encoder_x1"], "encoder_x1", data_dim, 2 * latent_dim)
    check_network(params["encoder_x2"], "encoder_x2", num_classes, 2 * latent_dim)
    check_network(params["decoder_x1"], "decoder_x1", latent_dim, data_dim)
    check_network(params["decoder_x2"], "decoder_x2", latent_dim, num_classes)
    private = [onp.shape(params.get(key, onp.zeros(0))) for key in PRIVATE_PRIOR_KEYS]
    if private[0] != private[1] or len(private[0]) != 1 or private[0][0] >= latent_dim:
        raise ValueError(f"params' auxiliary prior log-variances {PRIVATE_PRIOR_KEYS} must be two vectors of "
                         f"one length below {latent_dim}, got shapes {private}")
    if onp.shape(params["decoder_x1_log_var"]) != ():
        raise ValueError(f"params['decoder_x1_log_var'] must be a scalar, got shape {onp.shape(params['decoder_x1_log_var'])}")


def check_modalities(params, x1, x2):
    """Raise ValueError unless (x1, x2) are paired data that fit the model in params."""
    check_params(params)
    check_x1(x1, onp.shape(params["encoder_x1"][0]["W"])[0])
    check_one_hot(x2, onp.shape(params["encoder_x2"][0]["W"])[0])
    if onp.shape(x1)[0] != onp.shape(x2)[0]:
        raise ValueError(f"x1 has {onp.shape(x1)[0]} rows but x2 has {onp.shape(x2)[0]}")


# ---------------------------------------------------------------- 1. data

def make_pinwheel(num_classes=2, num_per_class=500, radial_std=0.3, tangential_std=0.05,
                  rate=0.25, *, rng, return_radial=False):
    """Pinwheel data (Johnson et al. 2016), the paper's Sec. 3 data set, without the x10 scaling.

    Point n of class c: radial r = 1 + radial_std * e_r, tangential t = tangential_std * e_t,
    angle a = 2 pi c / C + rate * exp(r); x1 = (r, t) R(a) with R(a) = [[cos a, -sin a],
    [sin a, cos a]] acting from the right, i.e. (r, t) turned clockwise by a -- Johnson et al.'s
    einsum('ti,tij->tj'). Unlike theirs, the rows are not shuffled (classes come in blocks of
    num_per_class) and not scaled by 10. Returns x1 (N, 2) and integer labels (N,), and with
    return_radial=True also the radial coordinate r (N,), the position along the arm.
    """
    check_positive_int(num_classes, "num_classes")
    check_positive_int(num_per_class, "num_per_class")
    check_rng(rng)
    check_real_number(radial_std, "radial_std", minimum=0.0)
    check_real_number(tangential_std, "tangential_std", minimum=0.0)
    check_real_number(rate, "rate")
    labels = np.repeat(np.arange(num_classes), num_per_class)                     # (N,)
    noise = rng.standard_normal((len(labels), 2)) * np.array([radial_std, tangential_std])
    radial, tangential = 1.0 + noise[:, 0], noise[:, 1]                           # (N,)
    with onp.errstate(over="ignore", invalid="ignore"):                          # checked just below
        angle = 2.0 * np.pi * labels / num_classes + rate * np.exp(radial)        # (N,)
        x1 = np.stack([radial * np.cos(angle) + tangential * np.sin(angle),
                       -radial * np.sin(angle) + tangential * np.cos(angle)], axis=1)  # (N, 2)
    if not np.all(np.isfinite(x1)):
        raise ValueError(f"radial_std = {radial_std} and rate = {rate} overflow exp(r): the data are not finite")
    return (x1, labels, radial) if return_radial else (x1, labels)


def one_hot(labels, num_classes):
    """The label modality x2: row n is the one-hot code of labels[n] in {0, ..., C-1}."""
    check_positive_int(num_classes, "num_classes")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return (labels[:, None] == np.arange(num_classes)).astype(float)             # (N, C)


def refine_labels(position, labels, k):
    """Split each class into k sub-labels of (near) equal size by position along its pinwheel arm.

    position (N,) is the coordinate to order by: the radial coordinate r of make_pinwheel
    (return_radial=True). (|x1| = sqrt(r^2 + t^2) would order the rare points with r < 0 wrongly.)
    Sub-label j of class c is c * k + j, j = 0 nearest the centre. k = 1 is the paper's setting;
    k = num_per_class makes the labels one-to-one. Returns (fine_labels (N,), x2 one-hot (N, C k)).
    """
    position = np.asarray(position)
    if position.ndim != 1 or not np.all(np.isfinite(position)):
        raise ValueError(f"position must be a finite 1-D array, got shape {position.shape}")
    check_positive_int(k, "k")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be a non-empty 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    num_classes = int(labels.max()) + 1
    one_hot(labels, num_classes)                                                  # validates labels
    if len(position) != len(labels):
        raise ValueError(f"position has {len(position)} entries but labels has {len(labels)}")
    counts = np.bincount(labels, minlength=num_classes)
    if np.any(counts == 0):
        raise ValueError(f"label {int(np.argmin(counts))} has no points; labels must be 0..C-1, each used")
    if k > np.min(counts):
        raise ValueError(f"k = {k} exceeds the size of the smallest class ({int(np.min(counts))} points)")
    fine = np.zeros(len(labels), dtype=int)
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        order = members[np.argsort(position[members], kind="stable")]            # centre -> tip
        fine[order] = c * k + (np.arange(len(order)) * k) // len(order)
    return fine, one_hot(fine, num_classes * k)


# ---------------------------------------------------------------- 2. networks

def init_mlp(sizes, rng, output_scale=1.0):
    """Layers [{"W": (d_in, d_out), "b": (d_out,)}, ...] for sizes [d_0, ..., d_L].

    W ~ N(0, 1/d_in) (variance-preserving for tanh), b = 0; the last W is scaled by output_scale.
    """
    check_rng(rng)
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
    for size in sizes:
        check_positive_int(size, "every layer size")
    layers = [{"W": rng.standard_normal((d_in, d_out)) / np.sqrt(d_in), "b": np.zeros(d_out)}
              for d_in, d_out in zip(sizes[:-1], sizes[1:])]
    layers[-1]["W"] = output_scale * layers[-1]["W"]
    return layers


def mlp_plain(layers, inputs):
    """The MLP in plain autograd operations: h_0 = inputs, h_l = tanh(h_(l-1) W_l + b_l), out = h_(L-1) W_L + b_L.

    The specification of mlp_kernel, which computes the same map as one traced operation
    (test_surjvae_np checks that values and gradients agree).
    """
    hidden = inputs
    for layer in layers[:-1]:
        hidden = np.tanh(hidden @ layer["W"] + layer["b"])
    return hidden @ layers[-1]["W"] + layers[-1]["b"]


def mlp_hidden_activations(inputs, weights_and_biases):
    """[h_0, ..., h_(L-1)] of mlp_plain, as raw arrays (W_l, b_l alternate in weights_and_biases)."""
    activations = [inputs]
    for W, b in zip(weights_and_biases[0:-2:2], weights_and_biases[1:-2:2]):
        activations.append(onp.tanh(activations[-1] @ W + b))
    return activations


# autograd runs a primitive's forward pass and then, when it is tracing, the vjp maker with the
# same argument objects. mlp_kernel keeps its hidden activations here so that the vjp maker reuses
# them instead of running the forward pass again (it recomputes them if the arguments differ).
LAST_MLP_FORWARD = {"arguments": (), "activations": None}


@primitive
def mlp_kernel(inputs, *weights_and_biases):
    """mlp_plain(layers, inputs) with weights_and_biases = W_1, b_1, ..., W_L, b_L, as one traced operation.

    autograd's cost is per traced operation (3 per layer in mlp_plain); the backward pass is
    written out in mlp_kernel_vjp. A speed kernel only: mlp_plain is the definition.
    """
    activations = mlp_hidden_activations(inputs, weights_and_biases)
    LAST_MLP_FORWARD.update(arguments=(inputs,) + weights_and_biases, activations=activations)
    return activations[-1] @ weights_and_biases[-2] + weights_and_biases[-1]


def flatten_leading(a):
    """a (..., d) -> (prod(...), d)."""
    return onp.reshape(a, (-1, onp.shape(a)[-1]))


def mlp_kernel_vjp(argnums, output, args, kwargs):
    """Backpropagation through mlp_plain. delta_L = G; dW_l = h_(l-1)^T delta_l, db_l = sum delta_l;
    delta_(l-1) = (delta_l W_l^T) * (1 - h_(l-1)^2), tanh's derivative; d inputs = delta_1 W_1^T."""
    inputs, weights_and_biases = args[0], args[1:]
    cached = LAST_MLP_FORWARD["arguments"]
    if len(cached) == len(args) and all(a is b for a, b in zip(cached, args)):
        activations = LAST_MLP_FORWARD["activations"]                             # h_0 .. h_(L-1)
    else:
        activations = mlp_hidden_activations(inputs, weights_and_biases)

    def vjp(output_gradient):
        gradients, delta = [None] * len(args), output_gradient                    # delta: (..., d_l)
        for layer in range(len(activations) - 1, -1, -1):
            W, h = weights_and_biases[2 * layer], activations[layer]
            gradients[1 + 2 * layer] = flatten_leading(h).T @ flatten_leading(delta)       # dW
            gradients[2 + 2 * layer] = onp.sum(flatten_leading(delta), axis=0)              # db
            if layer > 0:
                delta = (delta @ W.T) * (1.0 - h * h)                                       # d a_(l-1)
            elif 0 in argnums:
                gradients[0] = delta @ W.T                                                  # d inputs
        return tuple(gradients[argnum] for argnum in argnums)
    return vjp


defvjp_argnums(mlp_kernel, mlp_kernel_vjp)


def mlp(layers, inputs):
    """tanh hidden layers, linear output; inputs (..., d_0) -> (..., d_L). No hidden layer = affine map.

    The map of mlp_plain, computed by the fused mlp_kernel (one traced operation).
    """
    return mlp_kernel(inputs, *[array for layer in layers for array in (layer["W"], layer["b"])])


# ---------------------------------------------------------------- 3. distributions

@primitive
def stack_on_new_axis(*arrays):
    """np.stack(arrays, axis=0) as one traced operation (autograd's np.stack traces 2 per array + 1)."""
    return onp.stack(arrays)


defvjp_argnums(stack_on_new_axis, lambda argnums, stacked, arrays, kwargs: lambda g: tuple(g[i] for i in argnums))


def logsumexp(a, axis):
    """log sum_i exp(a_i) along axis, computed stably."""
    # getval: the shift cancels exactly in value and gradient, so it needs no gradient of its own.
    shift = getval(np.max(a, axis=axis, keepdims=True))
    return np.log(np.sum(np.exp(a - shift), axis=axis)) + np.squeeze(shift, axis=axis)


def log_normal(x, mean, log_var):
    """log N(x | mean, diag(exp(log_var))), summed over the last axis. Broadcasts; maximised in fits."""
    residual = x - mean
    return -0.5 * np.sum(LOG_2PI + log_var + residual * residual * np.exp(-log_var), axis=-1)


def float_dtype(array):
    """np.float32 for a float32 array (or a box holding one), np.float64 for anything else."""
    return np.float32 if np.result_type(getval(array)) == np.float32 else np.float64


def log_prior(g):
    """Eq. (1): log p(g) = log N(g | 0, I), summed over the last axis."""
    return -0.5 * np.sum(LOG_2PI + g * g, axis=-1)


def sample_normal(mean, log_var, rng, leading_shape=()):
    """Reparameterised draws g = mean + exp(log_var / 2) * eps, eps ~ N(0, I) from rng.

    leading_shape adds sample axes in front: (S,) with mean (N, D) gives g of shape (S, N, D).
    eps has mean's float type, so float32 training stays float32.
    """
    eps = rng.standard_normal(tuple(leading_shape) + np.shape(mean), dtype=float_dtype(mean))
    return mean + np.exp(0.5 * log_var) * eps


def kl_to_standard_normal(mean, log_var):
    """Eq. (10), first term, negated: KL(q || p(g)) = -E_q[log p(g)/q(g)] for q = N(mean, diag exp(log_var)).

    Closed form against the prior p(g) = N(0, I) of Eq. (1), summed over the last axis.
    """
    return 0.5 * np.sum(np.exp(log_var) + mean * mean - 1.0 - log_var, axis=-1)


def log_categorical(x_one_hot, logits):
    """log Cat(x | softmax(logits)) = sum_c x_c (logits_c - logsumexp(logits)). Broadcasts."""
    log_probs = logits - logsumexp(logits, axis=-1)[..., None]
    return np.sum(x_one_hot * log_probs, axis=-1)


# ---------------------------------------------------------------- 4. posteriors

def gaussian_expert(layers, x):
    """Sec. 2: q_phi(g|x_m) = r_m(g | kappa_m(x_m; phi)), kappa_m = the MLP's outputs split into (mean, log_var)."""
    out = mlp(layers, x)                                                         # (N, 2D)
    latent_dim = np.shape(out)[-1] // 2
    return out[..., :latent_dim], out[..., latent_dim:]


def unimodal_experts(params, x1, x2):
    """Eq. (2)'s building blocks: the M = 2 experts r_1(g|x1), r_2(g|x2), stacked: means and log_vars of shape (M, N, D)."""
    mean1, log_var1 = gaussian_expert(params["encoder_x1"], x1)
    mean2, log_var2 = gaussian_expert(params["encoder_x2"], x2)
    return stack_on_new_axis(mean1, mean2), stack_on_new_axis(log_var1, log_var2)     # (M, N, D)


def nonempty_subsets(num_modalities):
    """All non-empty subsets of {1..M} as 0/1 rows (2^M - 1, M), the full set first, singletons last.

    For M = 2: [[1, 1], [1, 0], [0, 1]] -- the three ELBOs of Eq. (9), and MoPoE's components.
    """
    check_positive_int(num_modalities, "num_modalities")
    codes = np.arange(2 ** num_modalities - 1, 0, -1)                             # full set first
    bits = (codes[:, None] >> np.arange(num_modalities - 1, -1, -1)) & 1          # (2^M-1, M)
    return bits[np.argsort(-bits.sum(axis=1), kind="stable")].astype(float)


SUBSETS_OF_TWO = nonempty_subsets(2)     # [[1, 1], [1, 0], [0, 1]]: Eq. (9)'s ELBOs, MoPoE's components
# Which of those products include the prior expert p(g). The MVAE's Eq. (8): all of them. MoPoE as
# Sutter et al. implement it (thomassutter/MoPoE, poe_fusion): only the product over all modalities;
# a one-modality component is the bare expert r_m.
PRIOR_IN_FULL_SET_ONLY = (SUBSETS_OF_TWO.sum(axis=1) == 2).astype(float)         # (S,) = [1, 0, 0]


def product_of_experts(means, log_vars, subsets, prior_expert=None):
    """Eq. (8): q_phi(g|{x_m}_{m in s}) proportional to p(g) prod_{m in s} r_m(g), one row s of subsets each.

    Gaussian experts multiply in closed form: precisions add (the prior N(0, I) adds 1) and the
    mean is the precision-weighted mean (the prior adds 0). means, log_vars (M, N, D) and
    subsets (S, M) of 0/1 -> PoE means and log_vars of shape (S, N, D). prior_expert (S,) of
    0/1 says which products include p(g) (default: all, Eq. 8); without it, a one-expert
    product is that expert.
    """
    if prior_expert is None:
        prior_expert = np.ones(np.shape(subsets)[0])
    subsets = np.asarray(subsets, dtype=float_dtype(log_vars))                   # no float64 upcast
    prior_expert = np.asarray(prior_expert, dtype=float_dtype(log_vars))
    precisions = np.exp(-log_vars)                                                # (M, N, D)
    total_precision = (np.reshape(prior_expert, (-1, 1, 1))
                       + np.tensordot(subsets, precisions, axes=1))               # (S, N, D)
    weighted_means = np.tensordot(subsets, precisions * means, axes=1)           # (S, N, D)
    return weighted_means / total_precision, -np.log(total_precision)


def mixture_log_density(g, means, log_vars):
    """Sec. 2: log q_phi(g|{x_m}) = log (1/K) sum_k r_k(g | kappa_k), in log space.

    g (..., N, D); components means, log_vars (K, N, D), component k of datapoint n at [k, n]
    -> (..., N). For the MMVAE the K = M components are the unimodal experts.
    """
    component_log_densities = log_normal(g[..., None, :, :], means, log_vars)     # (..., K, N)
    return logsumexp(component_log_densities, axis=-2) - math.log(np.shape(means)[0])


def unimodal_posterior(params, x, modality, model):
    """The posterior each model uses when only modality x_m (m = 1 or 2) is observed.

    MMVAE: the expert r_m itself (MMVAE+: its shared part q(g|x_m)). MoPoE: the mixture over the subsets of {x_m} has one component,
    the bare expert r_m (Sutter et al.'s poe_fusion adds the prior only to the full set). MVAE:
    the PoE of Eq. (8) over {x_m}, i.e. p(g) r_m(g) normalised. Returns mean, log_var (N, D).
    """
    check_model(model)
    check_params(params)
    if modality == 1:
        check_x1(x, onp.shape(params["encoder_x1"][0]["W"])[0])
    elif modality == 2:
        check_one_hot(x, onp.shape(params["encoder_x2"][0]["W"])[0])
    else:
        raise ValueError(f"modality must be 1 (x1) or 2 (the label x2), got {modality!r}")
    mean, log_var = gaussian_expert(params["encoder_x1" if modality == 1 else "encoder_x2"], x)
    if model == "mmvaeplus":                     # the shared g of u = (g, w_m): section B3
        shared = shared_dim(params)
        return mean[..., :shared], log_var[..., :shared]
    if model in ("mmvae", "mopoe"):
        return mean, log_var
    poe_mean, poe_log_var = product_of_experts(mean[None], log_var[None], np.ones((1, 1)))
    return poe_mean[0], poe_log_var[0]


def private_dim(params):
    """The size of MMVAE+'s private latent w (0 for the paper's models)."""
    return int(onp.shape(params.get(PRIVATE_PRIOR_KEYS[0], onp.zeros(0)))[0])


def shared_dim(params):
    """The size of the shared latent g: the decoders' input size less the private w's."""
    return int(onp.shape(params["decoder_x1"][0]["W"])[0]) - private_dim(params)


def label_to_x1_latent(params, x2, model, private="prior"):
    """(mean, log_var) (N, D + P) of the latent that label -> x1 generation draws.

    For the paper's models, q(g|x2) (unimodal_posterior). For MMVAE+ (section B3), q(g|x2) with
    w_1 ~ p(w_1) = N(0, I) (private="prior", the authors' default at generation) or w_1 ~ r_1,
    the learned auxiliary prior its cross term is trained with (private="auxiliary").
    """
    mean, log_var = unimodal_posterior(params, x2, 2, model)                     # (N, D)
    if model != "mmvaeplus":
        return mean, log_var
    if private not in ("prior", "auxiliary"):
        raise ValueError(f"private must be 'prior' or 'auxiliary', got {private!r}")
    w_log_var = params[PRIVATE_PRIOR_KEYS[0]] if private == "auxiliary" else np.zeros(private_dim(params))
    w_log_var = w_log_var + np.zeros((np.shape(mean)[0], 1))                    # (N, P)
    w_mean = np.zeros((np.shape(mean)[0], private_dim(params)))                 # both priors have mean 0
    return np.concatenate([mean, w_mean], axis=-1), np.concatenate([log_var, w_log_var], axis=-1)


def x1_to_latent(params, x1, model):
    """(mean, log_var) of the latent q gives x1 alone: unimodal_posterior, or MMVAE+'s whole q(g, w_1|x1)."""
    if model == "mmvaeplus":
        check_params(params)
        check_x1(x1, onp.shape(params["encoder_x1"][0]["W"])[0])
        return gaussian_expert(params["encoder_x1"], x1)
    return unimodal_posterior(params, x1, 1, model)


# ---------------------------------------------------------------- 5. objectives

def init_params(rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,),
                decoder_std=0.1, private_dim=0):
    """Every parameter of the model as one nested dict.

    Encoders x1 -> (mean, log_var) of g and x2 -> (mean, log_var); decoders g -> mean of x1
    (the x1 log-variance is one learned scalar, initialised at log decoder_std^2) and
    g -> logits of x2. decoder_std well below the class spread (about 0.3) is needed to see the
    paper's effect; see README, "Design choices". private_dim > 0 (MMVAE+, section B3): each
    latent is u = (g, w) with a private w of that size, and the auxiliary priors r_m(w) get
    learned log-variances (initialised at 0); private_dim = 0 gives the paper's models exactly.
    """
    check_rng(rng)
    for name, value in (("num_classes", num_classes), ("latent_dim", latent_dim),
                        ("data_dim", data_dim)):
        check_positive_int(value, name)
    check_real_number(decoder_std, "decoder_std")
    if not decoder_std > 0:
        raise ValueError(f"decoder_std must be a positive number, got {decoder_std!r}")
    if not isinstance(hidden, (list, tuple)):
        raise ValueError(f"hidden must be a list or tuple of layer sizes, e.g. (32,), got {hidden!r}")
    for size in hidden:
        check_positive_int(size, "every hidden layer size")
    if not (hasattr(private_dim, "__index__") and not isinstance(private_dim, bool) and private_dim >= 0):
        raise ValueError(f"private_dim must be an integer >= 0, got {private_dim!r}")
    hidden, latent = list(hidden), latent_dim + private_dim                       # u = (g, w)
    params = {
        "encoder_x1": init_mlp([data_dim] + hidden + [2 * latent], rng, output_scale=0.1),
        "encoder_x2": init_mlp([num_classes] + hidden + [2 * latent], rng, output_scale=0.1),
        "decoder_x1": init_mlp([latent] + hidden + [data_dim], rng),
        "decoder_x1_log_var": np.array(2.0 * np.log(decoder_std)),
        "decoder_x2": init_mlp([latent] + hidden + [num_classes], rng),
    }
    if private_dim:
        params.update({key: np.zeros(private_dim) for key in PRIVATE_PRIOR_KEYS})
    return params


def decoder_x1_log_likelihood(params, x1, g):
    """Eq. (3): log p_theta(x1|g) = log f_1(x1 | tau_1(g; theta)), f_1 isotropic Gaussian.

    tau_1(g) = (MLP mean of g, one learned log-variance). g (..., N, D), x1 (N, D1) -> (..., N).
    """
    return log_normal(x1, mlp(params["decoder_x1"], g), params["decoder_x1_log_var"])


def log_likelihood_of_all_modalities(params, g, x1, x2):
    """Eq. (1), (3): sum_m log p_theta(x_m|g) at latent samples g (..., N, D) -> (..., N).

    log p(x1|g): isotropic Gaussian; log p(x2|g): categorical with MLP logits.
    """
    log_p_x1 = decoder_x1_log_likelihood(params, x1, g)                          # (..., N)
    log_p_x2 = log_categorical(x2, mlp(params["decoder_x2"], g))                 # (..., N)
    return log_p_x1 + log_p_x2


def mvae_objective(params, x1, x2, rng):
    """Eq. (9): L = ELBO(x1, x2) + ELBO(x1) + ELBO(x2), averaged over datapoints. Maximised.

    Each ELBO is Eq. (10) with the PoE posterior of Eq. (8) over the modalities in its argument,
    and it reconstructs only those modalities -- which is why the MVAE has no cross term
    p(x1|x2) (App. A). E[log p(g)/q] = -KL(q || N(0, I)) in closed form; E[log p(x_m|g)] with
    one reparameterised sample per ELBO and datapoint.
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    subsets = SUBSETS_OF_TWO                                                     # (S, M)
    poe_means, poe_log_vars = product_of_experts(*unimodal_experts(params, x1, x2), subsets)
    g = sample_normal(poe_means, poe_log_vars, rng)                              # (S, N, D)
    # Each decoder sees only the samples of the ELBOs that contain its modality, in one call.
    log_p_x1 = decoder_x1_log_likelihood(params, x1, g[subsets[:, 0] == 1])     # (S1, N)
    log_p_x2 = log_categorical(x2, mlp(params["decoder_x2"], g[subsets[:, 1] == 1]))   # (S2, N)
    kl = kl_to_standard_normal(poe_means, poe_log_vars)                          # (S, N)
    return (np.sum(log_p_x1) + np.sum(log_p_x2) - np.sum(kl)) / np.shape(x1)[0]


def stratified_mixture_elbo(params, x1, x2, means, log_vars, rng):
    """Eq. (5), stratified: (1/K) sum_k E_{q_k(g)}[log p(g, {x_m}) - log q(g|{x_m})]. Maximised.

    q(g|{x_m}) = (1/K) sum_k q_k(g) is the mixture of the K components (means, log_vars of
    shape (K, N, D)); one reparameterised g per component and datapoint; log p(g, {x_m}) =
    log p(g) + sum_m log p(x_m|g) (Eq. 1); the mixture density is in the denominator and the
    average over components outside the log. Returns the average over datapoints.
    """
    g = sample_normal(means, log_vars, rng)                                      # (K, N, D)
    log_joint = log_prior(g) + log_likelihood_of_all_modalities(params, g, x1, x2)   # (K, N)
    return np.mean(log_joint - mixture_log_density(g, means, log_vars))


def mmvae_objective(params, x1, x2, rng):
    """Eq. (5): (1/M) sum_m E_{q(g|x_m)}[log p(g, {x_m}) / q(g|{x_m})], q the MoE of Sec. 2. Maximised.

    The stratified mixture ELBO, one sample per expert, the 1/M outside the log (footnote 4).
    In Shi et al.'s code (iffsid/mmvae, objectives.py) this is m_iwae_looser / m_dreg_looser at
    K = 1. Their m_elbo is another bound: an analytic KL per expert, equal in expectation to
    (1/M) sum_m ELBO(q_m) = (1/M) sum_m (E_{q_m}[log p({x_m}|g)] - KL(q_m || p(g))), which lies
    below this objective by (1/M) sum_m KL(q_m || q_mix) (test_surjvae_np checks the identity).
    Term (1) of Eq. (5) is inside it: the stratum m = M draws g ~ r_M(g|x2) and scores
    log p(x1|g), i.e. L_1 of Eq. (4) per datapoint, weighted 1/M as in the first line of Eq. (5).
    (The paper's second line drops that 1/M on term (1); the code follows the first line.)
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    return stratified_mixture_elbo(params, x1, x2, *unimodal_experts(params, x1, x2), rng)


def mopoe_components(params, x1, x2):
    """MoPoE's components (Sutter et al. 2021): PoE over each non-empty subset s of {x1, x2}.

    The full set's product includes the prior expert, as in Eq. (8); the one-modality
    components are the bare experts r_1, r_2 (the authors' poe_fusion). Means, log_vars (S, N, D).
    """
    return product_of_experts(*unimodal_experts(params, x1, x2), SUBSETS_OF_TWO, PRIOR_IN_FULL_SET_ONLY)


def mopoe_objective(params, x1, x2, rng):
    """Eq. (5) with the MoPoE posterior: q = (1/|P|) sum_{s in P} PoE_s, P the non-empty subsets. Maximised.

    Same stratified mixture ELBO as mmvae_objective: one g from each component, the mixture
    density in the denominator. The component r_2 scores log p(x1|g), so the cross term is there
    with weight 1/|P| = 1/3. Sutter et al.'s code estimates a different bound: one component per
    datapoint for the reconstruction and sum_s w_s KL(PoE_s || p(g)) for the divergence. That
    sum is >= KL(q_mix || p(g)), and the expected difference of the two objectives is again the
    divergence (1/|P|) sum_s KL(PoE_s || q_mix) >= 0: this objective is the tighter bound.
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    return stratified_mixture_elbo(params, x1, x2, *mopoe_components(params, x1, x2), rng)


OBJECTIVES = {"mvae": mvae_objective, "mmvae": mmvae_objective, "mopoe": mopoe_objective}


def cross_modal_term(params, x1, x2, rng, num_samples=16, model="mmvae"):
    """Eq. (4): L_1 = sum_n int r_M(g | kappa_M(x_M^(n))) log f_1(x1^(n) | tau_1(g)) dg. Maximised.

    Monte Carlo with num_samples reparameterised draws per datapoint; summed over datapoints.
    r_M is the label expert for model="mmvae" (the paper's setting) and the label posterior each
    other model generates from (see unimodal_posterior); Theorem 1 holds for any r_M. For MMVAE+
    the integral is over (g, w~_1) ~ q(g|x2) r_1(w_1), its objective's cross term (section B3).
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    check_positive_int(num_samples, "num_samples")
    mean, log_var = label_to_x1_latent(params, x2, model, private="auxiliary")   # (N, D [+ P])
    g = sample_normal(mean, log_var, rng, (num_samples,))                       # (S, N, D)
    return np.sum(np.mean(decoder_x1_log_likelihood(params, x1, g), axis=0))


# ---------------------------------------------------------------- 6. training

def init_rng(seed):
    """The generator for a training run's initial parameters: a function of seed only."""
    check_seed(seed)
    return npr.default_rng([seed, 0])


def step_rng(seed, step):
    """The generator for training step `step` (batch and noise): a function of (seed, step) only."""
    return npr.default_rng([seed, 1, step])


def tree_leaves(tree):
    """The arrays of a nested dict/list, dict keys in sorted order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in tree_leaves(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for item in tree for leaf in tree_leaves(item)]
    return [tree]


def tree_rebuild(tree, leaves):
    """A nested dict/list shaped like tree whose arrays are taken in order from the iterator leaves."""
    if isinstance(tree, dict):
        return {key: tree_rebuild(tree[key], leaves) for key in sorted(tree)}
    if isinstance(tree, (list, tuple)):
        return [tree_rebuild(item, leaves) for item in tree]
    return next(leaves)


@primitive
def take_block(vector, start, stop, shape):
    """np.reshape(vector[start:stop], shape) as one traced operation (slicing then reshaping costs two).

    Its vjp adds the block's gradient in place into one gradient buffer for the whole vector
    (autograd's sparse accumulation); autograd's own slice vjp calls np.add.at once per block.
    """
    return onp.reshape(vector[start:stop], shape)


def take_block_vjp(block, vector, start, stop, shape):
    """The gradient of vector: the block's gradient on [start, stop), zero elsewhere.

    Returned as autograd's SparseObject: autograd allocates one zero buffer for vector's gradient
    and each block adds into its own slice of it. The in-place add is inside autograd's gradient
    accumulation, not inside a differentiated function.
    """
    def vjp(block_gradient):
        def add_into(gradient_buffer):
            gradient_buffer[start:stop] += onp.ravel(block_gradient)
            return gradient_buffer
        return SparseObject(vspace(vector), add_into)
    return vjp


defvjp(take_block, take_block_vjp)


def flatten_params(params):
    """(vector, unflatten): all parameters in one 1-D array, and the map back to the nested dict.

    Adam and autograd work on the vector: autograd's cost here is per traced operation, and a
    nested dict of boxes costs more operations than one take_block per array.
    """
    shapes = [np.shape(leaf) for leaf in tree_leaves(params)]
    ends = np.cumsum([int(np.prod(shape)) for shape in shapes])
    starts = ends - [int(np.prod(shape)) for shape in shapes]

    def unflatten(vector):
        pieces = (take_block(vector, int(a), int(b), shape) for a, b, shape in zip(starts, ends, shapes))
        return tree_rebuild(params, pieces)
    return np.concatenate([np.ravel(leaf) for leaf in tree_leaves(params)]), unflatten


def adam_step(x, gradient, m, v, t, step_size, b1=0.9, b2=0.999, eps=1e-8):
    """One step of Adam (Kingma & Ba 2015, Algorithm 1, default constants) minimising; t >= 1."""
    m = b1 * m + (1.0 - b1) * gradient
    v = b2 * v + (1.0 - b2) * gradient ** 2
    m_hat, v_hat = m / (1.0 - b1 ** t), v / (1.0 - b2 ** t)
    return x - step_size * m_hat / (np.sqrt(v_hat) + eps), m, v


def minibatch(x1, x2, batch_size, rng):
    """A batch of batch_size rows drawn without replacement (all rows, in order, if None)."""
    if batch_size is None or batch_size >= np.shape(x1)[0]:
        return x1, x2
    rows = rng.choice(np.shape(x1)[0], size=batch_size, replace=False)
    return x1[rows], x2[rows]


def training_step(objective_and_gradient, flat, m, v, t, x1, x2, seed, step_size, batch_size):
    """Step t of maximise: batch and noise from step_rng(seed, t), then one Adam step on -objective.

    Returns the new (flat, m, v) and the objective's value at the old parameters.
    """
    rng = step_rng(seed, t)
    value, gradient = objective_and_gradient(flat, *minibatch(x1, x2, batch_size, rng), rng)
    rate = step_size(t) if callable(step_size) else step_size
    flat, m, v = adam_step(flat, -gradient, m, v, t + 1, rate)                   # loss = -objective
    return flat, m, v, value


def decaying_step_size(peak, num_steps):
    """Adam's step size as a function of step t: peak for the first half, then linearly down to
    peak * 2 / num_steps at the last step, so the stochastic optimum settles rather than being circled."""
    return lambda t: peak * min(1.0, 2.0 * (1.0 - t / num_steps))


def step_sizes(step_size, num_steps):
    """The step size of every step (num_steps,), checked: finite and positive. None = the default schedule."""
    if step_size is None:
        step_size = decaying_step_size(STEP_SIZE, num_steps)
    rates = onp.array([step_size(t) if callable(step_size) else step_size for t in range(num_steps)], dtype=float)
    bad = onp.flatnonzero(~(onp.isfinite(rates) & (rates > 0)))
    if len(bad):
        raise ValueError(f"step_size must be positive and finite at every step; at step {bad[0]} it is {rates[bad[0]]}")
    return rates


def maximise(objective, params, x1, x2, seed=0, num_steps=NUM_STEPS, step_size=None,
             batch_size=BATCH_SIZE, log_every=200, print_fn=print, name="objective", dtype=np.float64):
    """Maximise objective(params, x1, x2, rng) with Adam; returns (params, objective per step).

    step_size: a number (constant), a function of the step, or None for
    decaying_step_size(STEP_SIZE, num_steps). Step t draws its batch and noise from
    step_rng(seed, t) only. Prints step, objective and seconds every log_every steps
    (print_fn=None is silent). A non-finite objective stops with FloatingPointError naming the
    step. dtype=np.float32 trains in single precision (faster at larger widths); the returned
    parameters are float64 either way.
    """
    check_seed(seed)
    for label, value in (("num_steps", num_steps), ("log_every", log_every)):
        check_positive_int(value, label)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    if print_fn is not None and not callable(print_fn):
        raise ValueError(f"print_fn must be callable or None, got {print_fn!r}")
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    rates = step_sizes(step_size, num_steps)
    flat, unflatten = flatten_params(params)
    objective_and_gradient = value_and_grad(
        lambda vector, *batch_and_rng: objective(unflatten(vector), *batch_and_rng))
    flat, x1, x2 = flat.astype(dtype), np.asarray(x1, dtype=dtype), np.asarray(x2, dtype=dtype)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    history, start = np.zeros(num_steps), time.perf_counter()
    for t in range(num_steps):
        flat, m, v, history[t] = training_step(objective_and_gradient, flat, m, v, t, x1, x2,
                                                seed, rates[t], batch_size)
        if not np.isfinite(history[t]):
            raise FloatingPointError(f"{name} objective became {history[t]} at step {t}; "
                                     f"lower step_size (now {rates[t]:.3g}) or check the data")
        if print_fn is not None and (t % log_every == 0 or t == num_steps - 1):
            print_fn(f"  {name:5s} step {t:5d}  objective {history[t]:10.4f}  {time.perf_counter() - start:6.2f} s")
    return unflatten(flat.astype(np.float64)), history


def x1_standardisation(x1):
    """(shift (D1,), scale): the mean of x1 and one overall standard deviation sqrt(tr Cov / D1).

    One scale for all dimensions keeps the isotropic decoder isotropic.
    """
    scale = math.sqrt(float(onp.mean(onp.var(x1, axis=0))))
    if not scale > 0:
        raise ValueError("x1 has no variation (all rows equal): nothing to model")
    return onp.mean(x1, axis=0), scale


def change_x1_units(params, shift, scale):
    """Params acting on y into params acting on x = scale * y + shift: an exact reparameterisation.

    Encoder: y W + b = x (W / scale) + (b - shift W / scale). Decoder mean: scale (h W + b) + shift.
    Log-variance: + 2 log scale. Then q(g|x) is unchanged and log p(x|g) = log p(y|g) - D1 log scale.
    """
    check_params(params)
    check_real_number(scale, "scale")
    if not scale > 0 or onp.shape(shift) != (onp.shape(params["encoder_x1"][0]["W"])[0],):
        raise ValueError(f"scale must be > 0 and shift a vector of x1's size, got scale {scale!r}, shift shape {onp.shape(shift)}")
    encoder, decoder = [dict(layer) for layer in params["encoder_x1"]], [dict(layer) for layer in params["decoder_x1"]]
    encoder[0] = {"W": encoder[0]["W"] / scale, "b": encoder[0]["b"] - shift @ encoder[0]["W"] / scale}
    decoder[-1] = {"W": scale * decoder[-1]["W"], "b": scale * decoder[-1]["b"] + shift}
    return dict(params, encoder_x1=encoder, decoder_x1=decoder,
                decoder_x1_log_var=params["decoder_x1_log_var"] + 2.0 * math.log(scale))


def train(model, x1, x2, seed=0, params=None, standardise=True, latent_dim=2, hidden=(32,), private_dim=None,
          **options):
    """Train one model ("mvae", "mmvae", "mopoe", or "mmvaeplus" of section B3) by maximising its objective.

    Initial parameters, unless given, come from init_params(init_rng(seed), ..., latent_dim,
    hidden, private_dim), in the standardised units (private_dim: 1 for "mmvaeplus" unless given,
    else 0). With standardise (the default) the model is trained on y = (x1 - shift) / scale
    (x1_standardisation) and the result mapped back by change_x1_units, so the outcome does not
    depend on x1's units; given params are in x1's units. The returned history is then in y's
    units: per point it exceeds the objective in the units of x1 by D1 log scale for each
    log p(x1|g) term. options are maximise's.
    """
    check_model(model)
    check_x1(x1)
    check_one_hot(x2)
    if np.shape(x1)[0] != np.shape(x2)[0]:
        raise ValueError(f"x1 has {np.shape(x1)[0]} rows but x2 has {np.shape(x2)[0]}")
    check_seed(seed)
    shift, scale = x1_standardisation(x1) if standardise else (onp.zeros(np.shape(x1)[1]), 1.0)
    if params is None:
        if private_dim is None:
            private_dim = 1 if model == "mmvaeplus" else 0
        params = init_params(init_rng(seed), num_classes=np.shape(x2)[1], latent_dim=latent_dim,
                             data_dim=np.shape(x1)[1], hidden=hidden, private_dim=private_dim)
    else:
        check_params(params)
        params = change_x1_units(params, -shift / scale, 1.0 / scale)
    check_modalities(params, x1, x2)
    trained, history = maximise(OBJECTIVES[model], params, (x1 - shift) / scale, x2, seed=seed, name=model, **options)
    return change_x1_units(trained, shift, scale), history


# ---------------------------------------------------------------- 7. generation and metrics

def decode_mean_x1(params, g):
    """The decoder mean of x1 at g, i.e. the mean part of tau_1(g; theta). g (..., D) -> (..., D1)."""
    return mlp(params["decoder_x1"], g)


def generate_from_prior(params, num_samples, rng):
    """x1 decoder means at g ~ p(g) = N(0, I) (Fig. 2, left). -> (num_samples, D1)."""
    check_positive_int(num_samples, "num_samples")
    check_rng(rng)
    latent_dim = np.shape(params["decoder_x1"][0]["W"])[0]
    return decode_mean_x1(params, rng.standard_normal((num_samples, latent_dim)))


def generate_from_labels(params, x2, rng, model, with_noise=False, private="prior"):
    """x1 decoder means at one g ~ q(g|x2) per row of x2 (Fig. 2, right): cross-generation.

    with_noise=True draws x1 ~ p_theta(x1|g) instead: the mean plus the decoder's isotropic noise.
    private: MMVAE+'s w_1 from "prior" p(w_1), "auxiliary" r_1, or "zero" (w_1 = 0).
    """
    check_one_hot(x2, np.shape(params["encoder_x2"][0]["W"])[0])
    check_rng(rng)
    if private not in ("prior", "auxiliary", "zero"):
        raise ValueError(f"private must be 'prior', 'auxiliary' or 'zero', got {private!r}")
    mean, log_var = label_to_x1_latent(params, x2, model, "prior" if private == "zero" else private)
    latent = sample_normal(mean, log_var, rng)                                   # (N, D [+ P])
    if private == "zero":
        latent = np.concatenate([latent[:, :shared_dim(params)], np.zeros((len(latent), private_dim(params)))], axis=1)
    means = decode_mean_x1(params, latent)
    if not with_noise:
        return means
    return sample_normal(means, params["decoder_x1_log_var"], rng)


def reconstruct_x1(params, x1, rng, model):
    """x1 decoder means at one g ~ q(g|x1) per row of x1: self-reconstruction."""
    check_x1(x1, np.shape(params["encoder_x1"][0]["W"])[0])
    check_rng(rng)
    return decode_mean_x1(params, sample_normal(*x1_to_latent(params, x1, model), rng))


def total_variance(x):
    """Trace of the (maximum-likelihood) covariance of the rows of x (N, D)."""
    return np.sum(np.var(x, axis=0))


def spread_ratio(generated, data):
    """tr Cov(generated) / tr Cov(data): 1 keeps the data's variation, 0 disregards it.

    For decoder means (generate_from_labels' default) even a perfect model scores below 1: the
    data carry the decoder noise, D1 sigma^2 of tr Cov, that the means leave out. Sampled x1
    (with_noise=True) include it.
    """
    check_x1(generated)
    check_x1(data, np.shape(generated)[1])
    if np.shape(data)[0] < 2 or total_variance(data) == 0:
        raise ValueError("spread_ratio needs data with at least two distinct rows")
    return total_variance(generated) / total_variance(data)


def class_spread_ratios(params, x1, labels, rng, model):
    """spread_ratio of cross-generated x1 (g ~ q(g|x2 = c)) against class c's data, per class c."""
    num_classes = np.shape(params["encoder_x2"][0]["W"])[0]
    x2 = one_hot(labels, num_classes)
    generated = generate_from_labels(params, x2, rng, model)                     # (N, D1)
    return np.array([spread_ratio(generated[labels == c], x1[labels == c])
                     for c in range(num_classes)])


# ================================================================ beyond the paper
# Extensions: each says what it adds to the paper. The paper's sections end above.

# ---------------------------------------------------------------- B1. what the MMVAE loses, in nats

# Samples K per label for conditional_log_likelihood: on the trained default models (seed 0) the
# per-point estimate changes by at most 0.003 nats from K = 4 * 10^4 to 16 * 10^4 (the MVAE, whose
# sharp decoder converges slowest; the MMVAE by 0.0002); from 10^4 to 4 * 10^4 it still moves 0.016.
# Small changes are not convergence here: the MVAE's value at 4 * 10^4 is still 0.02-0.03 nats below
# conditional_log_likelihood_defensive's at K = 1600, which theorem_check.py therefore reports.
CONDITIONAL_SAMPLES = 40_000
DEFENSIVE_SAMPLES = 400     # per datapoint; K/4 -> K changes the trained pinwheel models by <= 0.003 nats


def conditional_log_likelihood(params, x1, x2, rng, num_samples=CONDITIONAL_SAMPLES, model="mmvae",
                               chunk_size=1024):
    """log p(x1|x2) = log int q(g|x2) p_theta(x1|g) dg (the display under Eq. 4), per datapoint (N,).

    Estimated as log (1/K) sum_k p_theta(x1|g_k), g_k ~ q(g|x2) the label posterior the model
    generates from (label_to_x1_latent; for MMVAE+ with w_1 ~ p(w_1)). This is the importance-weighted bound with K samples
    (Burda et al. 2016) whose proposal is q(g|x2) itself: its expectation is L_1/N (Eq. 4) at
    K = 1, does not decrease with K, and tends to log p(x1|x2). Datapoints with the same label
    share q(g|x2), so the K samples are drawn once per label, chunk_size at a time. For the
    isotropic f_1, log N(x_n | mu_k, s^2 I) = a_n + b_nk with a_n = -(D/2) log(2 pi s^2) -
    |x_n|^2 / (2 s^2) and b_nk = (x_n . mu_k - |mu_k|^2 / 2) / s^2; a_n leaves the sum over k.
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    check_positive_int(num_samples, "num_samples")
    check_positive_int(chunk_size, "chunk_size")
    labels, (num, dim) = onp.argmax(x2, axis=1), onp.shape(x1)
    log_var = params["decoder_x1_log_var"]
    a = -0.5 * dim * (LOG_2PI + log_var) - 0.5 * onp.sum(x1 * x1, axis=1) * onp.exp(-log_var)      # (N,)
    log_mean_b = onp.zeros(num)
    for label in onp.unique(labels):
        members = labels == label
        mean, label_log_var = label_to_x1_latent(params, x2[members][:1], model)     # (1, D [+ P])
        chunks = []
        for size in [min(chunk_size, num_samples - start) for start in range(0, num_samples, chunk_size)]:
            mu = decode_mean_x1(params, sample_normal(mean[0], label_log_var[0], rng, (size,)))   # (K_chunk, D1)
            b = (x1[members] @ mu.T - 0.5 * onp.sum(mu * mu, axis=1)) * onp.exp(-log_var)       # (N_c, K_chunk)
            chunks.append(logsumexp(b, axis=1))                                      # (N_c,)
        log_mean_b[members] = logsumexp(onp.stack(chunks), axis=0) - math.log(num_samples)
    return a + log_mean_b


def conditional_log_likelihood_defensive(params, x1, x2, rng, num_samples=DEFENSIVE_SAMPLES, model="mmvae"):
    """log p(x1|x2) per datapoint (N,), by importance sampling from r_n = (q(g|x2) + q(g|x1_n)) / 2.

    The same quantity as conditional_log_likelihood, with a proposal that also looks where x1_n
    itself puts g: log (1/K) sum_k q(g_k|x2) p_theta(x1|g_k) / r_n(g_k), half the g_k from each
    half of r_n (the weights use the whole mixture, so the average is unbiased for p(x1|x2)).
    The weights never exceed 2 p_theta(x1|g), so it is never much worse than the label proposal,
    and far better when a sharp decoder makes q(g|x2) a poor proposal (the MVAE). A lower bound
    in expectation for every K; it does not equal L_1 / N at K = 1.
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    if not (hasattr(num_samples, "__index__") and num_samples >= 2 and num_samples % 2 == 0):
        raise ValueError(f"num_samples must be an even integer >= 2, got {num_samples!r}")
    label_mean, label_log_var = label_to_x1_latent(params, x2, model)            # (N, D [+ P])
    own_mean, own_log_var = x1_to_latent(params, x1, model)                      # (N, D [+ P])
    half = (num_samples // 2,)
    g = onp.concatenate([sample_normal(label_mean, label_log_var, rng, half),
                         sample_normal(own_mean, own_log_var, rng, half)])       # (K, N, D)
    log_q_label = log_normal(g, label_mean, label_log_var)                       # (K, N)
    log_proposal = onp.logaddexp(log_q_label, log_normal(g, own_mean, own_log_var)) - math.log(2.0)
    log_weights = log_q_label + decoder_x1_log_likelihood(params, x1, g) - log_proposal   # (K, N)
    return logsumexp(log_weights, axis=0) - math.log(num_samples)


def nearest_label(points, reference_x1, reference_labels):
    """The label of each point's nearest reference point (Euclidean): points (N, D) -> (N,)."""
    squared = (onp.sum(points ** 2, axis=1)[:, None] - 2.0 * points @ reference_x1.T
               + onp.sum(reference_x1 ** 2, axis=1)[None, :])                    # (N, R)
    return onp.asarray(reference_labels)[onp.argmin(squared, axis=1)]


def label_coherence(generated, conditioning_labels, reference_x1, reference_labels):
    """Fraction of generated x1 whose nearest reference point carries the conditioning label.

    1 means every label->x1 sample lands among its own class; it tells samples that stray to
    another class (e.g. the MVAE's overlapping label posteriors) from variation that is kept.
    """
    check_x1(generated)
    check_x1(reference_x1, np.shape(generated)[1])
    conditioning_labels = check_labels(conditioning_labels, len(generated), "conditioning_labels")
    reference_labels = check_labels(reference_labels, len(reference_x1), "reference_labels")
    return float(onp.mean(nearest_label(generated, reference_x1, reference_labels) == conditioning_labels))


def leave_one_out_coherence(x1, labels):
    """label_coherence of the data themselves, per label: each point against all the others (1-NN).

    The yardstick for label_coherence: where the data's own classes overlap, no model can score 1.
    """
    check_x1(x1)
    labels = check_labels(labels, len(x1))
    squared = onp.sum(x1 ** 2, axis=1)[:, None] - 2.0 * x1 @ x1.T + onp.sum(x1 ** 2, axis=1)[None, :]   # (N, N)
    onp.fill_diagonal(squared, onp.inf)                                           # not its own neighbour
    same = labels[onp.argmin(squared, axis=1)] == labels
    return [float(onp.mean(same[labels == c])) for c in onp.unique(labels)]


# ---------------------------------------------------------------- B2. real surjective data: handwritten digits

# UCI Optical Recognition of Handwritten Digits, test set (E. Alpaydin and C. Kaynak; CC BY 4.0),
# the copy inside scikit-learn's wheel, committed unchanged: 1797 rows of 64 pixel counts 0..16
# (8 x 8 images), then the label.
DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "digits.csv.gz")
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def load_digits(path=DIGITS_PATH):
    """The digits as x1 (N, 64) in [0, 1] (pixel counts / 16) and integer labels (N,) in 0..9.

    Checks the file's SHA-256 first: a missing or altered file is a ValueError naming it.
    """
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise ValueError(f"cannot read the digits file {path}: {error.strerror}; it ships in the "
                         "repository as data/digits.csv.gz") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != DIGITS_SHA256:
        raise ValueError(f"{path} is altered: its SHA-256 is {digest}, expected {DIGITS_SHA256}")
    table = onp.loadtxt(io.StringIO(gzip.decompress(content).decode("ascii")), delimiter=",")   # (N, 65)
    return table[:, :64] / 16.0, table[:, 64].astype(int)


# ---------------------------------------------------------------- B3. the published remedy: MMVAE+ (private latents)

def mmvaeplus_objective(params, x1, x2, rng, beta=1.0):
    """MMVAE+ (Palumbo, Daunhawer and Vogt 2023), stratified, one sample per stratum. Maximised.

    u_m = (g, w_m) with a shared g and a private w_m per modality; q(u|x_m) = q(g|x_m) q(w_m|x_m)
    is expert m. Stratum m draws g ~ q(g|x_m), w_m ~ q(w_m|x_m) and, for the other modality n,
    w~_n ~ r_n(w_n) = N(0, diag exp(auxiliary log-variance)), and scores
      log p(x_m|g, w_m) + log p(x_n|g, w~_n) + beta log [p(g) p(w_m) / (q_MoE(g|x1, x2) q(w_m|x_m))],
    p(g), p(w_m) = N(0, I); the average over m is outside the log, as in Eq. (5). The cross term
    log p(x_n|g, w~_n) is Eq. (4) over (g, w~): Theorem 1's proof holds for it unchanged, because
    the law of (g, w~) is the same for every n in S_c. With private size 0 this is mmvae_objective
    for the same noise (tested). The authors' code (srl-ethz/mmvaeplus, objectives.py, _m_elbo)
    scores the same terms; it differs in: Laplace rather than Gaussian distributions on their
    image data, K > 1 samples with the DReG gradient estimator (m_dreg) rather than K = 1 and the
    plain reparameterised gradient, per-modality likelihood weights (llik_scaling; here 1), and
    beta = 2.5 rather than 1 in most of their experiments.
    """
    check_modalities(params, x1, x2)
    check_rng(rng)
    check_real_number(beta, "beta", minimum=0.0)
    shared = shared_dim(params)
    means, log_vars = unimodal_experts(params, x1, x2)                           # (M, N, D + P)
    u = sample_normal(means, log_vars, rng)                                      # (M, N, D + P): stratum m
    g, w_own = u[..., :shared], u[..., shared:]                                  # (M, N, D), (M, N, P)
    # Stratum m borrows the other modality's auxiliary prior: r_2 in stratum 1, r_1 in stratum 2.
    auxiliary_log_vars = stack_on_new_axis(*[params.get(key, np.zeros(0)) for key in PRIVATE_PRIOR_KEYS[::-1]])  # (M, P)
    w_other = sample_normal(np.zeros(np.shape(w_own)), auxiliary_log_vars[:, None, :], rng)   # (M, N, P)
    w_for_x1 = stack_on_new_axis(w_own[0], w_other[1])                          # stratum 1: own; stratum 2: r_1
    w_for_x2 = stack_on_new_axis(w_other[0], w_own[1])                          # stratum 1: r_2; stratum 2: own
    log_p_x1 = decoder_x1_log_likelihood(params, x1, np.concatenate([g, w_for_x1], axis=-1))            # (M, N)
    log_p_x2 = log_categorical(x2, mlp(params["decoder_x2"], np.concatenate([g, w_for_x2], axis=-1)))  # (M, N)
    log_ratio = (log_prior(g) + log_prior(w_own) - mixture_log_density(g, means[..., :shared], log_vars[..., :shared])
                 - log_normal(w_own, means[..., shared:], log_vars[..., shared:]))   # (M, N)
    return np.mean(log_p_x1 + log_p_x2 + beta * log_ratio)


OBJECTIVES["mmvaeplus"] = mmvaeplus_objective


# ---------------------------------------------------------------- B9. speed: python surjvae_np.py bench

PEER_STEP_LINE = r"(MVAE|MMVAE): median step \(fwd\+bwd\+Adam, bs (\d+)\) with 1 thread\(s\): ([0-9.]+) ms"


def median_step_seconds(model, hidden, batch_size, dtype, num_steps=200, warmup=20, seed=0):
    """Median seconds of one training_step (objective, gradient, Adam) on the 2-class pinwheel."""
    check_model(model)
    x1, labels = make_pinwheel(rng=npr.default_rng([seed, 3]))
    params = init_params(init_rng(seed), hidden=hidden)
    flat, unflatten = flatten_params(params)
    objective_and_gradient = value_and_grad(lambda vector, *batch: OBJECTIVES[model](unflatten(vector), *batch))
    flat, x1, x2 = flat.astype(dtype), x1.astype(dtype), one_hot(labels, 2).astype(dtype)
    m, v, seconds = np.zeros_like(flat), np.zeros_like(flat), []
    for t in range(warmup + num_steps):
        start = time.perf_counter()
        flat, m, v, _ = training_step(objective_and_gradient, flat, m, v, t, x1, x2, seed, 1e-3, batch_size)
        seconds.append(time.perf_counter() - start)
    return float(onp.median(seconds[warmup:]))


def peer_step_milliseconds(torch_python, peer_script):
    """{(model, batch): median ms} from the PyTorch peer's --steptime-only run at tanh, one thread."""
    output = subprocess.run([torch_python, peer_script, "--steptime-only", "--act", "tanh"],
                            capture_output=True, text=True, check=True).stdout
    return {(name.lower(), int(batch)): float(ms) for name, batch, ms in re.findall(PEER_STEP_LINE, output)}


def bench_main(argv=None):
    """python surjvae_np.py bench: median ms per training step, every model, two widths, two batch sizes."""
    parser = argparse.ArgumentParser(prog="surjvae_np.py bench", description=bench_main.__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the table shows the median")
    parser.add_argument("--torch-python", help="python of a venv with torch, to time ../shared/peer/torch_minimal.py")
    parser.add_argument("--peer", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared",
                                                         "peer", "torch_minimal.py"), help="the PyTorch peer script")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.torch_python and not (os.path.isfile(args.torch_python) and os.path.isfile(args.peer)):
        parser.error(f"--torch-python {args.torch_python} or --peer {args.peer} is not a file")
    print(f"bench configuration: rounds={args.rounds}, torch_python={args.torch_python}, peer={args.peer}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}", flush=True)
    cases = [(model, hidden, batch, dtype) for hidden in ((32,), (64, 64)) for model in MODELS
             for batch in (128, None) for dtype in (np.float64, np.float32)]
    ours, peer = {case: [] for case in cases}, {}
    for round_index in range(args.rounds):
        for case in cases:
            ours[case].append(1e3 * median_step_seconds(*case, num_steps=200 if case[2] else 50))
        if args.torch_python:
            for key, ms in peer_step_milliseconds(args.torch_python, args.peer).items():
                peer.setdefault(key, []).append(ms)
        print(f"  round {round_index + 1}/{args.rounds} done", flush=True)
    print(f"{'model':6s} {'hidden':8s} {'batch':>5s} {'float64 ms':>10s} {'float32 ms':>10s} {'torch f32 ms':>12s}"
          f" {'f64/torch':>9s} {'f32/torch':>9s}")
    for model, hidden, batch, dtype in cases:
        if dtype is np.float32:
            continue
        f64, f32 = (onp.median(ours[model, hidden, batch, d]) for d in (np.float64, np.float32))
        reference = onp.median(peer[model, batch]) if (model, batch) in peer and hidden == (64, 64) else None
        ratios = f"{f64 / reference:9.2f} {f32 / reference:9.2f}" if reference else f"{'':9s} {'':9s}"
        print(f"{model:6s} {','.join(map(str, hidden)):8s} {batch or 1000:5d} {f64:10.2f} {f32:10.2f}"
              f" {reference if reference else float('nan'):12.2f} {ratios}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["bench"]:
        sys.exit("usage: python surjvae_np.py bench [--rounds R] [--torch-python PATH] [--peer PATH]")
    sys.exit(bench_main(sys.argv[2:]))
