"""pytest's start: the suite runs as the scripts do, with one BLAS thread and glibc's malloc keeping freed memory for
reuse (cli/runs.py); and the quick checks that several tests read, run once per session."""
import contextlib
import io
import multiprocessing
import os
import pickle
import signal

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")      # as the scripts do, before NumPy loads: small matrices, no BLAS threads
                                                       # (unset, `python -m pytest` took 395 s here against 168 s)
import pytest  # noqa: E402

from cli import runs  # noqa: E402


def pytest_configure(config):
    runs.keep_freed_memory()


# ---------------------------------------------------------------- the suite on two processes

WORKERS = "SURJVAE_TEST_WORKERS"    # 2 (the default): the test modules shared by two processes; 1: one process, as plain pytest
SHARED = ("quick_family_check",)     # this file's session fixtures: the tests that use one run in one process, which runs it once


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """pytest's run loop on two forked processes that each take the next test module when free (the machine's 2 cores:
    199 s in one process, 127 s in two, on this machine). The other process writes its test reports to a file, and they are logged here as
    they come, so that the progress, the failures' tracebacks, the summary and the exit status cover every test. One
    process (pytest's own loop) with SURJVAE_TEST_WORKERS=1, --collect-only, -x, --pdb, or fewer than two modules."""
    option, units = session.config.option, {}
    sharing = [item.nodeid.split("::")[0] for item in session.items if set(SHARED) & set(item.fixturenames)]
    for item in session.items:                                       # a unit: a module; the tests that use a SHARED fixture: one
        units.setdefault(sharing[0] if set(SHARED) & set(item.fixturenames) else item.nodeid.split("::")[0], []).append(item)
    if os.environ.get(WORKERS, "2") == "1" or option.collectonly or option.maxfail or option.usepdb or len(units) < 2 or session.testsfailed:
        return None
    path = session.config._tmp_path_factory.getbasetemp() / "second_process_reports"   # made before the fork: one folder for both
    queue, units = multiprocessing.get_context("fork").Value("i", 0), list(units.values())
    path.write_bytes(b"")
    child = os.fork()
    if child == 0:
        _run_as_worker(session, units, queue, path)
    with open(path, "rb") as reports:
        pending = []
        try:
            for item, following in _taken(units, queue):
                _run(session, item, following)
                if following is None or following.nodeid.split("::")[0] != item.nodeid.split("::")[0]:
                    _log_reports(session, reports, pending)          # between modules: each test under its module's name
        except BaseException:
            os.kill(child, signal.SIGKILL)
            raise
        finally:
            status = os.waitpid(child, 0)[1]
        _log_reports(session, reports, pending)
        if pending:                                                  # a test that never finished: what it reported
            _log_test(session.config.hook, pending)
    if status != 0:                                                  # a test ended it (os._exit, a crash): what it took after that never ran
        session.testsfailed += 1
        session.config.get_terminal_writer().line(f"\nthe second test process ended with exit code {os.waitstatus_to_exitcode(status)}, "
                                                  "before all the tests it took had run", red=True)
    return True


def _taken(units, queue):
    """(test, the next test of its unit or None) for each test of the units this process takes from the shared queue, one
    unit at a time when it is free (None at a unit's end: pytest then tears down every fixture, as at the suite's end;
    a SHARED fixture's tests are one unit)."""
    while True:
        with queue.get_lock():
            index, queue.value = queue.value, queue.value + 1
        if index >= len(units):
            return
        yield from zip(units[index], units[index][1:] + [None])


def _run(session, item, following):
    """pytest's protocol for one test (its own loop's body)."""
    item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
    if session.shouldfail or session.shouldstop:
        raise session.Interrupted(session.shouldfail or session.shouldstop)


def _run_as_worker(session, units, queue, path):
    """The forked process: capture files of its own, its terminal output discarded, each test report appended to path;
    then it exits (status 0 once every test it took has run)."""
    config, status = session.config, 1
    try:
        capture = config.pluginmanager.getplugin("capturemanager")
        capture._global_capturing = None                            # the parent's capture files stay the parent's
        capture.start_global_capturing()
        reporter = config.pluginmanager.getplugin("terminalreporter")
        reporter._tw = type(reporter._tw)(open(os.devnull, "w"))     # the parent prints (its writer's class, on /dev/null)
        with open(path, "ab") as reports:
            config.pluginmanager.register(_Forward(config, reports), "forward_reports")
            for item, following in _taken(units, queue):
                _run(session, item, following)
        status = 0
    finally:
        os._exit(status)


class _Forward:
    """In the forked process: each test report, serialised and pickled, appended to the file as (8-byte length, bytes)."""
    def __init__(self, config, reports):
        self.config, self.reports = config, reports

    def pytest_runtest_logreport(self, report):
        message = pickle.dumps(self.config.hook.pytest_report_to_serializable(config=self.config, report=report))
        self.reports.write(len(message).to_bytes(8, "little") + message)
        self.reports.flush()


def _log_reports(session, reports, pending):
    """Log each test the forked process has finished since the last call (its setup, call and teardown reports, as pytest's
    own loop logs them); the reports of a test it is still running wait in pending."""
    hook = session.config.hook
    while True:
        start, size = reports.tell(), reports.read(8)
        message = reports.read(int.from_bytes(size, "little")) if len(size) == 8 else b""
        if len(size) < 8 or len(message) < int.from_bytes(size, "little"):
            reports.seek(start)
            return
        pending.append(hook.pytest_report_from_serializable(config=session.config, data=pickle.loads(message)))
        if pending[-1].when == "teardown":
            _log_test(hook, pending)
            pending.clear()


def _log_test(hook, test_reports):
    """One test's reports logged as pytest's own loop logs them: start, each report, finish."""
    first = test_reports[0]
    hook.pytest_runtest_logstart(nodeid=first.nodeid, location=first.location)
    for report in test_reports:
        hook.pytest_runtest_logreport(report=report)
    hook.pytest_runtest_logfinish(nodeid=first.nodeid, location=first.location)


@pytest.fixture(scope="session")
def quick_family_check(tmp_path_factory):
    """run(likelihood, data) -> (exit status, stdout, JSON path) of python theorem_check.py --quick --likelihood LIKELIHOOD
    --data DATA --save-params --json PATH, each run once per session (the tests that read one run share it)."""
    import theorem_check as T
    done = {}

    def run(likelihood, data):
        if (likelihood, data) not in done:
            path, out = tmp_path_factory.mktemp(f"{likelihood}_{data}") / f"check_{likelihood}.json", io.StringIO()
            with contextlib.redirect_stdout(out):
                status = T.main(["--quick", "--likelihood", likelihood, "--data", data, "--save-params", "--json", str(path)])
            done[likelihood, data] = status, out.getvalue(), path
        return done[likelihood, data]
    return run
