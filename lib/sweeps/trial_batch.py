"""Many runs of one experiment trained together: one jitted ``vmap`` of the
trainer's step over a trials axis (the ``vmap`` backend of ``launch/sweep``).

Trials may differ in any tunable key (:mod:`lib.sweeps.tunable`): ``seed``, the
optimizer's floats (each trial's values in its ``inject_hyperparams`` state), the
values the loss reads through ``Task.hparams`` (fed as traced per-trial scalars)
and keys that only set the initial parameters (each trial's own
``init_params``); one compilation serves all. Data, shapes and structure are
shared (a sweep over structural keys runs one group per combination). The
experiment's own step (``Task.make_step``) and a carried state
(``Task.init_carry``) are vmapped like the default step. Each trial's workdir
gets what a run of its own would write: ``config.json``, ``metrics.jsonl``
(+ TensorBoard), ``summary.json``, and a final checkpoint that the single-run
trainer restores.

Small models leave the device idle between steps, so the loop dispatches a
``lax.scan`` over up to ``max_chunk`` steps at a time (their batches stacked on
the host) and turns the per-step metrics into log records on the host. A trial
that produces NaN/Inf stops being written at that record and ends ``diverged``,
as it would alone; the others go on. With :class:`Halving`, at each rung the
worst trials stop (``stopped``, with their records, summary and checkpoint) and
the survivors go on as a smaller program. Given a group folder, the stacked
state is checkpointed as a single run's would be, and a killed group resumes
(:class:`Group`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from typing import Callable, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib import metrics as metrics_lib
from lib.errors import ConfigError
from lib.runtime import files, writers
from lib.runtime.progress import Progress
from lib.sweeps import space as sweeps, tunable
from lib.train import checkpoint, optim
from lib.train.state import init_state
from lib.train.step import task_step
from lib.train.summary import make_summary, save_config, write_summary
from lib.train.task import Built
from lib.train.trainer import StopRequests, plot_loss_curve

GROUP_FILE = "group.json"
ACTIVE_FILE = "active.json"  # the trials still training at each group checkpoint


@dataclasses.dataclass(frozen=True)
class Halving:
  """Successive halving inside one program: at each of ``rungs`` (in ``unit``:
  steps or epochs) the trials outside the best ``keep`` fraction (at least one
  kept) by ``metric`` (``train/<name>`` or ``eval/<name>``, ``mode`` min or max)
  stop. A rung is evaluated (when the metric is ``eval/``) and checkpointed."""
  rungs: tuple[float, ...]
  keep: float = 0.5
  metric: str = "train/loss"
  mode: str = "min"
  unit: str = "steps"

  def __post_init__(self):
    if not 0 < self.keep < 1:
      raise ConfigError(f"halving keep={self.keep}: expected a fraction in (0, 1).")
    if self.mode not in ("min", "max"):
      raise ConfigError(f"halving mode={self.mode!r}: expected 'min' or 'max'.")
    if self.unit not in ("steps", "epochs"):
      raise ConfigError(f"halving unit={self.unit!r}: expected 'steps' or 'epochs'.")
    if not self.rungs or any(r <= 0 for r in self.rungs):
      raise ConfigError(f"halving rungs={self.rungs}: expected positive {self.unit}.")
    if self.metric.partition("/")[0] not in ("train", "eval"):
      raise ConfigError(f"halving metric={self.metric!r}: expected train/<name> or eval/<name>.")

  def steps(self, steps_per_epoch: int, num_steps: int) -> tuple[int, ...]:
    """The rungs in steps, inside the run (a rung at or past its end is dropped)."""
    per = steps_per_epoch if self.unit == "epochs" else 1
    return tuple(sorted({round(r * per) for r in self.rungs if 0 < round(r * per) < num_steps}))

  def survivors(self, scores: Sequence[Optional[float]]) -> list[int]:
    """Positions kept, in order: the best ``ceil(keep * n)``; a missing or
    non-finite score ranks last."""
    n_keep = max(1, math.ceil(self.keep * len(scores)))
    sign = 1.0 if self.mode == "min" else -1.0
    rank = sorted(range(len(scores)), key=lambda i: (
        sign * scores[i] if scores[i] is not None and np.isfinite(scores[i]) else math.inf, i))
    return sorted(rank[:n_keep])


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _take(tree, rows: Sequence[int]):
  idx = np.asarray(rows)
  return jax.tree.map(lambda x: x[idx], tree)


def check_same_batches(build, configs, task=None) -> None:
  """Trials share one batch stream: a :class:`ConfigError` when the batches follow
  the seed (``task``: the first config's, when already built)."""
  other = next((c for c in configs if c.seed != configs[0].seed), None)
  if other is None:
    return
  task = task or build(configs[0]).task
  task2 = build(other).task
  for step in (0, 1):
    a, b = jax.tree.leaves(task.train_batch(step)), jax.tree.leaves(task2.train_batch(step))
    if len(a) != len(b) or not all(np.array_equal(np.asarray(x), np.asarray(y))
                                   for x, y in zip(a, b)):
      raise ConfigError(f"{task.name}: the training batches depend on the seed, so trials with "
                        "different seeds cannot share them; fix the data order in the config "
                        "(data.shuffle_seed >= 0) or use the local backend.")


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

  def keep(self, trials: Sequence[int]) -> None:
    """Only these trials (positions) go on: their open windows are kept."""
    if self._partial is not None:
      self._partial = tuple(x[np.asarray(trials)] for x in self._partial)


def fit(build: Callable[..., Built], base: ml_collections.ConfigDict,
          trials: Sequence[dict], workdirs: Sequence[str], max_chunk: int = 200,
          group_dir: Optional[str] = None, halving: Optional[Halving] = None,
          trials_per_block: int = 0) -> list[dict]:
  """Trains every trial in one program; returns each trial's summary.

  ``build`` is the experiment's ``build(config, data=None) -> Built``; it runs
  once for the data and the task, and again (with that data) for each trial
  whose initial parameters follow a key of its own. Each trial's config is the
  resolved base config with the trial's overrides. With ``group_dir``, the
  stacked state is checkpointed there every ``trainer.checkpoint_every_steps``
  (:class:`Group`), and a rerun of the same trials resumes from it; the folder is
  removed once every summary is written. Ctrl-C or SIGTERM while it trains is taken
  at the next chunk end that closes a log window: the group checkpoint (when
  kept) and the checkpoints and 'interrupted' summaries of the trials still
  training are written there, then the interruption is raised; a second one
  raises at once. ``trials_per_block`` (0: all) steps the
  trials that many at a time inside the same program (:class:`_Chunks`); -1 picks
  0 or 1, whichever is faster here (:func:`fastest_block`)."""
  t0 = time.perf_counter()
  if any(sweeps.apply(base, t).trainer.get("early_stop_patience") for t in trials):
    raise ConfigError("trainer.early_stop_patience: vmapped trials run to a common end; stop "
                      "the worst ones with --halving, or run early stopping with "
                      "--backend=local or ray.")
  built = build(sweeps.apply(base, trials[0]))
  task, tc = built.task, built.config.trainer
  configs = [sweeps.apply(built.config, t) for t in trials]
  check_same_batches(build, [sweeps.apply(base, t) for t in trials], task)
  swept = [k.split(".", 1)[1] for k in tunable.varying(trials) if k.startswith("optimizer.")]
  tx, schedule = optim.make_optimizer(built.config.optimizer, tc.num_steps, keep=swept)
  state, keys, hp = _initial_state(build, built, base, trials, configs)
  rungs = halving.steps(getattr(task.train_batch, "steps_per_epoch", 1), tc.num_steps) if halving else ()
  group = Group(group_dir, configs, workdirs, tc, rungs) if group_dir else None
  try:
    active, start = list(range(len(trials))), 0
    if group:
      state, active, start = group.restore(state)
    loop = _Loop(task, tc, workdirs, configs, active, start, group, halving, rungs)
    for i in active:
      save_config(configs[i], workdirs[i])
    step = task_step(task, tx, schedule, optim.scales_gradients(built.config.optimizer, swept))
    if trials_per_block < 0:
      trials_per_block = fastest_block(step, state, task.train_batch(start), _take(keys, active),
                                       _take(hp, active), task.compiler_options)
    chunks = _Chunks(step, trials_per_block, task.compiler_options)
    with StopRequests() as stops:
      state = loop.run(chunks, state, _take(keys, active), _take(hp, active), max_chunk, stops)
    wall = time.perf_counter() - t0
    loop.finish(jax.device_get(state), "completed", wall)
  finally:
    if group:
      group.close()
  if group:
    group.remove()
  return [files.read_json(os.path.join(w, "summary.json")) for w in workdirs]


def _initial_state(build, built: Built, base, trials, configs):
  """Every trial's fresh state, step key and loss hyperparameters, stacked. A
  trial varying a key the task neither traces nor gives the optimizer builds its
  own task (on the shared data) for its initial parameters, which must keep the
  shapes of the others'."""
  task = built.task
  traced = {"seed", *(f"optimizer.{k}" for k in optim.TUNABLE), *task.hparams}
  own_init = [k for k in tunable.varying(trials) if k not in traced]
  states, step_keys, hps = [], [], []
  for t, c in zip(trials, configs):
    trial_task = build(sweeps.apply(base, t), built.data).task if own_init else task
    state, _, _, step_key = init_state(trial_task, c)  # its optimizer state holds c's values
    states.append(state)
    step_keys.append(step_key)
    hps.append({k: jnp.float32(v) for k, v in tunable.hparams(c, list(task.hparams)).items()})
  shapes = [jax.tree.map(lambda x: (x.shape, x.dtype), s) for s in states]
  if any(s != shapes[0] for s in shapes):
    raise ConfigError(f"{task.name}: trials varying {', '.join(own_init)} have parameters of "
                      "different shapes; list the key in the experiment's STRUCTURAL keys.")
  return _stack(states), jnp.stack(step_keys), _stack(hps) if hps[0] else {}


class Group:
  """The stacked state of one vmapped group of trials, checkpointed in one folder
  (``group.json`` says which trials and configs it holds; a different group
  there is replaced; ``active.json`` which trials the state holds at each saved
  step, as halving shrinks it). Saved at the first chunk end at or after each
  multiple of ``checkpoint_every_steps`` where every log window is closed, and at
  each halving rung, so a resumed group writes the records an uninterrupted one
  writes."""

  def __init__(self, directory: str, configs, workdirs: Sequence[str], tc,
               rungs: Sequence[int] = ()):
    self.directory = directory
    os.makedirs(directory, exist_ok=True)
    self.lock = files.WorkdirLock(directory)
    self.lock.acquire()
    identity = json.loads(json.dumps(
        {"workdirs": [os.path.abspath(w) for w in workdirs],
         "configs": [c.to_dict() for c in configs], "rungs": list(rungs)}, default=str))
    path = os.path.join(directory, GROUP_FILE)
    ckpt_dir = os.path.join(directory, "checkpoints")
    self.active_path = os.path.join(directory, ACTIVE_FILE)
    if files.read_json(path) != identity:
      shutil.rmtree(ckpt_dir, ignore_errors=True)
      files.atomic_write_json(self.active_path, {})
      files.atomic_write_json(path, identity)
    self.ckpt = checkpoint.Checkpointer(ckpt_dir, tc.checkpoint_every_steps, tc.max_checkpoints)
    every, log, n = tc.checkpoint_every_steps, tc.log_every_steps, tc.num_steps
    self.save_steps = {min(n, -(-s // log) * log) for s in range(every, n, every)} if every else set()
    self.save_steps |= set(rungs)

  def restore(self, state) -> tuple[object, list[int], int]:
    """``(state, active trials, step)``: the latest checkpoint's, or the fresh state's."""
    step = self.ckpt.latest_step()
    if step is None:
      return state, list(range(jax.tree.leaves(state)[0].shape[0])), 0
    active = (files.read_json(self.active_path) or {})[str(step)]
    state = self.ckpt.restore(_take(state, active))
    return state, active, step

  def maybe_save(self, end: int, state, active: Sequence[int], now: bool = False) -> None:
    """Saves at ``save_steps`` or, with ``now``, at this end (its log windows closed);
    once a step."""
    if (now or end in self.save_steps) and self.ckpt.latest_step() != end:
      saved = files.read_json(self.active_path) or {}
      files.atomic_write_json(self.active_path, {**saved, str(end): list(active)})
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
  ``metrics.jsonl`` when the group resumes at ``start``), for the trials still
  training (``active``: indices into ``workdirs``)."""

  def __init__(self, task, tc, workdirs: Sequence[str], configs, active: Sequence[int],
               start: int, group: Optional[Group], halving: Optional[Halving],
               rungs: Sequence[int]):
    self.task, self.tc, self.group, self.start = task, tc, group, start
    self.workdirs, self.configs, self.active = list(workdirs), list(configs), list(active)
    self.halving, self.rungs = halving, set(rungs)
    self.outs = {i: writers.MetricWriter(workdirs[i], start, tc.tensorboard) for i in active}
    n = len(workdirs)
    self.diverged: list[Optional[str]] = [None] * n
    self.last_train, self.last_eval = [{} for _ in range(n)], [{} for _ in range(n)]
    if start:
      for i in active:
        self.diverged[i], self.last_train[i], self.last_eval[i] = _recovered(workdirs[i])
    self.records = Records(tc.log_every_steps, tc.num_steps)
    self.evaluate = _Evaluator(task.evaluators)
    self.t0 = time.perf_counter()
    self.progress = Progress(tc.num_steps, start)
    self._last_print = -math.inf

  def run(self, chunks: "_Chunks", state, keys, hp, max_chunk: int,
          stops: Optional[StopRequests] = None):
    tc, task, n_steps, start = self.tc, self.task, self.tc.num_steps, self.start
    eval_every = tc.eval_every_steps if task.evaluators else 0
    extra = (self.group.save_steps if self.group else set()) | self.rungs
    ends = [e for e in chunk_ends(n_steps, tc.log_every_steps, tc.flush_every, eval_every,
                                  max_chunk, extra) if e > start]
    k = max([b - a for a, b in zip([0] + ends, ends)] or [1])
    for end in ends:
      state, m = _run_steps(chunks, state, [task.train_batch(s) for s in range(start, end)],
                            keys, hp, k)
      evals = (self.evaluate(state.params, len(self.active)) if task.evaluators and (
          end == n_steps or end in self.rungs or (eval_every and end % eval_every == 0))
          else None)
      with files.signals_held():  # a chunk's records and its checkpoint: whole or absent
        self._write(start, end, m, evals)
        if end in self.rungs and self.halving:
          state, keys, hp = self._halve(end, state, keys, hp)
        if self.group:
          self.group.maybe_save(end, state, self.active)
      self._report(end)
      if stops is not None and stops.signum is not None and self._stoppable(end):
        with files.signals_held():  # the group's and the trials' checkpoints: whole
          if self.group:
            self.group.maybe_save(end, state, self.active, now=True)
          self.finish(jax.device_get(state), "interrupted", time.perf_counter() - self.t0)
        stops.check()
      start = end
    return state

  def _report(self, end: int) -> None:
    """The progress line (trials training, step, rate, ETA, the best train loss), at
    most every ``trainer.progress_every_s`` seconds and at the last step."""
    now = time.monotonic()
    if end < self.tc.num_steps and now - self._last_print < self.tc.get("progress_every_s", 5.0):
      return
    self._last_print = now
    losses = [self.last_train[i].get("loss") for i in self.active if self.diverged[i] is None]
    losses = [v for v in losses if v is not None and math.isfinite(v)]
    best = {"best loss": min(losses)} if losses else None
    logging.info("vmap: %d trial(s) training | %s", len(self.active), self.progress.line(end, best))

  def _stoppable(self, end: int) -> bool:
    """Whether a stop may be taken at this chunk end: before the last step, with
    every log window closed (so a rerun from here writes the records one
    uninterrupted program writes)."""
    return end < self.tc.num_steps and end % self.tc.log_every_steps == 0

  def _write(self, start: int, end: int, m: dict, evals: Optional[list[dict]]) -> None:
    steps, names, values = self.records.add(start, m)
    a = self.active
    _write_train([self.outs[i] for i in a], steps, names, values, _View(self.diverged, a),
                 _View(self.last_train, a))
    for i, v in zip(a, evals or ()):
      if self.diverged[i] is None:
        self.outs[i].write(end, "eval", v)
        self.outs[i].flush()
        self.last_eval[i] = v

  def _halve(self, end: int, state, keys, hp):
    """Stops the trials outside the kept fraction at this rung; returns the
    survivors' state, keys and hyperparameters."""
    split, _, name = self.halving.metric.partition("/")
    last = self.last_eval if split == "eval" else self.last_train
    scores = [None if self.diverged[i] else last[i].get(name) for i in self.active]
    keep = self.halving.survivors(scores)
    stop = [p for p in range(len(self.active)) if p not in keep]
    if stop:
      rows = jax.device_get(_take(state, stop))
      self._summaries([self.active[p] for p in stop], rows, "stopped",
                      time.perf_counter() - self.t0, stopped_at=end)
      self.records.keep(keep)
      self.active = [self.active[p] for p in keep]
      state, keys, hp = _take(state, keep), _take(keys, keep), _take(hp, keep)
    return state, keys, hp

  def finish(self, state, status: str, wall: float) -> None:
    self._summaries(self.active, state, status, wall)

  def _summaries(self, trials: Sequence[int], stacked, status: str, wall: float,
                 **more) -> None:
    """Checkpoints (never a diverged state: the single-run rule) and summaries of
    ``trials``, whose states are the rows of ``stacked``."""
    rows = [jax.tree.map(lambda x: x[p], stacked) for p in range(len(trials))]
    ckpts = []
    for i, row in zip(trials, rows):  # orbax saves asynchronously: start all, then wait
      if self.diverged[i] is None:
        ckpts.append(checkpoint.Checkpointer(os.path.join(self.workdirs[i], "checkpoints"), 0, 1))
        ckpts[-1].save(int(row.step), row)
    for c in ckpts:
      c.close()
    for i, row in zip(trials, rows):
      self.outs.pop(i).close()
      steps, bad = int(row.step), self.diverged[i]
      s = make_summary(
          self.task, self.configs[i], row.params, status=status if bad is None else "diverged",
          error=bad, steps=steps, resumed_from=self.start, wall_s=wall,
          last_train=self.last_train[i], last_eval=self.last_eval[i],
          checkpoint_step=steps if bad is None else None, vmapped=True, **more)
      write_summary(self.workdirs[i], s)
      if self.configs[i].trainer.get("plot", True):  # what a single run draws
        plot_loss_curve(self.task, self.workdirs[i])


class _View:
  """``seq[active[j]]`` as ``view[j]``: per-trial lists seen through the active trials."""

  def __init__(self, seq: list, active: Sequence[int]):
    self.seq, self.active = seq, active

  def __getitem__(self, j):
    return self.seq[self.active[j]]

  def __setitem__(self, j, value):
    self.seq[self.active[j]] = value


def _recovered(workdir: str) -> tuple[Optional[str], dict, dict]:
  """``(diverged, last_train, last_eval)`` of a trial from its kept records."""
  diverged, last = None, {"train": {}, "eval": {}}
  for r in writers.read_records(workdir):
    vals = writers.values(r)
    last[r["split"]] = vals
    bad = {k: v for k, v in vals.items() if not np.isfinite(v)}
    if r["split"] == "train" and bad and diverged is None:
      diverged = f"Non-finite training metrics at step {int(r['step'])}: {bad}."
  return diverged, last["train"], last["eval"]


def _every_trial(step, trials_per_block: int):
  """``(state, batch, keys, hp) -> (state, metrics)``: one step of every trial, in one
  ``vmap`` (``trials_per_block`` 0) or a ``lax.map`` over blocks of that many."""
  def one(state, batch, key, hp):
    return step(state, batch, jax.random.fold_in(key, state.step), hp)  # as trainer._Run does

  def every_trial(state, batch, keys, hp):
    if not trials_per_block:
      return jax.vmap(one, in_axes=(0, None, 0, 0))(state, batch, keys, hp)
    return jax.lax.map(lambda a: one(a[0], batch, a[1], a[2]), (state, keys, hp),
                       batch_size=trials_per_block)
  return every_trial


def fastest_block(step, state, batch, keys, hp, compiler_options=None, calls: int = 2) -> int:
  """``trials_per_block=-1`` (auto): 0 (one ``vmap``) or 1 (one trial after another),
  whichever steps these trials faster on ``batch`` (compiled, warmed up, ``calls`` timed).
  A trial whose step already fills the machine runs faster alone: the vmapped
  program's wider temporaries cost more than they save (``python -m launch.bench
  trial_step``)."""
  batch = jax.device_put(batch)
  times = {}
  for block in (0, 1):
    fn = jax.jit(_every_trial(step, block), compiler_options=dict(compiler_options or {}) or None)
    jax.block_until_ready(fn(state, batch, keys, hp))
    t0 = time.perf_counter()
    for _ in range(calls):
      out = fn(state, batch, keys, hp)
    jax.block_until_ready(out)
    times[block] = (time.perf_counter() - t0) / calls
  best = min(times, key=times.get)
  logging.info("vmap sweep: %s (%.1f ms a step for the %d trials; %.1f ms the other way).",
               "one vmap" if best == 0 else "trials one by one", 1e3 * times[best],
               jax.tree.leaves(keys)[0].shape[0], 1e3 * times[1 - best])
  return best


class _Chunks:
  """How the loop runs its steps. ``many(state, batches_K, keys, hp, n) -> (state,
  metrics_K)``: the first ``n`` of K steps of every trial in one dispatch; shorter
  chunks (the tail, an evaluation in between) pad their batches and skip the
  padding under ``lax.cond``, so one compilation serves all (one more per size after
  a halving rung). ``one(state, batch, keys, hp) -> (state, metrics)``: one step,
  for batches whose shapes differ from step to step (no scan or cond around it:
  about 15% of the notes' LM step for 32 trials). Each step is one ``vmap`` over
  the trials, or with ``trials_per_block`` a ``lax.map`` over blocks of that many:
  faster where a single trial's step is already bound by memory traffic rather
  than by dispatch (the variational RNN's per-example weights)."""

  def __init__(self, step, trials_per_block: int = 0, compiler_options=None):
    every_trial = _every_trial(step, trials_per_block)

    def chunk(state, batches, keys, hp, n):
      first = jax.tree.map(lambda x: x[0], batches)
      zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                           jax.eval_shape(every_trial, state, first, keys, hp)[1])

      def body(s, i_b):
        i, b = i_b
        return jax.lax.cond(i < n, lambda: every_trial(s, b, keys, hp), lambda: (s, zeros))
      k = jax.tree.leaves(batches)[0].shape[0]
      return jax.lax.scan(body, state, (jnp.arange(k), batches))
    options = dict(compiler_options or {}) or None
    self.many = jax.jit(chunk, donate_argnums=0, compiler_options=options)
    self.one = jax.jit(every_trial, donate_argnums=0, compiler_options=options)


def _stack_batches(batches: list, k: int):
  """Batches stacked on a leading axis, padded to ``k`` by repeating the last one
  (padding steps are skipped)."""
  batches = batches + [batches[-1]] * (k - len(batches))
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


def _shapes(batch) -> list:
  return [np.shape(x) for x in jax.tree.leaves(batch)]


def _run_steps(chunks: _Chunks, state, batches: list, keys, hp, k: int):
  """The chunk's steps in one dispatch; where its batches differ in shape (sentences
  padded to their own length: the LM's ``sentences`` mode), one step at a time, one
  compilation per shape, as the single-run trainer does. Returns ``(state, metrics)``
  with metrics on the host, one row per step."""
  if all(_shapes(b) == _shapes(batches[0]) for b in batches):
    state, m = chunks.many(state, _stack_batches(batches, k), keys, hp, np.int32(len(batches)))
    return state, jax.tree.map(lambda x: x[:len(batches)], jax.device_get(m))
  rows = []
  for b in batches:  # dispatched back to back; the metrics come to the host once, at the end
    state, m = chunks.one(state, b, keys, hp)
    rows.append(m)
  return state, jax.tree.map(lambda *xs: np.stack(xs, 0), *jax.device_get(rows))


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
  """Evaluates every trial, evaluator by evaluator: one with ``outputs`` and ``score``
  (:class:`lib.train.task.Evaluator`) has ``outputs`` vmapped over the trials and
  ``score`` run on the host for each; one whose ``run`` traces (jnp only) is vmapped
  whole; any other runs once per trial (numpy inside)."""

  def __init__(self, evaluators):
    self.evaluators = list(evaluators)
    self._vmapped = [jax.jit(jax.vmap(e.outputs if _split(e) else _pairs(e.run)))
                     for e in self.evaluators]

  def __call__(self, params, n: int) -> list[dict]:
    out = [{} for _ in range(n)]
    for j, e in enumerate(self.evaluators):
      for i, pairs in enumerate(self._each(j, e, params, n)):
        out[i].update(pairs)  # a later name wins, as in a single run
    return [metrics_lib.to_floats(r) for r in out]

  def _each(self, j: int, e, params, n: int) -> list[dict]:
    if self._vmapped[j] is not None:
      try:
        res = jax.device_get(self._vmapped[j](params))
        rows = [jax.tree.map(lambda x: x[i], res) for i in range(n)]
        return [dict(e.score(r)) for r in rows] if _split(e) else rows
      except jax.errors.JAXTypeError:  # host code inside run: fall back, and remember
        if _split(e):
          raise
        self._vmapped[j] = None
    return [dict(e.run(jax.tree.map(lambda x: x[i], params))) for i in range(n)]


def _split(evaluator) -> bool:
  return hasattr(evaluator, "outputs") and hasattr(evaluator, "score")


def _pairs(run):
  return lambda params: dict(run(params))
