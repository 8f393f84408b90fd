"""Fault injection: ``kill -9`` a run or a vmapped sweep at random moments, then
let it finish.

Each attempt is a forked child that trains (or resumes) the counting experiment
in one workdir (``--target=run``), or runs a vmapped counting sweep of 8 trials
(``--target=sweep``: 4 learning rates x 2 seeds in one program, the group
checkpointed in ``<out>/run/vmap-group-0``). The parent kills it after a random
delay, so the kills land in start-up, training, checkpoint writes, resumes and
the rewrite of ``metrics.jsonl``. A last attempt runs to the end. The result
must then equal an uninterrupted one: the same final numbers, bit for bit, and
every metrics record exactly once, with the same values. A failed attempt's
stderr is kept as ``<out>/run.failed-<n>.stderr``.

Commands (soaks, by hand)::

  python -m launch.faults --kills=200 --num_steps=6000 --out=runs/faults
  python -m launch.faults --target=sweep --kills=50 --num_steps=6000 --out=runs/faults_sweep

The parent imports the code once but never starts JAX's backend (so forking is
safe); the children do.

Results of those commands, each run beside the test suite on the same cores
(x86_64, 2 cores, jax 0.10.2 CPU, 2026-12-06):

- run: 200 kills within 0-2.4 s of an attempt's start (112 after training had gone
  on), none finished first, 0 failed attempts, final summary equal, 6,060 records,
  0 duplicated, 0 missing, every record equal to the uninterrupted run's; 300 s.
- sweep: 50 kills within 0-3.6 s of an attempt's start (31 after the group had
  trained on), none finished first, 0 failed attempts, every trial's final summary
  equal, 48,480 records (8 trials x 6,060), 0 duplicated, 0 missing, every record
  equal to the uninterrupted sweep's; 146 s.
"""
from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from typing import Optional

import numpy as np

CONFIG = "rprop"
SWEEP_CONFIG = "experiments/counting/config.py:rmsprop"  # its default sweep: 4 lr x 2 seeds
SWEEP_TRIALS = 8


def _config(num_steps: int):
  from experiments.counting import config as config_lib
  c = config_lib.get_config(CONFIG)
  c.trainer.num_epochs = None
  c.trainer.num_steps = num_steps
  c.trainer.checkpoint_every_steps, c.trainer.log_every_steps = 25, 1
  c.trainer.eval_every_steps, c.trainer.flush_every = 100, 10
  c.trainer.tensorboard = c.trainer.plot = False
  return c


def _settings(num_steps: int) -> dict:
  """``_config``'s changes as the sweep's ``--set`` overrides."""
  return {"trainer.num_steps": num_steps, "trainer.checkpoint_every_steps": 25,
          "trainer.log_every_steps": 1, "trainer.eval_every_steps": 100,
          "trainer.flush_every": 10, "trainer.tensorboard": False, "trainer.plot": False}


def _train(workdir: str, num_steps: int, target: str) -> None:
  os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
  os.dup2(os.open(workdir + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
  if target == "run":
    from experiments.counting import experiment
    experiment.run(_config(num_steps), workdir, verbose=False)
  else:  # a vmapped sweep of SWEEP_TRIALS trials (lr x seed), one program
    from launch import sweep
    s = sweep.sweep(SWEEP_CONFIG, "", workdir, backend="vmap", metric="train/cost",
                    common=_settings(num_steps))
    if any(r["status"] != "completed" for r in s["rows"]):
      os._exit(1)
  os._exit(0)


def _attempt(workdir: str, num_steps: int, kill_after_s: Optional[float],
             target: str = "run", timing: Optional[dict] = None) -> str:
  """One child; ``'killed'``, ``'finished'`` (it ended before the kill) or ``'failed'``.
  ``timing`` (an uninterrupted attempt) receives ``first_record_s``: when its first
  metrics record reached the disk."""
  child = multiprocessing.get_context("fork").Process(target=_train,
                                                      args=(workdir, num_steps, target))
  t0 = time.perf_counter()
  child.start()
  if timing is not None:
    first = os.path.join(_runs(workdir, target)[0], "metrics.jsonl")
    while child.is_alive() and not (os.path.exists(first) and os.path.getsize(first)):
      time.sleep(0.02)
    timing["first_record_s"] = time.perf_counter() - t0
  child.join(kill_after_s)
  if child.is_alive():
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    return "killed"
  if child.exitcode == 0:
    return "finished"
  n = 1
  while os.path.exists(f"{workdir}.failed-{n}.stderr"):
    n += 1
  os.replace(workdir + ".stderr", f"{workdir}.failed-{n}.stderr")  # kept to read
  return "failed"


def records(workdir: str) -> list[tuple]:
  """``metrics.jsonl`` without its timestamps, in file order."""
  from lib.runtime import writers  # no JAX: the parent stays fork-safe
  return [tuple(sorted((k, v) for k, v in r.items() if k != "time"))
          for r in writers.read_records(workdir)]


def _final(workdir: str) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    s = json.load(f)
  return {"status": s["status"], "steps": s["steps"], "extra": s["extra"]}


def _runs(top: str, target: str) -> list[str]:
  """The workdirs to compare: the run, or each trial of the sweep."""
  if target == "run":
    return [top]
  return [os.path.join(top, f"t{i:03d}") for i in range(SWEEP_TRIALS)]


def _import_once(target: str) -> None:
  """Imports the code the attempts run, once, here: importing starts no JAX backend
  and no thread (numpy's one pool thread is already here), so forking stays safe
  and each attempt's start-up is the run's own (backend, build, compile, restore)."""
  import importlib
  importlib.import_module("experiments.counting.experiment")
  if target == "sweep":
    importlib.import_module("launch.sweep")
    importlib.import_module("lib.sweeps.trial_batch")


def _progress(top: str, target: str) -> tuple:
  """What is on disk: metrics bytes and checkpoint steps (a kill after progress changed it)."""
  def ckpts(d):
    return tuple(sorted(os.listdir(d))) if os.path.isdir(d) else ()
  runs = _runs(top, target)
  return (sum(os.path.getsize(os.path.join(d, "metrics.jsonl")) for d in runs
              if os.path.exists(os.path.join(d, "metrics.jsonl"))),
          tuple(ckpts(os.path.join(d, "checkpoints")) for d in runs),
          ckpts(os.path.join(top, "vmap-group-0", "checkpoints")))


def soak(out: str, kills: int, num_steps: int = 600, max_delay_s: Optional[float] = None,
         seed: int = 0, target: str = "run", min_delay_s: float = 0.0) -> dict:
  """``kills`` random kills of one run (``target='run'``) or of a vmapped sweep
  (``'sweep'``) in ``out/run``, then a clean finish, against an uninterrupted one in
  ``out/reference``. Each kill lands uniformly in ``[min_delay_s, max_delay_s]``
  after its attempt starts (default max: twice the time the uninterrupted attempt
  took to write its first record, so about half the kills land in start-up and
  restore, half in training, checkpoint writes and the final writes;
  ``min_delay_s < 0``: that first-record time, so every kill lands after start-up);
  attempts go on until ``kills`` of them were killed (at most ``3 * kills``: later
  ones may finish first).
  Returns the comparison (``ok`` says all held)."""
  rng = np.random.default_rng(seed)
  ref, run = os.path.join(out, "reference"), os.path.join(out, "run")
  os.makedirs(out, exist_ok=True)
  _import_once(target)
  for d in (ref, run):
    shutil.rmtree(d, ignore_errors=True)
    for f in glob.glob(d + ".*stderr"):
      os.remove(f)
  timing = {}
  if _attempt(ref, num_steps, None, target, timing) != "finished":
    raise RuntimeError(f"the uninterrupted run in {ref} failed")
  hi = 2 * timing["first_record_s"] if max_delay_s is None else max_delay_s
  lo = timing["first_record_s"] if min_delay_s < 0 else min_delay_s
  outcomes, after_progress = [], 0
  while outcomes.count("killed") < kills and len(outcomes) < 3 * kills:
    before = _progress(run, target)
    outcomes.append(_attempt(run, num_steps, float(rng.uniform(lo, hi)), target))
    after_progress += outcomes[-1] == "killed" and _progress(run, target) != before
  last = _attempt(run, num_steps, None, target)
  # Each record tagged with its trial: trials may log equal values.
  want = [(i, *r) for i, d in enumerate(_runs(ref, target)) for r in records(d)]
  got = [(i, *r) for i, d in enumerate(_runs(run, target)) for r in records(d)]
  finals = [_final(a) == _final(b) for a, b in zip(_runs(ref, target), _runs(run, target))]
  result = {"kills": outcomes.count("killed"), "kills_after_progress": after_progress,
            "finished_before_kill": outcomes.count("finished"),
            "failed_attempts": outcomes.count("failed") + (last != "finished"),
            "delays_s": [round(lo, 2), round(hi, 2)], "final_equal": all(finals),
            "records": len(got), "duplicates": len(got) - len(set(got)),
            "missing": len(set(want) - set(got)), "records_equal": got == want}
  result["ok"] = (result["failed_attempts"] == 0 and result["final_equal"]
                  and result["records_equal"] and result["kills"] == kills)
  return result


def main(argv: list[str]) -> None:
  from absl import flags
  del argv
  F = flags.FLAGS
  start = time.perf_counter()
  r = soak(F.out, F.kills, F.num_steps, F.max_delay_s, F.seed, F.target, F.min_delay_s)
  r["wall_s"] = round(time.perf_counter() - start, 1)
  print(json.dumps(r, indent=2))
  sys.exit(0 if r["ok"] else 1)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("out", "runs/faults", "Folder for the reference and the killed run.")
  flags.DEFINE_integer("kills", 200, "Random kills before the clean finish.")
  flags.DEFINE_integer("num_steps", 600, "Length of the run.")
  flags.DEFINE_float("min_delay_s", 0.0, "Each kill lands uniformly in [min_delay_s, ... "
                     "(< 0: when an uninterrupted attempt wrote its first record)")
  flags.DEFINE_float("max_delay_s", None, "... max_delay_s] after the attempt starts "
                     "(default: twice an uninterrupted attempt's time to its first record).")
  flags.DEFINE_integer("seed", 0, "Seed of the kill times.")
  flags.DEFINE_enum("target", "run", ["run", "sweep"],
                    "run: one counting run; sweep: a vmapped counting sweep (8 trials).")
  app.run(main)
