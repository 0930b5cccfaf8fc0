"""Tests for reproduce.py: the committed docs are what the committed results render; a result is kept only for the code
that made it; rendering refuses a marker it cannot fill."""
import json
import os

import pytest

import reproduce as RP


def test_every_doc_is_what_its_committed_results_render():
    """A doc cannot drift from its results: each block between render markers equals its rendering from results/NAME.json,
    and every study a marker names has its result committed."""
    names = RP.studies_rendered()
    assert names, "no doc renders anything"
    for name in names:
        assert os.path.exists(RP.result_path(name, False)), f"results/{name}.json is missing: run python reproduce.py"
    for doc in RP.DOCS:
        with open(os.path.join(RP.ROOT, doc)) as f:
            text = f.read()
        assert RP.render(text) == text, f"{doc} differs from what its results render: run python reproduce.py --render"


def test_render_fills_a_block_and_refuses_an_unknown_or_open_one(tmp_path):
    """A block is replaced by the provenance line and the study's text; a marker naming no study, or one never closed, is a
    ValueError naming it."""
    results = {"rows": [["simplex", 0.5, -1.0, -0.9, -0.5, 0.1]], "sigmas": [], "quick": True,
               "provenance": {"code": "x", "commit": "abc", "machine": "m", "date": "d", "seconds": 3.0}}
    (tmp_path / "npmle_gap.json").write_text(json.dumps(results))
    text = RP.render("before\n<!-- render npmle_gap -->\nstale\n<!-- /render -->\nafter\n", str(tmp_path))
    assert "stale" not in text and "commit abc" in text and "simplex" in text and text.endswith("<!-- /render -->\nafter\n")
    assert RP.render(text, str(tmp_path)) == text                                 # rendering is idempotent
    with pytest.raises(ValueError, match="names 'nothing'"):
        RP.render("<!-- render nothing -->\n<!-- /render -->\n", str(tmp_path))
    with pytest.raises(ValueError, match="no closing"):
        RP.render("<!-- render npmle_gap -->\n", str(tmp_path))
    times = RP.render("<!-- render times -->\n<!-- /render -->\n", str(tmp_path))           # every result's seconds, and the total
    assert [line.split() for line in times.splitlines()[5:7]] == [["npmle_gap", "3", "abc"], ["total", "3", "(0.00", "hours", "on", "m)"]]


def test_an_unreadable_result_is_a_value_error_naming_it_and_no_doc_is_half_rendered(tmp_path, monkeypatch):
    """A corrupt results/NAME.json, or one without provenance, is a ValueError naming the file and the command that remakes it;
    render_docs then writes no doc, not even one that rendered; the times block names a study over an hour."""
    good = {"rows": [], "sigmas": [], "quick": True, "provenance": {"code": "x", "commit": "abc", "machine": "m", "date": "d", "seconds": 4000.0}}
    (tmp_path / "npmle_gap.json").write_text(json.dumps(good))
    (tmp_path / "bound_study.json").write_text('{"rows": [')
    (tmp_path / "sweep.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match=r"cannot read .*bound_study.json .*--only bound_study"):
        RP.render("<!-- render bound_study -->\n<!-- /render -->\n", str(tmp_path))
    with pytest.raises(ValueError, match=r"sweep.json has no provenance"):
        RP.render("<!-- render sweep -->\n<!-- /render -->\n", str(tmp_path))
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text("<!-- render npmle_gap -->\nstale\n<!-- /render -->\n")
    second.write_text("<!-- render bound_study -->\n<!-- /render -->\n")
    monkeypatch.setattr(RP, "DOCS", [str(first), str(second)])
    with pytest.raises(ValueError, match="bound_study"):
        RP.render_docs(str(tmp_path))
    assert "stale" in first.read_text()
    (tmp_path / "bound_study.json").unlink()
    (tmp_path / "sweep.json").unlink()
    assert RP.times_block(str(tmp_path))[-2] == "longer than an hour: npmle_gap"


def test_a_marker_can_render_one_part_of_a_study(tmp_path):
    """<!-- render study_pinwheel:auxiliary --> renders that part's table alone; without a part, every part's."""
    entry = {"seed": 0, "value": None, "model": "mmvae", "gradient": "iwae", "rows": [
        {"spread_ratio": 0.1, "spread_ratio_sampled": 0.5, "gap": 1.0, "conditional": -0.2, "conditional_reliable": True,
         "coherence": 1.0, "decoder_std": 0.2, "class": 0}]}
    results = {"study": [dict(entry, part="decoder-std"), dict(entry, part="importance-samples", value=1)],
               "provenance": {"code": "x", "commit": "abc", "machine": "m", "date": "d", "seconds": 3.0}}
    (tmp_path / "study_pinwheel.json").write_text(json.dumps(results))
    one = RP.render("<!-- render study_pinwheel:importance-samples -->\n<!-- /render -->\n", str(tmp_path))
    both = RP.render("<!-- render study_pinwheel -->\n<!-- /render -->\n", str(tmp_path))
    assert "Study: importance-samples" in one and "Study: decoder-std" not in one
    assert "Study: importance-samples" in both and "Study: decoder-std" in both


def test_a_result_is_kept_for_the_code_that_made_it_and_rerun_for_other_code(tmp_path, monkeypatch):
    """run_study writes the study's --json output with its provenance; is_current holds only for the same code hash."""
    script = "import json, os, sys; json.dump({'rows': [len(sys.argv)], 'threads': os.environ['OPENBLAS_NUM_THREADS']}, open(sys.argv[-1], 'w'))"
    monkeypatch.setitem(RP.STUDIES, "fake", (["-c", script], ["--quick"], lambda results: str(results["rows"])))
    RP.run_study("fake", True, 1, "code-a", str(tmp_path))
    path = RP.result_path("fake", True, str(tmp_path))
    with open(path) as f:
        written = json.load(f)
    assert written["rows"] == [4] and written["provenance"]["code"] == "code-a"       # -c, --quick, --json, path
    assert written["threads"] == written["provenance"]["blas"]["OPENBLAS_NUM_THREADS"] == "1"   # what it ran with is recorded
    assert RP.is_current(path, "code-a") and not RP.is_current(path, "code-b") and not RP.is_current(str(tmp_path / "none.json"), "code-a")


def test_the_code_hash_follows_every_python_file(tmp_path):
    """Outside git the hash walks the .py files (not hidden folders or venvs, not tests): a change to one changes it, a change
    elsewhere not."""
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "b.py").write_text("y = 1\n")
    (tmp_path / "notes.txt").write_text("n\n")
    (tmp_path / "test_a.py").write_text("t = 1\n")
    first = RP.code_hash(str(tmp_path))
    (tmp_path / ".venv" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("m\n")
    (tmp_path / "test_a.py").write_text("t = 2\n")
    assert RP.code_hash(str(tmp_path)) == first
    (tmp_path / "a.py").write_text("x = 2\n")
    assert RP.code_hash(str(tmp_path)) != first


def test_reproduce_refuses_bad_arguments(capsys):
    for argv, message in ((["--jobs", "0"], "--jobs must be at least 1"), (["--only", "nothing"], "invalid choice")):
        with pytest.raises(SystemExit) as stop:
            RP.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("name, likelihood", [("check_default", "gaussian"), ("check_laplace", "laplace")])
def test_a_checks_rendering_is_what_the_check_printed(name, likelihood, quick_family_check):
    """The README's check block is rendered from the check's --json, not pasted: the rendering equals the check's stdout line
    for line, less the "wrote FILE" line (and, for another family, less the table and its notes), the file named as committed."""
    status, out, path = quick_family_check(likelihood, "pinwheel")           # --quick --save-params, run once (conftest.py)
    assert status == 0
    out = out.replace(str(path), f"results/{path.name}")                     # as configuration_line names it
    printed = [line for line in out.splitlines() if not line.startswith("wrote ")]
    with open(path) as f:
        rendered = RP.STUDIES[name][2](json.load(f)).splitlines()
    if likelihood == "gaussian":
        assert rendered == printed
    else:
        start, own = (lines.index(next(line for line in lines if line.startswith("Checks"))) for lines in (printed, rendered))
        assert rendered[:own] == printed[:own] and rendered[own:] == printed[start:]


# Prose that quotes a rendered table, by hand: each quote must stand in its doc's prose and in what its study renders
# (spaces ignored), so the prose cannot drift from the table beside it. Prose numbers not listed here are hand-written
# summaries of the rendered tables or come from the runs their docs name (docs/reproducibility.md says which).
QUOTED = {"study_pinwheel": {"README.md": ["0.038 [0.025, 0.052]", "0.007 [0.004, 0.010]", "0.096 [0.072, 0.119]",
                                           "4.841 [3.460, 6.222]", "4.024 [2.929, 5.119]"],
                             "docs/collapse_strength.md": ["1.354 [0.938, 1.770]", "1.217 [0.791, 1.642]", "0.982 [0.608, 1.355]",
                                                           "1.019 [0.626, 1.413]", "3.100 [2.045, 4.154]", "4.746 [3.463, 6.030]",
                                                           "0.072 [0.016, 0.128]", "2.357 [2.297, 2.418]", "4.841 [3.460, 6.222]",
                                                           "4.024 [2.929, 5.119]"]},
          "check_held_out:held-out": {"docs/held_out.md": ["0.855", "0.784"]},
          "check_digits_held_out": {"docs/held_out.md": ["13.09", "3.9", "0.62", "1.4", "0.988", "1.034", "0.047", "0.049"]},
          "check_digits_k30_held_out": {"docs/held_out.md": ["5.66", "3.3", "0.520", "0.549"]},
          "sweep:check": {"docs/models.md": ["0.071", "0.053"]},
          "study_pinwheel:importance-samples/held-out": {
              "README.md": ["0.796 [0.760, 0.832]", "0.561 [0.528, 0.593]"],
              "docs/held_out.md": ["4.217 [3.008, 5.426]", "3.565 [2.579, 4.552]", "2.056 [1.989, 2.123]", "0.796 [0.760, 0.832]",
                                   "0.561 [0.528, 0.593]", "0.798 [0.043, 1.553]", "0.679 [0.614, 0.743]", "0.717 [0.667, 0.767]",
                                   "0.874", "0.897", "0.898", "-0.288 [-0.335, -0.240]"],
              "docs/collapse_strength.md": ["0.796 [0.760, 0.832]", "0.798 [0.043, 1.553]", "0.561 [0.528, 0.593]",
                                            "4.217 [3.008, 5.426]", "3.565 [2.579, 4.552]", "2.056 [1.989, 2.123]"]},
          "study_pinwheel:auxiliary": {"docs/mmvaeplus.md": ["0.121", "0.131", "0.195", "0.096", "2.357"],
                                       "README.md": ["0.121", "0.195", "0.096"]},
          "digits_models": {"README.md": ["0.035", "0.078", "0.72", "1.62"], "docs/digits.md": ["0.94", "1.00"]},
          "study_digits:decoder-std": {"docs/collapse_strength.md": ["0.073 [0.066, 0.079]", "0.001 [0.001, 0.001]", "0.008 [0.007, 0.009]",
                                                                     "0.047 [0.043, 0.051]"]},
          "study_digits:auxiliary": {"docs/mmvaeplus.md": ["0.160", "0.216", "0.972"], "README.md": ["0.158", "0.216", "0.047"]},
          "study_digits_k:importance-samples": {"docs/collapse_strength.md": ["0.046 [0.043, 0.050]", "0.514 [0.509, 0.519]",
                                                                              "0.513 [0.507, 0.520]", "0.952 [0.903, 1.001]"]},
          "study_digits_k:importance-samples/held-out": {"docs/held_out.md": ["15.457 [15.383, 15.530]", "0.542", "0.998"]}}


def test_prose_that_quotes_a_rendered_table_says_what_the_table_says():
    """Every quote in QUOTED is in its doc outside the rendered blocks, and in its study's rendering from results/."""
    for key, docs in QUOTED.items():
        name, _, part = key.partition(":")                                   # NAME or NAME:PART, as a marker names it
        with open(RP.result_path(name, False)) as f:
            results = json.load(f)
        rendered = (RP.STUDIES[name][2](results, part) if part else RP.STUDIES[name][2](results)).replace(" ", "")
        for doc, quotes in docs.items():
            with open(os.path.join(RP.ROOT, doc)) as f:
                text = f.read()
            prose = "\n".join(block.split(RP.END)[-1] for block in text.split("<!-- render "))     # what no marker renders
            for quote in quotes:
                assert quote in prose, f"{doc} no longer quotes {quote!r}: update QUOTED"
                assert quote.replace(" ", "") in rendered, f"{doc} quotes {quote!r}, which results/{key}.json does not render"


def test_every_figure_is_redrawn_by_reproduce_or_named_as_not():
    """Each FIGURES entry is plots.py arguments it accepts, reading the results it names; together with the check's own
    figures (plots.py without a file, Gaussian and Laplace) and NOT_REDRAWN they account for every PNG under figures/, and
    each file a results-drawn entry writes is one that is committed."""
    import glob
    import plots as P
    drawn = set()
    for arguments, studies in RP.FIGURES:
        assert [a[1:-1] for a in arguments if a.startswith("{")] == list(studies) and set(studies) <= set(RP.STUDIES)
        args = P.parse_args(RP.figure_arguments(arguments))
        if studies:                                                        # read, not drawn: prepare only reads the files
            drawn |= {os.path.join(args.out, name) for name, _ in P.prepare(args)[1]}
        else:                                                              # the check's own run: its figures' names
            results = {"config": {"data": "pinwheel", "latent_dim": 2, "likelihood": args.likelihood}}
            drawn |= {os.path.join(args.out, name) for name, _ in P.figures_to_draw(args, results, 0)}
    named = {os.path.join("figures", name) for names in RP.NOT_REDRAWN for name in names.split(", ")}
    committed = {os.path.relpath(path, RP.ROOT) for path in glob.glob(os.path.join(RP.ROOT, "figures", "**", "*.png"), recursive=True)}
    assert drawn <= committed and not drawn & named, (drawn - committed, drawn & named)
    assert committed == drawn | named, committed ^ (drawn | named)



def test_models_md_spread_seeds_block_is_what_its_code_prints_on_the_committed_sweep():
    """docs/models.md's "How much one spread ratio varies": its Python block, run on the committed results/sweep.json, prints
    the text block under it, line for line (the 200 generation seeds' means and standard deviations are not typed)."""
    import subprocess
    import sys
    with open(os.path.join(RP.ROOT, "docs", "models.md")) as f:
        text = f.read()
    start = text.index("```python", text.index("## How much one spread ratio varies")) + len("```python\n")
    code = text[start:text.index("```", start)]
    printed = text.index("```text", start) + len("```text\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=RP.ROOT, capture_output=True, text=True, check=True).stdout
    assert out == text[printed:text.index("```", printed)]


def test_the_held_out_summary_is_the_means_counts_and_largest_z_of_its_rows():
    """held_out_summary_text on two classes of known numbers: the means over the classes, the reliable counts, the difference
    of the means and the largest (training - held-out) / sqrt(SE_t^2 + SE_h^2); K named for the MMVAE, not the MVAE."""
    def row(model, c, train, held, se_train, se_held, reliable):
        return {"model": model, "decoder": "trained", "class": c, "conditional": train, "conditional_points_se": se_train,
                "conditional_reliable": reliable, "spread_ratio": 0.5 + c, "coherence": 0.9,
                "held_out": {"conditional": held, "conditional_points_se": se_held, "conditional_reliable": not reliable,
                             "spread_ratio": 1.0 + c, "coherence": 0.8}}
    rows = [row("mvae", 0, 10.0, 7.0, 0.6, 0.8, True), row("mvae", 1, 4.0, 3.0, 3.0, 4.0, False),
            row("mmvae", 0, 2.0, 2.5, 1.0, 1.0, True), row("mmvae", 1, 1.0, 1.0, 1.0, 1.0, True)]
    lines = RP.held_out_summary_text({"config": {"importance_samples": 30}, "rows": rows}).splitlines()
    assert lines[1].split() == ["mvae", "7.00", "(", "1)", "5.00", "(", "1)", "2.00", "(", "3.0)", "1.000", "->", "1.500", "0.900", "->", "0.800"]
    assert lines[2].split()[:3] == ["mmvae,", "K", "="] and lines[2].split()[11:13] == ["(", "0.0)"]   # z: (1 - 1) / sqrt 2 > (2 - 2.5) / sqrt 2


def test_quick_flags_replace_a_flag_the_study_gives_with_its_values():
    """--quick's flags are added to a study's command, and a flag the command already gives is replaced with all its values
    (the scripts refuse a flag given twice): the digits K study's quick tier trains under dreg-mix alone."""
    command = RP.with_flags(RP.STUDIES["study_digits_k"][0], RP.STUDIES["study_digits_k"][1])
    assert command.count("--study-gradients") == 1 and command[command.index("--study-gradients") + 1:] == ["dreg-mix"]
    assert RP.with_flags(["s.py", "--a", "1", "--b", "2", "3", "--c"], ["--b", "9"]) == ["s.py", "--a", "1", "--c", "--b", "9"]
    for command, quick, _ in RP.STUDIES.values():          # every study's quick command gives each flag once
        flags = [word for word in RP.with_flags(command, quick) if word.startswith("--")]
        assert len(flags) == len(set(flags)), command
