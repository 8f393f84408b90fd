"""The one training loop every experiment shares (the state is :mod:`lib.train.state`,
the step :mod:`lib.train.step`, the run's files :mod:`lib.train.summary`).

An experiment describes itself as a :class:`Task` (pure functions plus a
step-indexed batch source) and calls :func:`fit`. The loop gives it, for
free: a jitted ``train_step(state, batch, rng, hp)``, optax optimizers from config,
metrics as JSON lines and TensorBoard events, a progress line with rate and
ETA, periodic evaluation, orbax checkpoints with automatic resume, a NaN/Inf
guard, ``config.json`` and ``summary.json`` in the workdir, and a loss-curve PNG.

Reproducibility: the step-``s`` PRNG key is ``fold_in(key, s)`` and batches
are a function of ``s``, so a resumed run repeats an uninterrupted one exactly.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lib import metrics as metrics_lib
from lib.errors import ConfigError, NonFiniteError, Preempted, StorageError
from lib.runtime import durations, files, parallel, plotting, workdirs, writers
from lib.runtime.progress import Progress
from lib.train import checkpoint, early_stopping, optim
from lib.train.state import init_state
from lib.train.step import task_step
from lib.train.summary import (SUMMARY_FILE, check_same_run, make_summary, read_summary,
                                save_config, write_summary)
from lib.train.task import Task, evaluate


def default_config(**overrides) -> ml_collections.ConfigDict:
  """Every trainer field. Durations (:mod:`lib.runtime.durations`) take any unit:
  ``default_config(num_epochs=10, eval_every_epochs=1)``."""
  c = ml_collections.ConfigDict(durations.fields(dict(
      num=("steps", 1000),
      log_every=("steps", 10),        # one train record (window mean of sums/counts) per
      eval_every=("steps", 100),      # 0 = only at the end
      checkpoint_every=("steps", 500),  # 0 = only at the end
  ), overrides))
  c.update(dict(
      max_checkpoints=3,
      resume_longer=False,   # a resume may change the run length (the schedule follows it)
      flush_every=50,        # records fetched from the device in one transfer
      progress_every_s=5.0,  # at most one progress line this often
      tensorboard=True,
      plot=True,
      early_stop_metric="",    # an evaluation metric (lib.train.early_stopping); '' = off
      early_stop_mode="max",   # 'max' (chrF, accuracy) or 'min' (loss)
      early_stop_patience=0,   # evaluations without improvement before stopping; 0 = off
      early_stop_min_delta=0.0,
      data_parallel=False,   # split batches over every device ('data' mesh axis), see lib.runtime.parallel
      distributed=False,     # jax.distributed.initialize() first (multi-host: SLURM, TPU pods)
      coordinator_address="",  # distributed without SLURM/TPU detection: host:port of process 0,
      num_processes=1,         # the number of processes,
      process_id=0,            # and this process's index
  ))
  durations.set_fields(c, overrides, "trainer")
  return c


def _all_finite(tree) -> bool:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return bool(jnp.all(jnp.stack(leaves))) if leaves else True


class _Run:
  """One invocation of :func:`fit`; split in short methods, state on ``self``."""

  def __init__(self, task: Task, config: ml_collections.ConfigDict, workdir: str):
    self.task, self.config, self.workdir = task, config, workdir
    self.tc = config.trainer
    if self.tc.get("distributed"):  # before any JAX call (the entry point has done it already)
      parallel.check_distributed(self.tc)
      parallel.initialize_distributed(self.tc)
    self.is_chief = jax.process_index() == 0
    optim.make_optimizer(config.optimizer, self.tc.num_steps)  # a bad value: refused, nothing written
    os.makedirs(workdir, exist_ok=True)
    self.lock = files.WorkdirLock(workdir) if self.is_chief else None
    if self.lock:
      self.lock.acquire()
    try:
      self._open(task, config, workdir)
    except BaseException:
      self.release()
      raise

  def release(self) -> None:
    if self.lock:
      self.lock.release()
      self.lock = None

  def _open(self, task: Task, config: ml_collections.ConfigDict, workdir: str) -> None:
    self.ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                        self.tc.checkpoint_every_steps, self.tc.max_checkpoints)
    self.done = None
    if self.is_chief:
      if self.ckpt.latest_step() is not None:  # a run to resume: it must be this config's
        check_same_run(config, workdir)
        self.done = _completed(workdir, self.ckpt.latest_step(), self.tc.num_steps)
        if self.done is not None:  # nothing to train, and nothing to write
          return
      save_config(config, workdir)
    self.state, tx, self.schedule, self.step_key = init_state(task, config)
    self.dp = parallel.DataParallel() if self.tc.get("data_parallel") else None
    if self.ckpt.latest_step() is not None:
      self.state = self.ckpt.restore(self.state)
      logging.info("Resumed from %s at step %d.", self.ckpt.directory, int(self.state.step))
    if self.dp is not None:
      self.state = self.dp.replicate(self.state)
    self.start_step = self.step = int(self.state.step)
    self._open_early_stopping(workdir)
    self.writer = writers.MetricWriter(workdir, self.start_step, self.tc.tensorboard) \
        if self.is_chief else None
    train_step = task_step(task, tx, self.schedule, optim.scales_gradients(config.optimizer))
    hp = dict(task.hparams)
    # The step's key is folded in under jit: no extra host dispatch per step.
    self.train_step = jax.jit(
        lambda state, batch, key: train_step(state, batch, jax.random.fold_in(key, state.step),
                                             hp), donate_argnums=0,
        compiler_options=dict(task.compiler_options) or None)
    self.progress = None
    self.outcome: Optional[tuple[str, Optional[str]]] = None  # set when the run stops early
    self.stops: Optional[StopRequests] = None  # Ctrl-C / SIGTERM, taken between steps
    self.pending: list[tuple[int, dict]] = []
    self.last_train: dict[str, float] = {}
    self.last_eval: dict[str, float] = {}
    self._last_print = -float("inf")
    self._printed_step = self._evaluated_step = -1

  def _open_early_stopping(self, workdir: str) -> None:
    """The tracker (rebuilt from the kept evaluations on a resume) and ``best/``."""
    self.early = early_stopping.from_config(self.tc)
    self.best_ckpt = self.stopped_at = None
    if self.early is None:
      return
    self.best_ckpt = checkpoint.Checkpointer(os.path.join(workdir, early_stopping.BEST_DIR),
                                             every=0, max_to_keep=1)
    if self.start_step and os.path.exists(os.path.join(workdir, writers.METRICS_FILE)):
      self.early.replay(r for r in writers.read_records(workdir, "eval")
                        if r["step"] <= self.start_step)
      if self.early.done:
        self.stopped_at = self.start_step

  def finished(self) -> bool:
    """Trained to the end, or stopped early (an early-stopped run re-entered stays stopped)."""
    return self.start_step >= self.tc.num_steps or self.stopped_at is not None

  # -- the loop ---------------------------------------------------------------
  def loop(self) -> None:
    total = self.tc.num_steps
    self.progress = Progress(total, self.start_step, *self.task.rate_unit)
    window = None
    for step in range(self.start_step, total):
      batch = self.task.train_batch(step)
      if self.dp is not None:
        batch = self.dp.shard(batch)
      self.state, m = self.train_step(self.state, batch, self.step_key)
      self.step = step + 1
      window = m if window is None else metrics_lib.merge(window, m)
      last = self.step == total
      if self.step % self.tc.log_every_steps == 0 or last:
        self.pending.append((self.step, window))
        window = None
      eval_due = self.tc.eval_every_steps and self.step % self.tc.eval_every_steps == 0
      ckpt_due = self.ckpt.due(self.step)
      if (len(self.pending) >= self.tc.flush_every or eval_due or ckpt_due or last
          or time.monotonic() - self._last_print > self.tc.progress_every_s):
        self.flush()
      if eval_due and not last:
        self.evaluate()
        if self.early is not None and self.early.done:
          self._stop_early(window)
          return
      if ckpt_due and not last:
        self.save()
      if self.stops is not None:
        self.stops.check()  # state, step and records agree here

  def _stop_early(self, window) -> None:
    self.stopped_at = self.step
    logging.info("Early stop at step %d: best %s=%.4g at step %d.", self.step, self.early.metric,
                 self.early.best_value, self.early.best_step)
    if window is not None:  # the steps since the last record: one record at the stop
      self.pending.append((self.step, window))
    self.flush()

  def flush(self) -> None:
    """Fetches queued records in one transfer, writes them, stops on NaN/Inf; prints
    the progress line when due (also between records, e.g. with one record an epoch)."""
    if self.pending:
      self._write_pending()
    now = time.monotonic()
    final = ((self.step == self.tc.num_steps or self.stopped_at == self.step)
             and self._printed_step != self.step)
    due = (now - self._last_print > self.tc.progress_every_s and self._printed_step != self.step
           ) or final
    if due and self.progress is not None and self.is_chief:
      self._last_print, self._printed_step = now, self.step
      logging.info("%s", self.progress.line(self.step, self.last_train))

  def _write_pending(self) -> None:
    fetched = jax.device_get(self.pending)
    with files.signals_held():  # taken off the queue and written as one: no record lost or doubled
      self.pending = []
      self._write_fetched(fetched)

  def _write_fetched(self, fetched) -> None:
    for step, m in fetched:
      values = metrics_lib.to_floats(m)
      if self.writer:
        self.writer.write(step, "train", values)
      self.last_train = values
      bad = {k: v for k, v in values.items() if not np.isfinite(v)}
      if bad:
        if self.writer:
          self.writer.flush()
        self.step = step  # what the summary reports: where it diverged
        kept = self.ckpt.latest_step()
        where = (f"the last good checkpoint (step {kept}) in {self.ckpt.directory} is intact "
                 "and a re-run resumes from it" if kept is not None else
                 "there is no checkpoint yet, so a re-run starts over")
        raise NonFiniteError(
            f"Non-finite training metrics at step {step}: {bad}. Training stopped; {where}. "
            "Lower --config.optimizer.lr or set --config.optimizer.clip_norm.")
    if self.writer:
      self.writer.flush()

  def evaluate(self) -> None:
    if not self.task.evaluators or self._evaluated_step == self.step:
      return
    values = metrics_lib.to_floats(evaluate(self.task.evaluators, self.state.params))
    self.last_eval, self._evaluated_step = values, self.step
    if self.writer:
      self.writer.write(self.step, "eval", values)
      self.writer.flush()
    logging.info("eval @ %d: %s", self.step,
                 " ".join(f"{k}={v:.4g}" for k, v in values.items()))
    if self.early is not None and self.early.update(self.step, values) and self.is_chief:
      self.best_ckpt.save(self.step, self.state)

  def recover_final(self) -> None:
    """The final train and eval values of a run that had finished training (its
    final evaluation is written before its final checkpoint): read back, not redone."""
    if not self.is_chief or not os.path.exists(os.path.join(self.workdir, writers.METRICS_FILE)):
      return
    for r in writers.read_records(self.workdir):
      if r["step"] == self.step and r["split"] in ("train", "eval"):
        if r["split"] == "train":
          self.last_train = writers.values(r)
        else:
          self.last_eval = writers.values(r)

  def state_alive(self) -> bool:
    """False when an interruption landed inside a step that had already taken
    (donated) the state's buffers: then there is nothing new to save."""
    return not any(getattr(x, "is_deleted", lambda: False)() for x in jax.tree.leaves(self.state))

  def save(self) -> None:
    """Checkpoints the current state, never a non-finite one."""
    if not self.state_alive():
      logging.warning("Interrupted inside step %d; keeping checkpoint %s.", self.step,
                      self.ckpt.latest_step())
      return
    if not _all_finite(self.state.params):
      logging.warning("Not checkpointing step %d: parameters are not finite.", self.step)
      return
    self.ckpt.save(self.step, self.state)

  # -- the end ------------------------------------------------------------------
  def finish(self, status: str, error: Optional[str], wall_s: float) -> dict:
    failed = None
    try:
      try:
        self.ckpt.close()
        if self.best_ckpt is not None:
          self.best_ckpt.close()
      except StorageError as e:
        status, error, failed = "failed", str(e), e
      more = {} if self.early is None else {"early_stop": self.early.summary(self.stopped_at)}
      summary = make_summary(self.task, self.config, self.state.params, status=status,
                             error=error, steps=self.step, resumed_from=self.start_step,
                             wall_s=wall_s, last_train=self.last_train, last_eval=self.last_eval,
                             checkpoint_step=self.ckpt.latest_step(),
                             processes=jax.process_count(), devices=jax.device_count(), **more)
      if self.writer:
        self.writer.close()
        write_summary(self.workdir, summary)
        if self.tc.plot:
          self.plot()
      if failed is not None:
        raise failed
      return summary
    finally:
      self.release()

  def plot(self) -> None:
    plot_loss_curve(self.task, self.workdir)


def plot_loss_curve(task: Task, workdir: str) -> None:
  """``<workdir>/loss_curve.png``: the run's train ``task.curve_metric`` by step."""
  xs, ys = writers.series(writers.read_records(workdir, "train"), task.curve_metric)
  if xs:
    plotting.plot_curves({task.name: (xs, ys)}, os.path.join(workdir, "loss_curve.png"),
                         title=f"{task.name}: train {task.curve_metric}",
                         ylabel=task.curve_metric, logy=min(ys) > 0)


@contextlib.contextmanager
def sigterm_as_interrupt():
  """Inside the block, SIGTERM raises :class:`Preempted` (main thread only), so a
  scheduler's preemption unwinds like Ctrl-C: save, then stop."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def handler(signum, frame):
    raise Preempted(f"signal {signum}")

  old = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, old)


class StopRequests:
  """Ctrl-C and SIGTERM during training, taken at a safe point: the first one is
  noted and :meth:`check` (called between steps, where the state, the step count
  and the queued records agree) raises it; a second one raises at once. Main
  thread only; elsewhere the signals keep their handlers."""

  def __init__(self):
    self.signum: Optional[int] = None
    self._old: dict = {}

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      self._old = {s: signal.signal(s, self._note) for s in (signal.SIGINT, signal.SIGTERM)}
    return self

  def __exit__(self, *exc) -> None:
    for s, h in self._old.items():
      signal.signal(s, h)

  def _note(self, signum, frame) -> None:
    if self.signum is not None:  # asked twice: stop now
      self._raise(signum)
    self.signum = signum

  def check(self) -> None:
    if self.signum is not None:
      self._raise(self.signum)

  @staticmethod
  def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
      raise Preempted(f"signal {signum}")
    raise KeyboardInterrupt


def _completed(workdir: str, latest_step: int, num_steps: int) -> Optional[dict]:
  """The summary of a run that already completed all its steps, else ``None``."""
  if latest_step < num_steps or not os.path.exists(os.path.join(workdir, SUMMARY_FILE)):
    return None
  summary = read_summary(workdir)
  done = summary.get("status") == "completed" and summary.get("steps") == latest_step
  return summary if done else None


def _run_to_end(run: _Run) -> tuple[str, Optional[str]]:
  """Trains to ``num_steps`` (or recovers a finished run); on an exception, records
  its status and error on ``run.outcome`` for the summary, then re-raises."""
  try:
    if not run.finished():
      run.loop()
      run.flush()
      run.evaluate()
      run.save()
    else:  # re-entered after its final checkpoint: the last records are on disk
      run.recover_final()
    return "completed", None
  except NonFiniteError as e:
    run.outcome = ("diverged", str(e))
    raise
  except StorageError as e:
    run.outcome = ("failed", str(e))
    raise
  except BaseException as e:  # interrupted, or an error: keep what was done, then re-raise
    status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
    run.outcome = (status, f"{type(e).__name__}: {e}")
    try:
      with files.signals_held():  # a second Ctrl-C or SIGTERM waits for this save
        run.flush()
        run.save()
    except NonFiniteError as nan:
      run.outcome = ("diverged", str(nan))
    raise


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``task`` as ``config`` says, resuming from ``workdir`` if it holds checkpoints.

  ``config`` needs ``seed``, ``optimizer`` (see :func:`lib.train.optim.default_config`)
  and ``trainer`` (see :func:`default_config`). Returns the summary written to
  ``<workdir>/summary.json``. Raises :class:`NonFiniteError` on NaN/Inf (the
  summary says ``diverged``), :class:`~lib.errors.StorageError` when a
  checkpoint cannot be written (``failed``), :class:`~lib.errors.ConfigChanged`
  and :class:`~lib.runtime.files.WorkdirBusy` before touching a workdir that holds
  another config's run or a live run, and re-raises interruptions after checkpointing.
  """
  if workdirs.is_remote(workdir):
    raise ConfigError(f"workdir {workdir!r} is a URI: train in a local folder mirrored to it, "
                      "`with lib.runtime.workdirs.staged(workdir) as local:` (entry points do).")
  t0 = time.perf_counter()
  run = _Run(task, config, workdir)
  if run.done is not None:
    run.release()
    logging.info("%s: already completed (%d steps); nothing to train. A new --workdir trains "
                 "again; --config.trainer.resume_longer=True with more steps goes on.", workdir,
                 run.done["steps"])
    return run.done
  outcome = ("interrupted", "stopped before its first step")
  try:
    with StopRequests() as run.stops:
      outcome = _run_to_end(run)
  finally:
    with files.signals_held():  # the summary is written whatever arrives now
      status, error = run.outcome or outcome
      summary = run.finish(status, error, time.perf_counter() - t0)
  return summary
