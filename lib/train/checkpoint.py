"""Orbax checkpoints of the train state, with resume from the latest step."""
from __future__ import annotations

import os
from typing import Any, Optional

import orbax.checkpoint as ocp

from lib.errors import StorageError
from lib.runtime import files


def _storage(directory: str, e: Exception) -> StorageError:
  return StorageError(f"writing a checkpoint in {directory} failed: {type(e).__name__}: {e}")


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
    """Starts an asynchronous save; the error of an earlier one surfaces here (or in
    :meth:`close`) as :class:`StorageError`."""
    if step in self._mngr.all_steps():
      return
    try:
      with files.signals_held():  # a signal inside orbax's save breaks the manager
        self._mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    except (OSError, ValueError, RuntimeError) as e:
      raise _storage(self.directory, e) from e

  def restore(self, target: Any, step: Optional[int] = None) -> Any:
    """Restores into the structure (and dtypes) of ``target``."""
    step = self.latest_step() if step is None else step
    return self._mngr.restore(step, args=ocp.args.StandardRestore(target))

  def wait(self) -> None:
    """Until every started save is written (its error as :class:`StorageError`)."""
    with files.signals_held():
      try:
        self._mngr.wait_until_finished()
      except (OSError, ValueError, RuntimeError) as e:
        raise _storage(self.directory, e) from e

  def close(self) -> None:
    with files.signals_held():
      try:
        self._mngr.wait_until_finished()
      except (OSError, ValueError, RuntimeError) as e:
        raise _storage(self.directory, e) from e
      finally:
        self._mngr.close()


def _npz_key(path) -> str:
  return ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def export_npz(params: Any, path: str) -> list[str]:
  """Writes a parameter pytree to one ``.npz`` (notes 001's ``save_model_parameters``):
  one array per leaf, named by its path (``layers.0.w_rec``). Returns the names."""
  import jax
  import numpy as np
  flat = {_npz_key(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  with open(path, "wb") as f:
    np.savez(f, **flat)
  return sorted(flat)


def load_npz(path: str, like: Any) -> Any:
  """Reads :func:`export_npz` output into the structure of ``like``; names and
  shapes must match (the error lists what differs)."""
  import jax
  import numpy as np
  with np.load(path) as z:
    stored = {k: z[k] for k in z.files}
  leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
  want = {_npz_key(p): np.shape(v) for p, v in leaves}
  have = {k: v.shape for k, v in stored.items()}
  if want != have:
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    raise ValueError(f"{path}: parameters do not match the model: missing {missing}, "
                     f"unexpected {extra}, shape differs {[(k, have[k], want[k]) for k in shapes]}.")
  return jax.tree.unflatten(treedef, [jax.numpy.asarray(stored[_npz_key(p)]) for p, _ in leaves])
