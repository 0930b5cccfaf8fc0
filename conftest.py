"""pytest's start: the suite runs as the scripts do, with one BLAS thread and glibc's malloc keeping freed memory for
reuse (cli/runs.py); and the quick checks that several tests read, run once per session."""
import contextlib
import io
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")      # as the scripts do, before NumPy loads: small matrices, no BLAS threads
                                                       # (unset, `python -m pytest` took 395 s here against 168 s)
import pytest  # noqa: E402

from cli import runs  # noqa: E402


def pytest_configure(config):
    runs.keep_freed_memory()


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
