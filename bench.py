"""bench.py: median time of one training step (batch and noise, objective, gradient, Adam) per model.

Every case runs in a fresh interpreter: one case's heap must not shape the next one's timing (glibc's
malloc trims and re-grows the heap differently after another model's run, which moved a step by 10 %
in this project's measurements). --against DIR times the surjvae_np.py in DIR the same way, in the
same rounds (a checkout of another commit: the ratio compares code, not moments of a noisy machine).
--torch-python PYTHON --peer SCRIPT adds a plain-PyTorch MVAE/MMVAE of the same data (SCRIPT --steptime-only --act tanh,
which prints lines like "MMVAE: median step (fwd+bwd+Adam, bs 128) with 1 thread(s): 3.0 ms"; the developers use one kept
outside the repository), at its architecture: two tanh layers of 64, float32, one thread. docs/speed.md says how to make
a baseline checkout and a PyTorch environment.
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # inherited by every timed interpreter

import argparse  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from cli import runs as R  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("mvae", "mmvae", "mopoe")
PEER_STEP_LINE = r"(MVAE|MMVAE): median step \(fwd\+bwd\+Adam, bs (\d+)\) with 1 thread\(s\): ([0-9.]+) ms"


def median_step_seconds(folder, model, hidden, batch_size, dtype_name, num_steps=200, warmup=20, seed=0):
    """Median seconds of one training step of surjvae_np (imported from folder) on the 2-class pinwheel.
    Runs in the calling interpreter; time_case runs it in a fresh one."""
    sys.path.insert(0, folder)
    import numpy as np
    from autograd import value_and_grad
    import surjvae_np as S
    objectives = dict(S.OBJECTIVES)
    if "mopoe" not in objectives:                          # this project's layout: MoPoE is an extension
        from extensions import beyond_the_paper as B
        objectives = B.OBJECTIVES
    objective = getattr(objectives[model], "__wrapped__", objectives[model])   # maximise's steps skip the checks
    x1, labels = S.make_pinwheel(rng=np.random.default_rng([seed, 3]))
    flat, unflatten = S.flatten_params(S.init_params(S.init_rng(seed), hidden=tuple(hidden)))
    objective_and_gradient = value_and_grad(lambda vector, *batch: objective(unflatten(vector), *batch))
    dtype = getattr(np, dtype_name)
    flat, x1, x2 = flat.astype(dtype), x1.astype(dtype), S.one_hot(labels, 2).astype(dtype)
    m, v, seconds = np.zeros_like(flat), np.zeros_like(flat), []
    for t in range(warmup + num_steps):
        start = time.perf_counter()
        flat, m, v, _ = S.training_step(objective_and_gradient, flat, m, v, t, x1, x2, seed, 1e-3, batch_size)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[warmup:])


def time_case(folder, case):
    """median_step_seconds of case = (model, hidden, batch, dtype) in a fresh interpreter."""
    model, hidden, batch, dtype_name = case
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench; bench.R.keep_freed_memory(); "     # as the scripts run
            f"print(bench.median_step_seconds({folder!r}, {model!r}, {list(hidden)!r}, {batch!r}, {dtype_name!r}, "
            f"num_steps={200 if batch else 50}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.py: error: timing {case} with {folder} failed:\n{done.stderr.strip()}")
    return float(done.stdout.strip().splitlines()[-1])


def median_estimator_step_seconds(gradient, dtype_name="float64", num_importance=30, num_steps=20, warmup=3, seed=0):
    """Median seconds of one MMVAE training step on the digits (latent 8, hidden 128, batch 128) at num_importance samples per
    stratum, trained with `gradient` (beyond_the_paper.GRADIENTS) in dtype_name, through S.maximise as training runs it: a
    clock read at each step's progress call (log_every=1). Runs in the calling interpreter; --estimators runs each in a fresh one."""
    import numpy as np
    from extensions import beyond_the_paper as B
    from extensions import data_sets as D
    import surjvae_np as S
    x1, labels = D.load_digits()
    start = B.init_model_params("mmvae", S.init_rng(seed), 10, 8, 64, (128,))
    clock = [time.perf_counter()]
    S.maximise(B.objective_of("mmvae", num_importance, gradient), start, x1, S.one_hot(labels, 10), seed=seed,
               num_steps=warmup + num_steps, step_size=1e-3, batch_size=128, log_every=1,
               print_fn=lambda line: clock.append(time.perf_counter()), dtype=getattr(np, dtype_name))
    return statistics.median(np.diff(clock)[warmup:])


def time_estimator(gradient, dtype_name):
    """median_estimator_step_seconds(gradient, dtype_name) in a fresh interpreter."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import bench; bench.R.keep_freed_memory(); "     # as the scripts run
            f"print(bench.median_estimator_step_seconds({gradient!r}, {dtype_name!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.py: error: timing the {gradient} step in {dtype_name} failed:\n{done.stderr.strip()}")
    return float(done.stdout.strip().splitlines()[-1])


def peer_step_milliseconds(torch_python, peer_script):
    """{(model, batch): median ms} from the peer's --steptime-only run at tanh, one thread; SystemExit with
    the peer's own error if it fails, and if it prints no step time."""
    try:
        done = subprocess.run([torch_python, peer_script, "--steptime-only", "--act", "tanh"], capture_output=True, text=True)
    except OSError as error:
        raise SystemExit(f"bench.py: error: cannot run --torch-python {torch_python}: {error.strerror}")
    if done.returncode != 0:
        raise SystemExit(f"bench.py: error: the peer failed (exit {done.returncode}):\n{done.stderr.strip()[-2000:]}")
    found = {(name.lower(), int(batch)): float(ms) for name, batch, ms in re.findall(PEER_STEP_LINE, done.stdout)}
    if not found:
        raise SystemExit(f"bench.py: error: the peer printed no step time (expected lines like 'MMVAE: median step "
                         f"(fwd+bwd+Adam, bs 128) with 1 thread(s): 3.0 ms'); it printed:\n{done.stdout.strip()[-2000:]}")
    return found


def executable_file(text):
    """An argparse type: an existing, executable file."""
    R.input_file(text)
    if not os.access(text, os.X_OK):
        raise argparse.ArgumentTypeError(f"{text} is not executable")
    return text


def module_folder(text):
    """An argparse type: a folder that holds a surjvae_np.py."""
    if not text.strip() or not os.path.isfile(os.path.join(text, "surjvae_np.py")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder with a surjvae_np.py")
    return os.path.abspath(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--rounds", type=R.int_at_least(1), default=3, help="interleaved rounds; the table shows the median (default 3)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="models to time (default all three)")
    parser.add_argument("--quick", action="store_true", help="the default width at batch 128 in float64 only")
    parser.add_argument("--against", type=module_folder, help="a folder with another version of surjvae_np.py to time alike")
    parser.add_argument("--torch-python", type=executable_file, help="python of a venv with torch, to time --peer")
    parser.add_argument("--peer", type=R.input_file, help="a plain-PyTorch peer script that answers --steptime-only --act tanh")
    parser.add_argument("--estimators", action="store_true",
                        help="instead: the MMVAE's step on the digits at K = 30 under each gradient estimator, in float64 and float32, "
                             "its ratio to iwae's and float32's to float64's")
    parser.add_argument("--json", type=R.output_file, metavar="PATH", help="also write the table's numbers to PATH")
    args = R.refuse_repeats(parser, argv)
    if args.estimators and (args.against or args.torch_python or args.quick or args.models != list(MODELS)):
        parser.error("--estimators times its own cases: not with --against, --torch-python, --peer, --quick or --models")
    if bool(args.torch_python) != bool(args.peer):
        parser.error("--torch-python and --peer go together: the peer runs only when given both")
    return args


def cases(args):
    """(model, hidden, batch, dtype) to time: the default width and the peer's, batch 128 and full, both precisions."""
    if args.quick:
        return [(model, (32,), 128, "float64") for model in args.models]
    return [(model, hidden, batch, dtype) for hidden in ((32,), (64, 64)) for model in args.models
            for batch in (128, None) for dtype in ("float64", "float32")]


def measure(args):
    """{(version, case): [ms per round]} and {(model, batch): [peer ms per round]}, rounds interleaved."""
    versions = {"this": HERE, **({"against": args.against} if args.against else {})}
    ours, peer = {}, {}
    for round_index in range(args.rounds):
        for case in cases(args):
            for name, folder in versions.items():
                ours.setdefault((name, case), []).append(1e3 * time_case(folder, case))
        if args.torch_python:
            for key, ms in peer_step_milliseconds(args.torch_python, args.peer).items():
                peer.setdefault(key, []).append(ms)
        print(f"  round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)       # progress: stderr
    return ours, peer


def table(args, ours, peer):
    """The lines of the table: medians over rounds, and the ratios."""
    median = statistics.median
    lines = [f"{'model':6s} {'hidden':8s} {'batch':>5s} {'dtype':>7s} {'ms':>8s}" + (f" {'against':>8s} {'ratio':>6s}" if args.against else "")
             + (f" {'torch f32':>9s} {'/torch':>6s}" if peer else "")]
    for case in cases(args):
        model, hidden, batch, dtype = case
        ms = median(ours["this", case])
        line = f"{model:6s} {','.join(map(str, hidden)):8s} {batch or 1000:5d} {dtype:>7s} {ms:8.3f}"
        if args.against:
            line += f" {median(ours['against', case]):8.3f} {ms / median(ours['against', case]):6.3f}"
        reference = peer.get((model, batch)) if hidden == (64, 64) else None
        if peer:
            line += f" {median(reference):9.3f} {ms / median(reference):6.2f}" if reference else f" {'':9s} {'':6s}"
        lines.append(line)
    return lines


def main(argv=None):
    args = parse_args(argv)
    print(R.wrap(f"bench configuration: rounds={args.rounds}, models={args.models}, quick={args.quick}, estimators={args.estimators}, "
                 f"against={args.against}, torch_python={args.torch_python}, peer={args.peer}, "
                 f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"), flush=True)
    return R.interruptible(lambda: run(args, time.perf_counter()))


def run_estimators(args, start):
    """--estimators: interleaved rounds over the gradient estimators in both precisions, the median ms per step, its ratio to
    iwae's in the same precision, and float32's to float64's."""
    from extensions import beyond_the_paper as B
    precisions = ("float64", "float32")
    times = {(gradient, dtype): [] for gradient in B.GRADIENTS for dtype in precisions}
    for round_index in range(args.rounds):
        for gradient, dtype in times:
            times[gradient, dtype].append(1e3 * time_estimator(gradient, dtype))
        print(f"  round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)       # progress: stderr
    medians = {key: statistics.median(ms) for key, ms in times.items()}
    print("MMVAE step on the digits through maximise, K = 30, batch 128, latent 8, hidden 128 (median over rounds of each run's median)")
    print(f"{'gradient':9s} {'f64 ms':>8s} {'x iwae':>6s} {'f32 ms':>8s} {'x iwae':>6s} {'f32/f64':>7s}")
    for gradient in B.GRADIENTS:
        f64, f32 = medians[gradient, "float64"], medians[gradient, "float32"]
        print(f"{gradient:9s} {f64:8.2f} {f64 / medians['iwae', 'float64']:6.2f} {f32:8.2f} {f32 / medians['iwae', 'float32']:6.2f} {f32 / f64:7.2f}")
    if args.json:
        R.write_json({"estimators": {f"{gradient} {dtype}": ms for (gradient, dtype), ms in times.items()}}, args.json)
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0


def run(args, start):
    """Time every case, print the table, write --json (whole or not at all)."""
    if args.estimators:
        return run_estimators(args, start)
    ours, peer = measure(args)
    print("\n".join(table(args, ours, peer)))
    if args.json:
        R.write_json({"this": {repr(case): ms for (name, case), ms in ours.items() if name == "this"},
                      "against": {repr(case): ms for (name, case), ms in ours.items() if name == "against"},
                      "peer": {repr(key): ms for key, ms in peer.items()}}, args.json)
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
