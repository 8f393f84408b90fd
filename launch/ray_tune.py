"""The ``ray`` backend of ``launch/sweep``: each planned trial is a Ray Tune trial.

The search space is the sweep's own plan (a ``tune.grid_search`` over its trial
indices), so Tune runs exactly the trials the other backends run. A Tune trial
runs the trial's command (``python -m experiments.<name>.main ...``) as a
subprocess, as the local backend does, and reports each new record of its
``metrics.jsonl`` (``step`` and the latest ``train/*`` and ``eval/*`` values) to
Tune, so a scheduler can stop it: ``asha`` (``ASHAScheduler``) or ``median``
(``MedianStoppingRule``), on ``--metric`` / ``--mode`` with ``step`` as time.
A stopped trial gets SIGTERM, saves its checkpoint and is recorded ``stopped``.

With ``unit='group'`` a Tune trial is one of the vmap backend's groups instead
(the trials that differ only in tunable keys: one program, ``--halving`` inside
it): ``python -m launch.ray_tune --sweep_dir=<out> --group=<g>`` runs it as
``--backend=vmap`` would, and each report is the group's best value of
``--metric`` at a step all its running trials have reached, so a scheduler
compares groups by their best trial. A stopped group takes the SIGTERM at its
next chunk end, where its running trials save and are recorded ``stopped``.

Without an address Ray starts a local instance bound to 127.0.0.1, without a
dashboard. The Tune experiment lives in ``<out>/tune``; a rerun of the same plan
restores it (``Tuner.restore``: unfinished and failed trials go on, each from
its own last checkpoint). Every node must see this repository and the sweep
folder at the same paths (a shared file system), as is usual on a SLURM cluster.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional, Sequence

from lib.runtime import files, process, writers

SCHEDULERS = ("fifo", "asha", "median")
UNITS = ("trial", "group")  # what one Tune trial runs
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


def _trainable(make_impl):
  """A Tune ``Trainable`` class whose ``setup(params)`` builds ``make_impl(params)`` (a
  :class:`_Watched`): each ``step`` returns its next result, ``cleanup`` (also when
  a scheduler stops the trial) stops its process, which saves before it exits."""
  from ray import tune

  class Run(tune.Trainable):
    def setup(self, params):
      self.impl = make_impl(params)

    def step(self):
      return self.impl.next_result()

    def save_checkpoint(self, checkpoint_dir):  # the runs checkpoint in their own workdirs
      return None

    def load_checkpoint(self, checkpoint):
      pass

    def cleanup(self):
      self.impl.stop()
  return Run


class _Watched:
  """A subprocess that reports through ``metrics.jsonl`` files: :meth:`next_result`
  blocks until :meth:`_read` queues a result, or returns :meth:`_end`'s when the
  process has exited."""
  stop_wait_s = 120  # a trial saves on SIGTERM within this

  def __init__(self, metric: str, timeout_s: Optional[float]):
    self.metric, self.timeout_s = metric, timeout_s
    self.queue, self.proc = [], None
    self.t0 = time.perf_counter()

  def _spawn(self, cmd: list[str], log_dir: str, gpu_share: float) -> None:
    from launch import device_pool
    env = {**os.environ, process.STOP_WITH_PARENT: str(os.getpid())}
    if 0 < gpu_share < 1:  # Ray puts several trials on one GPU: each takes its share of memory
      env.update(device_pool.memory_env(gpu_share))
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "stdout.log"), "w") as out, \
         open(os.path.join(log_dir, "stderr.log"), "w") as err:
      from launch import trials as trials_lib
      self.proc = subprocess.Popen(cmd, cwd=trials_lib.REPO, env=env, stdout=out, stderr=err,
                                   start_new_session=True)

  def next_result(self) -> dict:
    """The next record's result (blocking until there is one), or the final one."""
    while not self.queue:
      running = self.proc is not None and self.proc.poll() is None
      if running and self.timeout_s and time.perf_counter() - self.t0 > self.timeout_s:
        self.proc.kill()
      self._read(final=not running)
      if not running and not self.queue:
        return self._end()
      if not self.queue:
        time.sleep(0.2)
    return self.queue.pop(0)

  def stop(self) -> None:
    if self.proc is not None and self.proc.poll() is None:  # stopped by the scheduler
      self.proc.send_signal(signal.SIGTERM)
      self.proc.wait(timeout=self.stop_wait_s)

  def _read(self, final: bool) -> None:
    raise NotImplementedError

  def _end(self) -> dict:
    raise NotImplementedError


def _new_records(path: str, seen: int) -> tuple[list[dict], int]:
  """The records of ``path`` past the first ``seen`` (none while it is absent or
  while its last line is being written), and how many there are now."""
  if not os.path.exists(path):
    return [], seen
  try:
    records = writers.read_records(path)
  except Exception:  # noqa: BLE001  a line half written: read it on the next poll
    return [], seen
  return records[seen:], len(records)


class TrialRun(_Watched):
  """One planned trial: its command (``python -m experiments.<name>.main ...``); each
  result is its next record (``step`` plus the latest value of every metric)."""

  @staticmethod
  def make(config_spec: str, trials: Sequence, metric: str, timeout_s: Optional[float],
           gpu_share: float = 0):
    return _trainable(lambda params: TrialRun(config_spec, trials[params["trial"]], metric,
                                              timeout_s, gpu_share))

  def __init__(self, config_spec: str, trial, metric: str, timeout_s: Optional[float],
               gpu_share: float = 0):
    from launch import trials as trials_lib
    super().__init__(metric, timeout_s)
    self.trial, self.seen, self.last = trial, 0, {}
    if trials_lib.is_done(trial):  # finished before this Tune experiment: report what it got
      return
    trials_lib.start(trial)
    self._spawn(trials_lib.command(config_spec, trial), trial.workdir, gpu_share)

  def _read(self, final: bool) -> None:
    new, self.seen = _new_records(os.path.join(self.trial.workdir, writers.METRICS_FILE),
                                  self.seen)
    for r in new:
      self.last.update({f"{r['split']}/{k}": v for k, v in writers.values(r).items()})
      if self.metric in self.last:  # a scheduler refuses results without its metric
        self.queue.append({"step": int(r["step"]), **self.last})

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


class GroupRun(_Watched):
  """One vmapped group of a planned sweep (``python -m launch.ray_tune --sweep_dir=...
  --group=g``). A result is the best of its trials' latest ``metric`` values at a
  step every trial still training has written (``trials``: how many have the
  metric; ``best_trial``: which one is best)."""
  stop_wait_s = 900  # the group takes the SIGTERM at its next chunk end

  @staticmethod
  def make(out: str, groups: Sequence[Sequence], metric: str, mode: str,
           timeout_s: Optional[float], gpu_share: float = 0):
    return _trainable(lambda params: GroupRun(out, params["group"], groups[params["group"]],
                                              metric, mode, timeout_s, gpu_share))

  def __init__(self, out: str, group: int, trials: Sequence, metric: str, mode: str,
               timeout_s: Optional[float], gpu_share: float = 0):
    from launch import trials as trials_lib
    super().__init__(metric, timeout_s)
    self.trials, self.mode, self.log_dir = list(trials), mode, os.path.join(out, f"group-{group}")
    n = len(self.trials)
    self.seen, self.latest, self.values = [0] * n, [-1] * n, [{} for _ in range(n)]
    self.pending: list[tuple[int, int, dict]] = []  # (step, trial, record), not reported yet
    self.reported, self.last, self.diverged = -1, {}, set()
    if all(trials_lib.is_done(t) for t in self.trials):
      return
    self._spawn([sys.executable, "-m", "launch.ray_tune", f"--sweep_dir={out}",
                 f"--group={group}"], self.log_dir, gpu_share)

  def _training(self, i: int) -> bool:
    """Whether trial ``i`` may still write records (not ended, not diverged)."""
    if i in self.diverged:
      return False
    s = files.read_json(os.path.join(self.trials[i].workdir, "summary.json")) or {}
    return s.get("status") not in ("completed", "stopped", "diverged")

  def _read(self, final: bool) -> None:
    for i, t in enumerate(self.trials):
      new, self.seen[i] = _new_records(os.path.join(t.workdir, writers.METRICS_FILE),
                                       self.seen[i])
      self.pending += [(int(r["step"]), i, r) for r in new]
      self.latest[i] = max([self.latest[i]] + [int(r["step"]) for r in new])
      if any(not math.isfinite(v) for r in new if r["split"] == "train"
             for v in writers.values(r).values()):
        self.diverged.add(i)  # its last record: the group writes no more for it
    closed = math.inf if final else min(
        [self.latest[i] for i in range(len(self.trials)) if self._training(i)], default=math.inf)
    self.pending.sort(key=lambda x: (x[0], x[1]))
    while self.pending and self.pending[0][0] <= closed:
      step = self.pending[0][0]
      while self.pending and self.pending[0][0] == step:
        _, i, r = self.pending.pop(0)
        self.values[i][r["split"]] = writers.values(r)
      if step > self.reported:
        self._report(step)

  def _report(self, step: int) -> None:
    split, _, name = self.metric.partition("/")
    scored = [(v[split][name], i) for i, v in enumerate(self.values)
              if name in v.get(split, {}) and math.isfinite(v[split][name])]
    if scored:  # a scheduler refuses results without its metric
      value, best = (min if self.mode == "min" else max)(scored)
      self.last = {"step": step, self.metric: value, "trials": len(scored),
                   "best_trial": os.path.basename(self.trials[best].workdir)}
      self.queue.append(dict(self.last))
      self.reported = step

  def _end(self) -> dict:
    from launch import trials as trials_lib
    if self.proc is not None and self.proc.returncode:
      with open(os.path.join(self.log_dir, "stderr.log")) as f:
        raise RuntimeError(trials_lib.error_tail(f.read()))
    return {"step": max(self.reported, 0), **self.last, "done": True}


def run(config_spec: str, trials: Sequence, out: str, *, metric: str, mode: str,
        scheduler: str = "fifo", grace_steps: int = 1, reduction: float = 2.0,
        address: str = "", cpus_per_trial: float = 1, gpus_per_trial: float = 0,
        timeout_s: Optional[float] = None, num_cpus: Optional[int] = None,
        unit: str = "trial") -> dict[int, dict]:
  """Runs the trials that are not finished as Tune trials (``unit='trial'``), or the
  vmap backend's groups that hold one (``'group'``; the plan in ``<out>/sweep.json``);
  returns the trials' records."""
  import ray
  from ray import tune
  from launch import trials as trials_lib
  if unit not in UNITS:
    raise ValueError(f"Unknown unit {unit!r}; expected one of {UNITS}.")
  out = os.path.abspath(out)
  if unit == "group":
    units = _groups(config_spec, trials, out)
  else:
    units = [] if all(trials_lib.is_done(t) for t in trials) else [[t] for t in trials]
  if not units:
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
    make = (GroupRun.make(out, units, metric, mode, timeout_s, gpus_per_trial) if unit == "group"
            else TrialRun.make(config_spec, list(trials), metric, timeout_s, gpus_per_trial))
    fn = tune.with_resources(make, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    space = {unit: tune.grid_search(list(range(len(units))) if unit == "group"
                                    else [t.index for t in trials])}
    _tuner(fn, trials, out, space, scheduler_of(scheduler, metric, mode, grace_steps,
                                                reduction)).fit()
  finally:
    if started_here:
      ray.shutdown()
  if unit != "group":
    return {t.index: _settle(t, scheduler) for t in trials}
  from launch import vmap_backend
  records = {}
  for g, group in enumerate(units):
    group_dir = os.path.join(out, f"{vmap_backend.VMAP_GROUP}-{g}")
    files.WorkdirLock(group_dir).wait_released(120)  # a stopped group may still be saving
    records.update({t.index: _settle(t, scheduler) for t in group})
    if all(trials_lib.is_done(t) for t in group):  # stopped by the scheduler: nothing to resume
      shutil.rmtree(group_dir, ignore_errors=True)
  return records


def _groups(config_spec: str, trials: Sequence, out: str) -> list[list]:
  """The vmap backend's groups of ``trials`` (every one, so a group's index names its
  folder), or none when every trial has finished; the trials' workdirs absolute,
  as the group processes plan them."""
  from launch import trials as trials_lib, vmap_backend
  groups = vmap_backend.check_vmap(config_spec, trials)
  if all(trials_lib.is_done(t) for t in trials) and not any(
      os.path.isdir(os.path.join(out, f"{vmap_backend.VMAP_GROUP}-{g}")) for g in range(len(groups))):
    return []
  return [[trials_lib.Trial(t.index, t.overrides, os.path.abspath(t.workdir), t.common)
           for t in g] for g in groups]


def _tuner(fn, trials: Sequence, out: str, space: dict, sched):
  """A new Tune experiment in ``<out>/tune``, or the one there when it ran this plan."""
  from ray import tune
  path = os.path.join(os.path.abspath(out), TUNE_DIR)
  plan = {"unit": next(iter(space)),
          "trials": [{"dir": t.workdir, "overrides": t.overrides, "set": t.common} for t in trials]}
  plan = json.loads(json.dumps(plan, default=str))
  plan_file = os.path.join(os.path.abspath(out), "tune-plan.json")
  if files.read_json(plan_file) == plan and tune.Tuner.can_restore(path):
    return tune.Tuner.restore(path, fn, resume_unfinished=True, restart_errored=True)
  shutil.rmtree(path, ignore_errors=True)
  files.atomic_write_json(plan_file, plan)
  return tune.Tuner(
      fn, param_space=space,
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


def run_group(sweep_dir: str, group: int) -> int:
  """Trains group ``group`` of the trials planned in ``<sweep_dir>/sweep.json`` as the
  vmap backend does (its halving, its trials per block); 1 if a trial failed."""
  from launch import trials as trials_lib, vmap_backend
  from lib.sweeps import trial_batch
  spec = files.read_json(os.path.join(sweep_dir, "sweep.json"))
  trials = [trials_lib.Trial(i, t["overrides"], os.path.join(sweep_dir, os.path.basename(t["dir"])),
                             spec["set"]) for i, t in enumerate(spec["trials"])]
  halving = spec["halving"] and trial_batch.Halving(metric=spec["metric"], mode=spec["mode"],
                                                    **spec["halving"])
  records = vmap_backend.run_vmap(spec["config"], trials, halving or None, spec["trials_per_block"],
                               only=group)
  failed = [r for r in records.values() if r.get("status") == "failed"]
  if failed:  # one program: its error is every trial's
    print(f"error: {failed[0].get('error')}", file=sys.stderr)
  return int(bool(failed))


def _main(argv):
  from absl import flags
  from lib.runtime import cli
  del argv  # bad input: one line; stopped by Tune (SIGTERM): the running trials have saved
  sys.exit(cli.run_reporting_errors(lambda: run_group(flags.FLAGS.sweep_dir, flags.FLAGS.group)))


if __name__ == "__main__":  # one vmapped group of a sweep, as a Tune trial runs it
  from absl import app, flags
  from lib.runtime import cli
  cli.prepare_process()
  flags.DEFINE_string("sweep_dir", None, "The sweep's --out (holding sweep.json).", required=True)
  flags.DEFINE_integer("group", None, "Which of its vmapped groups.", required=True)
  app.run(_main)
