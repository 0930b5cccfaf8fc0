"""Theorem 1 on your own paired data, from Python (README, "Your own data"). Runs from anywhere: python docs/own_data_example.py"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))     # the repository's modules
import numpy as np  # noqa: E402
import surjvae_np as S  # noqa: E402
import theorem_check as T  # noqa: E402

x1, labels = S.make_pinwheel(num_per_class=100, rng=np.random.default_rng(0))          # yours: x1 (N, D) numbers, labels (N,)
results = T.check_arrays(x1, labels, models=("mvae", "mmvae"), quick=True, jobs=1)     # options: the script's flags by name
for check in results["checks"]:
    print({True: "PASS", False: "FAIL", None: "SKIP"}[check["passed"]], check["name"])
for row in (r for r in results["rows"] if r["decoder"] == "trained"):
    print(f"{row['model']:5s} class {row['class']}: spread ratio {row['spread_ratio']:.3f}, coherence {row['coherence']:.3f}")
