"""Many runs of one experiment trained together: one jitted ``vmap`` of the
trainer's step over a trials axis (the ``vmap`` backend of ``launch/sweep``).

Trials may differ in ``seed`` (initialisation and per-step keys) and
``optimizer.lr`` (the optax rules are linear in their learning rate, so each
trial scales the updates of one ``lr = 1`` optimizer: ``TrainState.hparams``);
everything else, data included, must be equal. Each trial's workdir gets what a
run of its own would write: ``config.json``, ``metrics.jsonl`` (+ TensorBoard),
``summary.json``, and a final checkpoint that the single-run trainer restores.
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib import checkpoint, metrics as metrics_lib, optim, sweeps, trainer, writers

VMAPPABLE = ("seed", "optimizer.lr")


def check_vmappable(base: ml_collections.ConfigDict, trials: Sequence[dict]) -> None:
  bad = sorted({k for t in trials for k in t} - set(VMAPPABLE))
  if bad:
    raise ValueError(f"The vmap backend trains trials that differ only in {VMAPPABLE}; this sweep "
                     f"also sets {bad}. Use the local or ray backend.")
  if base.optimizer.name == "rprop":
    raise ValueError("rprop's lr is its initial step size, not a scale: use the local backend.")


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _row(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def train(build_task: Callable[[ml_collections.ConfigDict], trainer.Task],
          base: ml_collections.ConfigDict, trials: Sequence[dict], workdirs: Sequence[str]
          ) -> list[dict]:
  """Trains every trial in one program; returns each trial's summary."""
  check_vmappable(base, trials)
  configs = [sweeps.apply(base, t) for t in trials]
  t0 = time.perf_counter()
  task = build_task(configs[0])  # the data and model do not depend on seed or lr
  one = ml_collections.ConfigDict(base.to_dict())
  one.optimizer.lr = 1.0
  n_steps = base.trainer.num_steps
  tx, schedule = optim.make_optimizer(one.optimizer, n_steps)
  states, step_keys = [], []
  for c in configs:
    init_key, step_key = jax.random.split(jax.random.key(c.seed))  # trainer.init_state's keys
    params = task.init_params(init_key)
    states.append(trainer.TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                                     opt_state=tx.init(params),
                                     hparams={"lr": jnp.float32(c.optimizer.lr)}))
    step_keys.append(step_key)
  state, keys = _stack(states), jnp.stack(step_keys)
  step = trainer.make_train_step(task.loss_fn, tx, schedule)
  vstep = jax.jit(jax.vmap(lambda s, b, k: step(s, b, jax.random.fold_in(k, s.step)),
                           in_axes=(0, None, 0)), donate_argnums=0)
  tc = base.trainer
  outs = [writers.MetricWriter(w, 0, tc.tensorboard) for w in workdirs]
  for c, w in zip(configs, workdirs):
    trainer.save_config(c, w)
  window, pending, last_train = None, [], [{} for _ in trials]
  last_eval = [{} for _ in trials]
  for s in range(n_steps):
    state, m = vstep(state, task.train_batch(s), keys)
    window = m if window is None else metrics_lib.merge(window, m)
    if (s + 1) % tc.log_every == 0 or s + 1 == n_steps:
      pending.append((s + 1, window))
      window = None
    if len(pending) >= tc.flush_every or s + 1 == n_steps:
      last_train = _flush(pending, outs, len(trials))
      pending = []
    if task.eval_fn is not None and tc.eval_every and (s + 1) % tc.eval_every == 0:
      last_eval = _evaluate(task, state, outs, s + 1)
  if task.eval_fn is not None and (not tc.eval_every or n_steps % tc.eval_every):
    last_eval = _evaluate(task, state, outs, n_steps)
  wall = time.perf_counter() - t0
  return [_finish(task, c, w, out, _row(state, i).replace(hparams=None), last_train[i],
                  last_eval[i], wall)
          for i, (c, w, out) in enumerate(zip(configs, workdirs, outs))]


def _flush(pending, outs, n) -> list[dict]:
  fetched = jax.device_get(pending)
  last = [{} for _ in range(n)]
  for step, m in fetched:
    # Every trial's values at once: (total / count) per metric, then one row each.
    cols = {k: (np.asarray(v.total, np.float64) / np.asarray(v.count, np.float64)
                if isinstance(v, metrics_lib.Average) else np.asarray(v, np.float64))
            for k, v in m.items()}
    for i in range(n):
      values = {k: float(c[i]) for k, c in cols.items()}
      outs[i].write(step, "train", values)
      last[i] = values
  for o in outs:
    o.flush()
  return last


def _evaluate(task, state, outs, step) -> list[dict]:
  # Evaluators may be host code (numpy); one call per trial, at evaluation time only.
  res = []
  for i, o in enumerate(outs):
    values = metrics_lib.to_floats(task.eval_fn(_row(state.params, i)))
    o.write(step, "eval", values)
    o.flush()
    res.append(values)
  return res


def _finish(task, config, workdir, out, state, last_train, last_eval, wall) -> dict:
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), 0, 1)
  ckpt.save(int(state.step), state)
  ckpt.close()
  out.close()
  summary = {
      "experiment": task.name, "status": "completed", "error": None, "steps": int(state.step),
      "resumed_from": 0, "wall_time_s": round(wall, 3), "vmapped": True,
      "final": {**{f"train/{k}": v for k, v in last_train.items()},
                **{f"eval/{k}": v for k, v in last_eval.items()}},
      "extra": ({k: float(v) for k, v in task.summary_fn(state.params).items()}
                if task.summary_fn else {}),
      "checkpoint_step": int(state.step), "config": config.to_dict(),
  }
  with open(os.path.join(workdir, trainer.SUMMARY_FILE), "w") as f:
    json.dump(summary, f, indent=2, default=str)
  return summary
