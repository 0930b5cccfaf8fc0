"""beyond_the_paper: every model, the paper's two and the extensions', behind one interface: what theorem_check.py,
studies.py and plots.py call. The models themselves are in mopoe_mmvaeplus (MoPoE, MMVAE+) and k_samples (K importance
samples and their gradient estimators); what is measured on them in log_likelihood (log p(x1|x2), coherence) and
data_sets (the sweep's labels, digits, paired views). Input checks at the end. surjvae_np never imports this module.
"""
import math

import autograd.numpy as np
import numpy as onp

from extensions import k_samples as K
from extensions import likelihoods as LK
from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S

MODELS = MM.MODELS
GRADIENTS = K.GRADIENTS
AUXILIARY = MM.AUXILIARY


OBJECTIVES = dict(S.OBJECTIVES, mopoe=MM.mopoe_objective, mmvaeplus=MM.mmvaeplus_objective)


@S.checked
def label_latent(params, x2, model, private="prior"):
    """(mean, log_var) of the latent that label -> x1 generation draws, per row of x2. The paper's models:
    S.label_posterior; MoPoE: its one-modality component, the bare expert r_2; MMVAE+: MM.mmvaeplus_label_latent."""
    if model == "mmvaeplus":
        return MM.mmvaeplus_label_latent.__wrapped__(params, x2, private)
    if model == "mopoe":
        return S.gaussian_expert(params["encoder_x2"], x2)
    return S.label_posterior.__wrapped__(params, x2, model)


@S.checked
def x1_latent(params, x1, model):
    """(mean, log_var) of the latent q gives x1 alone: S.x1_posterior, MoPoE's r_1, or MMVAE+'s q(g, w_1|x1)."""
    if model == "mmvaeplus":
        mean, raw = S.gaussian_expert(params["encoder_x1"], x1)
        return mean, MM.expert_log_var(params, raw)
    if model == "mopoe":
        return S.gaussian_expert(params["encoder_x1"], x1)
    return S.x1_posterior.__wrapped__(params, x1, model)


@S.checked
def init_model_params(model, rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,), private_dim=None, auxiliary=None):
    """Initial parameters of any model: init_params, or init_mmvaeplus_params (private_dim default 1, auxiliary "free")."""
    if model == "mmvaeplus":
        return MM.init_mmvaeplus_params(rng, num_classes, latent_dim, data_dim, hidden, 1 if private_dim is None else private_dim,
                                     auxiliary or "free")
    return S.init_params(rng, num_classes, latent_dim, data_dim, hidden)


@S.checked
def objective_of(model, num_importance=1, gradient="iwae", likelihood="gaussian"):
    """A model's objective as training calls it at every step (unchecked: the checks ran at train's edge); for the
    MMVAE and MoPoE with num_importance > 1 or another gradient than "iwae", its K-sample version (k_samples); for the MVAE
    and the MMVAE with another likelihood than the paper's Gaussian, f_1 of that family (likelihoods)."""
    if num_importance > 1 or gradient != "iwae":
        k_sample = K.IWAE_OBJECTIVES[model].__wrapped__
        return lambda params, x1, x2, rng: k_sample(params, x1, x2, rng, num_importance, gradient)
    if likelihood != "gaussian":
        return lambda params, x1, x2, rng: OBJECTIVES[model].__wrapped__(params, x1, x2, rng, x1_log_likelihood=LK.X1_LOG_LIKELIHOODS[likelihood])
    return OBJECTIVES[model].__wrapped__


@S.checked
def train(model, x1, x2, seed=0, latent_dim=2, hidden=(32,), private_dim=None, auxiliary=None, decoder_std=None,
          importance_samples=1, gradient="iwae", likelihood="gaussian", **options):
    """Train any model as S.train does: initial parameters from init_rng(seed) in standardised units, then S.fit on
    its objective. private_dim, auxiliary (MM.AUXILIARY's parameterisations): MMVAE+ only. decoder_std: None learns the
    x1 decoder's std (the paper's models do); a number S fixes it at S in x1's units. importance_samples: K per
    stratum, and gradient: its estimator (K.GRADIENTS), for the MMVAE and MoPoE (k_samples). likelihood: f_1's family
    (LK.FAMILIES), for the MVAE and the MMVAE at K = 1; a Bernoulli x1 is 0/1 and trains unstandardised. options: S.fit's and S.maximise's."""
    start = init_model_params(model, S.init_rng(seed), np.shape(x2)[1], latent_dim, np.shape(x1)[1], hidden, private_dim, auxiliary)
    objective, scale = objective_of(model, importance_samples, gradient, likelihood), x1_units(x1, likelihood)[1]
    if decoder_std is not None:
        fixed = np.array(2.0 * math.log(decoder_std / scale))                    # in fit's standardised units
        start, objective = dict(start, decoder_x1_log_var=fixed), _with_fixed_decoder_std(objective, fixed)
    return S.fit(objective, start, x1, x2, seed=seed, name=model, standardise=likelihood != "bernoulli", **options)


def x1_units(x1, likelihood="gaussian"):
    """(shift, scale) of the units the models train x1 in: S.x1_standardisation, or x1's own for a Bernoulli's 0/1."""
    return (np.zeros(np.shape(x1)[1]), 1.0) if likelihood == "bernoulli" else S.x1_standardisation(x1)


@S.checked
def generate_from_prior(params, num_samples, rng, model):
    """x1 decoder means at g ~ p(g) = N(0, I) (Fig. 2, left), for any model (MMVAE+: u = (g, w), w ~ p(w))."""
    log_var = np.concatenate([np.zeros(MM.shared_dim(params)), np.full(MM.private_dim(params), MM.private_prior_log_var(params))])
    return S.decode_mean_x1(params, S.sample_normal(np.zeros((num_samples, len(log_var))), log_var, rng))


@S.checked
def cross_modal_term(params, x1, x2, rng, num_samples=16, model="mmvae", likelihood="gaussian"):
    """Eq. (4), S.cross_modal_term for any model: r_M = label_latent (MMVAE+: (g, w~_1) ~ q(g|x2) r_1(w_1),
    the law its objective's cross term is trained under), f_1 of the likelihood's family. Monte Carlo, summed over datapoints. Maximised."""
    g = S.sample_normal(*label_latent.__wrapped__(params, x2, model, private="auxiliary"), rng, (num_samples,))   # (S, N, D [+ P]); checked above
    return np.sum(S.mean(LK.X1_LOG_LIKELIHOODS[likelihood](params, x1, g), axis=0))


@S.checked
def generate_from_labels(params, x2, rng, model, with_noise=False, private="prior", likelihood="gaussian"):
    """x1 decoder means at one latent ~ label_latent per row of x2 (Fig. 2, right), for any model; with_noise: x1 drawn
    from f_1 (the likelihood's family; a Bernoulli's mean is its probabilities)."""
    if model == "mmvaeplus":
        return MM.mmvaeplus_generate_from_labels.__wrapped__(params, x2, rng, private, with_noise)
    if likelihood != "gaussian":
        g = S.sample_normal(*label_latent.__wrapped__(params, x2, model), rng)
        return LK.draw_x1(params, g, likelihood, rng) if with_noise else LK.decoder_mean(params, g, likelihood)
    return S.sample_x1.__wrapped__(params, *label_latent.__wrapped__(params, x2, model), rng, with_noise)


def _with_fixed_decoder_std(objective, log_var):
    """objective with the x1 decoder's log-variance held at log_var (not learned: its gradient is 0, so Adam leaves it), in the
    parameters' precision (a float64 log_var would turn float32 training's arithmetic into float64)."""
    def held_objective(params, *batch_and_rng):
        held = np.asarray(log_var, dtype=S.getval(params["decoder_x1_log_var"]).dtype)
        return objective(dict(params, decoder_x1_log_var=held), *batch_and_rng)
    return held_objective


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here. A test holds every public name to this.
UNCHECKED = ("check_decoder_std", "x1_units", "check_likelihood")


def check_likelihood(likelihood, arguments):
    """One of LK.FAMILIES; another than the Gaussian for the MVAE and the MMVAE at K = 1 with iwae's objective only (the
    others' objectives read f_1 as the paper's Gaussian), and a Bernoulli's x1 of 0s and 1s."""
    S.fail_unless(likelihood in LK.FAMILIES, f"likelihood must be one of {', '.join(LK.FAMILIES)}, got {likelihood!r}")
    plain = arguments.get("model", "mmvae") in S.PAPER_MODELS and arguments.get("importance_samples", 1) == 1 and arguments.get("gradient", "iwae") == "iwae"
    S.fail_unless(likelihood == "gaussian" or plain, f"the {likelihood} likelihood applies to the mvae and the mmvae with one importance "
                  "sample and the iwae gradient only")
    S.fail_unless(likelihood != "bernoulli" or "x1" not in arguments or onp.all(onp.isin(S.getval(arguments["x1"]), (0.0, 1.0))),
                  "the bernoulli likelihood needs x1 of 0s and 1s (binarise first, e.g. pixel >= 8 of 16)")
    S.fail_unless(likelihood != "bernoulli" or arguments.get("decoder_std") is None, "a decoder std applies to the gaussian and the "
                  "laplace likelihoods (its std, its scale), not to the bernoulli")

def check_decoder_std(std, arguments):
    """A positive number within 1e-4..1e4 times x1's standard deviation (where x1 is an argument): beyond, float64's
    log-likelihoods over- or underflow (the scripts' range)."""
    S.check_number(std, "decoder_std", positive=True)
    scale = S.x1_standardisation.__wrapped__(S.getval(arguments["x1"]))[1] if "x1" in arguments else None
    S.fail_unless(scale is None or 1e-4 <= std / scale <= 1e4, f"decoder_std {std:.3g} must lie within 1e-4..1e4 times x1's standard "
                  f"deviation {scale:.3g} (float64 would over- or underflow)")


ARGUMENT_CHECKS = dict(K.ARGUMENT_CHECKS)
ARGUMENT_CHECKS.update({
    "decoder_std": lambda std, arguments: std is None or check_decoder_std(std, arguments),
    "likelihood": check_likelihood,
})
