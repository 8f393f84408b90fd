"""A sweep of 32 trials three ways, each launched as a command and timed whole
(start-up, compilation, training, evaluation, writing, summary):

* ``vmap``: ``python -m launch.sweep --backend=vmap`` (one jitted program);
* shell loop: the 32 trials' ``python -m experiments.<name>.main ... --config.k=v``
  commands one after another, as a shell ``for`` loop would run them;
* ``local``: ``python -m launch.sweep --backend=local --parallel=2``.

Two sweeps (``python -m launch.bench sweep_counting`` / ``sweep_addition``):
counting, the rmsprop variant (2001 full-batch epochs) at seeds 1..32; addition,
``seq2seq/config.py:quick`` (reversed LSTM, 10,000 questions, 2 epochs) at seeds
0..31 with one minibatch order. Both are the configs' ``seeds`` sweeps.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from launch import sweep as sweep_lib

COLUMNS = ("sweep", "method", "trials", "wall_s", "speedup_vs_shell_loop", "note")
SWEEPS = {
    "counting": ("experiments/counting/config.py:rmsprop", "train/cost", "min"),
    "addition": ("experiments/seq2seq/config.py:quick", "eval/exact", "max"),
}


def _timed(cmd: list[str]) -> float:
  t0 = time.perf_counter()
  r = subprocess.run(cmd, cwd=sweep_lib.REPO, capture_output=True, text=True)
  if r.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
  return time.perf_counter() - t0


def measure(name: str) -> list[dict]:
  config, metric, mode = SWEEPS[name]
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    def launch(backend: str, parallel: int = 1) -> float:
      return _timed([sys.executable, "-m", "launch.sweep", f"--config={config}", "--sweep=seeds",
                     f"--out={tmp}/{backend}", f"--backend={backend}", f"--parallel={parallel}",
                     f"--metric={metric}", f"--mode={mode}"])
    vmap_s = launch("vmap")
    vmap_done = sum(map(sweep_lib.is_done, sweep_lib.plan(config, "seeds", f"{tmp}/vmap")))
    trials = sweep_lib.plan(config, "seeds", f"{tmp}/loop")
    loop_s = sum(_timed(sweep_lib.command(config, t)) for t in trials)
    local_s = launch("local", 2)
  n = len(trials)
  rows.append({"sweep": name, "method": f"shell loop ({n} x main)", "trials": n,
               "wall_s": round(loop_s, 1), "speedup_vs_shell_loop": 1.0,
               "note": "one process each: start-up, compilation, training"})
  rows.append({"sweep": name, "method": "local backend, 2 workers", "trials": n,
               "wall_s": round(local_s, 1), "speedup_vs_shell_loop": round(loop_s / local_s, 2),
               "note": "subprocesses, two at a time"})
  rows.append({"sweep": name, "method": "vmap backend", "trials": vmap_done,
               "wall_s": round(vmap_s, 1), "speedup_vs_shell_loop": round(loop_s / vmap_s, 2),
               "note": "one jitted program; per-trial metrics, summaries, checkpoints"})
  return rows


def run_counting(peers=(), repeats: int = 1) -> list[dict]:
  del peers, repeats  # one measurement of each (minutes long)
  return measure("counting")


def run_addition(peers=(), repeats: int = 1) -> list[dict]:
  del peers, repeats
  return measure("addition")
