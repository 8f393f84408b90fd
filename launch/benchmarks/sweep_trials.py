"""32-trial sweeps three ways, each launched as a command and timed whole
(start-up, compilation, training, evaluation, writing, summary):

* ``vmap``: ``python -m launch.sweep --backend=vmap`` (one jitted program);
* shell loop: the trials' ``python -m experiments.<name>.main ... --config.k=v``
  commands one after another, as a shell ``for`` loop would run them;
* ``local``: ``python -m launch.sweep --backend=local --parallel=2``.

``python -m launch.bench sweep_<name>`` for each registered experiment's quick config
(``SWEEPS``: one per experiment of ``launch/registry.py``, tested), over the learning
rate (8 values) and one more tunable key (4 values). For
the slower experiments the shell loop and the local backend run the 8 trials at
the second key's first value and are scaled by 4 (the runs differ only in two
numbers; the row says so). ``sweep_halving``
times one sweep with successive halving (``--halving``) against the same
sweep without it and compares their best trials.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from launch import sweep as sweep_lib

COLUMNS = ("sweep", "method", "trials", "wall_s", "speedup_vs_shell_loop", "best", "note")
LRS8 = lambda lo, hi: ",".join(f"{v:.3g}" for v in np.geomspace(lo, hi, 8))  # noqa: E731
# name -> (config, --set items, --grid items, metric, mode, sampled): sampled, the shell
# loop and the local backend time the 8 trials at the second key's first value, x4.
SWEEPS = {
    "counting": ("experiments/counting/config.py:rmsprop", [],
                 [f"optimizer.lr={LRS8(1e-3, 1e-1)}", "optimizer.rmsprop.decay=0.8,0.9,0.95,0.99"],
                 "train/cost", "min", False),
    "addition": ("experiments/seq2seq/config.py:quick", ["data.shuffle_seed=0"],
                 [f"optimizer.lr={LRS8(3e-4, 1e-2)}", "optimizer.adam.b1=0.8,0.9,0.95,0.99"],
                 "eval/loss", "min", True),
    "rnnlm": ("experiments/rnnlm/config.py:notes", ["trainer.num_epochs=5"],
              [f"optimizer.lr={LRS8(1e-3, 3e-2)}", "model.dropout=0,0.1,0.25,0.5"],
              "eval/ppl", "min", True),
    "translation": ("experiments/translation/config.py:lstm", ["trainer.num_epochs=3"],
                    [f"optimizer.lr={LRS8(3e-4, 1e-2)}", "optimizer.rmsprop.decay=0.8,0.9,0.95,0.99"],
                    "eval/loss", "min", True),
    "varrnn": ("experiments/varrnn/config.py:notes", ["trainer.num_epochs=10"],
               [f"optimizer.lr={LRS8(1e-3, 1e-1)}", "vi.kl_weight=0.01,0.1,0.3,1"],
               "eval/f1_bal", "max", True),
    "word2vec": ("experiments/word2vec/config.py:embedded", [],
                 [f"optimizer.lr={LRS8(0.005, 0.1)}", "model.negatives=2,5,10,15"],
                 "train/loss", "min", True),
    "long_range": ("experiments/long_range/config.py:adding_100", ["trainer.num_steps=300"],
                   [f"optimizer.lr={LRS8(1e-3, 3e-2)}", "optimizer.adam.b1=0.8,0.9,0.95,0.99"],
                   "eval/mse", "min", True),
}
# Halving: the addition sweep run to 4 epochs; rungs at half an epoch and one epoch, a
# quarter of the trials kept at each (32 -> 8 -> 2).
HALVING = ("addition", ["--set=trainer.num_epochs=4"],
           ["--halving=0.5,1", "--halving_unit=epochs", "--halving_keep=0.25"])


def _timed(cmd: list[str]) -> float:
  t0 = time.perf_counter()
  r = subprocess.run(cmd, cwd=sweep_lib.REPO, capture_output=True, text=True)
  if r.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
  return time.perf_counter() - t0


def _sweep_cmd(name: str, out: str, *extra: str) -> list[str]:
  config, sets, grid, metric, mode, _ = SWEEPS[name]
  sets = [*sets, *(e.partition("=")[2] for e in extra if e.startswith("--set="))]
  extra = [e for e in extra if not e.startswith("--set=")]
  return [sys.executable, "-m", "launch.sweep", f"--config={config}", f"--out={out}",
          f"--metric={metric}", f"--mode={mode}", *([f"--set={','.join(sets)}"] if sets else []),
          *[f"--grid={g}" for g in grid], *extra]  # one --set: absl keeps a list flag's last


def _best(out: str, name: str) -> tuple[str, float]:
  """The best completed trial of a sweep folder by the sweep's metric: ``(trial, value)``."""
  _, _, _, metric, mode, _ = SWEEPS[name]
  done = []
  for d in sorted(os.listdir(out)):
    path = os.path.join(out, d, "summary.json")
    if d.startswith("t") and os.path.exists(path):
      with open(path) as f:
        s = json.load(f)
      if s["status"] == "completed" and metric in s["final"]:
        done.append((d, s["final"][metric]))
  return (min if mode == "min" else max)(done, key=lambda x: x[1])


def measure(name: str) -> list[dict]:
  config, sets, grid, metric, mode, sampled = SWEEPS[name]
  with tempfile.TemporaryDirectory() as tmp:
    vmap_s = _timed(_sweep_cmd(name, f"{tmp}/vmap", "--backend=vmap"))
    best = _best(f"{tmp}/vmap", name)
    auto_s = _timed(_sweep_cmd(name, f"{tmp}/auto", "--backend=vmap", "--trials_per_block=auto"))
    best_auto = _best(f"{tmp}/auto", name)
    trials = sweep_lib.plan(config, "", f"{tmp}/loop", sweep_lib.parse_sets(sets), grid)
    n, local = len(trials), _sweep_cmd(name, f"{tmp}/local", "--backend=local", "--parallel=2")
    if sampled:  # the 8 trials at the second key's first value: every learning rate
      key, values = sweep_lib.parse_grid(grid[1:])[0]
      trials = [t for t in trials if t.overrides[key] == values[0]]
      local = [a for a in _sweep_cmd(name, f"{tmp}/local", "--backend=local", "--parallel=2",
                                     f"--set={key}={values[0]}")
               if not a.startswith(f"--grid={key}=")]
    scale = n / len(trials)
    loop_s = sum(_timed(sweep_lib.command(config, t)) for t in trials) * scale
    local_s = _timed(local) * scale
  note = f"{len(trials)} of {n} runs timed (every lr), x{scale:g}" if sampled else ""
  return [
      {"sweep": name, "method": f"shell loop ({n} x main)", "trials": n,
       "wall_s": round(loop_s, 1), "speedup_vs_shell_loop": 1.0, "best": "",
       "note": note or "one process each: start-up, compilation, training"},
      {"sweep": name, "method": "local backend, 2 workers", "trials": n,
       "wall_s": round(local_s, 1), "speedup_vs_shell_loop": round(loop_s / local_s, 2),
       "best": "", "note": note or "subprocesses, two at a time"},
      {"sweep": name, "method": "vmap backend", "trials": n, "wall_s": round(vmap_s, 1),
       "speedup_vs_shell_loop": round(loop_s / vmap_s, 2),
       "best": f"{best[0]} {metric}={best[1]:.4g}",
       "note": "one jitted program; per-trial metrics, summaries, checkpoints"},
      {"sweep": name, "method": "vmap backend, --trials_per_block=auto", "trials": n,
       "wall_s": round(auto_s, 1), "speedup_vs_shell_loop": round(loop_s / auto_s, 2),
       "best": f"{best_auto[0]} {metric}={best_auto[1]:.4g}",
       "note": "one vmap or the trials one by one, whichever a timed step finds faster"}]


def measure_halving() -> list[dict]:
  name, common, flags = HALVING
  _, _, _, metric, _, _ = SWEEPS[name]
  with tempfile.TemporaryDirectory() as tmp:
    full_s = _timed(_sweep_cmd(name, f"{tmp}/full", "--backend=vmap", *common))
    full = _best(f"{tmp}/full", name)
    half_s = _timed(_sweep_cmd(name, f"{tmp}/halving", "--backend=vmap", *common, *flags))
    half = _best(f"{tmp}/halving", name)
  gap = abs(half[1] - full[1]) / abs(full[1])
  name = f"{name} ({' '.join(common)})"
  return [{"sweep": name, "method": "vmap, every trial to the end", "trials": 32,
           "wall_s": round(full_s, 1), "speedup_vs_shell_loop": "", "best":
           f"{full[0]} {metric}={full[1]:.4g}", "note": ""},
          {"sweep": name, "method": "vmap, " + " ".join(flags), "trials": 32,
           "wall_s": round(half_s, 1), "speedup_vs_shell_loop": "",
           "best": f"{half[0]} {metric}={half[1]:.4g}",
           "note": f"{half_s / full_s:.0%} of the wall time; best within {gap:.2%}"}]


def _runner(name):
  def run(peers=(), repeats: int = 1) -> list[dict]:
    del peers, repeats  # one measurement of each (minutes long)
    return measure(name)
  return run


def experiment_of(name: str) -> str:
  """The registered experiment a sweep of :data:`SWEEPS` runs (its config's folder)."""
  return SWEEPS[name][0].split("/")[1]


# One benchmark per sweep: `python -m launch.bench sweep_<name>` calls run_<name>.
globals().update({f"run_{n}": _runner(n) for n in SWEEPS})


def run_halving(peers=(), repeats: int = 1) -> list[dict]:
  del peers, repeats
  return measure_halving()
