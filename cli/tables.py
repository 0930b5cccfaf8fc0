"""tables: what theorem_check.py and studies.py print of a check's rows: the main table (one row per model, decoder and
class), the held-out points' table beside it, and the notes under them. Only formatting: every number comes from the rows.
"""
from extensions import log_likelihood as L
from cli import runs as R


def format_table(rows):
    header = (f"{'model':9s} {'decoder':9s} {'class':>5s} {'bound':>8s} {'L_1':>9s} {'by':>5s} {'MC +- SE':>18s} {'gap':>8s}"
              f" {'log p(x1|x2) +- error':>21s} {'by':>7s} {'sigma':>6s} {'spread':>6s} {'sampled':>7s} {'coher.':>6s}")
    legend = ("Per datapoint (nats): bound = L_1(theta_hat); L_1 = the decoder under r_M(g|c), by Gauss-Hermite (GHn: n nodes per axis) "
             "or Monte Carlo (MC; error 4 SE); gap = bound - L_1; log p(x1|x2) under the same r_M, by the grid rule (gridn: n nodes per axis; "
             "error = its last change, a sign of convergence) or importance sampling from a Laplace proposal (IS; error 4 SE; '!' = "
             "unreliable: a run's Pareto k too high, or the two runs disagree); sigma = decoder std (Laplace: its scale); spread = cross-generated spread ratio of decoder means, sampled = of "
             "x1 ~ p(x1|g); coher. = label coherence")
    width = max([5] + [len(r.get("label", "")) for r in rows])
    header = header.replace(f"{'class':>5s}", f"{'label':>{width}s}")
    lines = [R.wrap(legend), header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:9s} {r['decoder']:9s} {r.get('label', str(r['class'])):>{width}s} {r['bound']:8.4f} {r['l1']:9.4f} {r['l1_method']:>5s}"
                     f" {r['monte_carlo']:9.4f} +- {r['monte_carlo_se']:.4f} {r['gap']:8.4f} {estimate(r)}"
                     f"{' !'[not r['conditional_reliable']]}{r['conditional_method']:>7s} {cell(r['decoder_std'], 6, '.3g')} {r['spread_ratio']:6.3f} "
                     f"{r['spread_ratio_sampled']:7.3f} {r['coherence']:6.3f}")
    return "\n".join(lines)


def estimate(r):
    """log p(x1|x2) +- its error, 21 characters; "not estimated" where it is None (an x1 likelihood other than the Gaussian)."""
    return f"{'not estimated':>21s}" if r["conditional"] is None else f"{r['conditional']:11.4f} +- {r['conditional_error']:6.4f}"


def cell(value, width, spec):
    """value formatted by spec in width characters, "-" for None (a Bernoulli decoder has no std)."""
    return f"{'-':>{width}s}" if value is None else f"{value:{width}{spec}}"


def format_held_out(rows):
    """The held-out measures beside the training ones, per trained or untrained decoder and class."""
    header = (f"{'model':9s} {'decoder':9s} {'class':>5s} {'points':>6s} {'log p(x1|x2) +- error':>21s} {'by':>7s} {'SE':>7s} {'trained on +- SE':>21s}"
              f" {'spread':>6s} {'trained on':>10s} {'coher.':>6s} {'trained on':>10s}")
    legend = ("Held-out points (never trained on), beside the same row's measures on the training points: log p(x1|x2) per point "
              "('!' = unreliable; error: the estimator's, as above; SE: the standard error of the mean over the points, from "
              "their sampling); spread = the same generations' spread ratio against the held-out class's own spread; "
              "coher. = their label coherence against the held-out points")
    lines = [R.wrap(legend), header, "-" * len(header)]
    for r in rows:
        h = r["held_out"]
        lines.append(f"{r['model']:9s} {r['decoder']:9s} {r['class']:5d} {h['num_points']:6d} {estimate(h)}"
                     f"{' !'[not h['conditional_reliable']]}{h['conditional_method']:>7s} {cell(h['conditional_points_se'], 7, '.3f')}"
                     f" {cell(r['conditional'], 10, '.3f')} +- {cell(r['conditional_points_se'], 7, '.3f')} {h['spread_ratio']:6.3f}"
                     f" {r['spread_ratio']:10.3f} {h['coherence']:6.3f} {r['coherence']:10.3f}")
    return "\n".join(lines)


def format_notes(results, config):
    """The notes under the table: where L_1 fell back to Monte Carlo, how log p(x1|x2) was sampled, the data's coherence."""
    rows, notes = results["rows"], []
    fallbacks = [f"{r['model']} {r['decoder']} {r['class']}" for r in rows if r["l1_method"] == "MC"]
    if fallbacks:
        notes.append(f"L_1 by Monte Carlo (error = 4 SE) in {len(fallbacks)} rows, where Gauss-Hermite did not settle within "
                     f"{config['max_nodes']} nodes per axis or would need more than {L.MAX_GRID_POINTS}: {', '.join(fallbacks[:4])}"
                     + " ..." * (len(fallbacks) > 4))
    sampled = [r for r in rows if r["conditional_method"] == "IS"]
    unreliable = [f"{r['model']} {r['decoder']} {r['class']} ({r['conditional_reliable_share']:.0%} of points)" for r in sampled if not r["conditional_reliable"]]
    if sampled:
        notes.append(f"log p(x1|x2) by importance sampling in {len(sampled)} rows (more than 3 latent dimensions, or a grid that did not "
                     f"settle or resolve the posterior): median Kish ESS / K per row {min(r['conditional_ess'] for r in sampled):.3f} to "
                     f"{max(r['conditional_ess'] for r in sampled):.3f}, largest Pareto k {max(r['conditional_pareto_k'] for r in sampled):.2f}; "
                     + (f"unreliable somewhere: {', '.join(unreliable[:4])}" + (f" and {len(unreliable) - 4} more rows" if len(unreliable) > 4 else "")
                        if unreliable else "every point reliable")
                     + f"; {sum(r.get('conditional_disagree', 0) for r in sampled)} points unreliable only because the two runs disagree")
    return "\n".join(notes + ["Data's own label coherence (leave-one-out nearest neighbour), per class: "
                                + " ".join(f"{value:.3f}" for value in results["data_coherence"])])


def format_per_label(results):
    """The answer per label, in plain words: the share of the label's spread each trained model's label -> x1 samples keep, their
    coherence, and a sentence where the MMVAE collapsed (its spread under half the MVAE's) or where the label's own mean lies
    off its points (then a collapsed model's low coherence says so, not that it draws another label)."""
    trained = {(r["model"], r["class"]): r for r in results["rows"] if r["decoder"] == "trained"}
    models = list(dict.fromkeys(r["model"] for r in results["rows"]))
    records = results.get("labels") or [{"class": c, "label": str(c), "mean_coherence": 1.0} for c in sorted({c for _, c in trained})]
    width = max([5] + [len(record["label"]) for record in records])
    lines = [R.wrap("Per label (trained models): spread = the share of the label's spread that its label -> x1 samples keep "
                    "(decoder means; 1 keeps it all); coher. = the share of them nearest the label's own points"),
             f"{'label':>{width}s} " + " ".join(f"{model + ' spread':>13s} {'coher.':>6s}" for model in models) + "  verdict"]
    for record in records:
        rows = [trained[model, record["class"]] for model in models]
        lines.append(f"{record['label']:>{width}s} " + " ".join(f"{r['spread_ratio']:13.3f} {r['coherence']:6.3f}" for r in rows)
                     + "  " + label_verdict(dict(zip(models, rows)), record))
    return "\n".join(lines)


def label_verdict(by_model, record):
    """A sentence for one label of format_per_label."""
    words = []
    if "mvae" in by_model and "mmvae" in by_model:
        ratio = by_model["mmvae"]["spread_ratio"] / by_model["mvae"]["spread_ratio"]
        words.append(f"the MMVAE collapsed: {ratio:.2f} x the MVAE's spread" if ratio < 0.5 else f"no collapse: the MMVAE keeps {ratio:.2f} x the MVAE's spread")
    if record.get("mean_coherence", 1.0) < 1.0:
        words.append("the label's mean lies nearer another label's points, so samples near the mean score a low coherence")
    return "; ".join(words) or "-"
