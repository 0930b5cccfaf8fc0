"""surjvae_np: J. Wolff, T. Klein, M. Nabi, R. G. Krishnan, S. Nakajima, "Mixture-of-experts VAEs can disregard
variation in surjective multimodal data", in NumPy and autograd. Read it beside the paper, top to bottom: Sec. 2's
generative and inference models (Eq. 1-3), the cross-modal term (Eq. 4), the MMVAE (Eq. 5); App. A's MVAE (Eq. 8-10);
Sec. 3's data, training and generation (Fig. 2). A function implementing an equation opens its docstring with "Eq. (N)".
Theorem 1 (Eq. 6-7): theorem_check.py; beyond the paper: beyond_the_paper.py. At the end: input checks, speed primitives.
Conventions: x1 in R^D1, x2 the one-hot label x_M (M = 2), experts stacked on axis 0: (M, N, D). Objectives are
maximised; the one negation is the loss handed to Adam (training_step). Every draw comes from a numpy.random.Generator."""
import math

import autograd.numpy as np
import numpy as onp                 # plain NumPy, for raw arrays: the input checks and the speed primitives
from autograd import value_and_grad
from autograd.core import SparseObject
from autograd.extend import defvjp, defvjp_argnums, primitive, vspace
from autograd.tracer import getval

PAPER_MODELS = ("mvae", "mmvae")     # Sec. 3: the MVAE (Wu and Goodman 2018) and the MMVAE (Shi et al. 2019)
LOG_2PI = math.log(2.0 * math.pi)    # a Python float: it keeps float32 arithmetic float32 (NumPy 2)
NUM_STEPS, STEP_SIZE, BATCH_SIZE = 800, 0.05, 128    # Adam: steps, peak step size, batch (README, design choices)
MAX_SEED = 2 ** 63 - 1               # seeds are integers 0..MAX_SEED (the scripts' parsers take the same range)


def checked(function, registry="ARGUMENT_CHECKS"):
    """Decorator: check function's arguments by their names (check_arguments, with the registry of checks of
    function's module, at its end) before its body runs. function.__wrapped__ is the body alone, unchecked."""
    def with_checks(*args, **kwargs):
        check_arguments(function, args, kwargs, function.__globals__[registry])
        return function(*args, **kwargs)
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(with_checks, attribute, getattr(function, attribute))
    with_checks.__wrapped__ = function
    return with_checks


# ---------------------------------------------------------------- Sec. 2, Eq. (1) and (3): the generative model

def log_prior(g):
    """Eq. (1): log p(g) = log N(g | 0, I), summed over the last axis."""
    return -0.5 * np.sum(LOG_2PI + g * g, axis=-1)


def log_normal(x, mean, log_var):
    """log N(x | mean, diag(exp(log_var))), summed over the last axis. Broadcasts."""
    residual = x - mean
    return -0.5 * np.sum(LOG_2PI + log_var + residual * residual * np.exp(-log_var), axis=-1)


def mean(a, axis=None):
    """np.mean(a, axis), equal to the bit, as a sum over a Python count: autograd 1.9.1's gradient of np.mean divides by a NumPy
    int64, which NumPy 2 promotes float32 to float64 (a float32 objective's backward pass then ran in float64; tested)."""
    return np.sum(a, axis=axis) / (np.size(a) if axis is None else np.shape(a)[axis])


def logsumexp(a, axis):
    """log sum_i exp(a_i) along axis, computed stably."""
    shift = getval(np.max(a, axis=axis, keepdims=True))    # getval: the shift cancels in value and gradient
    return np.log(np.sum(np.exp(a - shift), axis=axis)) + np.squeeze(shift, axis=axis)


def mlp(layers, inputs, fused=True):
    """The networks tau_m(g; theta) of Eq. (3) and kappa_m(x_m; phi) of Sec. 2: (..., d_0) -> (..., d_L).
    h_0 = inputs, h_l = tanh(h_(l-1) W_l + b_l), output h_(L-1) W_L + b_L (no hidden layer: affine)."""
    if fused:                         # fast path: the same map as one traced operation (_mlp_fused, tested)
        return _mlp_fused(inputs, *[array for layer in layers for array in (layer["W"], layer["b"])])
    hidden = inputs
    for layer in layers[:-1]:
        hidden = np.tanh(hidden @ layer["W"] + layer["b"])
    return hidden @ layers[-1]["W"] + layers[-1]["b"]


def decoder_x1_log_likelihood(params, x1, g):
    """Eq. (3): log p_theta(x1|g) = log f_1(x1 | tau_1(g; theta)), f_1 isotropic Gaussian with
    tau_1(g) = (mean mlp(g), one learned log-variance). g (..., N, D), x1 (N, D1) -> (..., N). The objectives take it as
    x1_log_likelihood: Theorem 1 holds for any parametric f_1 that a constant tau_1 can fit."""
    return log_normal(x1, mlp(params["decoder_x1"], g), params["decoder_x1_log_var"])


def decoder_x2_log_likelihood(params, x2, g):
    """Eq. (3), the label modality: log p_theta(x2|g) = log Cat(x2 | softmax(tau_2(g; theta))) = sum_c x2_c
    (logits_c - logsumexp(logits)), logits = mlp(g). -> (..., N). The objectives take it as x2_log_likelihood."""
    logits = mlp(params["decoder_x2"], g)
    return np.sum(x2 * (logits - logsumexp(logits, axis=-1)[..., None]), axis=-1)


# ---------------------------------------------------------------- Sec. 2, Eq. (2): the inference model

def gaussian_expert(layers, x):
    """Sec. 2: q_phi(g|x_m) = r_m(g | kappa_m(x_m; phi)), kappa_m = mlp's output split into (mean, log_var)."""
    out = mlp(layers, x)                                                          # (N, 2D)
    return out[..., :np.shape(out)[-1] // 2], out[..., np.shape(out)[-1] // 2:]


def unimodal_experts(params, x1, x2):
    """Eq. (2)'s building blocks, the M = 2 experts r_1(g|x1), r_2(g|x2): means and log_vars (M, N, D)."""
    mean1, log_var1 = gaussian_expert(params["encoder_x1"], x1)
    mean2, log_var2 = gaussian_expert(params["encoder_x2"], x2)
    return _stack(mean1, mean2), _stack(log_var1, log_var2)                      # np.stack as one traced op


def sample_normal(mean, log_var, rng, leading_shape=()):
    """Reparameterised draws mean + exp(log_var / 2) * eps, eps ~ N(0, I) from rng, of mean's float type.
    leading_shape adds sample axes in front: (S,) with mean (N, D) gives (S, N, D)."""
    eps = rng.standard_normal(tuple(leading_shape) + np.shape(mean), dtype=_float_dtype(mean))
    return mean + np.exp(0.5 * log_var) * eps


def _float_dtype(array):
    """np.float32 for a float32 array (or a box holding one), np.float64 for anything else."""
    return np.float32 if np.result_type(getval(array)) == np.float32 else np.float64


def mixture_log_density(g, means, log_vars):
    """Sec. 2: log q_phi(g|{x_m}) = log (1/M) sum_m r_m(g | kappa_m(x_m; phi)), in log space.
    g (..., N, D); components (K, N, D), component k of datapoint n at [k, n] -> (..., N)."""
    component_log_densities = log_normal(g[..., None, :, :], means, log_vars)     # (..., K, N)
    return logsumexp(component_log_densities, axis=-2) - math.log(np.shape(means)[0])


@checked
def label_posterior(params, x2, model):
    """q(g|x2), which each model generates x1 from (Fig. 2, right): mean, log_var (N, D).
    MMVAE: the label expert r_M itself (Sec. 2). MVAE: Eq. (8) over {x2}, p(g) r_M(g) normalised."""
    return _posterior_given_one_modality(params["encoder_x2"], x2, model)


@checked
def x1_posterior(params, x1, model):
    """q(g|x1): the expert r_1 (MMVAE), or p(g) r_1(g) normalised (MVAE, Eq. 8). mean, log_var (N, D)."""
    return _posterior_given_one_modality(params["encoder_x1"], x1, model)


def _posterior_given_one_modality(encoder, x, model):
    mean, log_var = gaussian_expert(encoder, x)
    if model == "mmvae":
        return mean, log_var
    poe_mean, poe_log_var = product_of_experts(mean[None], log_var[None], np.ones((1, 1)))
    return poe_mean[0], poe_log_var[0]


# ---------------------------------------------------------------- Eq. (4): the cross-modal term

@checked
def cross_modal_term(params, x1, x2, rng, num_samples=16, model="mmvae"):
    """Eq. (4): L_1 = sum_n int r_M(g | kappa_M(x_M^(n))) log f_1(x1^(n) | tau_1(g)) dg. Maximised.
    Monte Carlo, num_samples draws per datapoint. r_M: the label expert (model="mmvae", the
    paper's setting), or the MVAE's label posterior ("mvae"); Theorem 1 holds for any r_M."""
    g = sample_normal(*label_posterior.__wrapped__(params, x2, model), rng, (num_samples,))   # (S, N, D); checked above
    return np.sum(mean(decoder_x1_log_likelihood(params, x1, g), axis=0))


# ---------------------------------------------------------------- Eq. (5): the MMVAE

def stratified_mixture_elbo(params, x1, x2, means, log_vars, rng, x2_log_likelihood=decoder_x2_log_likelihood,
                            x1_log_likelihood=decoder_x1_log_likelihood):
    """Eq. (5), stratified: (1/K) sum_k E_{q_k(g)}[log p(g, {x_m}) - log q(g|{x_m})]. Maximised. q(g|{x_m}) = (1/K) sum_k q_k(g),
    components means, log_vars (K, N, D); one reparameterised g per component and datapoint; log p(g, {x_m}) = log p(g) + sum_m
    log p(x_m|g) (Eq. 1); the average over components outside the log. Averaged over datapoints."""
    g = sample_normal(means, log_vars, rng)                                       # (K, N, D)
    log_joint = log_prior(g) + (x1_log_likelihood(params, x1, g) + x2_log_likelihood(params, x2, g))  # (K, N)
    return mean(log_joint - mixture_log_density(g, means, log_vars))


@checked
def mmvae_objective(params, x1, x2, rng, x2_log_likelihood=decoder_x2_log_likelihood, x1_log_likelihood=decoder_x1_log_likelihood):
    """Eq. (5): (1/M) sum_m E_{q(g|x_m)}[log p(g, {x_m}) / q(g|{x_m})], q the MoE of Sec. 2. Maximised. One sample per expert, the
    1/M outside the log (footnote 4): Shi et al.'s m_iwae_looser at K = 1 (their m_elbo is lower by (1/M) sum_m KL(q_m ||
    q_mix); tested). Stratum m = M draws g ~ r_M(g|x2) and scores log p(x1|g): term (1), L_1 of Eq. (4), weighted 1/M as in
    Eq. (5)'s first line (its second line drops that 1/M)."""
    return stratified_mixture_elbo(params, x1, x2, *unimodal_experts(params, x1, x2), rng, x2_log_likelihood, x1_log_likelihood)


# ---------------------------------------------------------------- App. A, Eq. (8)-(10): the MVAE

ELBO_SUBSETS = onp.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])     # Eq. (9): the modalities of its 3 ELBOs


def product_of_experts(means, log_vars, subsets, prior_expert=None):
    """Eq. (8): q_phi(g|{x_m}_{m in s}) proportional to p(g) prod_{m in s} r_m(g), each row s of subsets. Gaussians multiply in
    closed form: precisions add (the prior N(0, I) adds 1), the mean is the precision-weighted mean. means, log_vars (M, N, D),
    subsets (S, M) of 0/1 -> (S, N, D) each. prior_expert (S,) of 0/1: which products include p(g) (default all, as Eq. 8)."""
    subsets = np.asarray(subsets, dtype=_float_dtype(log_vars))                   # no float64 upcast
    prior_expert = np.ones(len(subsets)) if prior_expert is None else prior_expert
    prior_expert = np.asarray(prior_expert, dtype=_float_dtype(log_vars))
    precisions = np.exp(-log_vars)                                                # (M, N, D)
    total_precision = np.reshape(prior_expert, (-1, 1, 1)) + np.tensordot(subsets, precisions, axes=1)  # (S, N, D)
    weighted_means = np.tensordot(subsets, precisions * means, axes=1)            # (S, N, D)
    return weighted_means / total_precision, -np.log(total_precision)


def kl_to_standard_normal(mean, log_var):
    """Eq. (10)'s first term, negated: KL(q || p(g)) = -E_q[log p(g)/q(g)], q = N(mean, diag exp(log_var)),
    in closed form against the prior N(0, I) of Eq. (1); summed over the last axis."""
    return 0.5 * np.sum(np.exp(log_var) + mean * mean - 1.0 - log_var, axis=-1)


@checked
def mvae_objective(params, x1, x2, rng, x2_log_likelihood=decoder_x2_log_likelihood, x1_log_likelihood=decoder_x1_log_likelihood):
    """Eq. (9): L = ELBO(x1, x2) + ELBO(x1) + ELBO(x2), averaged over datapoints. Maximised. Each ELBO is Eq. (10) with the PoE
    posterior of Eq. (8) over the modalities in its argument and reconstructs only those: the MVAE has no cross term p(x1|x2)
    (App. A). E[log p(g)/q] = -KL in closed form; E[log p(x_m|g)] with one reparameterised sample per ELBO and datapoint."""
    poe_means, poe_log_vars = product_of_experts(*unimodal_experts(params, x1, x2), ELBO_SUBSETS)   # (S, N, D)
    g = sample_normal(poe_means, poe_log_vars, rng)                               # (S, N, D)
    log_p_x1 = x1_log_likelihood(params, x1, g[ELBO_SUBSETS[:, 0] == 1])          # (2, N): ELBO(x1, x2), ELBO(x1)
    log_p_x2 = x2_log_likelihood(params, x2, g[ELBO_SUBSETS[:, 1] == 1])          # (2, N): ELBO(x1, x2), ELBO(x2)
    kl = kl_to_standard_normal(poe_means, poe_log_vars)                           # (S, N)
    return (np.sum(log_p_x1) + np.sum(log_p_x2) - np.sum(kl)) / np.shape(x1)[0]


OBJECTIVES = {"mvae": mvae_objective, "mmvae": mmvae_objective}


# ---------------------------------------------------------------- Sec. 3: the data

@checked
def make_pinwheel(num_classes=2, num_per_class=500, radial_std=0.3, tangential_std=0.05, rate=0.25, *, rng,
                  return_radial=False):
    """Pinwheel data (Johnson et al. 2016), the paper's Sec. 3 data set, without the x10 scaling. Point n of class c: radial r = 1
    + radial_std e_r, tangential t = tangential_std e_t, angle a = 2 pi c / C + rate exp(r); x1 = (r, t) R(a), R(a) = [[cos a,
    -sin a], [sin a, cos a]] from the right: (r, t) turned clockwise, Johnson et al.'s einsum('ti,tij->tj'). Classes in blocks
    (not shuffled). Returns x1 (N, 2), labels (N,), and with return_radial r (N,), the position on the arm."""
    labels = np.repeat(np.arange(num_classes), num_per_class)                     # (N,)
    noise = rng.standard_normal((len(labels), 2)) * np.array([radial_std, tangential_std])
    radial, tangential = 1.0 + noise[:, 0], noise[:, 1]                           # (N,)
    with onp.errstate(over="ignore", invalid="ignore"):                           # checked just below
        angle = 2.0 * np.pi * labels / num_classes + rate * np.exp(radial)        # (N,)
        x1 = np.stack([radial * np.cos(angle) + tangential * np.sin(angle),
                       -radial * np.sin(angle) + tangential * np.cos(angle)], axis=1)   # (N, 2)
    fail_unless(np.all(np.isfinite(x1)), f"radial_std {radial_std} and rate {rate} overflow exp(r): the data are not finite")
    return (x1, labels, radial) if return_radial else (x1, labels)


@checked
def one_hot(labels, num_classes):
    """The label modality x2: row n is the one-hot code of labels[n] in {0, ..., C-1}. (N, C)."""
    return (labels[:, None] == np.arange(num_classes)).astype(float)


# ---------------------------------------------------------------- Sec. 3: parameters and training

@checked
def init_mlp(sizes, rng, output_scale=1.0):
    """Layers [{"W": (d_in, d_out), "b": (d_out,)}, ...] for sizes [d_0, ..., d_L]: W ~ N(0, 1/d_in)
    (variance-preserving for tanh), b = 0, the last W scaled by output_scale."""
    layers = [{"W": rng.standard_normal((d_in, d_out)) / np.sqrt(d_in), "b": np.zeros(d_out)}
              for d_in, d_out in zip(sizes[:-1], sizes[1:])]
    layers[-1]["W"] = output_scale * layers[-1]["W"]
    return layers


@checked
def init_params(rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,), decoder_std=0.1):
    """Every parameter of the MVAE or the MMVAE (one layout) as a nested dict. Encoders x1 -> (mean, log_var) of g and x2 -> (mean,
    log_var), outputs x 0.1 so that every posterior starts near the prior; decoders g -> mean of x1 (its log-variance one
    learned scalar, starting at log decoder_std^2) and g -> logits of x2."""
    hidden = list(hidden)
    return {"encoder_x1": init_mlp([data_dim] + hidden + [2 * latent_dim], rng, output_scale=0.1),
            "encoder_x2": init_mlp([num_classes] + hidden + [2 * latent_dim], rng, output_scale=0.1),
            "decoder_x1": init_mlp([latent_dim] + hidden + [data_dim], rng),
            "decoder_x1_log_var": np.array(2.0 * np.log(decoder_std)),
            "decoder_x2": init_mlp([latent_dim] + hidden + [num_classes], rng)}


@checked
def init_rng(seed):
    """The generator of a training run's initial parameters: a function of seed only."""
    return onp.random.default_rng([seed, 0])


def adam_step(x, gradient, m, v, t, step_size, b1=0.9, b2=0.999, eps=1e-8):
    """One step of Adam (Kingma & Ba 2015, Algorithm 1, its default constants) minimising; t >= 1."""
    m = b1 * m + (1.0 - b1) * gradient
    v = b2 * v + (1.0 - b2) * gradient ** 2
    m_hat, v_hat = m / (1.0 - b1 ** t), v / (1.0 - b2 ** t)
    return x - step_size * m_hat / (np.sqrt(v_hat) + eps), m, v


def training_step(objective_and_gradient, flat, m, v, t, x1, x2, seed, step_size, batch_size):
    """Step t of maximise: batch (batch_size rows without replacement; None: all) and noise from the
    generator of (seed, t), one Adam step on -objective. (new flat, m, v, objective at the old flat)."""
    rng = onp.random.default_rng([seed, 1, t])
    if batch_size is not None and batch_size < np.shape(x1)[0]:
        rows = rng.choice(np.shape(x1)[0], size=batch_size, replace=False)
        x1, x2 = x1[rows], x2[rows]
    value, gradient = objective_and_gradient(flat, x1, x2, rng)
    flat, m, v = adam_step(flat, -gradient, m, v, t + 1, step_size)               # loss = -objective
    return flat, m, v, value


@checked
def decaying_step_size(peak, num_steps):
    """Adam's step size at step t: peak, then from half-way linearly down to peak * 2 / num_steps (the optimum settles)."""
    return lambda t: peak * min(1.0, 2.0 * (1.0 - t / num_steps))


def _step_sizes(step_size, num_steps):
    """The step size of every step (num_steps,); None is decaying_step_size(STEP_SIZE, num_steps)."""
    schedule = decaying_step_size(STEP_SIZE, num_steps) if step_size is None else step_size
    return onp.array([schedule(t) if callable(schedule) else schedule for t in range(num_steps)], dtype=float)


@checked
def maximise(objective, start, x1, x2, seed=0, num_steps=NUM_STEPS, step_size=None, batch_size=BATCH_SIZE,
             log_every=200, print_fn=print, name="training", dtype=np.float64):
    """Maximise objective(params, x1, x2, rng) with Adam from params start: (params, objective per step).
    step_size: a number, a function of the step, or None (decaying_step_size(STEP_SIZE, num_steps)).
    Prints every log_every steps (print_fn=None: silent); a non-finite objective stops with
    FloatingPointError. dtype=np.float32 trains in single precision; params come back float64."""
    rates, (flat, unflatten) = _step_sizes(step_size, num_steps), flatten_params(start)
    step_objective = getattr(objective, "__wrapped__", objective)      # checked at this edge, not at every step
    objective_and_gradient = value_and_grad(lambda vector, *batch_and_rng: step_objective(unflatten(vector), *batch_and_rng))
    flat, x1, x2 = flat.astype(dtype), np.asarray(x1, dtype=dtype), np.asarray(x2, dtype=dtype)
    m, v, history = np.zeros_like(flat), np.zeros_like(flat), np.zeros(num_steps)
    for t in range(num_steps):
        rate = float(rates[t])       # a Python float: NumPy 2 promotes float32 arrays times a float64 scalar to float64
        flat, m, v, history[t] = training_step(objective_and_gradient, flat, m, v, t, x1, x2, seed, rate, batch_size)
        if not np.isfinite(history[t]):
            raise FloatingPointError(f"{name} objective became {history[t]} at step {t}; lower step_size (now {rates[t]:.3g}) or check the data")
        if print_fn is not None and (t % log_every == 0 or t == num_steps - 1):
            print_fn(f"  {name:5s} step {t:5d}  objective {history[t]:10.4f}")
    return unflatten(flat.astype(np.float64)), history


@checked
def x1_standardisation(x1):
    """(shift (D1,), scale): x1's mean and one overall standard deviation sqrt(tr Cov / D1), one for every
    dimension so that the isotropic decoder stays isotropic."""
    with onp.errstate(over="ignore", invalid="ignore"):                          # an overflow is refused just below
        scale = math.sqrt(float(onp.mean(onp.var(x1, axis=0))))
    fail_unless(math.isfinite(scale), "x1's variance overflows (its values are too large for float64 arithmetic); rescale x1")
    fail_unless(scale > 0, "x1 has no variation (all rows equal): nothing to model")
    return onp.mean(x1, axis=0), scale


@checked
def change_x1_units(params, shift, scale):
    """Parameters acting on y into parameters acting on x = scale * y + shift: an exact reparameterisation.
    Encoder: y W + b = x (W / scale) + (b - shift W / scale). Decoder mean: scale (h W + b) + shift.
    Log-variance: + 2 log scale. So q(g|x) is unchanged and log p(x|g) = log p(y|g) - D1 log scale."""
    encoder, decoder = [dict(layer) for layer in params["encoder_x1"]], [dict(layer) for layer in params["decoder_x1"]]
    encoder[0] = {"W": encoder[0]["W"] / scale, "b": encoder[0]["b"] - shift @ encoder[0]["W"] / scale}
    decoder[-1] = {"W": scale * decoder[-1]["W"], "b": scale * decoder[-1]["b"] + shift}
    return dict(params, encoder_x1=encoder, decoder_x1=decoder,
                decoder_x1_log_var=params["decoder_x1_log_var"] + 2.0 * math.log(scale))


@checked
def fit(objective, start, x1, x2, seed=0, standardise=True, **options):
    """maximise on y = (x1 - shift) / scale (x1_standardisation) from start, in y's units: (params in x1's
    units, mapped back by change_x1_units; the objective per step, in y's units). options: maximise's."""
    shift, scale = x1_standardisation.__wrapped__(x1) if standardise else (onp.zeros(np.shape(x1)[1]), 1.0)
    trained, history = maximise(objective, start, (x1 - shift) / scale, x2, seed=seed, **options)
    return change_x1_units.__wrapped__(trained, shift, scale), history           # unchecked: any model's layout


@checked
def train(model, x1, x2, seed=0, latent_dim=2, hidden=(32,), **options):
    """Train the MVAE or the MMVAE, maximising Eq. (9) or (5) with fit from init_params(init_rng(seed), ...)
    (in fit's standardised units): (params, objective per step). options: fit's and maximise's."""
    start = init_params(init_rng(seed), np.shape(x2)[1], latent_dim, np.shape(x1)[1], hidden)
    return fit(OBJECTIVES[model], start, x1, x2, seed=seed, name=model, **options)


# ---------------------------------------------------------------- Sec. 3, Fig. 2: generation and the spread ratio

def decode_mean_x1(params, g):
    """The decoder mean of x1 at g, the mean part of tau_1(g; theta). g (..., D) -> (..., D1)."""
    return mlp(params["decoder_x1"], g)


@checked
def sample_x1(params, mean, log_var, rng, with_noise=False):
    """x1 decoder means at one g ~ N(mean, diag exp(log_var)) per row; with_noise: x1 ~ p_theta(x1|g)."""
    means = decode_mean_x1(params, sample_normal(mean, log_var, rng))             # (N, D1)
    return sample_normal(means, params["decoder_x1_log_var"], rng) if with_noise else means


@checked
def generate_from_prior(params, num_samples, rng):
    """x1 decoder means at g ~ p(g) = N(0, I) (Fig. 2, left). -> (num_samples, D1)."""
    return decode_mean_x1(params, rng.standard_normal((num_samples, np.shape(params["decoder_x1"][0]["W"])[0])))


@checked
def generate_from_labels(params, x2, rng, model, with_noise=False):
    """x1 decoder means at one g ~ q(g|x2) per row of x2 (Fig. 2, right): cross-generation. (N, D1).
    with_noise=True draws x1 ~ p_theta(x1|g): the mean plus the decoder's isotropic noise."""
    return sample_x1.__wrapped__(params, *label_posterior.__wrapped__(params, x2, model), rng, with_noise)


@checked
def total_variance(points):
    """Trace of the (maximum-likelihood) covariance of the rows of points (N, D)."""
    return np.sum(np.var(points, axis=0))


@checked
def spread_ratio(generated, data):
    """tr Cov(generated) / tr Cov(data): 1 keeps the data's variation, 0 disregards it. Decoder means
    leave out the decoder noise (D1 sigma^2 of the data's tr Cov); x1 drawn with_noise include it."""
    return total_variance.__wrapped__(generated) / total_variance.__wrapped__(data)


# ================================================================ input checks, run by @checked at the edge

# Every public function checks its arguments (@checked) unless named here: the building blocks of the differentiated objectives
# and the training step (their callers are checked) and the checks themselves. A test holds every public name to this.
UNCHECKED = ("log_prior", "log_normal", "mean", "logsumexp", "mlp", "decoder_x1_log_likelihood", "decoder_x2_log_likelihood", "gaussian_expert",
             "unimodal_experts", "sample_normal", "mixture_log_density", "stratified_mixture_elbo", "product_of_experts", "kl_to_standard_normal",
             "decode_mean_x1", "adam_step", "training_step", "flatten_params", "tree_leaves", "tree_rebuild",     # and the checks:
             "checked", "check_arguments", "fail_unless", "check_number", "check_array", "input_size", "check_x2", "check_network",
             "check_params", "check_start", "check_step_size", "check_labels", "check_sizes", "number")


def check_arguments(function, args, kwargs, checks):
    """Bind args, kwargs to function's parameter names (defaults filled in), then run each check of checks (a dict
    name -> check(value, arguments)) whose name is an argument, in the dict's order: ValueError at the first failure."""
    code, defaults = function.__code__, function.__defaults__ or ()
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    arguments = dict(zip(names[code.co_argcount - len(defaults):code.co_argcount], defaults))
    arguments.update(function.__kwdefaults__ or {}, **dict(zip(names, args)), **kwargs)
    for name, check in checks.items():
        if name in arguments:
            check(arguments[name], arguments)


def fail_unless(condition, message):
    if not condition:
        raise ValueError(message)


def check_number(value, name, minimum=None, positive=False, integer=False, maximum=None):
    """value is a finite real number (an integer if integer; >= minimum; <= maximum; > 0 if positive)."""
    kind, kinds = ("an integer", "iu") if integer else ("a finite number", "iuf")
    python_int = isinstance(value, int) and not isinstance(value, bool)                  # of any size: compared below
    is_number = python_int or (not isinstance(value, (bool, str)) and onp.ndim(value) == 0 and onp.asarray(value).dtype.kind in kinds)
    fail_unless(is_number and (python_int or math.isfinite(float(value))), f"{name} must be {kind}, got {value!r:.60}")
    fail_unless(minimum is None or value >= minimum, f"{name} must be {kind} >= {minimum}, got {value!r:.60}")
    fail_unless(maximum is None or value <= maximum, f"{name} must be {kind} <= {maximum}, got {value!r:.60}")
    fail_unless(not positive or value > 0, f"{name} must be a positive {kind.split()[-1]}, got {value!r}")


def check_array(value, name, ndim=None, columns=None, rows=None):
    """value is a NumPy array of finite reals, with ndim axes (2: non-empty, with these columns and rows) if given."""
    value = getval(value)
    fail_unless(isinstance(value, (onp.ndarray, onp.generic)), f"{name} must be a NumPy array, got {type(value).__name__}")
    fail_unless(value.dtype.kind in "biuf", f"{name} must hold real numbers, got dtype {value.dtype}")
    axes = "a scalar" if ndim == 0 else f"of {ndim} axes" + " (N, D)" * (ndim == 2)
    fail_unless(ndim is None or value.ndim == ndim, f"{name} must be {axes}, got shape {value.shape}")
    fail_unless(ndim != 2 or value.size > 0, f"{name} is empty: shape {value.shape}")
    fail_unless(onp.all(onp.isfinite(value)), f"{name} contains NaN or infinite values")
    shape = value.shape + (None, None)
    fail_unless(columns in (None, shape[1]), f"{name} has {shape[1]} columns but the model expects {columns}")
    fail_unless(rows in (None, shape[0]), f"{name} has {shape[0]} rows but x1 has {rows}")


def input_size(arguments, network):
    """The input size of params[network] if params is among the arguments, else None."""
    return onp.shape(getval(arguments["params"])[network][0]["W"])[0] if "params" in arguments else None


def check_x2(x2, arguments):
    """x2 pairs with x1 (same rows) and is one-hot labels, unless the function is generic (takes a start)."""
    x2, classes = getval(x2), input_size(arguments, "encoder_x2")
    fail_unless(onp.ndim(x2) != 1, f"x2 must be one-hot labels (N, C), got shape {onp.shape(x2)}: make them with one_hot(labels, C)")
    check_array(x2, "x2", 2, rows=len(getval(arguments["x1"])) if "x1" in arguments else None)
    fail_unless(classes in (None, x2.shape[1]), f"x2 has {x2.shape[1]} classes but the model expects {classes}")
    fail_unless("start" in arguments or (onp.all((x2 == 0) | (x2 == 1)) and onp.all(onp.sum(x2, axis=1) == 1)), "x2 must be one-hot: one 1 per row")


def check_network(layers, name, size=None, output_size=None):
    """layers = [{"W": (d_in, d_out), "b": (d_out,)}, ...], finite real arrays, sizes chained from size to output_size."""
    fail_unless(isinstance(layers, list) and len(layers) > 0, f"params[{name!r}] must be a non-empty list of layers")
    for where, layer in ((f"params[{name!r}][{index}]", layer) for index, layer in enumerate(layers)):
        fail_unless(isinstance(layer, dict) and set(layer) == {"W", "b"}, f"{where} must be a dict with keys 'W' and 'b'")
        check_array(layer["W"], f"{where}['W']", 2) or check_array(layer["b"], f"{where}['b']", 1)
        fail_unless(layer["b"].shape == layer["W"].shape[1:], f"{where}: W {layer['W'].shape} and b {layer['b'].shape} do not fit")
        fail_unless(size in (None, layer["W"].shape[0]), f"{where} has {layer['W'].shape[0]} inputs, expected {size}")
        size = layer["W"].shape[1]
    fail_unless(output_size in (None, size), f"params[{name!r}] has {size} outputs, expected {output_size}")


def check_params(params, extra_keys=()):
    """params has init_params' layout, plus exactly extra_keys (an extension's), with sizes that fit together."""
    params, expected = getval(params), {"decoder_x1", "decoder_x1_log_var", "decoder_x2", "encoder_x1", "encoder_x2", *extra_keys}
    fail_unless(isinstance(params, dict), f"params must be a dict made by init_params, got {type(params).__name__}")
    fail_unless(expected <= set(params), f"params lacks {sorted(expected - set(params))}; make it with init_params")
    fail_unless(set(params) <= expected, f"params has {sorted(set(params) - expected)}, which this model does not: "
                "another model's parameters? (MMVAE+'s go to beyond_the_paper's MMVAE+ functions)")
    for name in ("decoder_x1", "decoder_x2"):
        check_network(params[name], name)
    latent_dim, data_dim, num_classes = (params[name][index]["W"].shape[axis] for name, index, axis in
                                         (("decoder_x1", 0, 0), ("decoder_x1", -1, 1), ("decoder_x2", -1, 1)))
    check_network(params["decoder_x2"], "decoder_x2", latent_dim)
    check_network(params["encoder_x1"], "encoder_x1", data_dim, 2 * latent_dim)
    check_network(params["encoder_x2"], "encoder_x2", num_classes, 2 * latent_dim)
    check_array(params["decoder_x1_log_var"], "params['decoder_x1_log_var']", 0)


def check_start(start, arguments):
    """start (generic training): a dict with at least the x1 networks, whose leaves are finite real arrays."""
    fail_unless(isinstance(start, dict) and {"encoder_x1", "decoder_x1", "decoder_x1_log_var"} <= set(start),
                "start must be a parameter dict with at least encoder_x1, decoder_x1 and decoder_x1_log_var")
    for index, leaf in enumerate(tree_leaves(start)):
        check_array(leaf, f"start's parameter array {index}")


def check_step_size(step_size, arguments):
    """A number, a function of the step, or None; at every step finite and positive."""
    is_number = onp.ndim(step_size) == 0 and not isinstance(step_size, (bool, str))
    fail_unless(step_size is None or callable(step_size) or is_number, f"step_size must be a number, a function of the step or None, got {step_size!r}")
    rates = _step_sizes(step_size, arguments["num_steps"])
    bad = onp.flatnonzero(~(onp.isfinite(rates) & (rates > 0))).tolist() + [None]
    fail_unless(bad[0] is None, f"step_size must be positive and finite at every step; at step {bad[0]} it is {rates[bad[0] or 0]}")


def check_labels(labels, arguments, name="labels"):
    """A 1-D integer NumPy array with values in 0..num_classes - 1 (if num_classes is an argument)."""
    fail_unless(isinstance(labels, onp.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu",
                f"{name} must be a 1-D integer NumPy array, got {type(labels).__name__} of shape {onp.shape(labels)}")
    span, classes = (f"{labels.min()}..{labels.max()}" if labels.size else "none"), arguments.get("num_classes")
    fail_unless(classes is None or not labels.size or 0 <= labels.min() <= labels.max() < classes,
                f"{name} must lie in 0..{(classes or 1) - 1}, got {span}")


def check_sizes(name, at_least=0):
    """A check: the argument is a list or tuple of at least at_least positive integers."""
    def check(sizes, arguments):
        fail_unless(isinstance(sizes, (list, tuple)) and len(sizes) >= at_least,
                    f"{name} must be a list or tuple of {at_least or ''} sizes, e.g. (32,), got {sizes!r}")
        for size in sizes:
            check_number(size, f"every {name} size", integer=True, positive=True)
    return check


def number(name, **limits):
    return lambda value, arguments: check_number(value, name, **limits)


ARGUMENT_CHECKS = {   # in this order: the model and its parameters first, since the data's checks read their sizes
    "model": lambda model, arguments: fail_unless(model in PAPER_MODELS, f"unknown model {model!r}; the paper's models are "
                                                  f"{', '.join(PAPER_MODELS)} (MoPoE, MMVAE+: beyond_the_paper)"),
    "params": lambda params, arguments: check_params(params), "start": check_start, "num_classes": number("num_classes", integer=True, positive=True),
    "x1": lambda x1, arguments: check_array(x1, "x1", 2, input_size(arguments, "encoder_x1")), "x2": check_x2,
    "labels": check_labels, "shift": lambda shift, arguments: check_array(shift, "shift", 1) or fail_unless(
        onp.shape(shift) == (input_size(arguments, "encoder_x1"),), f"shift shape {onp.shape(shift)} is not x1's size"),
    "generated": lambda x, arguments: check_array(x, "generated", 2), "points": lambda points, arguments: check_array(points, "points", 2),
    "data": lambda x, arguments: check_array(x, "data", 2, onp.shape(arguments["generated"])[1]) or fail_unless(
        len(x) >= 2 and total_variance.__wrapped__(x) > 0, "spread_ratio needs data with at least two distinct rows"),
    "rng": lambda rng, arguments: fail_unless(isinstance(rng, onp.random.Generator), f"rng must be a numpy.random.Generator, got "
                                              f"{type(rng).__name__}"), "seed": number("seed", integer=True, minimum=0, maximum=MAX_SEED),
    "mean": lambda mean, arguments: check_array(mean, "mean", 2, input_size(arguments, "decoder_x1")), "peak": number("peak", positive=True),
    "log_var": lambda v, arguments: check_array(v, "log_var", 2) or fail_unless(
        onp.shape(getval(v)) == onp.shape(getval(arguments["mean"])), "log_var must have mean's shape"),
    **{name: number(name, integer=True, positive=True) for name in ("num_samples", "num_per_class", "latent_dim", "data_dim", "num_steps", "log_every")},
    "batch_size": lambda size, arguments: size is None or check_number(size, "batch_size", integer=True, positive=True),
    "hidden": check_sizes("hidden layer"), "sizes": check_sizes("layer", at_least=2), "output_scale": number("output_scale"),
    "decoder_std": number("decoder_std", positive=True), "radial_std": number("radial_std", minimum=0.0), "rate": number("rate"),
    "tangential_std": number("tangential_std", minimum=0.0), "scale": number("scale", positive=True), "step_size": check_step_size,
    "print_fn": lambda f, arguments: fail_unless(f is None or callable(f), f"print_fn must be callable or None, got {f!r}"),
    "objective": lambda f, arguments: fail_unless(callable(f), f"objective must be a function, got {f!r}"), "dtype": lambda d, arguments:
        fail_unless(d is np.float32 or d is np.float64, f"dtype must be numpy.float32 or numpy.float64, got {d!r}"),
    **{name: (lambda value, arguments, name=name: fail_unless(isinstance(value, bool), f"{name} must be True or False, got {value!r}"))
       for name in ("with_noise", "standardise", "return_radial")},
}


# ================================================================ the parameter vector; speed primitives (tested against plain forms)

def tree_leaves(tree):
    """The arrays of a nested dict/list, dict keys in sorted order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in tree_leaves(tree[key])]
    return [leaf for item in tree for leaf in tree_leaves(item)] if isinstance(tree, (list, tuple)) else [tree]


def tree_rebuild(tree, leaves):
    """A nested dict/list shaped like tree whose arrays are taken in order from the iterator leaves."""
    if isinstance(tree, dict):
        return {key: tree_rebuild(tree[key], leaves) for key in sorted(tree)}
    return [tree_rebuild(item, leaves) for item in tree] if isinstance(tree, (list, tuple)) else next(leaves)


def flatten_params(params):
    """(vector, unflatten): every parameter in one 1-D array, and the map back to the nested dict. Adam and
    autograd work on the vector: one traced _take_block per array costs less than a nested dict of boxes."""
    shapes = [onp.shape(leaf) for leaf in tree_leaves(params)]
    ends = [int(end) for end in onp.cumsum([onp.prod(shape, dtype=int) for shape in shapes])]
    blocks = [(end - int(onp.prod(shape, dtype=int)), end, shape) for end, shape in zip(ends, shapes)]

    def unflatten(vector):
        return tree_rebuild(params, (_take_block(vector, start, end, shape) for start, end, shape in blocks))
    return np.concatenate([np.ravel(leaf) for leaf in tree_leaves(params)]), unflatten


def _hidden_activations(inputs, weights_and_biases):
    """[h_0, ..., h_(L-1)] of mlp as raw arrays; W_l, b_l alternate in weights_and_biases."""
    activations = [inputs]
    for W, b in zip(weights_and_biases[0:-2:2], weights_and_biases[1:-2:2]):
        activations.append(onp.tanh(activations[-1] @ W + b))
    return activations


@primitive
def _mlp_fused(inputs, *weights_and_biases):
    """mlp(layers, inputs, fused=False) with weights_and_biases = W_1, b_1, ..., W_L, b_L, as one traced operation."""
    return _hidden_activations(inputs, weights_and_biases)[-1] @ weights_and_biases[-2] + weights_and_biases[-1]


def _mlp_fused_vjp(argnums, output, args, kwargs):
    """Backpropagation through mlp: delta_L = G; dW_l = h_(l-1)^T delta_l, db_l = sum delta_l;
    delta_(l-1) = (delta_l W_l^T)(1 - h_(l-1)^2), tanh's derivative; d inputs = delta_1 W_1^T. The
    activations are recomputed here, so nothing is kept between the forward pass and this one."""
    inputs, weights_and_biases = args[0], args[1:]
    activations = _hidden_activations(inputs, weights_and_biases)                 # h_0 .. h_(L-1)

    def vjp(output_gradient):
        gradients, delta = [None] * len(args), output_gradient                    # delta: (..., d_l)
        for layer in range(len(activations) - 1, -1, -1):
            W, h = weights_and_biases[2 * layer], activations[layer]
            gradients[1 + 2 * layer] = onp.reshape(h, (-1, h.shape[-1])).T @ onp.reshape(delta, (-1, delta.shape[-1]))  # dW
            gradients[2 + 2 * layer] = onp.sum(delta, axis=tuple(range(delta.ndim - 1)))                              # db
            if layer > 0:
                delta = (delta @ W.T) * (1.0 - h * h)                             # d a_(l-1)
            elif 0 in argnums:
                gradients[0] = delta @ W.T                                        # d inputs
        return tuple(gradients[argnum] for argnum in argnums)
    return vjp


defvjp_argnums(_mlp_fused, _mlp_fused_vjp)


@primitive
def _stack(*arrays):
    """np.stack(arrays, axis=0) as one traced operation (autograd's np.stack traces 2 per array + 1)."""
    return onp.stack(arrays)


defvjp_argnums(_stack, lambda argnums, stacked, arrays, kwargs: lambda g: tuple(g[i] for i in argnums))


@primitive
def _take_block(vector, start, stop, shape):
    """np.reshape(vector[start:stop], shape) as one traced operation (a slice and a reshape cost two)."""
    return onp.reshape(vector[start:stop], shape)


def _take_block_vjp(block, vector, start, stop, shape):
    """vector's gradient (the block's on [start, stop), zero elsewhere) as autograd's SparseObject: one buffer for the
    whole vector, into whose slices the blocks add (in autograd's accumulation, not in a differentiated function)."""
    def vjp(block_gradient):
        def add_into(gradient_buffer):
            gradient_buffer[start:stop] += onp.ravel(block_gradient)
            return gradient_buffer
        return SparseObject(vspace(vector), add_into)
    return vjp


defvjp(_take_block, _take_block_vjp)
