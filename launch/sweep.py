"""Hyperparameter sweeps over any experiment, one trial per workdir.

  python -m launch.sweep --config=experiments/counting/config.py:rmsprop --sweep=lr \
      --out=runs/sweeps/counting_lr --parallel=2 [--metric=eval/mse --mode=min]

The trials come from the config module's ``sweep(add, name)`` (``lib.sweeps.space``).
Each trial runs as ``python -m experiments.<name>.main --config=... --workdir=<out>/tNNN
--config.<key>=<value> ...``, ``--parallel`` at a time; with GPUs listed in
``--gpus`` (default: none) each running trial leases one of its own
(``CUDA_VISIBLE_DEVICES``; ``--trials_per_gpu`` to share, each with its part of the
memory: :mod:`launch.device_pool`).
``--backend=vmap`` trains trials that differ only in ``seed`` and
``optimizer.lr`` together, in one jitted ``vmap`` (``lib.sweeps.trial_batch``),
checkpointing the group in ``<out>/vmap-group`` until every trial is written.
``--backend=ray`` runs them as Ray Tune trials (``--ray_address``, resources per
trial; ``--scheduler=asha``), or with ``--tune_unit=group`` each vmapped group as
one Tune trial (``launch.ray_tune``).
Each trial's output is kept in its ``stdout.log`` and ``stderr.log``.
Re-running the command skips completed trials and resumes the others from their
checkpoints; a trial that fails is recorded with its error and the rest go on.
Writes ``<out>/sweep.json`` (the plan), ``summary.csv``, ``summary.md`` (every
trial's differences, status and final metrics; the best trial) and ``curves.png``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from absl import app, flags

from lib.errors import ConfigError, Preempted
from lib.runtime import cli, files, locate, plotting, workdirs, writers
from lib.runtime.cli import parse_sets
from lib.sweeps import space, trial_batch, tunable
from launch import device_pool, trials as trials_lib, vmap_backend
from launch.trials import (FINISHED, REPO, TRIAL_FILE, Trial, command, is_done, main_module,
                           read_json, set_aside_changed)

def parse_grid(items: Sequence[str]) -> list[tuple[str, list]]:
  """``['optimizer.lr=1e-3,3e-3', 'model.dropout=0,0.5']`` -> ``[(key, values), ...]``
  (each value a Python literal where it is one, else a string)."""
  import ast
  out = []
  for item in items:
    key, sep, values = item.partition("=")
    if not sep or not values:
      raise ConfigError(f"--grid takes key=v1,v2,..., got {item!r}.")
    parsed = []
    for v in values.split(","):
      try:
        parsed.append(ast.literal_eval(v))
      except (ValueError, SyntaxError):
        parsed.append(v)
    out.append((key, parsed))
  return out


def plan(config_spec: str, sweep_name: str, out: str, common: Optional[dict] = None,
         grid: Sequence[str] = (), seeds: int = 0) -> list[Trial]:
  """The sweep's trials, each checked against the config (a typo stops here):
  the config module's named sweep (``sweep_name``), times the ``--grid`` axes,
  times ``seeds`` seeds from the config's own; ``common`` overrides apply to every
  trial (``--set``)."""
  module, base = vmap_backend.base_config(config_spec, common)
  named = bool(sweep_name) or not (grid or seeds)
  if named and not hasattr(module, "sweep"):
    raise ValueError(f"{config_spec} defines no sweep(add, name); see lib/sweeps/space.py, "
                     "or give --grid / --seeds.")
  add = space.Sweep()
  if named:
    module.sweep(add, sweep_name)
  for key, values in parse_grid(grid):
    add.grid(key, values)
  if seeds:
    add.grid("seed", list(range(base.seed, base.seed + seeds)))
  trials = add.trials()
  for t in trials:
    space.apply(base, t)
  width = max(3, len(str(len(trials) - 1)))
  return [Trial(i, t, os.path.join(out, f"t{i:0{width}d}"), dict(common or {}))
          for i, t in enumerate(trials)]


class Children:
  """The trial processes a sweep is running. A SIGTERM or Ctrl-C to the sweep goes
  on to each of them (they save, write an 'interrupted' summary and exit), no new
  trial starts, and the sweep then raises the interruption. Each trial runs in
  its own session, so a terminal's Ctrl-C reaches it once, through the sweep."""

  def __init__(self):
    self._procs: set[subprocess.Popen] = set()
    self._lock = threading.RLock()
    self.signal: Optional[int] = None

  def popen(self, cmd: list[str], **kw) -> Optional[subprocess.Popen]:
    with self._lock:
      if self.signal is not None:
        return None
      p = subprocess.Popen(cmd, start_new_session=True, **kw)
      self._procs.add(p)
      return p

  def done(self, p: subprocess.Popen) -> None:
    with self._lock:
      self._procs.discard(p)

  def forward(self, signum: int, frame=None) -> None:
    with self._lock:
      self.signal = self.signal or signum
      for p in self._procs:
        if p.poll() is None:
          p.send_signal(signum)

  @contextlib.contextmanager
  def forwarding_signals(self):
    """Installs :meth:`forward` for SIGTERM and SIGINT (main thread only); on leaving,
    restores the old handlers and raises the interruption if one came."""
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, self.forward) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
      yield self
    finally:
      for s, h in old.items():
        signal.signal(s, h)
    if self.signal == signal.SIGTERM:
      raise Preempted(f"signal {self.signal}")
    if self.signal is not None:
      raise KeyboardInterrupt


def run_local(config_spec: str, trials: Sequence[Trial], parallel: int = 1,
              gpus: Sequence[str] = (), timeout_s: Optional[float] = None,
              trials_per_gpu: int = 1) -> dict[int, dict]:
  """Runs the trials that are not completed as subprocesses, ``parallel`` at a time,
  each on a GPU leased from ``gpus`` while it runs (:mod:`launch.device_pool`);
  returns their records."""
  todo = [t for t in trials if not is_done(t)]
  devices = device_pool.DevicePool(gpus, trials_per_gpu)
  results: dict[int, dict] = {}
  children = Children()

  def one(trial: Trial) -> Optional[dict]:
    with devices.lease() as device_env:
      if children.signal is not None:
        return None  # the sweep was interrupted before this trial started
      trials_lib.start(trial)
      res = _run_command(command(config_spec, trial), REPO, {**os.environ, **device_env},
                         timeout_s, trial.workdir, children)
    return trials_lib.finish(trial, res) if res else None

  with children.forwarding_signals(), concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
    futures = {pool.submit(one, t): t for t in todo}
    for fut in concurrent.futures.as_completed(futures):
      if fut.result() is not None:
        results[futures[fut].index] = fut.result()
  return results


def _run_command(cmd: list[str], cwd: str, env: dict, timeout_s: Optional[float],
                 log_dir: str, children: Optional[Children] = None) -> Optional[dict]:
  """One trial's subprocess: ``{'rc', 'error', 'wall_s'}`` (shared by local and Ray);
  None when ``children`` was interrupted before it started. Its output goes to
  ``<log_dir>/stdout.log`` and ``stderr.log`` (so it outlives this process), and it
  gets SIGTERM if this process dies (:func:`lib.runtime.cli.stop_with_parent`)."""
  t0 = time.perf_counter()
  env = {**env, cli.STOP_WITH_PARENT: str(os.getpid())}
  os.makedirs(log_dir, exist_ok=True)
  err_path = os.path.join(log_dir, "stderr.log")
  with open(os.path.join(log_dir, "stdout.log"), "w") as out, open(err_path, "w") as err:
    kw = dict(cwd=cwd, env=env, stdout=out, stderr=err)
    p = children.popen(cmd, **kw) if children else subprocess.Popen(cmd, **kw)
    if p is None:
      return None
    try:
      rc, note = p.wait(timeout=timeout_s), ""
    except subprocess.TimeoutExpired:
      p.kill()
      p.wait()
      rc, note = -1, f"TimeoutError: timed out after {timeout_s} s"
    finally:
      if children:
        children.done(p)
  with open(err_path) as f:
    err_text = f.read() + ("\n" + note if note else "")
  return {"rc": rc, "error": trials_lib.error_tail(err_text) if rc else None,
          "wall_s": round(time.perf_counter() - t0, 2)}


def run_ray(config_spec: str, trials: Sequence[Trial], metric: str = "train/loss",
            mode: str = "min", **options) -> dict[int, dict]:
  """Runs the missing trials as Ray Tune trials (``launch.ray_tune``): ``options`` are
  its ``unit`` (``trial`` or ``group``), ``scheduler``, ``grace_steps``, ``reduction``,
  ``address``, ``cpus_per_trial``, ``gpus_per_trial``, ``timeout_s`` and ``num_cpus``."""
  from launch import ray_tune
  return ray_tune.run(config_spec, trials, os.path.dirname(trials[0].workdir), metric=metric,
                      mode=mode, **options)


def summarize(out: str, trials: Sequence[Trial], metric: str, mode: str = "min",
              curve: str = "loss") -> dict:
  """Writes summary.csv / summary.md / curves.png / metric_vs_keys.png; returns
  ``{'rows', 'best', 'configs', 'best_config'}``. Trials that differ only in ``seed``
  form one configuration: its mean and standard deviation of ``metric`` over the
  completed seeds, the best configuration chosen by the mean."""
  rows = [_row(t) for t in trials]
  scored = [r for r in rows if r["status"] == "completed" and r.get(metric) is not None]
  pick = min if mode == "min" else max
  best = pick(scored, key=lambda r: r[metric]) if scored else None
  configs = _by_config(trials, rows, metric)
  seeded = any(c["trials"] > 1 for c in configs)
  ranked = [c for c in configs if c["mean"] is not None]
  best_config = pick(ranked, key=lambda c: c["mean"]) if seeded and ranked else None
  if seeded:
    stats = {c["config"]: c for c in configs}
    for r in rows:
      c = stats[r["config"]]
      r[f"{metric} mean"], r[f"{metric} std"], r["seeds"] = c["mean"], c["std"], c["completed"]
  fixed = ["trial", "config", "overrides", "status", "steps"]
  columns = fixed + sorted({k for r in rows for k in r} - set(fixed) - {"wall_s", "error"}) + [
      "wall_s", "error"]
  with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, columns)
    w.writeheader()
    w.writerows(rows)
  md = _table(columns, rows)
  if best:
    md += ["", f"Best ({mode} {metric}): {best['trial']} {best['overrides']} = {best[metric]:.6g}"]
  elif any(r["status"] == "completed" for r in rows):
    known = sorted({k for r in rows for k in r if "/" in k})
    md += ["", f"No best: no trial reports {metric!r}; the trials report {', '.join(known)}."]
    print(f"--metric={metric}: no trial reports it; they report {', '.join(known)}.",
          file=sys.stderr)
  if seeded:
    md += ["", f"## Over seeds: {metric} per configuration", ""]
    md += _table(["config", "trials", "completed", "mean", "std"], configs)
    if best_config:
      md += ["", f"Best configuration ({mode} mean {metric}): {best_config['config']} = "
                 f"{best_config['mean']:.6g} ± {best_config['std']:.3g} "
                 f"({best_config['completed']} seeds)"]
  files.atomic_write(os.path.join(out, "summary.md"), "\n".join(md) + "\n")
  _plot_curves(out, trials, rows, curve)
  _plot_metric_vs_keys(out, trials, rows, metric)
  writers.write_hparams(out, [t.overrides for t in trials], rows)
  return {"rows": rows, "best": best, "configs": configs, "best_config": best_config}


def _row(t: Trial) -> dict:
  """One trial's line: status, final metrics, wall time, error."""
  rec = read_json(os.path.join(t.workdir, TRIAL_FILE)) or {}
  s = read_json(os.path.join(t.workdir, "summary.json")) or {}
  ended = s.get("status")
  status = ended if ended in FINISHED else rec.get("status", ended or "pending")
  if status == "running" and ended:  # it ended after its sweep died
    status = ended
  return {"trial": os.path.basename(t.workdir), "config": _config_label(t.overrides),
          "overrides": t.label, "status": status, "steps": s.get("steps"),
          **{k: s.get("final", {}).get(k) for k in sorted(s.get("final", {}))},
          "wall_s": rec.get("wall_s"),
          "error": rec.get("error") if status in ("failed", "diverged") else ""}


def _config_label(overrides: dict) -> str:
  return space.label({k: v for k, v in overrides.items() if k != "seed"})


def _by_config(trials: Sequence[Trial], rows: Sequence[dict], metric: str) -> list[dict]:
  """Per configuration (the trials equal but for ``seed``): trials, completed seeds,
  mean and standard deviation (ddof 0) of ``metric`` over them."""
  out: dict[str, dict] = {}
  for r in rows:
    c = out.setdefault(r["config"], {"config": r["config"], "trials": 0, "values": []})
    c["trials"] += 1
    if r["status"] == "completed" and r.get(metric) is not None and math.isfinite(r[metric]):
      c["values"].append(float(r[metric]))
  for c in out.values():
    v = c.pop("values")
    c["completed"] = len(v)
    c["mean"] = statistics.fmean(v) if v else None
    c["std"] = statistics.pstdev(v) if v else None
  return list(out.values())


def _table(columns: Sequence[str], rows: Sequence[dict]) -> list[str]:
  md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  return md + ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]


def _plot_curves(out: str, trials: Sequence[Trial], rows: Sequence[dict], curve: str) -> None:
  """``curves.png``: every trial's train curve; a trial that halving stopped ends in a cross."""
  series, stops = {}, {}
  for t, r in zip(trials, rows):
    if os.path.exists(os.path.join(t.workdir, "metrics.jsonl")):
      xs, ys = writers.series(writers.read_records(t.workdir, "train"), curve)
      if xs:
        name = f"{os.path.basename(t.workdir)} {t.label}"
        series[name] = (xs, ys)
        if r["status"] == "stopped":
          stops[name] = (xs[-1], ys[-1])
  if series:
    plotting.plot_curves(series, os.path.join(out, "curves.png"), xlabel="step", ylabel=curve,
                         title=f"sweep: train {curve}" + (" (x: stopped by halving)" if stops else ""),
                         logy=all(min(y) > 0 for _, y in series.values()), ends=stops)


def _plot_metric_vs_keys(out: str, trials: Sequence[Trial], rows: Sequence[dict],
                         metric: str) -> None:
  """``metric_vs_keys.png``: the final metric against each swept key but the seed, one
  panel per key (finished trials only); with seeds, the mean of the trials at each value."""
  keys = [k for k in tunable.varying([t.overrides for t in trials]) if k != "seed"]
  points = [(t.overrides, r[metric]) for t, r in zip(trials, rows)
            if r.get(metric) is not None and r["status"] in FINISHED]
  if not keys or not points:
    return
  seeded = len({_config_label(o) for o, _ in points}) < len(points)
  panels = []
  for k in keys:
    series = {"trials": ([o.get(k) for o, _ in points], [v for _, v in points])}
    if seeded:
      by_value: dict = {}
      for o, v in points:
        by_value.setdefault(o.get(k), []).append(v)
      order = sorted(by_value, key=lambda x: (str(type(x)), x))
      series["mean"] = (order, [statistics.fmean(by_value[x]) for x in order])
    panels.append((k, series))
  plotting.plot_scatter_panels(panels, os.path.join(out, "metric_vs_keys.png"), ylabel=metric)


def _cell(v) -> str:
  if v is None:
    return "—"
  if isinstance(v, float):
    return f"{v:.5g}"
  return str(v).replace("\n", " / ").replace("|", "\\|")


def sweep(config_spec: str, sweep_name: str, out: str, backend: str = "local", parallel: int = 1,
          gpus: Sequence[str] = (), metric: str = "train/loss", mode: str = "min",
          curve: str = "loss", common: Optional[dict] = None,
          ray_options: Optional[dict] = None, grid: Sequence[str] = (), seeds: int = 0,
          halving: Optional[dict] = None, trials_per_block: int = 0,
          trials_per_gpu: int = 1) -> dict:
  """Plans, runs what is missing, summarizes. Returns the summary.

  ``halving`` (vmap backend): ``{'rungs': (...), 'unit': 'epochs'|'steps', 'keep': f}``
  ranked by ``metric`` / ``mode``; ``trials_per_block`` (vmap backend): see
  :func:`lib.sweeps.trial_batch.fit`."""
  if backend not in ("local", "vmap", "ray"):
    raise ValueError(f"Unknown backend {backend!r}; expected 'local', 'vmap' or 'ray'.")
  config_spec = locate.config_spec(config_spec)  # absolute: trials and reruns run from anywhere
  if workdirs.is_remote(out):
    raise ConfigError(f"--out={out}: a sweep keeps its trials in a local folder (their locks, "
                      "trial files and logs); give a local --out and copy it afterwards.")
  trials = plan(config_spec, sweep_name, out, common, grid, seeds)
  groups = backend == "vmap" or (backend == "ray" and (ray_options or {}).get("unit") == "group")
  halver = None
  if halving:
    if not groups:
      raise ConfigError("--halving runs inside one vmapped program: use --backend=vmap or "
                        "--backend=ray --tune_unit=group (or --backend=ray --scheduler=asha).")
    halver = trial_batch.Halving(metric=metric, mode=mode, **halving)
  if groups:
    vmap_backend.check_vmap(config_spec, trials)  # before anything is written
  os.makedirs(out, exist_ok=True)
  set_aside_changed(trials)
  files.atomic_write(os.path.join(out, "sweep.json"), json.dumps(
      {"config": config_spec, "sweep": sweep_name, "grid": list(grid), "seeds": seeds,
       "backend": backend, "set": common or {}, "halving": halving or None,
       "metric": metric, "mode": mode, "trials_per_block": trials_per_block,
       "trials": [{"dir": t.workdir, "overrides": t.overrides} for t in trials]},
      indent=2, default=str))
  try:
    if backend == "local":
      run_local(config_spec, trials, parallel, gpus, trials_per_gpu=trials_per_gpu)
    elif backend == "vmap":
      vmap_backend.run_vmap(config_spec, trials, halver, trials_per_block)
    else:
      run_ray(config_spec, trials, metric, mode, **(ray_options or {}))
  except KeyboardInterrupt:  # SIGTERM or Ctrl-C: the trials saved; say where things stand
    summarize(out, trials, metric, mode, curve)
    raise
  return summarize(out, trials, metric, mode, curve)


def _define_flags() -> None:
  """Flags only for ``python -m launch.sweep`` (importing the module defines none,
  so other absl programs, e.g. the benchmark harness, can use it)."""
  flags.DEFINE_string("config", None, "<folder>/config.py[:variant]: experiments/<name>/config.py, "
                      "or an experiment's folder anywhere (its experiment.py beside it).")
  flags.DEFINE_string("experiment", None, "Instead of --config: an importable experiment package "
                      "(myproj.experiments.mycount[:variant]), its config.py and experiment.py.")
  flags.DEFINE_string("sweep", "", "Name passed to the config module's sweep(add, name).")
  flags.DEFINE_string("out", None, "Sweep folder (one subfolder per trial).", required=True)
  flags.DEFINE_enum("backend", "local", ["local", "vmap", "ray"],
                    "local: one subprocess per trial; vmap: one jitted program per group of "
                    "trials; ray: Ray Tune trials (a local instance or a cluster).")
  flags.DEFINE_string("ray_address", "", "Ray cluster address (empty: a local instance on 127.0.0.1).")
  flags.DEFINE_enum("scheduler", "fifo", ["fifo", "asha", "median"],
                    "Ray Tune trial scheduler (ray backend), on --metric / --mode, step as time.")
  flags.DEFINE_integer("grace_steps", 1, "asha / median: steps before a trial may be stopped.")
  flags.DEFINE_float("reduction", 2.0, "asha: 1/fraction of the trials kept at each rung.")
  flags.DEFINE_enum("tune_unit", "trial", ["trial", "group"],
                    "ray backend: a Tune trial per planned trial, or per vmapped group (the "
                    "trials differing only in tunable keys: one program, --halving inside it).")
  flags.DEFINE_float("cpus_per_trial", 1, "Ray resources per trial.")
  flags.DEFINE_float("gpus_per_trial", 0, "Ray resources per trial.")
  flags.DEFINE_integer("parallel", 1, "Trials at a time (local backend).")
  flags.DEFINE_list("gpus", [], "GPU ids; each running trial leases one (local backend).")
  flags.DEFINE_integer("trials_per_gpu", 1, "Running trials that may share one of --gpus, "
                       "each with 0.9/n of its memory (local backend).")
  flags.DEFINE_string("metric", "train/loss", "Summary metric that picks the best trial.")
  flags.DEFINE_enum("mode", "min", ["min", "max"], "Best = min or max of --metric.")
  flags.DEFINE_string("curve", "loss", "Train metric drawn in curves.png.")
  flags.DEFINE_list("set", [], "key=value overrides shared by every trial, e.g. trainer.num_epochs=200.")
  flags.DEFINE_multi_string("grid", [], "An ad-hoc axis key=v1,v2,... (repeat to multiply), "
                            "e.g. --grid=optimizer.lr=1e-3,3e-3 --grid=model.dropout=0,0.5.")
  flags.DEFINE_integer("seeds", 0, "Multiply the trials by this many seeds (the config's seed on).")
  flags.DEFINE_list("halving", [], "Successive-halving rungs (vmap backend), e.g. 2,4: at each, "
                    "only the best --halving_keep of the trials by --metric go on.")
  flags.DEFINE_string("trials_per_block", "0", "vmap backend: trials stepped together, the "
                      "blocks one after another in the same program (0: all in one vmap; "
                      "auto: one vmap or one by one, whichever a timed step finds faster).")
  flags.DEFINE_enum("halving_unit", "epochs", ["epochs", "steps"], "Unit of --halving.")
  flags.DEFINE_float("halving_keep", 0.5, "Fraction of the trials kept at each rung.")


def _trials_per_block(value: str) -> int:
  """``auto`` -> -1 (lib.sweeps.trial_batch.fastest_block), else a count >= 0."""
  if value == "auto":
    return -1
  if not value.isdigit():
    raise ConfigError(f"--trials_per_block={value!r}: expected a count (0: all) or 'auto'.")
  return int(value)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  F = flags.FLAGS
  try:
    config_spec = cli.experiment_spec(F.config, F.experiment)
    halving = (dict(rungs=tuple(float(r) for r in F.halving), unit=F.halving_unit,
                    keep=F.halving_keep) if F.halving else None)
    s = sweep(config_spec, F.sweep, F.out, F.backend, F.parallel, F.gpus, F.metric, F.mode,
              F.curve, parse_sets(F.set), dict(address=F.ray_address,
                                               cpus_per_trial=F.cpus_per_trial,
                                               gpus_per_trial=F.gpus_per_trial,
                                               scheduler=F.scheduler, grace_steps=F.grace_steps,
                                               reduction=F.reduction, unit=F.tune_unit),
              F.grid, F.seeds, halving, _trials_per_block(F.trials_per_block), F.trials_per_gpu)
  except (ConfigError, KeyError) as e:  # a bad key or value: refused before anything ran
    print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt as e:
    sigterm = isinstance(e, Preempted)
    print(f"interrupted ({'SIGTERM' if sigterm else 'Ctrl-C'}): the running trials saved and are "
          f"marked interrupted in {F.out}/summary.md; re-run the same command to resume.",
          file=sys.stderr)
    sys.exit(cli.EXIT_SIGTERM if sigterm else cli.EXIT_INTERRUPTED)
  with open(os.path.join(F.out, "summary.md")) as f:
    print(f.read())
  failed = [r for r in s["rows"] if r["status"] == "failed"]
  if failed:
    print(f"{len(failed)} of {len(s['rows'])} trial(s) failed; their errors are in summary.md. "
          "Re-run to retry them.")
    sys.exit(1)

if __name__ == "__main__":
  cli.prepare_process()  # before JAX starts its threads
  _define_flags()
  app.run(main)
