"""runs: what every script shares (theorem_check.py, studies.py, plots.py, bench.py): argparse types that refuse bad
input with a message naming it, repeated flags refused, tasks on up to --jobs forked processes with progress, the
verdicts, the JSON and the exit status at a run's end, and Ctrl-C ending a run with one line. No mathematics here; nothing imported from the project.
"""
import argparse
import contextlib
import ctypes
import functools
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import textwrap
import time

import numpy as np


# ================================================================ memory

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameters (malloc.h)


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse: blocks of up to 32 MB (its largest mmap threshold) from the heap,
    not fresh mappings, and the heap's top returned to the system only beyond 1 GiB. Otherwise every large temporary
    (a K = 30 step's activations: megabytes each) is a new mapping whose pages fault in, zeroed, at first touch: the K = 30
    digits step spent a third of its time so (docs/speed.md). Results do not change; elsewhere than glibc it does nothing.
    Called first by every script's main()."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2 ** 20)
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 30)
    except (OSError, AttributeError):                 # not glibc: nothing to tune
        pass


# ================================================================ tasks, on up to --jobs processes

def call_task(task):
    """Run one task (what, function, arguments): function(*arguments), in a worker or here."""
    return task[1](*task[2])


def worker_pool(processes):
    """Forked workers that ignore Ctrl-C (the parent stops the pool: no worker prints a traceback); a Ctrl-C while they
    start is recorded, not lost: the pool is then stopped and KeyboardInterrupt raised."""
    received = []
    handler = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        pool = multiprocessing.get_context("fork").Pool(processes, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
    finally:
        signal.signal(signal.SIGINT, handler)
    if received:
        pool.terminate()
        raise KeyboardInterrupt
    return pool


def run_tasks(tasks, jobs, print_fn, phase="tasks", later=0.0):
    """call_task's result for every task (what, function, arguments), in order; on `jobs` forked processes if jobs > 1.
    Every task draws only from its own seeded generators, so the results do not depend on jobs. print_fn: a line as the
    phase starts and one per task, with the time the phase has left at its pace so far, and, given the seconds the
    phases after it are expected to take (later), the time left in the run."""
    start, results, parallel = time.perf_counter(), [], jobs > 1 and len(tasks) > 1 and "fork" in multiprocessing.get_all_start_methods()
    print_fn is None or print_fn(f"{phase}: {len(tasks)} tasks on {min(jobs, len(tasks)) if parallel else 1} process(es): {tasks[0][0]}, ...")
    with worker_pool(min(jobs, len(tasks))) if parallel else contextlib.nullcontext() as pool:
        for index, result in enumerate(pool.imap(call_task, tasks) if parallel else map(call_task, tasks)):
            results.append(result)
            elapsed, left = time.perf_counter() - start, len(tasks) - index - 1
            if print_fn is not None:
                here = elapsed / (index + 1) * left
                remaining = [f"about {duration(here)} left in {phase}"] * bool(left) + [f"about {duration(here + later)} left in the run"] * bool(later)
                print_fn(f"  [{index + 1}/{len(tasks)}] {tasks[index][0]}" + (f"  ({', '.join(remaining)})" if remaining else ""))
    return results


def makespan(seconds, jobs):
    """The seconds that tasks of these durations take on `jobs` processes that each take the next task when free (run_tasks'
    pool), the longest first: the latest finish."""
    finish = [0.0] * max(1, min(jobs, len(seconds)))
    for duration in sorted(seconds, reverse=True):
        finish[finish.index(min(finish))] += duration
    return max(finish)


def print_progress(start, line):
    """A progress line on stderr (stdout holds the results: `> out.txt` keeps only them), after the seconds since start."""
    print(f"[{time.perf_counter() - start:7.1f} s] {line}", file=sys.stderr, flush=True)


def progress(start):
    """The scripts' print_fn for progress: print_progress from start (a partial, so that worker processes can take it)."""
    return functools.partial(print_progress, start)


def duration(seconds):
    """seconds in words a person reads at once: 40 s, 12 min, 3.5 h, 6.2 days, 9.4 weeks."""
    for unit, size in (("weeks", 604800), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}" if seconds < 20 * size else f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 1.0):.0f} s"


def wrap(text, width=100, indent="  "):
    """Prose printed by the scripts (legends, notes, configuration) in lines of at most width columns, each line after a
    paragraph's first after indent; tables stay as they are."""
    return "\n".join(textwrap.fill(paragraph, width, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)
                     for paragraph in text.split("\n"))


def interruptible(main_body):
    """main_body(), but Ctrl-C ends it with one line and exit status 130 (the workers stop with it)."""
    try:
        return main_body()
    except KeyboardInterrupt:
        print(f"{os.path.basename(sys.argv[0]) or 'python'}: interrupted; nothing was written", file=sys.stderr)
        return 130


# ================================================================ the end of a run: verdicts, the JSON, the exit status

def write_json(results, path):
    """Write results to path through a temporary file, so that a failure or Ctrl-C never leaves half a file."""
    try:
        with open(f"{path}.partial", "w") as f:
            json.dump(results, f)
        os.replace(f"{path}.partial", path)
    finally:
        if os.path.exists(f"{path}.partial"):
            os.remove(f"{path}.partial")


def print_verdicts(results):
    """The checks (PASS, FAIL, SKIP) and the findings (HOLDS, DOES NOT HOLD, UNDECIDED, or SKIP for unreliable rows)."""
    print("\nChecks (Theorem 1 and the numerics it is checked with; a FAIL sets the exit status):")
    for item in results["checks"]:
        print(wrap(f"  {({True: 'PASS', False: 'FAIL', None: 'SKIP'}[item['passed']])}  {item['name']}: {item['value']:.3g} ({item['measures']})",
                   indent=" " * 8))
    if results["findings"]:
        print("Findings (measured on these trained models; they do not set the exit status):")
    for item in results["findings"]:
        verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "SKIP" if item.get("skipped") else "UNDECIDED"}[item["passed"]]
        print(wrap(f"  {verdict}  {item['name']}: {item['value']:.3g} ({item['measures']})", indent=" " * 8))


def finish(results, start):
    """results with the run's seconds since start and whether every check passed (a SKIP is not decidable: it passes)."""
    results["seconds"] = time.perf_counter() - start
    results["all_passed"] = all(c["passed"] is not False for c in results["checks"])
    return results


def report(results, json_path, start, under_the_verdicts=""):
    """Print the checks and findings (and under_the_verdicts), write json_path (if given), print the time: the exit status
    (0 unless a check FAILs)."""
    print_verdicts(results)
    if under_the_verdicts:
        print(under_the_verdicts)
    finish(results, start)
    if json_path:
        write_json(results, json_path)
        print(f"wrote {json_path}")
    print(f"total time {results['seconds']:.1f} s")
    return 0 if results["all_passed"] else 1


# ================================================================ arguments

def argument_type(convert, valid, requirement):
    """An argparse type: convert(text), refused unless valid(value), with "expected ..." or "must be {requirement}". It takes
    the value from Python too (the scripts' keyword calls): an int for int, an int or a float for float, never a bool."""
    kinds = (int, np.integer) if convert is int else (int, float, np.integer, np.floating)

    def parse(given):
        try:
            value = convert(given) if isinstance(given, str) or (isinstance(given, kinds) and not isinstance(given, bool)) else None
        except ValueError:
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if convert is int else 'a number'}, got {str(given)[:40]!r}")
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {str(given)[:40]}")
        return value
    return parse


def int_at_least(minimum, maximum=None):
    """An argparse type: an integer >= minimum (and <= maximum)."""
    return argument_type(int, lambda value: minimum <= value <= (maximum if maximum is not None else value),
                         f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else ""))


positive_number = argument_type(float, lambda value: np.isfinite(value) and value > 0, "a finite number > 0")
fraction = argument_type(float, lambda value: 0 < value < 1, "a number strictly between 0 and 1")


def writable_folder(folder):
    """None if a file can be created in folder (tried: a read-only or virtual file system says no only then), else why not."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return None
    except OSError as error:
        return f"the folder {folder} does not exist" if not os.path.isdir(folder) else f"cannot write in the folder {folder}: {error.strerror}"


def path_type(problem_of):
    """An argparse type: the path, refused with problem_of(path) when that is not None (an empty path always)."""
    def parse(text):
        problem = f"expected a path, got {text!r}" if not isinstance(text, str) else "the path is empty" if not text.strip() else problem_of(text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return text
    return parse


input_file = path_type(lambda text: None if os.path.isfile(text) else f"{text} is not a file")
output_file = path_type(lambda text: f"{text} is a folder; give a file name" if os.path.isdir(text) else
                        f"{text} is not a regular file (a FIFO, a device?); give a file name" if os.path.exists(text) and not os.path.isfile(text)
                        else writable_folder(os.path.dirname(os.path.abspath(text))))


def refuse_repeats(parser, argv):
    """parser.error naming every flag given twice in argv (--flag or --flag=value), and every value a list flag repeats:
    argparse would silently keep the last (--seed 0 --seed 1) or both (--models mvae mvae)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = [word.split("=")[0] for word in argv if word.startswith("--")]
    repeated = sorted({flag for flag in flags if flags.count(flag) > 1})
    if repeated:
        parser.error(f"{', '.join(repeated)} given more than once (give each flag once)")
    args = parser.parse_args(argv)
    for name, values in vars(args).items():
        twice = sorted({str(v) for v in values if values.count(v) > 1}) if isinstance(values, list) else []
        if twice:
            parser.error(f"--{name.replace('_', '-')} lists {', '.join(twice)} twice (give each once)")
    return args


def data_choice(choices):
    """An argparse type: one of choices, or the path of an existing .csv or .npz file."""
    def parse(text):
        if isinstance(text, str) and (text in choices or (text.endswith((".csv", ".npz")) and os.path.isfile(text))):
            return text
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)}, or give an existing .csv or .npz file)")
    return parse
