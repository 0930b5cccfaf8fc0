"""pytest's start: the suite runs as the scripts do, glibc's malloc keeping freed memory for reuse (cli/runs.py)."""
from cli import runs


def pytest_configure(config):
    runs.keep_freed_memory()
