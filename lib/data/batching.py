"""Step-indexed batch sources: ``batch = source(step)``.

The trainer asks for batches by step number, so a resumed run sees exactly the
batches an uninterrupted one would. Shuffling is seeded per epoch.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lib.errors import ConfigError


class FullBatch:
  """The whole data set every step, kept on the device (no per-step copy)."""

  def __init__(self, arrays: Mapping[str, Any]):
    self.arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    self.steps_per_epoch = 1

  def __call__(self, step: int) -> dict[str, jax.Array]:
    return self.arrays


class EpochBatches:
  """Minibatches of a seeded permutation per epoch; the last partial batch is dropped
  so every step has one shape (one compilation)."""

  def __init__(self, arrays: Mapping[str, Any], batch_size: int, seed: int):
    self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
    sizes = {len(v) for v in self.arrays.values()}
    if len(sizes) != 1:
      raise ValueError(f"Arrays differ in length: { {k: len(v) for k, v in self.arrays.items()} }")
    self.n = sizes.pop()
    if not 0 < batch_size <= self.n:
      raise ConfigError(f"batch_size={batch_size}: expected 1 to {self.n}, the number of "
                        "training examples.")
    self.batch_size, self.seed = batch_size, seed
    self.steps_per_epoch = self.n // batch_size
    self._perm_epoch, self._perm = -1, None

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
      self._perm_epoch = epoch
    idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size]
    return {k: v[idx] for k, v in self.arrays.items()}


def order_seed(config) -> int:
  """The data-order seed: ``config.data.shuffle_seed``, or ``config.seed`` when it is -1.
  Kept apart from ``seed`` (parameters, per-step keys), trials that differ only in
  ``seed`` read the same batches and train in one vmapped program."""
  return config.seed if config.data.shuffle_seed < 0 else config.data.shuffle_seed


def batches(arrays: Mapping[str, Any], batch_size: int, seed: int):
  """``FullBatch`` when ``batch_size`` is 0 or covers the data, else ``EpochBatches``."""
  n = len(next(iter(arrays.values())))
  if batch_size <= 0 or batch_size >= n:
    return FullBatch(arrays)
  return EpochBatches(arrays, batch_size, seed)


class Prefetch:
  """Computes ``source(step + 1), ...`` on a background thread while the caller
  trains on ``step``: host-side batch building (numpy releases the GIL) overlaps
  the device step. Still a pure function of ``step``: a request out of order is
  computed directly, and a resumed run sees the same batches."""

  def __init__(self, source, num_steps: int, depth: int = 2):
    import concurrent.futures
    self.source, self.num_steps, self.depth = source, num_steps, depth
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="prefetch")
    self._pending: dict[int, Any] = {}

  def __call__(self, step: int):
    fut = self._pending.pop(step, None)
    for s in list(self._pending):  # drop stale requests (a jump backwards or ahead)
      if s < step or s > step + self.depth:
        self._pending.pop(s)
    for s in range(step + 1, min(step + 1 + self.depth, self.num_steps)):
      if s not in self._pending:
        self._pending[s] = self._pool.submit(self.source, s)
    return fut.result() if fut is not None else self.source(step)
