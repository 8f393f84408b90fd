"""The ``ray`` backend of ``launch/sweep``: each planned trial is a Ray Tune trial.

The search space is the sweep's own plan (a ``tune.grid_search`` over its trial
indices), so Tune runs exactly the trials the other backends run. A Tune trial
runs the trial's command (``python -m experiments.<name>.main ...``) as a
subprocess, as the local backend does, and reports each new record of its
``metrics.jsonl`` (``step`` and the latest ``train/*`` and ``eval/*`` values) to
Tune, so a scheduler can stop it: ``asha`` (``ASHAScheduler``) or ``median``
(``MedianStoppingRule``), on ``--metric`` / ``--mode`` with ``step`` as time.
A stopped trial gets SIGTERM, saves its checkpoint and is recorded ``stopped``.

Without an address Ray starts a local instance bound to 127.0.0.1, without a
dashboard. The Tune experiment lives in ``<out>/tune``; a rerun of the same plan
restores it (``Tuner.restore``: unfinished and failed trials go on, each from
its own last checkpoint). Every node must see this repository and the sweep
folder at the same paths (a shared file system), as is usual on a SLURM cluster.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from typing import Optional, Sequence

from lib.runtime import files, process, writers

SCHEDULERS = ("fifo", "asha", "median")
TUNE_DIR = "tune"


def scheduler_of(name: str, metric: str, mode: str, grace_steps: int, reduction: float):
  """The Tune scheduler called ``name`` (None for ``fifo``), with ``step`` as time."""
  from ray.tune import schedulers
  if name == "fifo":
    return None
  if name == "asha":
    return schedulers.ASHAScheduler(time_attr="step", metric=metric, mode=mode,
                                    max_t=2 ** 31 - 1, grace_period=grace_steps,
                                    reduction_factor=reduction)
  if name == "median":
    return schedulers.MedianStoppingRule(time_attr="step", metric=metric, mode=mode,
                                         grace_period=grace_steps)
  raise ValueError(f"Unknown scheduler {name!r}; expected one of {SCHEDULERS}.")


class TrialRun:
  """One planned trial as a Tune ``Trainable``: ``setup`` starts its command,
  each ``step`` returns its next record (``step`` plus the latest value of every
  metric), ``cleanup`` (also when a scheduler stops the trial) sends SIGTERM to a
  run still going, which saves its checkpoint and summary before it exits."""

  @staticmethod
  def make(config_spec: str, trials: Sequence, metric: str, timeout_s: Optional[float],
           gpu_share: float = 0):
    from ray import tune

    class Run(tune.Trainable):
      def setup(self, params):
        self.impl = TrialRun(config_spec, trials[params["trial"]], metric, timeout_s, gpu_share)

      def step(self):
        return self.impl.next_result()

      def save_checkpoint(self, checkpoint_dir):  # the run checkpoints in its own workdir
        return None

      def load_checkpoint(self, checkpoint):
        pass

      def cleanup(self):
        self.impl.stop()
    return Run

  def __init__(self, config_spec: str, trial, metric: str, timeout_s: Optional[float],
               gpu_share: float = 0):
    from launch import device_pool, trials as trials_lib
    self.trial, self.metric, self.timeout_s = trial, metric, timeout_s
    self.seen, self.last, self.queue, self.proc = 0, {}, [], None
    self.t0 = time.perf_counter()
    if trials_lib.is_done(trial):  # finished before this Tune experiment: report what it got
      return
    trials_lib.start(trial)
    os.makedirs(trial.workdir, exist_ok=True)
    env = {**os.environ, process.STOP_WITH_PARENT: str(os.getpid())}
    if 0 < gpu_share < 1:  # Ray puts several trials on one GPU: each takes its share of memory
      env.update(device_pool.memory_env(gpu_share))
    with open(os.path.join(trial.workdir, "stdout.log"), "w") as out, \
         open(os.path.join(trial.workdir, "stderr.log"), "w") as err:
      self.proc = subprocess.Popen(trials_lib.command(config_spec, trial), cwd=trials_lib.REPO,
                                   env=env, stdout=out, stderr=err, start_new_session=True)

  def _read(self) -> None:
    path = os.path.join(self.trial.workdir, writers.METRICS_FILE)
    if not os.path.exists(path):
      return
    records = writers.read_records(path)
    for r in records[self.seen:]:
      self.last.update({f"{r['split']}/{k}": v for k, v in r.items()
                        if k not in ("step", "split", "time")})
      if self.metric in self.last:  # a scheduler refuses results without its metric
        self.queue.append({"step": int(r["step"]), **self.last})
    self.seen = len(records)

  def next_result(self) -> dict:
    """The next record's result (blocking until there is one), or the final one."""
    while not self.queue:
      running = self.proc is not None and self.proc.poll() is None
      if running and self.timeout_s and time.perf_counter() - self.t0 > self.timeout_s:
        self.proc.kill()
      self._read()
      if not running and not self.queue:
        return self._end()
      if not self.queue:
        time.sleep(0.2)
    return self.queue.pop(0)

  def _end(self) -> dict:
    from launch import trials as trials_lib
    if self.proc is not None:
      rc = self.proc.returncode
      with open(os.path.join(self.trial.workdir, "stderr.log")) as f:
        error = trials_lib.error_tail(f.read()) if rc else None
      rec = trials_lib.finish(self.trial, {"rc": rc, "error": error,
                                           "wall_s": round(time.perf_counter() - self.t0, 2)})
      if rec["status"] == "failed":
        raise RuntimeError(rec["error"])
    return {"step": int(self.last.get("step", 0)), **self.last, "done": True}

  def stop(self) -> None:
    if self.proc is not None and self.proc.poll() is None:  # stopped by the scheduler
      self.proc.send_signal(signal.SIGTERM)
      self.proc.wait(timeout=120)


def run(config_spec: str, trials: Sequence, out: str, *, metric: str, mode: str,
        scheduler: str = "fifo", grace_steps: int = 1, reduction: float = 2.0,
        address: str = "", cpus_per_trial: float = 1, gpus_per_trial: float = 0,
        timeout_s: Optional[float] = None, num_cpus: Optional[int] = None) -> dict[int, dict]:
  """Runs the trials that are not finished as Tune trials; returns their records."""
  import ray
  from ray import tune
  from launch import trials as trials_lib
  if all(trials_lib.is_done(t) for t in trials):
    return {}
  path, sep, variant = config_spec.partition(":")  # Tune runs trials in folders of its own
  config_spec = os.path.abspath(path) + sep + variant
  started_here = not ray.is_initialized()
  if started_here:
    # Workers import this module to run the trials: put the repository on their path.
    path = os.pathsep.join(p for p in (trials_lib.REPO, os.environ.get("PYTHONPATH", "")) if p)
    local = {} if address else {"num_cpus": num_cpus, "_node_ip_address": "127.0.0.1"}
    ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
             configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": path}}, **local)
  try:
    fn = tune.with_resources(TrialRun.make(config_spec, list(trials), metric, timeout_s,
                                           gpus_per_trial),
                             {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    _tuner(fn, trials, out, scheduler_of(scheduler, metric, mode, grace_steps, reduction)).fit()
  finally:
    if started_here:
      ray.shutdown()
  return {t.index: _settle(t, scheduler) for t in trials}


def _tuner(fn, trials: Sequence, out: str, sched):
  """A new Tune experiment in ``<out>/tune``, or the one there when it ran this plan."""
  from ray import tune
  path = os.path.join(os.path.abspath(out), TUNE_DIR)
  plan = [{"dir": t.workdir, "overrides": t.overrides, "set": t.common} for t in trials]
  plan = json.loads(json.dumps(plan, default=str))
  plan_file = os.path.join(os.path.abspath(out), "tune-plan.json")
  if files.read_json(plan_file) == plan and tune.Tuner.can_restore(path):
    return tune.Tuner.restore(path, fn, resume_unfinished=True, restart_errored=True)
  shutil.rmtree(path, ignore_errors=True)
  files.atomic_write_json(plan_file, plan)
  return tune.Tuner(
      fn, param_space={"trial": tune.grid_search([t.index for t in trials])},
      # The scheduler holds metric and mode.
      tune_config=tune.TuneConfig(scheduler=sched),
      run_config=tune.RunConfig(name=TUNE_DIR, storage_path=os.path.dirname(path), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=0)))


def _settle(t, scheduler: str) -> dict:
  """A trial's record once Tune is done: one the scheduler stopped (its run saved on
  SIGTERM and says 'interrupted') is ``stopped``, and so says its summary."""
  from launch import trials as trials_lib
  files.WorkdirLock(t.workdir).wait_released(120)  # a stopped run may still be saving
  rec = files.read_json(os.path.join(t.workdir, trials_lib.TRIAL_FILE)) or {}
  s = files.read_json(os.path.join(t.workdir, "summary.json")) or {}
  if rec.get("status") not in ("running", "interrupted"):
    return rec
  if s.get("status") == "interrupted":
    files.atomic_write_json(os.path.join(t.workdir, "summary.json"), {
        **s, "status": "stopped", "stopped_at": s["steps"], "stopped_by": scheduler}, indent=2)
    return trials_lib.record(t, status="stopped", error=None)
  if s.get("status") == "completed":  # it ended as Tune stopped it
    return trials_lib.record(t, status="completed", error=None)
  return rec
