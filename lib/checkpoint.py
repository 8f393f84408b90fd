"""Orbax checkpoints of the train state, with resume from the latest step."""
from __future__ import annotations

import os
from typing import Any, Optional

from absl import logging
import orbax.checkpoint as ocp


class _QuietOrbax(logging.logging.Filter):
  """Orbax logs every save step at INFO; keep its warnings and errors only."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname


logging.get_absl_handler().addFilter(_QuietOrbax())


class Checkpointer:
  """Saves ``state`` every ``every`` steps (and when forced); keeps ``max_to_keep``."""

  def __init__(self, directory: str, every: int, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.every = every
    self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def due(self, step: int) -> bool:
    return self.every > 0 and step % self.every == 0

  def save(self, step: int, state: Any) -> None:
    if step in self._mngr.all_steps():
      return
    self._mngr.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, target: Any, step: Optional[int] = None) -> Any:
    """Restores into the structure (and dtypes) of ``target``."""
    step = self.latest_step() if step is None else step
    return self._mngr.restore(step, args=ocp.args.StandardRestore(target))

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
