"""The one rule that turns epoch-denominated durations into steps.

A config gives its run length as ``num_epochs`` (top level) and, where it
wants them, ``decay_after_epochs`` (step schedule), ``plateau_epochs``
(reduce on plateau) and ``eval_every_epochs``; trainer fields ``log_every``,
``eval_every`` and ``checkpoint_every`` are steps, and ``-1`` means one epoch.
An experiment's ``build`` calls :func:`resolve` once it knows the steps per
epoch of its data; the resolved config (all steps) is what the run saves.
"""
from __future__ import annotations

from typing import Optional

import ml_collections


def resolve(config: ml_collections.ConfigDict, steps_per_epoch: int,
            num_steps: Optional[int] = None) -> ml_collections.ConfigDict:
  """A locked copy of ``config`` with every duration in steps.

  ``num_steps`` overrides ``num_epochs * steps_per_epoch`` where epochs differ
  in length (word2vec's subsampled pair stream).
  """
  if steps_per_epoch < 1:
    raise ValueError(f"An epoch has {steps_per_epoch} steps: the data set is smaller than "
                     "one batch.")
  c = ml_collections.ConfigDict(config.to_dict())
  spe = steps_per_epoch
  c.trainer.num_steps = num_steps if num_steps is not None else c.num_epochs * spe
  for field in ("eval_every", "checkpoint_every", "log_every"):
    if c.trainer[field] < 0:
      c.trainer[field] = spe
  if c.get("eval_every_epochs"):
    c.trainer.eval_every = c.eval_every_epochs * spe
  if c.optimizer.schedule == "step":
    # TF tutorial: epoch i (0-based) uses lr * decay ** max(i + 1 - decay_after, 0).
    c.optimizer.decay_start = max(c.get("decay_after_epochs", 1) - 1, 0) * spe
    c.optimizer.decay_every = spe
  if c.optimizer.plateau_factor:
    c.optimizer.plateau_every = max(1, c.get("plateau_epochs", 1)) * spe
  c.lock()
  return c
