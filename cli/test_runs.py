"""Tests for runs: the scripts' shared argument types, repeated-flag refusal and task runner; and the suite's own run loop on
two processes (conftest.py)."""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from cli import runs as R


def _square_plus(x, y):
    return x * x + y


def test_run_tasks_keeps_order_and_does_not_depend_on_jobs():
    tasks = [(f"task {i}", _square_plus, (i, 10 * i)) for i in range(7)]
    lines = []
    alone, forked = R.run_tasks(tasks, 1, None), R.run_tasks(tasks, 2, lines.append)
    assert alone == forked == [i * i + 10 * i for i in range(7)]
    assert lines[0].startswith("tasks: 7 tasks on") and lines[-1].startswith("  [7/7] task 6") and "left in tasks" in lines[1]
    lines = []
    R.run_tasks(tasks, 1, lines.append, "training", later=3600.0)          # the phases after it: an hour
    assert "left in training, about " in lines[1] and lines[1].endswith("left in the run)") and lines[-1].endswith("(about 60 min left in the run)")


@pytest.mark.parametrize("text, message", [("x", "expected an integer, got 'x'"), ("2", "must be >= 3 and <= 5, got 2"),
                                           ("6", "must be >= 3 and <= 5, got 6")])
def test_int_at_least_refuses_naming_the_value(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        R.int_at_least(3, 5)(text)
    assert R.int_at_least(3, 5)("4") == 4


@pytest.mark.parametrize("text", ["nan", "inf", "0", "-1"])
def test_positive_number_refuses_non_finite_and_non_positive(text):
    with pytest.raises(argparse.ArgumentTypeError, match="a finite number > 0"):
        R.positive_number(text)


def test_paths_refused_with_the_reason(tmp_path):
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        R.output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        R.output_file(str(tmp_path / "missing" / "out.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="is not a file"):
        R.input_file(str(tmp_path / "missing.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="the path is empty"):
        R.input_file(" ")
    assert R.output_file(str(tmp_path / "out.json")) == str(tmp_path / "out.json")
    assert not os.path.exists(tmp_path / "out.json")          # checking the folder leaves nothing behind


@pytest.mark.parametrize("argv, message", [(["--seed", "0", "--seed", "1"], "--seed given more than once"),
                                           (["--seed=0", "--seed", "1"], "--seed given more than once"),
                                           (["--models", "a", "a"], "--models lists a twice")])
def test_refuse_repeats_names_the_flag(argv, message, capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["a"])
    with pytest.raises(SystemExit):
        R.refuse_repeats(parser, argv)
    assert message in capsys.readouterr().err
    assert R.refuse_repeats(parser, ["--models", "a", "b"]).models == ["a", "b"]


def test_interruptible_turns_ctrl_c_into_status_130(capsys):
    def body():
        raise KeyboardInterrupt
    assert R.interruptible(body) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert R.interruptible(lambda: 7) == 7


def test_duration_reads_at_once_and_wrap_keeps_every_word():
    assert [R.duration(s) for s in (0.2, 40, 130, 3 * 3600, 5 * 86400, 60 * 86400)] == ["1 s", "40 s", "2.2 min", "3.0 h", "5.0 days", "8.6 weeks"]
    text = "word " * 60 + "a/very/long/path/that/must/not/be/broken/" * 4
    wrapped = R.wrap(text, 50)
    assert wrapped.split() == text.split() and all(len(line) <= 50 for line in wrapped.splitlines()[:-1])
    assert all(line.startswith("  ") for line in wrapped.splitlines()[1:])


def test_keep_freed_memory_reuses_large_blocks_instead_of_faulting_in_new_pages():
    """In a fresh interpreter, three K = 30 training steps of the digits' MMVAE (megabytes of temporaries each): with glibc's
    defaults they fault in tens of thousands of fresh pages (measured: 27068), after keep_freed_memory hardly any (5)."""
    import subprocess
    if not any(os.path.exists(f"/lib/{arch}-linux-gnu/libc.so.6") for arch in ("x86_64", "aarch64")):
        pytest.skip("not glibc: keep_freed_memory does nothing there")
    code = ("import resource, sys; sys.path.insert(0, {root!r}); from cli import runs\n{tune}\n"
            "import surjvae_np as S\nfrom extensions import beyond_the_paper as B, data_sets as D\n"
            "x1, labels = D.load_digits()\nstart = B.init_model_params('mmvae', S.init_rng(0), 10, 8, 64, (128,))\n"
            "train = lambda steps: S.maximise(B.objective_of('mmvae', 30), start, x1, S.one_hot(labels, 10), num_steps=steps, "
            "step_size=1e-3, print_fn=None)\ntrain(2)\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\ntrain(3)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    faults = {tune: int(subprocess.run([sys.executable, "-c", code.format(root=root, tune=tune)], capture_output=True, text=True,
                                       check=True).stdout) for tune in ("pass", "runs.keep_freed_memory()")}
    assert faults["pass"] > 5000 and faults["runs.keep_freed_memory()"] < 500, faults


def test_makespan_is_the_pools_latest_finish():
    """One process: the sum; as many processes as tasks: the longest; else the longest first, each to the first free process."""
    durations = [3.0, 2.0, 3.0, 2.0, 2.0]
    assert R.makespan(durations, 1) == sum(durations) and R.makespan(durations, 5) == R.makespan(durations, 9) == 3.0
    assert R.makespan(durations, 2) == 7.0                       # 3 + 2 + 2 on one, 3 + 2 on the other
    assert R.makespan(durations, 3) == 5.0 and R.makespan([], 2) == 0.0


def test_the_suite_on_two_processes_counts_every_test_once_and_fails_where_either_fails(tmp_path):
    """conftest.py's run loop on two small modules (each process takes one): a failure in either process sets the exit
    status and is named with its traceback; every test is counted once; the forked process dying in a test (in whichever
    module it took) is a failure that says so, and the parent still runs its own module."""
    root = pathlib.Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", tmp_path)
    shutil.copytree(root / "cli", tmp_path / "cli", ignore=shutil.ignore_patterns("test_*", "__pycache__"))

    def suite(body_a, body_b):
        (tmp_path / "test_a.py").write_text(body_a)
        (tmp_path / "test_b.py").write_text(body_b)
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, SUITE_RUNNER=str(os.getpid())))
    slow = "import os, time\ndef test_{0}1():\n    open('pids', 'a').write(f'{{os.getpid()}}\\n')\n    time.sleep(1)\n"
    run = suite(slow.format("a") + "def test_a2():\n    assert 1 == 2, 'a2 fails'\n",
                slow.format("b") + "def test_b2():\n    assert 0, 'b2 fails'\ndef test_b3():\n    pass\n")
    assert len(set((tmp_path / "pids").read_text().split())) == 2                       # one module in each process
    assert run.returncode == 1 and "2 failed, 3 passed in" in run.stdout, run.stdout
    assert "AssertionError: a2 fails" in run.stdout and "AssertionError: b2 fails" in run.stdout
    forked_exits = ("import os, time\ndef test_exits_if_forked():\n    if os.getppid() != int(os.environ['SUITE_RUNNER']):\n"
                    "        os._exit(5)\n    time.sleep(1)\n")
    run = suite(forked_exits, forked_exits)
    assert run.returncode == 1 and "the second test process ended with exit code 5" in run.stdout and "1 passed in" in run.stdout, run.stdout
