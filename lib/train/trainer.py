"""A single run of an experiment: the trainer every experiment shares (the loop core
is :mod:`lib.train.loop`, the state :mod:`lib.train.state`, the step
:mod:`lib.train.step`, the run's files :mod:`lib.train.summary`).

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

import os
import time
from typing import Optional

from absl import logging
import jax
import ml_collections

from lib.errors import ConfigError, NonFiniteError
from lib.runtime import durations, files, parallel, workdirs
from lib.train import checkpoint, optim
from lib.train.loop import Loop
from lib.train.state import init_state
from lib.train.step import task_step
from lib.train.stepping import Steps, row
from lib.train.summary import SUMMARY_FILE, check_same_run, read_summary, save_config
from lib.train.task import Task


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


class RunSaver:
  """A single run's checkpoints: ``<workdir>/checkpoints``, every
  ``trainer.checkpoint_every_steps`` and at the end, ``max_checkpoints`` kept
  (the :class:`lib.train.loop.Saver` of a trial axis of one)."""

  def __init__(self, workdir: str, tc: ml_collections.ConfigDict):
    self.ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                        tc.checkpoint_every_steps, tc.max_checkpoints)

  def due(self, step: int) -> bool:
    return self.ckpt.due(step)

  def save_steps(self, num_steps: int) -> range:
    return range(self.ckpt.every, num_steps, self.ckpt.every) if self.ckpt.every > 0 else range(0)

  def save(self, step: int, state, active, now: bool = False) -> None:
    self.ckpt.save(step, row(state, 0))

  def save_trials(self, trials, step: int, rows) -> None:
    self.ckpt.save(step, row(rows, 0))
    self.ckpt.wait()

  def kept(self, trial: int) -> Optional[int]:
    return self.ckpt.latest_step()

  def close(self) -> None:
    self.ckpt.close()


def _completed(workdir: str, latest_step: int, num_steps: int) -> Optional[dict]:
  """The summary of a run that already completed all its steps, else ``None``."""
  if latest_step < num_steps or not os.path.exists(os.path.join(workdir, SUMMARY_FILE)):
    return None
  summary = read_summary(workdir)
  done = summary.get("status") == "completed" and summary.get("steps") == latest_step
  return summary if done else None


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
  t0, tc = time.perf_counter(), config.trainer
  if tc.get("distributed"):  # before any JAX call (the entry point has done it already)
    parallel.check_distributed(tc)
    parallel.initialize_distributed(tc)
  optim.make_optimizer(config.optimizer, tc.num_steps)  # a bad value: refused, nothing written
  os.makedirs(workdir, exist_ok=True)
  lock = files.WorkdirLock(workdir) if jax.process_index() == 0 else None
  if lock:
    lock.acquire()
  try:
    summary = _fit(task, config, workdir, t0)
  finally:
    if lock:
      lock.release()
  if summary["status"] == "diverged":
    raise NonFiniteError(summary["error"])
  return summary


def _fit(task: Task, config: ml_collections.ConfigDict, workdir: str, t0: float) -> dict:
  tc, chief = config.trainer, jax.process_index() == 0
  saver = RunSaver(workdir, tc)
  try:
    latest = saver.ckpt.latest_step()
    if chief and latest is not None:  # a run to resume: it must be this config's
      check_same_run(config, workdir)
      done = _completed(workdir, latest, tc.num_steps)
      if done is not None:  # nothing to train, and nothing to write
        logging.info("%s: already completed (%d steps); nothing to train. A new --workdir "
                     "trains again; --config.trainer.resume_longer=True with more steps goes "
                     "on.", workdir, done["steps"])
        return done
    if chief:
      save_config(config, workdir)
    return _train(task, config, workdir, t0, saver, chief)
  finally:
    saver.close()


def _train(task: Task, config, workdir: str, t0: float, saver: RunSaver, chief: bool) -> dict:
  """The loop core on a trial axis of one, stepped without a trial axis inside."""
  state, tx, schedule, step_key = init_state(task, config)
  if saver.ckpt.latest_step() is not None:
    state = saver.ckpt.restore(state)
    logging.info("Resumed from %s at step %d.", saver.ckpt.directory, int(state.step))
  start, state = int(state.step), jax.tree.map(lambda x: x[None], state)
  dp = parallel.DataParallel() if config.trainer.get("data_parallel") else None
  if dp is not None:
    state = dp.replicate(state)
  step = task_step(task, tx, schedule, optim.scales_gradients(config.optimizer))
  steps = Steps(step, trials_per_block=None, hp=dict(task.hparams), scan=False,
                compiler_options=task.compiler_options, shard=dp and dp.shard,
                max_chunk=2 ** 31)
  loop = Loop(task, config.trainer, [workdir], [config], state, step_key[None], {},
              steps=steps, saver=saver, start=start, alone=True, chief=chief, t0=t0,
              summary_fields=dict(processes=jax.process_count(), devices=jax.device_count()))
  return loop.run()[0]
