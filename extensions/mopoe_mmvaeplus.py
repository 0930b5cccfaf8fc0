"""mopoe_mmvaeplus: two more posteriors, composed of surjvae_np's functions. MoPoE (Sutter et al. 2021), a mixture of
products of experts; MMVAE+ (Palumbo, Daunhawer and Vogt 2023), the published remedy, with private latents and
auxiliary priors. Input checks at the end. surjvae_np never imports this module; beyond_the_paper puts these models
behind one interface with the paper's.
"""
import math

import autograd.numpy as np
import numpy as onp

import surjvae_np as S

MODELS = S.PAPER_MODELS + ("mopoe", "mmvaeplus")


def checked_with(registry):
    """S.checked with another registry of this module (at its end): MMVAEPLUS_CHECKS take MMVAE+'s params (or the paper's: private size 0)."""
    return lambda function: S.checked(function, registry)


# ---------------------------------------------------------------- 1. MoPoE: a mixture of products of experts

@S.checked
def nonempty_subsets(num_modalities):
    """The non-empty subsets of {1..M} as 0/1 rows (2^M - 1, M), the full set first, singletons last.
    For M = 2: [[1, 1], [1, 0], [0, 1]], the paper's Eq. (9) subsets and MoPoE's components."""
    codes = np.arange(2 ** num_modalities - 1, 0, -1)                              # full set first
    bits = (codes[:, None] >> np.arange(num_modalities - 1, -1, -1)) & 1           # (2^M - 1, M)
    return bits[np.argsort(-bits.sum(axis=1), kind="stable")].astype(float)


SUBSETS_OF_TWO = nonempty_subsets.__wrapped__(2)        # at import: the checks are defined at the end
# Which products include the prior expert p(g): as Sutter et al. implement MoPoE (thomassutter/MoPoE,
# poe_fusion), only the product over all modalities; a one-modality component is the bare expert r_m.
PRIOR_IN_FULL_SET_ONLY = (SUBSETS_OF_TWO.sum(axis=1) == 2).astype(float)         # (S,) = [1, 0, 0]


def mopoe_components(params, x1, x2):
    """MoPoE's components: the PoE (Eq. 8) over each non-empty subset of {x1, x2}, with p(g) in the full
    set's only, as the authors' poe_fusion. Means, log_vars (S, N, D)."""
    return S.product_of_experts(*S.unimodal_experts(params, x1, x2), SUBSETS_OF_TWO, PRIOR_IN_FULL_SET_ONLY)


@S.checked
def mopoe_objective(params, x1, x2, rng):
    """Eq. (5) with the MoPoE posterior q = (1/|P|) sum_{s in P} PoE_s, P the non-empty subsets. Maximised.

    The paper's stratified mixture ELBO over MoPoE's components: the component r_2 scores log p(x1|g),
    so the cross term is there with weight 1/3. Sutter et al. estimate a looser bound: one component
    per datapoint and sum_s w_s KL(PoE_s || p(g)); the expected difference is (1/|P|) sum_s KL(PoE_s || q_mix).
    """
    return S.stratified_mixture_elbo(params, x1, x2, *mopoe_components(params, x1, x2), rng)


# ---------------------------------------------------------------- 2. MMVAE+: private latents and auxiliary priors

# The auxiliary priors r_m(w_m) = N(0, diag s_m^2), and the private prior p(w) = N(0, s_p^2 I) of the objective
# and of generation, in three parameterisations (the parameters' keys say which; a, learned, starts at 0):
#   "free":     log s_m^2 = a (s_m = 1 at the start), s_p = 1: this project's default;
#   "softplus": s_m = softplus(a) (log 2 at the start), s_p = softplus(0) = log 2: srl-ethz/mmvaeplus's Normal variant;
#   "softmax":  s_m = P softmax(a) (1 at the start; the P scales' mean stays 1), s_p = 1: srl-ethz/mmvaeplus's
#               default (there with Laplace distributions); at P = 1, r_m is p(w) and cannot narrow.
AUXILIARY = {"free": ("auxiliary_prior_log_var_x1", "auxiliary_prior_log_var_x2"),
             "softplus": ("auxiliary_prior_softplus_x1", "auxiliary_prior_softplus_x2"),
             "softmax": ("auxiliary_prior_logits_x1", "auxiliary_prior_logits_x2")}
AUXILIARY_KEYS = AUXILIARY["free"]


@checked_with("MMVAEPLUS_CHECKS")
def init_mmvaeplus_params(rng, num_classes=2, latent_dim=2, data_dim=2, hidden=(32,), private_dim=1, auxiliary="free"):
    """init_params with latents u = (g, w) of size latent_dim + private_dim, and the auxiliary priors' parameters a
    (zeros) under the keys of auxiliary's parameterisation. private_dim 0 is the MMVAE."""
    params = S.init_params(rng, num_classes, latent_dim + private_dim, data_dim, hidden)
    return dict(params, **{key: np.zeros(private_dim) for key in AUXILIARY[auxiliary]}) if private_dim else params


def auxiliary_of(params):
    """The parameterisation whose keys params hold, or None (the paper's parameters: no private latent)."""
    return next((name for name, keys in AUXILIARY.items() if keys[0] in params), None)


def private_dim(params):
    """The size of MMVAE+'s private latent w (0 for the paper's parameters)."""
    return int(onp.shape(params[AUXILIARY[auxiliary_of(params)][0]])[0]) if auxiliary_of(params) else 0


def shared_dim(params):
    """The size of the shared latent g: the decoders' input size less w's."""
    return int(onp.shape(params["decoder_x1"][0]["W"])[0]) - private_dim(params)


def auxiliary_log_vars(params):
    """log s_m^2 of r_1 and r_2, (M, P), from the parameters a of params' parameterisation."""
    if auxiliary_of(params) is None:
        return np.zeros((2, 0))
    a = np.stack([params[key] for key in AUXILIARY[auxiliary_of(params)]])       # (M, P)
    if auxiliary_of(params) == "softplus":
        return 2.0 * np.log(np.logaddexp(0.0, a))                                  # s = softplus(a) = log(1 + e^a)
    if auxiliary_of(params) == "softmax":
        return 2.0 * (a - S.logsumexp(a, axis=-1)[:, None] + math.log(np.shape(a)[-1]))   # s = P softmax(a)
    return a


def private_prior_log_var(params):
    """log s_p^2 of the private prior p(w) = N(0, s_p^2 I): log(log 2)^2 for "softplus", else 0."""
    return 2.0 * math.log(math.log(2.0)) if auxiliary_of(params) == "softplus" else 0.0


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_objective(params, x1, x2, rng, beta=1.0):
    """MMVAE+, stratified, one sample per stratum. Maximised.

    u_m = (g, w_m), a shared g and a private w_m; expert m is q(u|x_m) = q(g|x_m) q(w_m|x_m). Stratum m
    draws g ~ q(g|x_m), w_m ~ q(w_m|x_m) and, for the other modality n, w~_n ~ r_n(w_n), and scores
      log p(x_m|g, w_m) + log p(x_n|g, w~_n) + beta log [p(g) p(w_m) / (q_MoE(g|x1, x2) q(w_m|x_m))],
    averaged over m outside the log, as Eq. (5). The cross term log p(x_n|g, w~_n) is Eq. (4) over
    (g, w~): Theorem 1's proof holds for it unchanged, the law of (g, w~) being the same for every n
    in S_c. p(g) = N(0, I); p(w), r_m and the experts' scales: params' parameterisation (AUXILIARY, mmvaeplus_experts).
    Private size 0: mmvae_objective for the same noise (tested). The authors' code (srl-ethz/mmvaeplus) runs two
    experiments that differ from this in different ways: PolyMNIST with the ELBO, K = 1, beta = 2.5 and Laplace
    distributions (their default, the softmax scales); CUB with their m_dreg (which computes the IWAE gradient), K = 10,
    beta = 1 and Normal distributions (the softplus scales, and p(g) of scale log 2 too); both with likelihood weights.
    """
    shared = shared_dim(params)
    means, log_vars = mmvaeplus_experts(params, x1, x2)                           # (M, N, D + P)
    u = S.sample_normal(means, log_vars, rng)                                     # (M, N, D + P): stratum m
    g, w_own = u[..., :shared], u[..., shared:]                                   # (M, N, D), (M, N, P)
    # Stratum m borrows the other modality's auxiliary prior: r_2 in stratum 1, r_1 in stratum 2.
    w_other = S.sample_normal(onp.zeros_like(S.getval(w_own)), auxiliary_log_vars(params)[::-1, None, :], rng)   # (M, N, P), w_own's dtype
    w_for_x1, w_for_x2 = np.stack([w_own[0], w_other[1]]), np.stack([w_other[0], w_own[1]])  # own in its stratum
    log_p_x1 = S.decoder_x1_log_likelihood(params, x1, np.concatenate([g, w_for_x1], axis=-1))   # (M, N)
    log_p_x2 = S.decoder_x2_log_likelihood(params, x2, np.concatenate([g, w_for_x2], axis=-1))   # (M, N)
    private_log_var = onp.asarray(private_prior_log_var(params), dtype=S.getval(w_own).dtype)   # a float would promote float32
    log_ratio = (S.log_prior(g) + S.log_normal(w_own, 0.0, private_log_var)
                 - S.mixture_log_density(g, means[..., :shared], log_vars[..., :shared])
                 - S.log_normal(w_own, means[..., shared:], log_vars[..., shared:]))          # (M, N)
    return S.mean(log_p_x1 + log_p_x2 + beta * log_ratio)


def mmvaeplus_experts(params, x1, x2):
    """MMVAE+'s experts q(u|x_m), u = (g, w_m): means and log-variances (M, N, D + P), the scales under params'
    parameterisation as the authors' encoders give them (srl-ethz/mmvaeplus, e.g. resnet_polyMNIST.py's Enc): "free"
    exp(a / 2) of the network's output a (this project's); "softplus" softplus(a); "softmax" n softmax(a) over the n
    entries of g and, apart, of w (their 1e-20 is left out: the log of each map is finite)."""
    means, raw = S.unimodal_experts(params, x1, x2)                              # (M, N, D + P)
    return means, expert_log_var(params, raw)


def expert_log_var(params, raw):
    """The experts' log-variances from the encoder's raw outputs (..., D + P), by params' parameterisation (mmvaeplus_experts)."""
    kind, shared = auxiliary_of(params), shared_dim(params)
    if kind == "softplus":
        return 2.0 * np.log(np.logaddexp(0.0, raw))                               # s = softplus(a)
    if kind == "softmax":
        groups = [raw[..., :shared], raw[..., shared:]]                           # g and w apart
        return np.concatenate([2.0 * (a - S.logsumexp(a, axis=-1)[..., None] + math.log(np.shape(a)[-1])) for a in groups], axis=-1)
    return raw


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_label_latent(params, x2, private="prior"):
    """(mean, log_var) (N, D + P) of u = (g, w_1) for label -> x1 generation: g ~ q(g|x2), the shared
    part of expert r_2, and w_1 ~ p(w_1) (private="prior", the authors' default at generation)
    or w_1 ~ r_1 (private="auxiliary", the law its cross term is trained under)."""
    mean, raw = S.gaussian_expert(params["encoder_x2"], x2)
    mean, log_var = mean[..., :shared_dim(params)], expert_log_var(params, raw)[..., :shared_dim(params)]    # (N, D)
    w_log_var = auxiliary_log_vars(params)[0] if private == "auxiliary" else np.full(private_dim(params), private_prior_log_var(params))
    w_mean, w_log_var = np.zeros((len(mean), private_dim(params))), w_log_var + np.zeros((len(mean), 1))  # (N, P)
    return np.concatenate([mean, w_mean], axis=-1), np.concatenate([log_var, w_log_var], axis=-1)


@checked_with("MMVAEPLUS_CHECKS")
def mmvaeplus_generate_from_labels(params, x2, rng, private="prior", with_noise=False):
    """x1 decoder means at one u = (g, w_1) per row of x2, w_1 from p(w_1), r_1, or fixed at 0 ("zero")."""
    mean, log_var = mmvaeplus_label_latent(params, x2, "prior" if private == "zero" else private)
    u = S.sample_normal(mean, log_var, rng)                                       # (N, D + P)
    if private == "zero":
        u = np.concatenate([u[:, :shared_dim(params)], np.zeros((len(u), private_dim(params)))], axis=1)
    means = S.decode_mean_x1(params, u)
    return S.sample_normal(means, params["decoder_x1_log_var"], rng) if with_noise else means


# ================================================================ input checks, run by S.checked at the edge

# As in surjvae_np: every public function is @checked unless it is named here, a building block called inside the
# differentiated objectives (their callers are checked) or a check itself. A test holds every public name to this.
UNCHECKED = ("mopoe_components", "auxiliary_of", "private_dim", "shared_dim", "auxiliary_log_vars", "private_prior_log_var",
             "mmvaeplus_experts", "expert_log_var", "checked_with", "check_mmvaeplus_params", "check_params_of_model",
             "check_private_dim", "check_auxiliary")


def check_mmvaeplus_params(params, arguments=None):
    """MMVAE+'s layout: the paper's plus one parameterisation's two vectors a (AUXILIARY) of one length P below the
    latent size; or the paper's layout (private size 0)."""
    params = S.getval(params)
    if not isinstance(params, dict) or auxiliary_of(params) is None:
        return S.check_params(params)
    keys = AUXILIARY[auxiliary_of(params)]
    S.check_params(params, keys)
    shapes, latent = [onp.shape(S.getval(params[key])) for key in keys], onp.shape(params["decoder_x1"][0]["W"])[0]
    S.fail_unless(shapes[0] == shapes[1] and len(shapes[0]) == 1 and 0 < shapes[0][0] < latent,
                  f"params' auxiliary prior parameters {keys} must be two vectors of one length below the latent size "
                  f"{latent}, got shapes {shapes}")
    for key in keys:
        S.check_array(params[key], f"params[{key!r}]", 1)


def check_params_of_model(params, arguments):
    """MMVAE+'s parameters for model="mmvaeplus", the paper's layout for every other model."""
    if arguments.get("model") == "mmvaeplus":
        return check_mmvaeplus_params(params)
    S.check_params(params)


def check_private_dim(value, arguments):
    """None (the default), or an integer >= 0, given only with model="mmvaeplus"."""
    if value is None:
        return
    S.check_number(value, "private_dim", integer=True, minimum=0)
    S.fail_unless(arguments.get("model", "mmvaeplus") == "mmvaeplus",
                  f"private_dim applies to MMVAE+ only, not to {arguments.get('model')!r}")


def check_auxiliary(value, arguments):
    """None (the default), or one of AUXILIARY's parameterisations, given only with model="mmvaeplus"."""
    if value is None:
        return
    S.fail_unless(value in AUXILIARY, f"auxiliary must be one of {', '.join(AUXILIARY)}, got {value!r}")
    S.fail_unless(arguments.get("model", "mmvaeplus") == "mmvaeplus", f"auxiliary applies to MMVAE+ only, not to {arguments.get('model')!r}")


ARGUMENT_CHECKS = {      # the model first, then its parameters
    "model": lambda model, arguments: S.fail_unless(model in MODELS, f"unknown model {model!r}; expected one of {', '.join(MODELS)}"),
    "params": check_params_of_model,
}
ARGUMENT_CHECKS.update({name: check for name, check in S.ARGUMENT_CHECKS.items() if name not in ARGUMENT_CHECKS})
ARGUMENT_CHECKS.update({
    "private_dim": check_private_dim, "auxiliary": check_auxiliary, "beta": S.number("beta", minimum=0.0),
    "private": lambda private, arguments: S.fail_unless(private in ("prior", "auxiliary") or (private == "zero" and "rng" in arguments),
                                                        f"private must be 'prior' or 'auxiliary'{' or zero' if 'rng' in arguments else ''}, got {private!r}"),
    "num_modalities": S.number("num_modalities", integer=True, positive=True, maximum=20),
})
MMVAEPLUS_CHECKS = dict(ARGUMENT_CHECKS, params=lambda params, arguments: check_mmvaeplus_params(params),
                        private_dim=S.number("private_dim", integer=True, minimum=0, maximum=10 ** 4),
                        auxiliary=lambda value, arguments: S.fail_unless(value in AUXILIARY, f"auxiliary must be one of "
                                                                         f"{', '.join(AUXILIARY)}, got {value!r}"))
