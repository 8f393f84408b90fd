"""Generated long-range tasks: every batch a pure function of ``(seed, index)``.

Each generator returns numpy arrays for ``n`` examples of length ``T``:

* ``x``: inputs, token ids ``(n, T)`` (int32) or features ``(n, T, F)`` (float32);
* ``y``: a target per position, a class (int32) or a value (float32);
* ``w``: 1 where a position is scored, 0 elsewhere;
* ``mask``: 1 for real steps (only parity has padding: its strings vary in length).

The tasks, and what solves them:

* ``adding`` (Hochreiter & Schmidhuber 1997, the IRNN/uRNN form): two channels, a value
  in U(0, 1) and a marker that is 1 at one step of each half; the target at the last
  step is the sum of the two marked values. Predicting 1 scores an MSE of 1/6 (0.167).
* ``copying`` (selective copying, Mamba's form): ``tokens`` data tokens from
  ``1..vocab`` at random positions among ``T`` blanks (0), then ``tokens`` markers
  (``vocab + 1``); at each marker the next data token in order. Chance: 1/vocab.
* ``mqar`` (Zoology's multi-query associative recall): ``pairs`` key-value pairs
  (keys from the lower half of the vocabulary, values from the upper), then the keys
  again at positions drawn with Zoology's power law (``power_a``), random tokens
  between them; at each queried key, its value.
* ``parity``: a bit string (``1..T`` bits, padded); the target at its last real step is
  the parity of its ones.
* ``counting`` (notes 003): a bit string; the target at the last step is the number
  of ones.
"""
from __future__ import annotations

import numpy as np

TASKS = ("adding", "copying", "mqar", "parity", "counting")


def _rng(seed: int, index: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), int(index)])


def _last(n: int, T: int, target, dtype) -> tuple[np.ndarray, np.ndarray]:
  """Targets and weights scoring only the last step."""
  y = np.zeros((n, T), dtype)
  y[:, -1] = target
  w = np.zeros((n, T), np.float32)
  w[:, -1] = 1.0
  return y, w


def adding(n: int, T: int, seed: int, index: int = 0) -> dict[str, np.ndarray]:
  rng = _rng(seed, index)
  values = rng.uniform(0.0, 1.0, (n, T)).astype(np.float32)
  half = T // 2
  first, second = rng.integers(0, half, n), rng.integers(half, T, n)
  marks = np.zeros((n, T), np.float32)
  marks[np.arange(n), first] = marks[np.arange(n), second] = 1.0
  target = values[np.arange(n), first] + values[np.arange(n), second]
  y, w = _last(n, T, target, np.float32)
  return {"x": np.stack([values, marks], -1), "y": y, "w": w, "mask": np.ones((n, T), np.float32)}


def copying(n: int, T: int, seed: int, index: int = 0, tokens: int = 16,
            vocab: int = 16) -> dict[str, np.ndarray]:
  """``T`` steps of data and blanks, then ``tokens`` markers: length ``T + tokens``."""
  rng = _rng(seed, index)
  data = rng.integers(1, vocab + 1, (n, tokens))
  positions = np.sort(np.argsort(rng.random((n, T)), axis=1)[:, :tokens], axis=1)
  x = np.zeros((n, T + tokens), np.int32)
  np.put_along_axis(x, positions, data, axis=1)
  x[:, T:] = vocab + 1
  y = np.zeros((n, T + tokens), np.int32)
  y[:, T:] = data - 1               # classes 0..vocab-1
  w = np.zeros((n, T + tokens), np.float32)
  w[:, T:] = 1.0
  return {"x": x, "y": y, "w": w, "mask": np.ones((n, T + tokens), np.float32)}


def mqar(n: int, T: int, seed: int, index: int = 0, pairs: int = 8, vocab: int = 256,
         power_a: float = 0.01) -> dict[str, np.ndarray]:
  """Zoology's generator (one pass of the pairs); classes are token ids."""
  if not (vocab > T and 4 * pairs <= T and T % 2 == 0):
    raise ValueError(f"mqar needs vocab > T, 4 * pairs <= T and an even T "
                     f"(vocab={vocab}, T={T}, pairs={pairs}).")
  rng = _rng(seed, index)
  half = vocab // 2
  keys = np.stack([rng.choice(np.arange(1, half), pairs, replace=False) for _ in range(n)])
  values = np.stack([rng.choice(np.arange(half, vocab), pairs, replace=False) for _ in range(n)])
  context = 2 * pairs
  kv = np.zeros((n, context), np.int64)
  kv[:, 0::2], kv[:, 1::2] = keys, values
  space = (T - context) // 2
  p = power_a * np.arange(1, space + 1) ** (power_a - 1)
  p = p / p.sum()
  gaps = np.stack([rng.choice(space, pairs, replace=False, p=p) for _ in range(n)])
  queries = np.zeros((n, T - context), np.int64)
  np.put_along_axis(queries, 2 * gaps, keys, axis=1)
  x = np.concatenate([kv, queries], 1)
  y = np.zeros((n, T), np.int64)
  w = np.zeros((n, T), np.float32)
  np.put_along_axis(y, context + 2 * gaps, values, axis=1)   # at the queried key, its value
  np.put_along_axis(w, context + 2 * gaps, 1.0, axis=1)
  filler = rng.integers(0, vocab, (n, T))
  x = np.where(x == 0, filler, x)
  x[:, :context] = kv                   # keep the pairs as they are
  return {"x": x.astype(np.int32), "y": y.astype(np.int32), "w": w,
          "mask": np.ones((n, T), np.float32)}


def parity(n: int, T: int, seed: int, index: int = 0, min_len: int = 1) -> dict[str, np.ndarray]:
  """Strings of ``min_len..T`` bits (uniform lengths), right-padded to ``T``."""
  rng = _rng(seed, index)
  lengths = rng.integers(min_len, T + 1, n)
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
  bits = rng.integers(0, 2, (n, T)).astype(np.float32) * mask
  y = np.zeros((n, T), np.int32)
  w = np.zeros((n, T), np.float32)
  y[np.arange(n), lengths - 1] = bits.sum(1).astype(np.int32) % 2
  w[np.arange(n), lengths - 1] = 1.0
  return {"x": bits[..., None], "y": y, "w": w, "mask": mask}


def counting(n: int, T: int, seed: int, index: int = 0) -> dict[str, np.ndarray]:
  rng = _rng(seed, index)
  bits = rng.integers(0, 2, (n, T)).astype(np.float32)
  y, w = _last(n, T, bits.sum(1), np.float32)
  return {"x": bits[..., None], "y": y, "w": w, "mask": np.ones((n, T), np.float32)}


GENERATORS = {"adding": adding, "copying": copying, "mqar": mqar, "parity": parity,
              "counting": counting}
REGRESSION = ("adding", "counting")    # MSE; the others are scored by accuracy
