"""The loop core of every training run. A single run (:func:`lib.train.trainer.fit`:
a trial axis of one) and a vmapped group of trials (:func:`lib.sweeps.trial_batch.fit`)
both drive :class:`Loop`, which writes the records, evaluates, checkpoints through a
:class:`Saver`, ends trials (completed, diverged, stopped by halving or early stopping)
and takes stop requests, one way for both.

A trial whose records turn NaN/Inf is written up to that record and ends
``diverged``; the others go on. At each halving rung the trials outside the kept
fraction end ``stopped``; a trial whose early-stopping tracker is done ends
``completed``. Each ended trial gets its final checkpoint (never a diverged or
non-finite state), ``summary.json`` and loss curve, and leaves the stacked state.
"""
from __future__ import annotations

import math
import os
import signal
import time
from typing import Optional, Protocol, Sequence

from absl import logging
import jax
import numpy as np

from lib import metrics as metrics_lib
from lib.errors import StorageError
from lib.runtime import files, plotting, writers
from lib.runtime.progress import Progress
from lib.train import checkpoint, early_stopping
from lib.train.records import Records, chunk_ends, first_bad, last_values
from lib.train.stepping import Steps, finite_rows, row, take
from lib.train.stops import StopRequests
from lib.train.summary import make_summary, write_summary
from lib.train.task import Task, evaluate


class Saver(Protocol):
  """Where a loop's state is checkpointed: the single run's own checkpoints, or a
  vmapped group's stacked state (:class:`lib.sweeps.trial_batch.Group`)."""

  def due(self, step: int) -> bool:
    """A periodic save at this chunk end."""

  def save_steps(self, num_steps: int) -> Sequence[int]:
    """The periodic saves' steps before ``num_steps`` (chunks end there)."""

  def save(self, step: int, state, active: Sequence[int], now: bool = False) -> None:
    """Saves the stacked state of the ``active`` trials (``now``: a stop, wherever)."""

  def save_trials(self, trials: Sequence[int], step: int, rows) -> None:
    """Each ended trial's final checkpoint (``rows``: stacked), written on return."""

  def kept(self, trial: int) -> Optional[int]:
    """The step of the checkpoint this trial alone would resume from."""


def alive(state) -> bool:
  """False when an interruption landed inside a step that had already taken
  (donated) the state's buffers: then there is nothing new to save."""
  return not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(state))


def plot_loss_curve(task: Task, workdir: str) -> None:
  """``<workdir>/loss_curve.png``: the run's train ``task.curve_metric`` by step."""
  xs, ys = writers.series(writers.read_records(workdir, "train"), task.curve_metric)
  if xs:
    plotting.plot_curves({task.name: (xs, ys)}, os.path.join(workdir, "loss_curve.png"),
                         title=f"{task.name}: train {task.curve_metric}",
                         ylabel=task.curve_metric, logy=min(ys) > 0)


class Evaluator:
  """Evaluates every trial, evaluator by evaluator. Without ``vmapped`` (a single
  run), each trial's parameters as they are. Vmapped: one with ``outputs`` and
  ``score`` (:class:`lib.train.task.Evaluator`) has ``outputs`` vmapped over the
  trials and ``score`` run on the host for each; one whose ``run`` traces (jnp only)
  is vmapped whole; any other runs once per trial (numpy inside)."""

  def __init__(self, evaluators, vmapped: bool = True):
    self.evaluators = list(evaluators)
    self._vmapped = [jax.jit(jax.vmap(e.outputs if _split(e) else _pairs(e.run)))
                     if vmapped else None for e in self.evaluators]

  def __call__(self, params, n: int) -> list[dict]:
    out = [{} for _ in range(n)]
    for j, e in enumerate(self.evaluators):
      for i, pairs in enumerate(self._each(j, e, params, n)):
        out[i].update(pairs)  # a later name wins, as in :func:`lib.train.task.evaluate`
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
    return [evaluate([e], row(params, i)) for i in range(n)]


def _split(evaluator) -> bool:
  return hasattr(evaluator, "outputs") and hasattr(evaluator, "score")


def _pairs(run):
  return lambda params: dict(run(params))


class Loop:
  """Trains the ``active`` trials (indices into ``workdirs``; rows of the stacked
  ``state``, ``keys`` and ``hp``) from step ``start`` to ``trainer.num_steps``.

  ``steps`` dispatches the steps, ``saver`` checkpoints. ``alone``: a single run. Its
  trial is evaluated without a trial axis, its progress line and evaluations are
  logged as a run's, a stop request is taken at the next step, and a failure or
  interruption ends it ``failed`` or ``interrupted`` with a checkpoint of the last step
  taken. A group instead takes a stop only where every log window is closed (so a
  resumed group writes the records an uninterrupted one writes) and leaves a failure to
  the saver's last checkpoint. ``halving`` (with ``rungs`` in steps) stops the worst
  trials at each rung. Only the ``chief`` writes files.
  """

  def __init__(self, task: Task, tc, workdirs: Sequence[str], configs, state, keys, hp, *,
               steps: Steps, saver: Saver, start: int = 0, active: Optional[Sequence[int]] = None,
               alone: bool = False, halving=None, rungs: Sequence[int] = (),
               summary_fields: Optional[dict] = None, chief: bool = True,
               t0: Optional[float] = None):
    self.task, self.tc, self.steps, self.saver = task, tc, steps, saver
    self.workdirs, self.configs = list(workdirs), list(configs)
    self.active = list(range(len(workdirs)) if active is None else active)
    self.state, self.keys, self.hp = state, keys, hp
    self.start = self.step = start
    self.alone = alone
    self.halving, self.rungs = halving, set(rungs)
    self.fields, self.chief = dict(summary_fields or {}), chief
    self.t0 = time.perf_counter() if t0 is None else t0
    self.evaluator = Evaluator(task.evaluators, vmapped=not alone)
    self.records = Records(tc.log_every_steps, tc.num_steps)
    self.pending: list = []
    self.summaries: dict[int, dict] = {}
    self.stops: Optional[StopRequests] = None
    self._open_trials()
    self.progress = Progress(tc.num_steps, start, *task.rate_unit)
    self._last_print, self._printed = -math.inf, -1

  def _open_trials(self) -> None:
    """Writers, last values (read back on a resume) and early-stopping trackers."""
    n, start = len(self.workdirs), self.start
    self.last_train, self.last_eval = [{} for _ in range(n)], [{} for _ in range(n)]
    self.diverged: dict[int, tuple[int, dict]] = {}  # trial -> (step, non-finite values)
    self.early = [early_stopping.from_config(c.trainer) for c in self.configs]
    self.stopped_early: dict[int, int] = {}
    for i in self.active:
      metrics_file = os.path.join(self.workdirs[i], writers.METRICS_FILE)
      if start and os.path.exists(metrics_file):
        kept = [r for r in writers.read_records(self.workdirs[i]) if r["step"] <= start]
        self.last_train[i], self.last_eval[i] = last_values(kept)
        if self.early[i] is not None:
          self.early[i].replay(r for r in kept if r["split"] == "eval")
          if self.early[i].done:
            self.stopped_early[i] = start
    self.outs = {i: writers.MetricWriter(self.workdirs[i], start, self.tc.tensorboard)
                 for i in self.active} if self.chief else {}
    self.best = {i: checkpoint.Checkpointer(
        os.path.join(self.workdirs[i], early_stopping.BEST_DIR), every=0, max_to_keep=1)
        for i in self.active if self.early[i] is not None}

  # -- the loop ---------------------------------------------------------------
  def run(self) -> dict[int, dict]:
    """Trains to the end; returns the summaries of the trials that ended here. On an
    exception, ends a single run's trial (see the class), then re-raises it."""
    try:
      with StopRequests() as self.stops:
        self._train()
    except BaseException as e:
      self._on_error(e)
      raise
    finally:
      for c in self.best.values():
        c.close()
    return self.summaries

  def _train(self) -> None:
    tc = self.tc
    done = [p for p, i in enumerate(self.active) if i in self.stopped_early]
    self._end(done, "completed")  # re-entered after an early stop: stays stopped
    eval_every = tc.eval_every_steps if self.task.evaluators else 0
    saves = [s for s in self.saver.save_steps(tc.num_steps) if s > self.start]
    ends = [e for e in chunk_ends(tc.num_steps, tc.log_every_steps, tc.flush_every, eval_every,
                                  self.steps.max_chunk, [*saves, *self.rungs]) if e > self.start]
    k = max([b - a for a, b in zip([self.start] + ends, ends)] or [1])
    for end in ends:
      while self.active and self.step < end:
        self.steps.advance(self, end, k)
        self._flush()
        if self.active and self.step == end:
          self._chunk_end(end)
        self._report()
        self._maybe_stop()
    self._end(list(range(len(self.active))), "completed")

  def interrupts(self) -> bool:
    """Whether a chunk dispatched a step at a time ends at this step: a stop request
    to take, or a progress line due."""
    return ((self.stops is not None and self.stops.signum is not None)
            or time.monotonic() - self._last_print > self.tc.progress_every_s)

  def _chunk_end(self, end: int) -> None:
    evals = self.evaluator(self.state.params, len(self.active)) if self._eval_due(end) else None
    with files.signals_held():  # a chunk's records, evaluations and checkpoints: whole or absent
      if evals is not None:
        self._write_evals(end, evals)
      if end in self.rungs and self.halving is not None:
        self._halve(end)
      done = [p for p, i in enumerate(self.active)
              if self.early[i] is not None and self.early[i].done]
      for p in done:
        self.stopped_early[self.active[p]] = end
        e = self.early[self.active[p]]
        logging.info("Early stop at step %d: best %s=%.4g at step %d.", end, e.metric,
                     e.best_value, e.best_step)
      self._end(done, "completed")
      if self.active and end < self.tc.num_steps and self.saver.due(end):
        self._save(end)

  def _eval_due(self, end: int) -> bool:
    every = self.tc.eval_every_steps
    return bool(self.task.evaluators) and (
        end == self.tc.num_steps or end in self.rungs or bool(every and end % every == 0))

  def _maybe_stop(self) -> None:
    """Takes a noted stop request where it may: before the last step, and (with
    a group) where every log window is closed."""
    if self.stops is None or self.stops.signum is None or not self.active:
      return
    if self.step >= self.tc.num_steps or (
        not self.alone and self.step % self.tc.log_every_steps):
      return
    why = (f"Preempted: signal {self.stops.signum}" if self.stops.signum == signal.SIGTERM
           else "KeyboardInterrupt")
    with files.signals_held():  # the stacked state's and the trials' checkpoints: whole
      self._save(self.step, now=True)
      self._end(list(range(len(self.active))), "interrupted", why)
    self.stops.check()

  def _on_error(self, e: BaseException) -> None:
    if not self.alone or not self.active:
      return
    status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
    error = str(e) if isinstance(e, StorageError) else f"{type(e).__name__}: {e}"
    with files.signals_held():  # a second Ctrl-C or SIGTERM waits for this save
      self._flush()
      if self.active and not isinstance(e, StorageError):
        try:
          self._save(self.step, now=True)
        except StorageError as failed:
          status, error = "failed", str(failed)
      try:
        self._end(list(range(len(self.active))), status, error, save=False)
      except StorageError:
        pass  # the summaries say 'failed'; the original exception goes on

  # -- records and evaluations ------------------------------------------------
  def _flush(self) -> None:
    """Fetches the queued metrics in one transfer and writes their records; the
    trials whose records turn non-finite end ``diverged``."""
    if not self.pending:
      return
    fetched = jax.device_get(self.pending)
    with files.signals_held():  # taken off the queue and written as one: no record lost or doubled
      self.pending = []
      # The queued dispatches cover consecutive steps: their metrics as one (K, trials) block.
      blocks = [jax.tree.map(lambda x: x[None] if n is None else x[:n], m) for _, m, n in fetched]
      self._write_train(*self.records.add(fetched[0][0], jax.tree.map(
          lambda *xs: np.concatenate(xs), *blocks)))
      bad = [p for p, i in enumerate(self.active) if i in self.diverged]
      self._end(bad, "diverged")

  def _write_train(self, steps, names, values_RxNxM) -> None:
    if not len(steps):
      return
    for p, i in enumerate(self.active):
      if i in self.diverged:
        continue
      rows = values_RxNxM[:, p, :]
      bad = first_bad(steps, names, rows)
      if bad is not None:  # written up to and including the first bad record
        rows = rows[:bad[0] + 1]
        self.diverged[i] = bad[1:]  # (step, the non-finite values)
      if i in self.outs:
        self.outs[i].write_block(steps[:len(rows)], "train", names, rows)
        self.outs[i].flush()
      self.last_train[i] = dict(zip(names, rows[-1].tolist()))

  def _write_open_windows(self, positions: Sequence[int]) -> None:
    """A trial that ends between log steps gets a record of its last steps there."""
    means = self.records.open_windows(positions)
    for p, means_M in zip(positions, [] if means is None else means):
      i = self.active[p]
      if i in self.outs and i not in self.diverged:
        self.outs[i].write_block([self.step], "train", self.records.names, means_M[None])
        self.outs[i].flush()
      self.last_train[i] = dict(zip(self.records.names, means_M.tolist()))

  def _write_evals(self, end: int, evals: list[dict]) -> None:
    for p, (i, values) in enumerate(zip(self.active, evals)):
      self.last_eval[i] = values
      if i in self.outs:
        self.outs[i].write(end, "eval", values)
        self.outs[i].flush()
      if self.alone:
        logging.info("eval @ %d: %s", end, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
      if self.early[i] is not None and self.early[i].update(end, values) and self.chief:
        self.best[i].save(end, row(self.state, p))

  def _halve(self, end: int) -> None:
    """Ends the trials outside the kept fraction at this rung ``stopped``."""
    split, _, name = self.halving.metric.partition("/")
    last = self.last_eval if split == "eval" else self.last_train
    keep = self.halving.survivors([last[i].get(name) for i in self.active])
    self._end([p for p in range(len(self.active)) if p not in keep], "stopped", stopped_at=end)

  def _report(self) -> None:
    """The progress line, at most every ``trainer.progress_every_s`` seconds and once
    at the last step (a group's: trials training and the best train loss)."""
    now, step = time.monotonic(), self.step
    final = step >= self.tc.num_steps or not self.active
    if step == self._printed or not (final or now - self._last_print > self.tc.progress_every_s):
      return
    self._last_print, self._printed = now, step
    if not self.chief:
      return
    if self.alone:
      logging.info("%s", self.progress.line(step, self.last_train[0]))
      return
    losses = [self.last_train[i].get("loss") for i in self.active]
    losses = [v for v in losses if v is not None and math.isfinite(v)]
    logging.info("vmap: %d trial(s) training | %s", len(self.active),
                 self.progress.line(step, {"best loss": min(losses)} if losses else None))

  # -- checkpoints and endings ------------------------------------------------
  def _save(self, step: int, now: bool = False) -> None:
    """The saver's checkpoint of the stacked state; never a non-finite or taken one."""
    if not alive(self.state):
      logging.warning("Interrupted inside step %d; keeping the last checkpoint.", step)
    elif not bool(finite_rows(self.state.params).all()):
      logging.warning("Not checkpointing step %d: parameters are not finite.", step)
    elif now or self.saver.due(step):
      self.saver.save(step, self.state, self.active, now=now)

  def _end(self, positions: Sequence[int], status: str, error: Optional[str] = None,
           save: bool = True, **more) -> None:
    """Ends the active trials at ``positions``: final checkpoints (not of a diverged
    trial), summaries, curves; the others go on as a smaller stacked state."""
    if not positions:
      return
    trials = [self.active[p] for p in positions]
    if status in ("completed", "stopped") and self.step % self.tc.log_every_steps:
      self._write_open_windows(positions)
    everyone = list(positions) == list(range(len(self.active)))
    rows = None if not alive(self.state) else self.state if everyone else take(self.state, positions)
    finite = [] if rows is None else jax.device_get(finite_rows(rows.params))
    saving = [j for j, i in enumerate(trials) if rows is not None and i not in self.diverged
              and finite[j]]
    failed = None
    if save and saving:
      try:
        self.saver.save_trials([trials[j] for j in saving], self.step,
                               rows if len(saving) == len(trials) else take(rows, saving))
      except StorageError as e:
        failed, status, error = e, "failed", str(e)
    params = jax.device_get(rows.params) if rows is not None else None
    for j, i in enumerate(trials):
      self._summarize(i, None if params is None else jax.tree.map(lambda x: x[j], params),
                      status, error, **more)
    keep = [p for p in range(len(self.active)) if p not in set(positions)]
    self.records.keep(keep)
    self.active = [self.active[p] for p in keep]
    if keep:
      self.state, self.keys, self.hp = (take(x, keep) for x in (self.state, self.keys, self.hp))
    if failed is not None:
      raise failed

  def _summarize(self, i: int, params, status: str, error: Optional[str], **more) -> None:
    steps = self.step
    if i in self.diverged:
      steps, error, status = self.diverged[i][0], self._diverged_error(i), "diverged"
    if self.early[i] is not None:
      more["early_stop"] = self.early[i].summary(self.stopped_early.get(i))
    s = make_summary(self.task, self.configs[i], params, status=status, error=error, steps=steps,
                     resumed_from=self.start, wall_s=time.perf_counter() - self.t0,
                     last_train=self.last_train[i], last_eval=self.last_eval[i],
                     checkpoint_step=self.saver.kept(i), **self.fields, **more)
    self.summaries[i] = s
    if i in self.outs:
      self.outs.pop(i).close()
      write_summary(self.workdirs[i], s)
      if self.configs[i].trainer.get("plot", True):
        plot_loss_curve(self.task, self.workdirs[i])

  def _diverged_error(self, i: int) -> str:
    step, bad = self.diverged[i]
    kept = self.saver.kept(i)
    where = (f"the last good checkpoint (step {kept}) in {self.workdirs[i]}/checkpoints is "
             "intact and a re-run resumes from it" if kept is not None else
             "there is no checkpoint yet, so a re-run starts over")
    return (f"Non-finite training metrics at step {step}: {bad}. Training stopped; {where}. "
            "Lower --config.optimizer.lr or set --config.optimizer.clip_norm.")
