"""private_latent: what MMVAE+'s private latent carries (studies.py --models ... mmvaeplus; docs/mmvaeplus.md): where x1's
within-class variation lives, in the shared g or the private w_1, and what label -> x1 generation keeps of it.
"""
import autograd.numpy as np

from extensions import beyond_the_paper as B
from extensions import mopoe_mmvaeplus as MM
import surjvae_np as S


def private_latent_class(params, x1_class, x2_class, mean, std, rng):
    """One class of private_latent_diagnostics."""
    shared = MM.shared_dim(params)
    g, w = mean[:, :shared], mean[:, shared:]
    only_g = S.decode_mean_x1(params, np.concatenate([g, np.zeros_like(w)], axis=1))
    only_w = S.decode_mean_x1(params, np.concatenate([np.zeros_like(g) + g.mean(axis=0), w], axis=1))
    return {"g_means_variance": S.total_variance(g), "w_means_variance": S.total_variance(w),
            "g_posterior_std": float(np.mean(std[:, :shared])), "w_posterior_std": float(np.mean(std[:, shared:])),
            "reconstruction_spread_g_only": S.spread_ratio(only_g, x1_class), "reconstruction_spread_w_only": S.spread_ratio(only_w, x1_class),
            **{f"spread_w_{source}": S.spread_ratio(MM.mmvaeplus_generate_from_labels(params, x2_class, rng, source), x1_class)
               for source in ("prior", "auxiliary", "zero")}}


def private_latent_diagnostics(params, x1, labels, num_classes, rng):
    """MMVAE+ per class: where x1's within-class variation lives, and what label -> x1 generation keeps.

    From q(g, w_1|x1): the within-class variance of the posterior means of g and of w_1 and their mean
    posterior stds; reconstructions (decoder means at the posterior means) with w_1 = 0 and with g at
    its class average, as spread ratios (what g alone and w_1 alone carry); the label -> x1 spread
    ratio with w_1 from p(w_1), from r_1 and fixed at 0. r_1's learned stds are reported once.
    """
    mean, log_var = B.x1_latent(params, x1, "mmvaeplus")                          # (N, D + P)
    classes = [dict(private_latent_class(params, x1[labels == c], S.one_hot(np.full(np.sum(labels == c), c), num_classes),
                                         mean[labels == c], np.exp(0.5 * log_var[labels == c]), rng), **{"class": c})
               for c in range(num_classes)]
    auxiliary_std = np.exp(0.5 * MM.auxiliary_log_vars(params))                    # (M, P)
    return {"auxiliary_std_x1": auxiliary_std[0].tolist(), "auxiliary_std_x2": auxiliary_std[1].tolist(),
            "private_prior_std": float(np.exp(0.5 * MM.private_prior_log_var(params))), "classes": classes}


def format_private_diagnostics(diagnostics):
    header = (f"{'class':>5s} {'var E[g|x1]':>11s} {'var E[w|x1]':>11s} {'std g':>6s} {'std w':>6s}"
              f" {'recon g':>7s} {'recon w':>7s} {'w~p(w)':>7s} {'w~r_1':>7s} {'w=0':>6s}")
    lines = [f"MMVAE+ (beyond the paper): where x1's within-class variation lives. r_1 std (x1's private prior): "
             f"{np.round(diagnostics['auxiliary_std_x1'], 3).tolist()}; var = within-class variance of posterior means; "
             "std = mean posterior std; recon g / recon w = spread ratio of reconstructions from g alone (w = 0) / "
             "w alone (g at its class mean); last three = label -> x1 spread ratio with w_1 from p(w_1), r_1, or 0",
             header, "-" * len(header)]
    for d in diagnostics["classes"]:
        lines.append(f"{d['class']:5d} {d['g_means_variance']:11.4f} {d['w_means_variance']:11.4f} {d['g_posterior_std']:6.3f}"
                     f" {d['w_posterior_std']:6.3f} {d['reconstruction_spread_g_only']:7.3f} {d['reconstruction_spread_w_only']:7.3f}"
                     f" {d['spread_w_prior']:7.3f} {d['spread_w_auxiliary']:7.3f} {d['spread_w_zero']:6.3f}")
    return "\n".join(lines)
