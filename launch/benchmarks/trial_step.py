"""What one trial's training step costs alone and inside a vmapped program of 32.

  python -m launch.bench trial_step [--repeats=5]

For each experiment's sweep config (``launch.benchmarks.sweep_trials.SWEEPS``, its
first batch), the jitted step of one trial against the jitted ``vmap`` of the step
over 32 trials (as ``lib.sweeps.trial_batch`` runs it, with per-trial learning
rates), and against the same 32 stepped one after another inside one program
(``lax.map``: ``--trials_per_block=1``), in milliseconds per trial-step, timed in
alternation. Where no form beats the single step per trial, a trial's compute
already fills the machine and a vmapped sweep can only save what a run spends
outside its steps (start-up, compilation, evaluation, writing): that bounds the
sweep's speed-up over a shell loop.
"""
from __future__ import annotations

import importlib

import jax

from launch import sweep as sweep_lib
from launch.benchtools import time_pair_ms
from launch.benchmarks import sweep_trials
from lib.sweeps import space, trial_batch
from lib.train import optim
from lib.train.step import task_step

COLUMNS = ("experiment", "config", "single_ms", "vmap32_ms_per_trial", "ratio",
           "one_by_one_ms_per_trial", "ratio_one_by_one")
TRIALS = 32


def _built(config_path: str, sets: list[str]):
  path, _, variant = config_path.partition(":")
  name = path.split("/")[1]
  cfg = importlib.import_module(f"experiments.{name}.config").get_config(variant or None)
  cfg = space.apply(cfg, sweep_lib.parse_sets(sets))
  experiment = importlib.import_module(f"experiments.{name}.experiment")
  return experiment.build, cfg


def _steps(name: str):
  config_path, sets, grid, *_ = sweep_trials.SWEEPS[name]
  build, base = _built(config_path, sets)
  lrs = [float(v) for v in grid[0].split("=", 1)[1].split(",")]
  trials = [{"optimizer.lr": lrs[i % len(lrs)], "seed": 1 + i} for i in range(TRIALS)]
  built = build(space.apply(base, trials[0]))
  configs = [space.apply(built.config, t) for t in trials]
  tx, schedule = optim.make_optimizer(built.config.optimizer, built.config.trainer.num_steps)
  step = task_step(built.task, tx, schedule, optim.scales_gradients(built.config.optimizer))
  state, keys, hp = trial_batch._initial_state(build, built, base, trials, configs)
  batch = jax.device_put(built.task.train_batch(0))
  one_hp = jax.tree.map(lambda x: x[0], hp)
  one = jax.jit(lambda s, b, k: step(s, b, jax.random.fold_in(k, s.step), one_hp))
  each = lambda s, b, k, h: step(s, b, jax.random.fold_in(k, s.step), h)  # noqa: E731
  many = jax.jit(jax.vmap(each, in_axes=(0, None, 0, 0)))
  # trial_batch's trials_per_block=1: the trials one after another inside one program.
  serial = jax.jit(lambda s, b, k, h: jax.lax.map(lambda a: each(a[0], b, a[1], a[2]),
                                                  (s, k, h)))
  first = jax.tree.map(lambda x: x[0], state)
  return (lambda: one(first, batch, keys[0])[1], lambda: many(state, batch, keys, hp)[1],
          lambda: serial(state, batch, keys, hp)[1])


def run(peers=(), repeats: int = 5) -> list[dict]:
  rows = []
  for name in ("addition", "rnnlm", "translation", "varrnn", "word2vec"):
    run_one, run_many, run_serial = _steps(name)
    sync = jax.block_until_ready
    single, vmapped = time_pair_ms(run_one, run_many, number=10, repeats=repeats,
                                   sync_a=sync, sync_b=sync, number_b=2)
    _, serial = time_pair_ms(run_one, run_serial, number=10, repeats=repeats,
                             sync_a=sync, sync_b=sync, number_b=2)
    per_trial, per_serial = vmapped / TRIALS, serial / TRIALS
    rows.append({"experiment": name, "config": sweep_trials.SWEEPS[name][0],
                 "single_ms": round(single, 3), "vmap32_ms_per_trial": round(per_trial, 3),
                 "ratio": round(single / per_trial, 2),
                 "one_by_one_ms_per_trial": round(per_serial, 3),
                 "ratio_one_by_one": round(single / per_serial, 2)})
    print(rows[-1], flush=True)
  return rows
