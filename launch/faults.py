"""Fault injection: ``kill -9`` a run at random moments, then let it finish.

Each attempt is a forked child that trains (or resumes) the counting experiment
in one workdir; the parent kills it after a random delay, so the kills land in
start-up, training, checkpoint writes, resumes and the rewrite of
``metrics.jsonl``. A last attempt runs to the end. The run must then equal an
uninterrupted one: the same final weights, bit for bit, and every metrics record
exactly once, with the same values.

Command (a soak, by hand)::

  python -m launch.faults --kills=200 --out=runs/faults

The parent never starts JAX's backend (so forking is safe); the children do.

Result of that command (x86_64, 2 cores, jax 0.10.2 CPU, 2026-12-02): 200 kills
(none finished first), 0 failed attempts, final summary equal, 606 records, 0
duplicated, 0 missing, every record equal to the uninterrupted run's; 348 s.
"""
from __future__ import annotations

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


def _config(num_steps: int):
  from experiments.counting import config as config_lib
  c = config_lib.get_config(CONFIG)
  c.trainer.num_epochs = None
  c.trainer.num_steps = num_steps
  c.trainer.checkpoint_every_steps, c.trainer.log_every_steps = 25, 1
  c.trainer.eval_every_steps, c.trainer.flush_every = 100, 10
  c.trainer.tensorboard = c.trainer.plot = False
  return c


def _train(workdir: str, num_steps: int) -> None:
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 1)
  os.dup2(devnull, 2)
  from experiments.counting import experiment
  experiment.run(_config(num_steps), workdir, verbose=False)
  os._exit(0)


def _attempt(workdir: str, num_steps: int, kill_after_s: Optional[float]) -> str:
  """One child; ``'killed'``, ``'finished'`` (it ended before the kill) or ``'failed'``."""
  child = multiprocessing.get_context("fork").Process(target=_train, args=(workdir, num_steps))
  child.start()
  child.join(kill_after_s)
  if child.is_alive():
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    return "killed"
  return "finished" if child.exitcode == 0 else "failed"


def records(workdir: str) -> list[tuple]:
  """``metrics.jsonl`` without its timestamps, in file order."""
  from lib.runtime import writers  # no JAX: the parent stays fork-safe
  return [tuple(sorted((k, v) for k, v in r.items() if k != "time"))
          for r in writers.read_records(workdir)]


def _final(workdir: str) -> dict:
  with open(os.path.join(workdir, "summary.json")) as f:
    s = json.load(f)
  return {"status": s["status"], "steps": s["steps"], "extra": s["extra"]}


def soak(out: str, kills: int, num_steps: int = 600, max_delay_s: float = 3.0,
         seed: int = 0) -> dict:
  """``kills`` random kills of one run in ``out/run``, then a clean finish, against an
  uninterrupted run in ``out/reference``. Returns the comparison (``ok`` says all held)."""
  rng = np.random.default_rng(seed)
  ref, run = os.path.join(out, "reference"), os.path.join(out, "run")
  for d in (ref, run):
    shutil.rmtree(d, ignore_errors=True)
  if _attempt(ref, num_steps, None) != "finished":
    raise RuntimeError(f"the uninterrupted run in {ref} failed")
  outcomes = [_attempt(run, num_steps, float(rng.uniform(0.0, max_delay_s)))
              for _ in range(kills)]
  last = _attempt(run, num_steps, None)
  want, got = records(ref), records(run)
  result = {"kills": outcomes.count("killed"), "finished_before_kill": outcomes.count("finished"),
            "failed_attempts": outcomes.count("failed") + (last != "finished"),
            "final_equal": _final(ref) == _final(run), "records": len(got),
            "duplicates": len(got) - len(set(got)), "missing": len(set(want) - set(got)),
            "records_equal": got == want}
  result["ok"] = (result["failed_attempts"] == 0 and result["final_equal"]
                  and result["records_equal"])
  return result


def main(argv: list[str]) -> None:
  from absl import flags
  del argv
  F = flags.FLAGS
  start = time.perf_counter()
  r = soak(F.out, F.kills, F.num_steps, F.max_delay_s, F.seed)
  r["wall_s"] = round(time.perf_counter() - start, 1)
  print(json.dumps(r, indent=2))
  sys.exit(0 if r["ok"] else 1)


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("out", "runs/faults", "Folder for the reference and the killed run.")
  flags.DEFINE_integer("kills", 200, "Random kills before the clean finish.")
  flags.DEFINE_integer("num_steps", 600, "Length of the run.")
  flags.DEFINE_float("max_delay_s", 3.0, "Each kill lands uniformly in [0, this] s after start.")
  flags.DEFINE_integer("seed", 0, "Seed of the kill times.")
  app.run(main)
