"""Batching token sequences for language models, step-indexed like :mod:`lib.data.batching`.

Two modes:

* :class:`SentenceBatches` (notes 001): each example is one sentence
  ``[START, w1, ..., wn, END]``; input ``x = ids[:-1]``, target ``y = ids[1:]``,
  right-padded to a bucket length with a mask, so the loss counts real tokens
  only and few shapes are compiled.
* :class:`StreamBatches` (PTB, Zaremba et al.): the corpus is one token stream
  cut into ``batch_size`` contiguous rows, read ``num_steps`` tokens at a time;
  the recurrent state is carried from one window to the next and reset at the
  start of each epoch (``batch['reset']``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lib.errors import ConfigError, DataError


def pad_batch(seqs: Sequence[np.ndarray], length: int, pad_id: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
  """``(ids_BxL, mask_BxL)``: right-padded (or cut) to ``length``."""
  ids = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), np.float32)
  for i, s in enumerate(seqs):
    n = min(len(s), length)
    ids[i, :n] = s[:n]
    mask[i, :n] = 1.0
  return ids, mask


def lm_pairs(seqs: Sequence[np.ndarray], length: int, pad_id: int = 0) -> dict[str, np.ndarray]:
  """Next-token pairs of padded sentences: ``x_BxL``, ``y_BxL``, ``mask_BxL`` (over targets)."""
  x, _ = pad_batch([s[:-1] for s in seqs], length, pad_id)
  y, mask = pad_batch([s[1:] for s in seqs], length, pad_id)
  return {"x": x, "y": y, "mask": mask}


def bucket_length(n: int, multiple: int, max_len: int) -> int:
  return min(max_len, -(-n // multiple) * multiple)


class SentenceBatches:
  """Shuffled, padded sentence batches; ``batch = source(step)``.

  Each batch is padded to the longest sentence in it rounded up to
  ``pad_multiple`` (at most ``max_len``; longer sentences are cut), so XLA
  compiles one program per bucket, not per length.
  """

  def __init__(self, seqs: Sequence[np.ndarray], batch_size: int, seed: int, *,
               max_len: int = 64, pad_multiple: int = 8, shuffle: bool = True):
    self.seqs = [np.asarray(s, np.int32) for s in seqs if len(s) >= 2]
    if not self.seqs:
      raise DataError("No sequence has two or more tokens: nothing to predict.")
    if not 0 < batch_size <= len(self.seqs):
      raise ConfigError(f"batch_size={batch_size}: expected 1 to {len(self.seqs)}, the number "
                        "of training sequences.")
    self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
    self.max_len, self.pad_multiple = max_len, pad_multiple
    self.steps_per_epoch = len(self.seqs) // batch_size
    self._epoch, self._perm = -1, None

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._perm = (np.random.default_rng([self.seed, epoch]).permutation(len(self.seqs))
                    if self.shuffle else np.arange(len(self.seqs)))
      self._epoch = epoch
    chosen = [self.seqs[j] for j in self._perm[i * self.batch_size:(i + 1) * self.batch_size]]
    longest = max(len(s) for s in chosen) - 1
    return lm_pairs(chosen, bucket_length(longest, self.pad_multiple, self.max_len))

  def all_batches(self) -> list[dict[str, np.ndarray]]:
    """Every sentence once, in order, in padded batches (the last one may be smaller)."""
    out = []
    for i in range(0, len(self.seqs), self.batch_size):
      chosen = self.seqs[i:i + self.batch_size]
      longest = max(len(s) for s in chosen) - 1
      out.append(lm_pairs(chosen, bucket_length(longest, self.pad_multiple, self.max_len)))
    return out


def stream_rows(ids: np.ndarray, batch_size: int) -> np.ndarray:
  """The token stream as ``batch_size`` contiguous rows (the remainder is dropped)."""
  ids = np.asarray(ids, np.int32)
  row_len = len(ids) // batch_size
  if row_len < 2:
    raise DataError(f"{len(ids)} tokens are too few for {batch_size} rows (batch_size): "
                    "expected a larger split or a smaller batch.")
  return ids[:batch_size * row_len].reshape(batch_size, row_len)


def stream_windows(ids: np.ndarray, batch_size: int, num_steps: int) -> dict[str, np.ndarray]:
  """All windows at once: ``x`` and ``y`` of shape ``(num_windows, batch, num_steps)``.

  Window ``i`` of row ``b`` is ``rows[b, i*T:(i+1)*T]`` and its targets are the
  same positions shifted by one, so consecutive windows continue each row.
  """
  rows = stream_rows(ids, batch_size)
  n = (rows.shape[1] - 1) // num_steps
  if n < 1:
    raise DataError(f"Rows of {rows.shape[1]} tokens hold no window of {num_steps} steps "
                    "(num_steps): expected a larger split, fewer rows or shorter windows.")
  x = rows[:, :n * num_steps].reshape(batch_size, n, num_steps).transpose(1, 0, 2)
  y = rows[:, 1:n * num_steps + 1].reshape(batch_size, n, num_steps).transpose(1, 0, 2)
  return {"x": np.ascontiguousarray(x), "y": np.ascontiguousarray(y)}


class StreamBatches:
  """PTB-style windows, in order; ``reset`` is 1 on an epoch's first window,
  when the model must start again from the zero state."""

  def __init__(self, ids: np.ndarray, batch_size: int, num_steps: int):
    self.windows = stream_windows(ids, batch_size, num_steps)
    self.steps_per_epoch = len(self.windows["x"])
    self.batch_size, self.num_steps = batch_size, num_steps

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    i = step % self.steps_per_epoch
    return {"x": self.windows["x"][i], "y": self.windows["y"][i],
            "reset": np.asarray(i == 0, np.bool_)}
