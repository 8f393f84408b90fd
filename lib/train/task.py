"""The experiment contract: what an experiment hands the trainer, and what its
``build(config)`` returns.

Every experiment module (``experiments/<name>/experiment.py``) exposes::

  build(config, data=None) -> Built     # data: what the experiment's loader returns
  run(config, workdir, *, data=None, verbose=True) -> dict   # the run's summary

``launch/reproduce``, ``launch/sweep`` (every backend) and the benchmarks use
only these two functions and the fields below.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping, Optional, Protocol, Sequence

import jax
import ml_collections
import optax

Params = Any
Batch = Any
LossFn = Callable[[Params, Batch, jax.Array], tuple[jax.Array, Mapping[str, Any]]]


class Evaluator(Protocol):
  """A held-out measurement: ``run(params)`` yields ``(name, value)`` pairs.

  An evaluator returns everything it computes; it keeps nothing for later.
  One that is traceable (jnp only) is vmapped over trials by the sweep backend.
  One that scores on the host (numpy) may split itself in two: ``outputs(params)``,
  traceable, returning arrays, and ``score(outputs)`` yielding the pairs, with
  ``run(params)`` their composition; the sweep backend then vmaps ``outputs``
  over the trials and scores each trial on the host.
  """

  def run(self, params: Params) -> Iterable[tuple[str, Any]]:
    ...


def evaluate(evaluators: Sequence[Evaluator], params: Params) -> dict[str, Any]:
  """Every evaluator's pairs in one dict (a later name wins)."""
  return {name: value for e in evaluators for name, value in e.run(params)}


@dataclasses.dataclass(frozen=True)
class Task:
  """What the trainer requires of an experiment.

  Attributes:
    name: experiment name, recorded in the summary.
    init_params: ``key -> params``.
    loss_fn: ``(params, batch, rng) -> (objective, metrics)``; the objective is
      what gets differentiated; metrics map names to scalars or
      :class:`lib.metrics.Average` (sum, count) pairs.
    train_batch: ``step -> batch``, a pure function of ``step`` (and the
      config's seed) so that resuming is exact; it has ``steps_per_epoch``.
    evaluators: run every ``trainer.eval_every_steps`` and at the end; their
      pairs are written as the ``eval`` split.
    summary_fn: optional ``params -> {name: float}`` extras for summary.json,
      computed once a run has completed.
    curve_metric: the train metric drawn in ``loss_curve.png``.
    init_carry: for models whose state crosses steps (PTB-style windows):
      ``() -> carry``. The carry then lives in the train state (and its
      checkpoints), ``loss_fn`` becomes ``(params, batch, rng, carry) ->
      (objective, (metrics, new_carry))``, gradients stop at the carry, and a
      batch with ``reset`` true starts again from ``init_carry()``.
    hparams: the tunable values the loss reads (config key -> this config's
      value, e.g. ``{'model.dropout': 0.5}``; see :mod:`lib.sweeps.tunable`).
      When not empty, ``loss_fn`` takes them as a last argument ``hp`` (same
      keys): Python floats in a single run, traced per-trial scalars when the
      sweep backend vmaps trials, so the loss branches in Python only on a
      Python number (a single run's 0 may skip a term; a traced value never does).
    make_step: optional ``(tx, schedule) -> train_step(state, batch, rng, hp) ->
      (state, metrics)`` replacing the default optax step, for updates that
      are not ``tx`` applied to a dense gradient (word2vec's sparse row SGD).
      The trainer still jits it, folds the step into ``rng``, logs,
      checkpoints and resumes as usual.
    row_tables: ``{params key: batch key}`` of top-level tables the loss reads
      only as ``params[table][batch[key]]`` (an untied embedding). Under an
      optimizer whose update is the gradient times a scalar (plain SGD:
      :func:`lib.train.optim.scales_gradients`) the default step differentiates
      the rows read and adds their updates to the table; no dense gradient.
    rate_unit: ``(unit, units per step)`` of the progress line's rate, e.g.
      ``('words', corpus words per step)``.
    compiler_options: XLA options for the jitted train step (``jax.jit``'s
      ``compiler_options``), in a single run and in vmapped trials alike.
  """
  name: str
  init_params: Callable[[jax.Array], Params]
  loss_fn: LossFn
  train_batch: Callable[[int], Batch]
  evaluators: Sequence[Evaluator] = ()
  summary_fn: Optional[Callable[[Params], Mapping[str, float]]] = None
  curve_metric: str = "loss"
  init_carry: Optional[Callable[[], Any]] = None
  hparams: Mapping[str, float] = dataclasses.field(default_factory=dict)
  make_step: Optional[Callable[[optax.GradientTransformation, Callable], Callable]] = None
  row_tables: Mapping[str, str] = dataclasses.field(default_factory=dict)
  rate_unit: tuple[str, float] = ("steps", 1.0)
  compiler_options: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Built:
  """What ``experiment.build(config)`` returns.

  Attributes:
    task: what the trainer runs.
    config: the config with every duration in steps (:func:`lib.runtime.durations.resolve`),
      locked; the one the run saves as ``config.json``.
    model: the model object (its hyperparameters and pure functions).
    data: the loaded data set, in the experiment's own type.
  """
  task: Task
  config: ml_collections.ConfigDict
  model: Any = None
  data: Any = None
