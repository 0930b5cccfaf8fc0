"""pytest's configuration: one BLAS thread, as the scripts set for themselves (small matrices; BLAS threads and
theorem_check's worker processes would otherwise compete for the cores). Runs before the tests import NumPy."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
