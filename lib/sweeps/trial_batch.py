"""Many runs of one experiment trained together: one jitted ``vmap`` of the
trainer's step over a trials axis (the ``vmap`` backend of ``launch/sweep``),
driven by the loop core every run shares (:class:`lib.train.loop.Loop`).

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
``lax.scan`` over up to ``max_chunk`` steps at a time (:class:`lib.train.stepping.Steps`).
A trial that produces NaN/Inf ends ``diverged`` at that record, as it would alone;
the others go on. With :class:`Halving`, at each rung the worst trials stop
(``stopped``, with their records, summary and checkpoint) and the survivors go on
as a smaller program. Given a group folder, the stacked state is checkpointed as a
single run's would be, and a killed group resumes (:class:`Group`).
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

from lib.errors import ConfigError
from lib.runtime import files
from lib.sweeps import space, tunable
from lib.train import checkpoint, optim
from lib.train.loop import Loop
from lib.train.state import init_state
from lib.train.step import task_step
from lib.train.stepping import Steps, every_trial, row, stack, take
from lib.train.summary import save_config
from lib.train.task import Built

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
  trials that many at a time inside the same program (:class:`lib.train.stepping.Steps`); -1 picks
  0 or 1, whichever is faster here (:func:`fastest_block`)."""
  t0 = time.perf_counter()
  if any(space.apply(base, t).trainer.get("early_stop_patience") for t in trials):
    raise ConfigError("trainer.early_stop_patience: vmapped trials run to a common end; stop "
                      "the worst ones with --halving, or run early stopping with "
                      "--backend=local or ray.")
  built = build(space.apply(base, trials[0]))
  task, tc = built.task, built.config.trainer
  configs = [space.apply(built.config, t) for t in trials]
  check_same_batches(build, [space.apply(base, t) for t in trials], task)
  swept = [k.split(".", 1)[1] for k in tunable.varying(trials) if k.startswith("optimizer.")]
  tx, schedule = optim.make_optimizer(built.config.optimizer, tc.num_steps, keep=swept)
  state, keys, hp = _initial_state(build, built, base, trials, configs)
  rungs = halving.steps(getattr(task.train_batch, "steps_per_epoch", 1), tc.num_steps) if halving else ()
  saver = Group(group_dir, configs, workdirs, tc, rungs) if group_dir else TrialCheckpoints(workdirs)
  try:
    state, active, start = saver.restore(state)
    for i in active:
      os.makedirs(workdirs[i], exist_ok=True)
      save_config(configs[i], workdirs[i])
    step = task_step(task, tx, schedule, optim.scales_gradients(built.config.optimizer, swept))
    keys, hp = take(keys, active), take(hp, active)
    if trials_per_block < 0:
      trials_per_block = fastest_block(step, state, task.train_batch(start), keys, hp,
                                       task.compiler_options)
    steps = Steps(step, trials_per_block=trials_per_block, compiler_options=task.compiler_options,
                  max_chunk=max_chunk)
    Loop(task, tc, workdirs, configs, state, keys, hp, steps=steps, saver=saver, start=start,
         active=active, halving=halving, rungs=rungs, summary_fields={"vmapped": True},
         t0=t0).run()
  finally:
    saver.close()
  saver.remove()
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
    trial_task = build(space.apply(base, t), built.data).task if own_init else task
    state, _, _, step_key = init_state(trial_task, c)  # its optimizer state holds c's values
    states.append(state)
    step_keys.append(step_key)
    hps.append({k: jnp.float32(v) for k, v in tunable.hparams(c, list(task.hparams)).items()})
  shapes = [jax.tree.map(lambda x: (x.shape, x.dtype), s) for s in states]
  if any(s != shapes[0] for s in shapes):
    raise ConfigError(f"{task.name}: trials varying {', '.join(own_init)} have parameters of "
                      "different shapes; list the key in the experiment's STRUCTURAL keys.")
  return stack(states), jnp.stack(step_keys), stack(hps) if hps[0] else {}


class TrialCheckpoints:
  """The :class:`lib.train.loop.Saver` of a group kept in no folder: each trial's
  final checkpoint in ``<workdir>/checkpoints`` (one kept), nothing periodic."""

  def __init__(self, workdirs: Sequence[str]):
    self.workdirs = list(workdirs)
    self.saved: dict[int, int] = {}

  def restore(self, state) -> tuple[object, list[int], int]:
    """``(state, active trials, step)``: the fresh state's."""
    return state, list(range(jax.tree.leaves(state)[0].shape[0])), 0

  def due(self, step: int) -> bool:
    return False

  def save_steps(self, num_steps: int) -> Sequence[int]:
    return ()

  def save(self, step: int, state, active: Sequence[int], now: bool = False) -> None:
    pass

  def save_trials(self, trials: Sequence[int], step: int, rows) -> None:
    ckpts = []
    for p, i in enumerate(trials):  # orbax saves asynchronously: start all, then wait
      ckpts.append(checkpoint.Checkpointer(os.path.join(self.workdirs[i], "checkpoints"), 0, 1))
      ckpts[-1].save(step, row(rows, p))
    for c in ckpts:
      c.close()
    self.saved.update({i: step for i in trials})

  def kept(self, trial: int) -> Optional[int]:
    return self.saved.get(trial)

  def close(self) -> None:
    pass

  def remove(self) -> None:
    pass


class Group(TrialCheckpoints):
  """The stacked state of one vmapped group of trials, checkpointed in one folder
  (``group.json`` says which trials and configs it holds; a different group
  there is replaced; ``active.json`` which trials the state holds at each saved
  step, as halving shrinks it). Saved at the first chunk end at or after each
  multiple of ``checkpoint_every_steps`` where every log window is closed, and at
  each halving rung, so a resumed group writes the records an uninterrupted one
  writes."""

  def __init__(self, directory: str, configs, workdirs: Sequence[str], tc,
               rungs: Sequence[int] = ()):
    super().__init__(workdirs)
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
    self.steps = {min(n, -(-s // log) * log) for s in range(every, n, every)} if every else set()
    self.steps |= set(rungs)

  def restore(self, state) -> tuple[object, list[int], int]:
    """``(state, active trials, step)``: the latest checkpoint's, or the fresh state's."""
    step = self.ckpt.latest_step()
    if step is None:
      return super().restore(state)
    active = (files.read_json(self.active_path) or {})[str(step)]
    return self.ckpt.restore(take(state, active)), active, step

  def due(self, step: int) -> bool:
    return step in self.steps

  def save_steps(self, num_steps: int) -> Sequence[int]:
    return sorted(s for s in self.steps if s < num_steps)

  def save(self, step: int, state, active: Sequence[int], now: bool = False) -> None:
    """Saves at :meth:`save_steps` or, with ``now``, at this step (its log windows closed);
    once a step."""
    if (now or step in self.steps) and self.ckpt.latest_step() != step:
      saved = files.read_json(self.active_path) or {}
      files.atomic_write_json(self.active_path, {**saved, str(step): list(active)})
      self.ckpt.save(step, state)

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


def fastest_block(step, state, batch, keys, hp, compiler_options=None, calls: int = 2) -> int:
  """``trials_per_block=-1`` (auto): 0 (one ``vmap``) or 1 (one trial after another),
  whichever steps these trials faster on ``batch`` (compiled, warmed up, ``calls`` timed).
  A trial whose step already fills the machine runs faster alone: the vmapped
  program's wider temporaries cost more than they save (``python -m launch.bench
  trial_step``)."""
  batch = jax.device_put(batch)
  times = {}
  for block in (0, 1):
    fn = jax.jit(every_trial(step, block), compiler_options=dict(compiler_options or {}) or None)
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


