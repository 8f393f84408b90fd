"""The ``vmap`` backend of ``launch/sweep``: the trials that differ only in tunable keys
train as one jitted program (:mod:`lib.sweeps.trial_batch`), one group after another;
``launch.ray_tune`` runs the same groups as Tune trials."""
from __future__ import annotations

import os
import time
from typing import Optional, Sequence

from lib.runtime import cli, locate
from lib.sweeps import space, trial_batch, tunable
from lib.train.stops import sigterm_as_interrupt
from launch import trials as trials_lib
from launch.trials import Trial, is_done

VMAP_GROUP = "vmap-group"  # the vmap backend's checkpoint of its unfinished group


def _module_of(config_path: str):
  return cli.config_module(config_path)


def base_config(config_spec: str, common: Optional[dict] = None):
  path, _, variant = config_spec.partition(":")
  module = _module_of(path)
  base = module.get_config(variant) if variant else module.get_config()
  return module, space.apply(base, common or {})


def experiment_module(config_spec: str):
  """``<folder>/config.py[:variant]`` -> the ``experiment`` module beside it."""
  return locate.experiment_module(config_spec)


def check_vmap(config_spec: str, trials: Sequence[Trial]) -> list[list[Trial]]:
  """The vmap backend's groups (one program each), or a :class:`ConfigError` naming
  a key that is neither tunable nor structural, before anything runs."""
  exp = experiment_module(config_spec)
  overrides = [t.overrides for t in trials]
  tunable.check(exp, overrides, config_spec.partition(":")[0].split(os.sep)[-2])
  groups = [[trials[i] for i in g] for g in tunable.groups(exp, overrides)]
  _, base = base_config(config_spec, trials[0].common if trials else None)
  for g in groups:  # trials with other seeds must read the same batches
    configs = [space.apply(base, t.overrides) for t in g]
    if len({c.seed for c in configs}) > 1:
      trial_batch.check_same_batches(exp.build, configs)
  return groups


def run_vmap(config_spec: str, trials: Sequence[Trial],
             halving: Optional["trial_batch.Halving"] = None,
             trials_per_block: int = 0, only: Optional[int] = None) -> dict[int, dict]:
  """Trains the trials that are not finished, one jitted program per group of equal
  structural values (``lib.sweeps.trial_batch``), one group after another (or
  group ``only`` alone), built with the experiment's ``build(config)``."""
  exp = experiment_module(config_spec)
  out = os.path.dirname(trials[0].workdir)
  results: dict[int, dict] = {}
  for g, group in enumerate(check_vmap(config_spec, trials)):
    if only is not None and g != only:
      continue
    group_dir = os.path.join(out, f"{VMAP_GROUP}-{g}")
    unfinished = set(trial_batch.group_workdirs(group_dir))  # a killed group: resume it whole
    todo = [t for t in group if not is_done(t) or os.path.abspath(t.workdir) in unfinished]
    if todo:
      results.update(_run_group(exp, config_spec, todo, group_dir, halving, trials_per_block))
  return results


def _run_group(exp, config_spec: str, todo: Sequence[Trial], group_dir: str,
               halving, trials_per_block: int) -> dict[int, dict]:
  _, base = base_config(config_spec, todo[0].common)
  for t in todo:
    trials_lib.start(t)
  t0 = time.perf_counter()
  try:
    with sigterm_as_interrupt():
      summaries = trial_batch.fit(exp.build, base, [t.overrides for t in todo],
                                    [t.workdir for t in todo], group_dir=group_dir,
                                    halving=halving, trials_per_block=trials_per_block)
  except KeyboardInterrupt:
    for t in todo:
      if not is_done(t):
        trials_lib.record(t, status="interrupted")
    raise
  except Exception as e:  # one program: a failure fails every trial in it
    return {t.index: trials_lib.record(t, status="failed", error=f"{type(e).__name__}: {e}") for t in todo}
  wall = round(time.perf_counter() - t0, 2)
  # A trial that diverged (NaN/Inf) stopped alone; halving stopped others; the rest completed.
  return {t.index: trials_lib.record(t, status=s["status"], error=s["error"], wall_s=wall)
          for t, s in zip(todo, summaries)}
