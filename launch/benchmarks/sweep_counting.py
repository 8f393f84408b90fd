"""A sweep of 32 counting trials three ways: the ``vmap`` backend (one program),
32 runs one after another as a shell loop would launch them, and the ``local``
backend with 2 workers. Total wall time of each and the ratios.

The trials: the rmsprop variant (2001 full-batch epochs) at seeds 1..32
(``config.py``'s ``seeds`` sweep). Each shell-loop run is
``python -m experiments.counting.main --config=...:rmsprop --workdir=... --config.seed=N``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from launch import sweep as sweep_lib

COLUMNS = ("method", "trials", "wall_s", "speedup_vs_shell_loop", "note")
CONFIG = "experiments/counting/config.py:rmsprop"


def run(peers=(), repeats: int = 1, num_trials: int = 32, common=None) -> list[dict]:
  del peers, repeats  # one measurement of each (minutes long)
  common = dict(common or {})
  sets = [f"--config.{k}={v}" for k, v in common.items()]
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    s = sweep_lib.sweep(CONFIG, "seeds", os.path.join(tmp, "vmap"), backend="vmap",
                        metric="train/cost", common=common)
    vmap_s = time.perf_counter() - t0
    done = sum(r["status"] == "completed" for r in s["rows"])
    t0 = time.perf_counter()
    for seed in range(1, num_trials + 1):
      subprocess.run([sys.executable, "-m", "experiments.counting.main", f"--config={CONFIG}",
                      f"--workdir={tmp}/loop/{seed}", f"--config.seed={seed}", *sets],
                     cwd=sweep_lib.REPO, check=True, capture_output=True)
    loop_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sweep_lib.sweep(CONFIG, "seeds", os.path.join(tmp, "local"), backend="local", parallel=2,
                    metric="train/cost", common=common)
    local_s = time.perf_counter() - t0
  rows.append({"method": "shell loop (32 x main)", "trials": num_trials, "wall_s": round(loop_s, 1),
               "speedup_vs_shell_loop": 1.0, "note": "one process, compile and start-up each"})
  rows.append({"method": "local backend, 2 workers", "trials": num_trials,
               "wall_s": round(local_s, 1), "speedup_vs_shell_loop": round(loop_s / local_s, 2),
               "note": "subprocesses, two at a time"})
  rows.append({"method": "vmap backend", "trials": done, "wall_s": round(vmap_s, 1),
               "speedup_vs_shell_loop": round(loop_s / vmap_s, 2),
               "note": "one jitted program; per-trial metrics, summaries, checkpoints"})
  return rows
