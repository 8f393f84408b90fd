"""Many runs of one experiment trained together: one jitted ``vmap`` of the
trainer's step over a trials axis (the ``vmap`` backend of ``launch/sweep``).

Trials may differ in ``seed`` (initialisation and per-step keys) and
``optimizer.lr`` (the optax rules are linear in their learning rate, so each
trial scales the updates of one ``lr = 1`` optimizer: ``TrainState.hparams``);
everything else, data included, must be equal. Each trial's workdir gets what a
run of its own would write: ``config.json``, ``metrics.jsonl`` (+ TensorBoard),
``summary.json``, and a final checkpoint that the single-run trainer restores.

Small models leave the device idle between steps, so the loop dispatches a
``lax.scan`` over up to ``max_chunk`` steps at a time (their batches stacked on
the host) and turns the per-step metrics into log records on the host. A trial
that produces NaN/Inf stops being written at that record and ends ``diverged``,
as it would alone; the others go on. Given a group folder, the stacked state is
checkpointed as a single run's would be, and a killed group resumes (:class:`Group`).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib.runtime import files, writers
from lib.sweeps import space as sweeps
from lib.train import checkpoint, metrics as metrics_lib, optim, task as task_lib
from lib.train.task import Built
from lib.train.state import TrainState
from lib.train.step import make_train_step
from lib.train.summary import make_summary, save_config, write_summary

VMAPPABLE = ("seed", "optimizer.lr")
GROUP_FILE = "group.json"


def check_vmappable(base: ml_collections.ConfigDict, trials: Sequence[dict]) -> None:
  """Keys that vary between trials must be in ``VMAPPABLE``; keys every trial sets to
  one value are plain overrides."""
  keys = {k for t in trials for k in t}
  varying = {k for k in keys if len({repr(t.get(k, "<unset>")) for t in trials}) > 1}
  bad = sorted(varying - set(VMAPPABLE))
  if bad:
    raise ValueError(f"The vmap backend trains trials that differ only in {VMAPPABLE}; this sweep "
                     f"also varies {bad}. Use the local or ray backend.")
  if sweeps.apply(base, trials[0]).optimizer.name == "rprop":
    raise ValueError("rprop's lr is its initial step size, not a scale: use the local backend.")


def _check_same_batches(build, task, configs) -> None:
  """Trials share one batch stream: refuse when the batches follow the seed."""
  other = next((c for c in configs if c.seed != configs[0].seed), None)
  if other is None:
    return
  task2 = build(other).task
  for step in (0, 1):
    a, b = jax.tree.leaves(task.train_batch(step)), jax.tree.leaves(task2.train_batch(step))
    if len(a) != len(b) or not all(np.array_equal(np.asarray(x), np.asarray(y))
                                   for x, y in zip(a, b)):
      raise ValueError(f"{task.name}: the training batches depend on the seed, so trials with "
                       "different seeds cannot share them; fix the data order in the config "
                       "(e.g. a data seed) or use the local backend.")


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def chunk_ends(num_steps: int, log_every: int, flush_every: int, eval_every: int,
               max_chunk: int, extra: Sequence[int] = ()) -> list[int]:
  """Where each dispatched chunk of steps ends: at every evaluation, every
  ``log_every * flush_every`` steps (capped at ``max_chunk``), at ``extra`` (the
  checkpoints) and at the end."""
  ends = {num_steps, *extra}
  if eval_every:
    ends.update(range(eval_every, num_steps, eval_every))
  period = max(1, min(max_chunk, log_every * flush_every))
  ends.update(range(period, num_steps, period))
  return sorted(ends)


class Records:
  """Per-step metrics of every trial -> log records (window means), as the single-run
  trainer writes them: a record every ``log_every`` steps and at ``num_steps``."""

  def __init__(self, log_every: int, num_steps: int):
    self.log_every, self.num_steps = log_every, num_steps
    self._partial = None  # (total, count) of the open window: (trials, metrics) each

  def add(self, first_step: int, metrics: dict) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``metrics``: name -> ``Average`` of (K, trials) arrays for steps ``first_step + 1 ..``.
    Returns ``(steps_R, names, values_RxNxM)`` of the records that close here."""
    names = list(metrics)
    total = np.stack([np.asarray(metrics[k].total, np.float64) for k in names], -1)
    count = np.stack([np.asarray(metrics[k].count, np.float64) for k in names], -1)
    steps = first_step + 1 + np.arange(total.shape[0])
    ct, cc = np.cumsum(total, 0), np.cumsum(count, 0)
    if self._partial is not None:
      ct, cc = ct + self._partial[0], cc + self._partial[1]
    ends = np.nonzero((steps % self.log_every == 0) | (steps == self.num_steps))[0]
    if ends.size:
      t, c = ct[ends], cc[ends]
      t[1:] -= ct[ends[:-1]]
      c[1:] -= cc[ends[:-1]]
      self._partial = (ct[-1] - ct[ends[-1]], cc[-1] - cc[ends[-1]])
      return steps[ends], names, t / c
    self._partial = (ct[-1], cc[-1])
    return steps[:0], names, np.zeros((0, *total.shape[1:]))


def train(build: Callable[[ml_collections.ConfigDict], Built],
          base: ml_collections.ConfigDict, trials: Sequence[dict], workdirs: Sequence[str],
          max_chunk: int = 200, group_dir: Optional[str] = None) -> list[dict]:
  """Trains every trial in one program; returns each trial's summary.

  ``build`` is the experiment's ``build(config) -> Built``; it runs once for the
  data and model (they do not depend on seed or lr), and each trial's config is
  the resolved base config with the trial's overrides. With ``group_dir``, the
  stacked state of all trials is checkpointed there every
  ``trainer.checkpoint_every_steps`` (:class:`Group`), and a rerun of the same
  trials resumes from it; the folder is removed once every summary is written."""
  check_vmappable(base, trials)
  t0 = time.perf_counter()
  built = build(sweeps.apply(base, trials[0]))
  task = built.task
  if task.make_step is not None or task.init_carry is not None:
    raise ValueError(f"{task.name}: the vmap backend trains the default optax step without "
                     "a carried state; use the local backend.")
  configs = [sweeps.apply(built.config, t) for t in trials]
  _check_same_batches(build, task, [sweeps.apply(base, t) for t in trials])
  one = ml_collections.ConfigDict(configs[0].to_dict())
  one.optimizer.lr = 1.0
  tc, n_steps = one.trainer, one.trainer.num_steps
  tx, schedule = optim.make_optimizer(one.optimizer, n_steps)
  state, keys = _initial_state(task, tx, configs)
  group = Group(group_dir, configs, workdirs, tc) if group_dir else None
  try:
    state, start = group.restore(state) if group else (state, 0)
    loop = _Loop(task, tc, workdirs, start, group)
    for c, w in zip(configs, workdirs):
      save_config(c, w)
    state = loop.run(_chunk_fn(make_train_step(task.loss_fn, tx, schedule)), state, keys,
                     start, max_chunk)
    summaries = _finish(task, configs, workdirs, loop, jax.device_get(state),
                        time.perf_counter() - t0)
  finally:
    if group:
      group.close()
  if group:
    group.remove()
  return summaries


def _initial_state(task, tx, configs) -> tuple[TrainState, jax.Array]:
  """Every trial's fresh state and step key (``init_state``'s), stacked."""
  states, step_keys = [], []
  for c in configs:
    init_key, step_key = jax.random.split(jax.random.key(c.seed))  # init_state's keys
    params = task.init_params(init_key)
    states.append(TrainState(step=jnp.asarray(0, jnp.int32), params=params,
                             opt_state=tx.init(params),
                             hparams={"lr": jnp.float32(c.optimizer.lr)}))
    step_keys.append(step_key)
  return _stack(states), jnp.stack(step_keys)


class Group:
  """The stacked state of one vmapped group of trials, checkpointed in one folder
  (``group.json`` says which trials and configs it holds; a different group
  there is replaced). Saved at the first chunk end at or after each multiple of
  ``checkpoint_every_steps`` where every log window is closed, so a resumed group
  writes the records an uninterrupted one writes."""

  def __init__(self, directory: str, configs, workdirs: Sequence[str], tc):
    self.directory = directory
    os.makedirs(directory, exist_ok=True)
    self.lock = files.WorkdirLock(directory)
    self.lock.acquire()
    identity = json.loads(json.dumps(
        {"workdirs": [os.path.abspath(w) for w in workdirs],
         "configs": [c.to_dict() for c in configs]}, default=str))
    path = os.path.join(directory, GROUP_FILE)
    ckpt_dir = os.path.join(directory, "checkpoints")
    if files.read_json(path) != identity:
      shutil.rmtree(ckpt_dir, ignore_errors=True)
      files.atomic_write_json(path, identity)
    self.ckpt = checkpoint.Checkpointer(ckpt_dir, tc.checkpoint_every_steps, tc.max_checkpoints)
    every, log, n = tc.checkpoint_every_steps, tc.log_every_steps, tc.num_steps
    self.save_steps = {min(n, -(-s // log) * log) for s in range(every, n, every)} if every else set()

  def restore(self, state: TrainState) -> tuple[TrainState, int]:
    if self.ckpt.latest_step() is None:
      return state, 0
    state = self.ckpt.restore(state)
    return state, int(np.asarray(state.step)[0])

  def maybe_save(self, end: int, state: TrainState) -> None:
    if end in self.save_steps:
      self.ckpt.save(end, state)

  def close(self) -> None:
    try:
      self.ckpt.close()
    finally:
      self.lock.release()

  def remove(self) -> None:
    shutil.rmtree(self.directory, ignore_errors=True)


def group_workdirs(directory: str) -> list[str]:
  """The trials of the unfinished group in ``directory`` (none: ``[]``)."""
  return (files.read_json(os.path.join(directory, GROUP_FILE)) or {}).get("workdirs", [])


class _Loop:
  """The chunked loop's writers and per-trial records (recovered from
  ``metrics.jsonl`` when the group resumes at ``start``)."""

  def __init__(self, task, tc, workdirs: Sequence[str], start: int, group: Optional[Group]):
    self.task, self.tc, self.group, self.start = task, tc, group, start
    self.outs = [writers.MetricWriter(w, start, tc.tensorboard) for w in workdirs]
    n = len(workdirs)
    self.diverged: list[Optional[str]] = [None] * n
    self.last_train, self.last_eval = [{} for _ in range(n)], [{} for _ in range(n)]
    if start:
      for i, w in enumerate(workdirs):
        self.diverged[i], self.last_train[i], self.last_eval[i] = _recovered(w)
    self.records = Records(tc.log_every_steps, tc.num_steps)
    self.evaluate = _Evaluator((lambda p: task_lib.evaluate(task.evaluators, p))
                               if task.evaluators else None)

  def run(self, run_chunk, state, keys, start: int, max_chunk: int) -> TrainState:
    tc, task, n_steps = self.tc, self.task, self.tc.num_steps
    eval_every = tc.eval_every_steps if task.evaluators else 0
    extra = self.group.save_steps if self.group else ()
    ends = [e for e in chunk_ends(n_steps, tc.log_every_steps, tc.flush_every, eval_every,
                                  max_chunk, extra) if e > start]
    k = max([b - a for a, b in zip([0] + ends, ends)] or [1])
    for end in ends:
      state, m = run_chunk(state, _stack_batches(task, start, end, k), keys,
                           jnp.int32(end - start))
      m = jax.tree.map(lambda x: x[:end - start], jax.device_get(m))
      evals = (self.evaluate(state.params, len(self.outs)) if task.evaluators and (
          end == n_steps or (eval_every and end % eval_every == 0)) else None)
      with files.signals_held():  # a chunk's records and its checkpoint: whole or absent
        self._write(start, end, m, evals)
        if self.group:
          self.group.maybe_save(end, state)
      start = end
    return state

  def _write(self, start: int, end: int, m: dict, evals: Optional[list[dict]]) -> None:
    steps, names, values = self.records.add(start, m)
    _write_train(self.outs, steps, names, values, self.diverged, self.last_train)
    for i, v in enumerate(evals or ()):
      if self.diverged[i] is None:
        self.outs[i].write(end, "eval", v)
        self.outs[i].flush()
        self.last_eval[i] = v


def _recovered(workdir: str) -> tuple[Optional[str], dict, dict]:
  """``(diverged, last_train, last_eval)`` of a trial from its kept records."""
  diverged, last = None, {"train": {}, "eval": {}}
  for r in writers.read_records(workdir):
    vals = {k: v for k, v in r.items() if k not in ("step", "split", "time")}
    last[r["split"]] = vals
    bad = {k: v for k, v in vals.items() if not np.isfinite(v)}
    if r["split"] == "train" and bad and diverged is None:
      diverged = f"Non-finite training metrics at step {int(r['step'])}: {bad}."
  return diverged, last["train"], last["eval"]


def _chunk_fn(step):
  """``(state, batches_K, keys, n) -> (state, metrics_K)``: the first ``n`` of K steps of
  every trial in one dispatch. Shorter chunks (the tail, an evaluation in between) pad
  their batches and skip the padding under ``lax.cond``, so one compilation serves all."""
  def one(state, batch, key):
    return step(state, batch, jax.random.fold_in(key, state.step))  # as trainer._Run does
  every_trial = jax.vmap(one, in_axes=(0, None, 0))

  def chunk(state, batches, keys, n):
    first = jax.tree.map(lambda x: x[0], batches)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                         jax.eval_shape(every_trial, state, first, keys)[1])

    def body(s, i_b):
      i, b = i_b
      return jax.lax.cond(i < n, lambda: every_trial(s, b, keys), lambda: (s, zeros))
    k = jax.tree.leaves(batches)[0].shape[0]
    return jax.lax.scan(body, state, (jnp.arange(k), batches))
  return jax.jit(chunk, donate_argnums=0)


def _stack_batches(task, start: int, end: int, k: int):
  """Steps ``start..end-1``'s batches stacked on a leading axis, padded to ``k`` by
  repeating the last one (padding steps are skipped)."""
  steps = list(range(start, end)) + [end - 1] * (k - (end - start))
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                      *[task.train_batch(s) for s in steps])


def _write_train(outs, steps, names, values_RxNxM, diverged, last_train) -> None:
  if not len(steps):
    return
  finite = np.isfinite(values_RxNxM).all(axis=2)
  for i, out in enumerate(outs):
    if diverged[i] is not None:
      continue
    rows = values_RxNxM[:, i, :]
    bad = np.nonzero(~finite[:, i])[0]
    if bad.size:  # write up to and including the first bad record, then stop, as alone
      rows, keep = rows[:bad[0] + 1], bad[0] + 1
      vals = dict(zip(names, rows[-1].tolist()))
      diverged[i] = (f"Non-finite training metrics at step {int(steps[bad[0]])}: "
                     f"{ {k: v for k, v in vals.items() if not np.isfinite(v)} }.")
    else:
      keep = len(steps)
    out.write_block(steps[:keep], "train", names, rows)
    out.flush()
    last_train[i] = dict(zip(names, rows[-1].tolist()))


class _Evaluator:
  """Evaluates every trial: one ``vmap`` of ``eval_fn`` when it traces (jittable
  evaluators), else one host call per trial (evaluators that use numpy)."""

  def __init__(self, eval_fn):
    self.eval_fn, self._vmapped = eval_fn, jax.jit(jax.vmap(eval_fn)) if eval_fn else None

  def __call__(self, params, n: int) -> list[dict]:
    if self._vmapped is not None:
      try:
        res = jax.device_get(dict(self._vmapped(params)))
        return [metrics_lib.to_floats(jax.tree.map(lambda x: x[i], res)) for i in range(n)]
      except jax.errors.JAXTypeError:  # host code inside: fall back, and remember
        self._vmapped = None
    return [metrics_lib.to_floats(self.eval_fn(jax.tree.map(lambda x: x[i], params)))
            for i in range(n)]


def _finish(task, configs, workdirs, loop: _Loop, state, wall) -> list[dict]:
  state = state.replace(hparams=None)
  rows = [jax.tree.map(lambda x: x[i], state) for i in range(len(configs))]
  diverged = loop.diverged
  # Orbax saves asynchronously: start every trial's save, then wait for all.
  ckpts = []
  for row, w, bad in zip(rows, workdirs, diverged):
    if bad is None:  # never checkpoint a diverged state (the single-run rule)
      ckpts.append(checkpoint.Checkpointer(os.path.join(w, "checkpoints"), 0, 1))
      ckpts[-1].save(int(row.step), row)
  for c in ckpts:
    c.close()
  summaries = []
  for i, (c, w, out, row) in enumerate(zip(configs, workdirs, loop.outs, rows)):
    out.close()
    steps = int(row.step)
    s = make_summary(
        task, c, row.params, status="completed" if diverged[i] is None else "diverged",
        error=diverged[i], steps=steps, resumed_from=loop.start, wall_s=wall,
        last_train=loop.last_train[i], last_eval=loop.last_eval[i],
        checkpoint_step=steps if diverged[i] is None else None, vmapped=True)
    write_summary(w, s)
    summaries.append(s)
  return summaries
