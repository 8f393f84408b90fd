"""Corpus to skip-gram pairs, vectorised: vocabulary by count, word2vec's
frequent-word subsampling, dynamic windows, and a step-indexed pair stream.

The stream is a pure function of ``(seed, step)``: epoch ``e`` draws its
subsampling and window sizes from ``default_rng([tag, seed, e])``, its pairs are
enumerated centre by centre (as word2vec walks the text), and step ``s`` is a
fixed-size slice of that enumeration. So a resumed run sees the same pairs.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Iterable, Optional, Sequence

import numpy as np

from lib.data.vocab import Vocab


_TAG = 0x5EED2FEC


def count_words(sentences: Iterable[Sequence[str]], *, min_count: int = 1,
                max_size: Optional[int] = None, unknown: Optional[str] = None) -> Vocab:
  """Vocabulary of words seen ``min_count`` times or more, at most ``max_size``
  of them, by falling count (ties: first appearance), the order samplers and
  ``restrict_vocab`` assume. With ``unknown`` (the notes' ``UNK``), the rest are
  counted as that token, which takes its place by count (and a slot of
  ``max_size``); without, they are dropped, as gensim does."""
  freq = collections.Counter()
  for s in sentences:
    freq.update(s)
  ranked = [(w, c) for w, c in freq.most_common() if c >= min_count and w != unknown]
  if max_size is not None:
    ranked = ranked[:max_size - (unknown is not None)]
  if unknown is not None:
    kept = sum(c for _, c in ranked)
    ranked.append((unknown, sum(freq.values()) - kept))
    ranked.sort(key=lambda wc: -wc[1])  # stable: ties keep first-appearance order
  return Vocab([w for w, _ in ranked], unk=unknown, counts=[c for _, c in ranked])


def encode(sentences: Iterable[Sequence[str]], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
  """``(ids_N, sentence_N)``: the corpus as one id stream and each word's sentence
  number. Words outside the vocabulary become ``unknown`` or are dropped."""
  index, unk = vocab.index, -1 if vocab.unk_id is None else vocab.unk_id
  ids, sent = [], []
  for n, s in enumerate(sentences):
    row = [index.get(w, unk) for w in s]
    ids.extend(row)
    sent.extend([n] * len(row))
  ids_N, sent_N = np.asarray(ids, np.int32), np.asarray(sent, np.int32)
  keep = ids_N >= 0
  return ids_N[keep], sent_N[keep]


def keep_probabilities(counts_V: np.ndarray, sample: float) -> np.ndarray:
  """word2vec.c's (and gensim's) subsampling: a word of count ``c`` in a corpus of
  ``T`` words is kept with ``min(1, (sqrt(c / (s T)) + 1) (s T) / c)``; 0 = off."""
  counts_V = np.asarray(counts_V, np.float64)
  if not sample:
    return np.ones_like(counts_V)
  t = sample * counts_V.sum()
  with np.errstate(divide="ignore"):
    p = (np.sqrt(counts_V / t) + 1.0) * t / counts_V
  return np.minimum(1.0, np.nan_to_num(p, nan=1.0, posinf=1.0))


@dataclasses.dataclass
class _Epoch:
  words: np.ndarray   # kept word ids, in corpus order
  left: np.ndarray    # contexts on each side of each centre
  right: np.ndarray
  ends: np.ndarray    # cumulative pair count after each centre


class PairStream:
  """Skip-gram ``(input, target)`` pairs: the input is a context word, the target
  the centre word (gensim's orientation; the pairs are symmetric anyway).

  Args:
    ids_N, sentence_N: from :func:`encode`; windows never cross sentences
      unless ``cross_sentences`` (the TF tutorial reads text8 as one stream).
    counts_V: for subsampling.
    window: maximum distance; ``dynamic`` draws each centre's window uniformly
      from 1..window (word2vec's ``reduced_window``).
    sample: subsampling threshold (0 = off).
    pairs_per_step: a step's pairs; an epoch's last step is padded (mask 0).
  """

  def __init__(self, ids_N: np.ndarray, sentence_N: np.ndarray, counts_V: np.ndarray, *,
               window: int, dynamic: bool, sample: float, epochs: int, pairs_per_step: int,
               seed: int, cross_sentences: bool = False):
    if window < 1:
      raise ValueError(f"window must be at least 1, got {window}.")
    self.ids, self.window, self.dynamic, self.seed = ids_N, window, dynamic, seed
    self.sent = np.zeros_like(sentence_N) if cross_sentences else sentence_N
    self.keep_p = keep_probabilities(counts_V, sample)[ids_N]
    self.pairs_per_step = pairs_per_step
    self.epoch_pairs = [int(self._epoch(e).ends[-1]) if len(self._epoch(e).ends) else 0
                        for e in range(epochs)]
    self.epoch_steps = [max(1, -(-n // pairs_per_step)) for n in self.epoch_pairs]
    self.first_step = np.concatenate([[0], np.cumsum(self.epoch_steps)])
    self.num_steps = int(self.first_step[-1])
    self.words_per_epoch = len(ids_N)

  @functools.lru_cache(maxsize=2)
  def _epoch(self, e: int) -> _Epoch:
    # A leading tag: numpy seeds [s, 0] and s alike, which would tie epoch 0's
    # draws to any other generator seeded s.
    rng = np.random.default_rng([_TAG, self.seed, e])
    kept = rng.random(len(self.ids)) < self.keep_p
    w, s = self.ids[kept], self.sent[kept]
    n = len(w)
    b = rng.integers(1, self.window + 1, n) if self.dynamic else np.full(n, self.window)
    pos = np.arange(n)
    start = np.searchsorted(s, s, "left")
    stop = np.searchsorted(s, s, "right")
    left, right = np.minimum(b, pos - start), np.minimum(b, stop - 1 - pos)
    return _Epoch(w, left, right, np.cumsum(left + right))

  def pairs(self, epoch: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``lo..hi-1`` of an epoch's enumeration: ``(inputs, targets)``."""
    ep = self._epoch(epoch)
    c_lo = int(np.searchsorted(ep.ends, lo, "right"))
    c_hi = int(np.searchsorted(ep.ends, hi - 1, "right")) + 1 if hi > lo else c_lo
    first = (ep.ends[c_lo - 1] if c_lo else 0)
    per = (ep.left + ep.right)[c_lo:c_hi]
    centre = np.repeat(np.arange(c_lo, c_hi), per)
    # k-th context of a centre: offsets -left..-1, then 1..right.
    k = np.arange(len(centre)) - np.repeat(np.cumsum(per) - per, per)
    nl = ep.left[centre]
    ctx = centre + np.where(k < nl, k - nl, k - nl + 1)
    a = lo - first
    sl = slice(a, a + hi - lo)
    return ep.words[ctx[sl]], ep.words[centre[sl]]

  def locate(self, step: int) -> tuple[int, int]:
    """``(epoch, step within the epoch)``."""
    if not 0 <= step < self.num_steps:
      raise IndexError(f"step {step} outside 0..{self.num_steps - 1}")
    e = int(np.searchsorted(self.first_step, step, "right") - 1)
    return e, step - int(self.first_step[e])

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """``{'input', 'target': int32 [P], 'mask': float32 [P]}``, P = pairs_per_step."""
    e, j = self.locate(step)
    P = self.pairs_per_step
    lo = j * P
    hi = min(lo + P, self.epoch_pairs[e])
    x, y = self.pairs(e, lo, hi)
    pad = P - len(x)
    mask = np.concatenate([np.ones(len(x), np.float32), np.zeros(pad, np.float32)])
    return {"input": np.pad(x, (0, pad)).astype(np.int32),
            "target": np.pad(y, (0, pad)).astype(np.int32), "mask": mask}
