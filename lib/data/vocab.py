"""The one vocabulary class: tokens (words, or characters with named specials) and ids.

* :meth:`Vocab.build`: words by falling frequency after the specials, the unknown
  token last (the notes' ``most_common(V - 1) + [unknown]``).
* :meth:`Vocab.build_chars`: specials first (so ``<pad>`` can be id 0), then the
  characters sorted by code point.
* A vocabulary in any other order (word2vec's by count) is ``Vocab(tokens, counts=...)``.

With ``unk`` set, unknown tokens encode to it; without, they raise ``KeyError``.
With ``pad`` set, decoding drops it.
"""
from __future__ import annotations

import collections
import json
from typing import Iterable, Optional, Sequence

import numpy as np

from lib.data.text import END, START, UNKNOWN


class Vocab:
  """Token <-> id, with optional unknown and padding tokens and per-token counts."""

  def __init__(self, tokens: Iterable[str], *, unk: Optional[str] = None,
               pad: Optional[str] = None, counts: Optional[Sequence[int]] = None):
    self.tokens = list(tokens)
    if len(set(self.tokens)) != len(self.tokens):
      dup = [t for t, c in collections.Counter(self.tokens).items() if c > 1][:5]
      raise ValueError(f"Duplicate tokens in vocabulary: {dup}")
    for name, special in (("unknown", unk), ("padding", pad)):
      if special is not None and special not in self.tokens:
        raise ValueError(f"The {name} token {special!r} is not among the tokens.")
    self.unk, self.pad = unk, pad
    self.counts = None if counts is None else np.asarray(counts, np.int64)
    self.index = {t: i for i, t in enumerate(self.tokens)}
    self.unk_id = None if unk is None else self.index[unk]

  @classmethod
  def build(cls, sequences: Iterable[Sequence[str]], size: Optional[int] = None,
            unk: str = UNKNOWN, specials: Sequence[str] = (START, END),
            min_count: int = 1) -> "Vocab":
    """The ``size``-token vocabulary of a corpus (``None``: every token seen).

    ``specials`` (e.g. sentence start/end) are always in, whatever their counts;
    tokens equal to ``unk`` in the text map to the unknown id. Ties keep the order
    of first appearance.
    """
    freq = collections.Counter()
    for seq in sequences:
      freq.update(seq)
    reserved = set(specials) | {unk}
    ranked = [(t, c) for t, c in freq.most_common() if t not in reserved and c >= min_count]
    if size is not None:
      room = size - len(specials) - 1
      if room < 0:
        raise ValueError(f"size={size} leaves no room for specials {list(specials)} and {unk!r}.")
      ranked = ranked[:room]
    tokens = [*specials, *(t for t, _ in ranked), unk]
    counts = [freq.get(t, 0) for t in specials] + [c for _, c in ranked] + [freq.get(unk, 0)]
    return cls(tokens, unk=unk, counts=counts)

  @classmethod
  def build_chars(cls, texts: Iterable[str], specials: Sequence[str] = (), *,
                  unk: Optional[str] = None, pad: Optional[str] = None) -> "Vocab":
    """Every character of ``texts``, after ``specials`` (which ``unk`` and ``pad`` name)."""
    chars = set()
    for t in texts:
      chars.update(t)
    return cls([*specials, *sorted(chars - set(specials))], unk=unk, pad=pad)

  def __len__(self) -> int:
    return len(self.tokens)

  def __contains__(self, token: str) -> bool:
    return token in self.index

  def __eq__(self, other) -> bool:
    return (isinstance(other, Vocab) and self.tokens == other.tokens and self.unk == other.unk
            and self.pad == other.pad)

  def id(self, token: str) -> int:
    if self.unk_id is None:
      return self.index[token]
    return self.index.get(token, self.unk_id)

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """Tokens (a list, or a string's characters) -> int32 ids."""
    get = self.index.get
    if self.unk_id is not None:
      unk = self.unk_id
      return np.fromiter((get(t, unk) for t in tokens), np.int32, count=len(tokens))
    try:
      return np.fromiter((self.index[t] for t in tokens), np.int32, count=len(tokens))
    except KeyError as e:
      raise KeyError(f"Token {e.args[0]!r} of {tokens!r} is not in the vocabulary.") from None

  def decode(self, ids: Iterable[int], stop: Optional[int] = None) -> list[str]:
    """The tokens of ``ids`` up to ``stop`` (excluded), without padding."""
    out = []
    for i in ids:
      i = int(i)
      if stop is not None and i == stop:
        break
      if self.tokens[i] != self.pad:  # pad None: nothing is dropped
        out.append(self.tokens[i])
    return out

  def decode_text(self, ids: Iterable[int], stop: Optional[int] = None, sep: str = "") -> str:
    """:meth:`decode` joined: characters by default, ``sep=' '`` for words."""
    return sep.join(self.decode(ids, stop))

  def save(self, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"tokens": self.tokens, "unk": self.unk, "pad": self.pad,
                 "counts": None if self.counts is None else self.counts.tolist()},
                f, ensure_ascii=False)

  @classmethod
  def load(cls, path: str) -> "Vocab":
    with open(path, encoding="utf-8") as f:
      d = json.load(f)
    return cls(d["tokens"], unk=d.get("unk"), pad=d.get("pad"), counts=d.get("counts"))
