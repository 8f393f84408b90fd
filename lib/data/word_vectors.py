"""Word vectors in the word2vec text format (and GloVe's headerless variant).

word2vec text: a header line ``<count> <dim>``, then ``word v1 ... v_dim`` per
line; GloVe files are the same without the header. Both load here, and
:func:`write` produces files that gensim's ``KeyedVectors.load_word2vec_format``
reads.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from lib.errors import DataError


def write(path: str, words: Sequence[str], vectors_VxD: np.ndarray) -> None:
  vectors_VxD = np.asarray(vectors_VxD, np.float32)
  if len(words) != len(vectors_VxD):
    raise ValueError(f"{len(words)} words but {len(vectors_VxD)} vectors.")
  bad = [w for w in words if not w or any(c.isspace() for c in w)]
  if bad:
    raise ValueError(f"Words must be non-empty and free of white space for the text format: {bad[:5]}")
  with open(path, "w", encoding="utf-8") as f:
    f.write(f"{len(words)} {vectors_VxD.shape[1]}\n")
    for w, v in zip(words, vectors_VxD):
      f.write(w + " " + " ".join(f"{x:.6g}" for x in v) + "\n")


def read(path: str, keep: Optional[Iterable[str]] = None, lower: bool = False
         ) -> tuple[list[str], np.ndarray]:
  """``(words, vectors_VxD)`` from a word2vec or GloVe text file.

  ``keep``: only these words are kept (a GloVe file has 400k words; a data set
  needs a few thousand). ``lower``: lower-case the file's words (the first
  occurrence wins). A line with the wrong number of values or a value that is
  not a number is a :class:`DataError` naming the line.
  """
  keep = None if keep is None else set(keep)
  words, rows, dim, seen = [], [], None, set()
  with open(path, encoding="utf-8", errors="strict") as f:
    for lineno, line in enumerate(f, 1):
      parts = line.rstrip("\r\n").rstrip(" ").split(" ")
      if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
        dim = int(parts[1])  # word2vec header
        continue
      if not line.strip():
        continue
      if dim is None:
        dim = len(parts) - 1
      if len(parts) != dim + 1:
        raise DataError(f"{path}:{lineno}: expected a word and {dim} numbers separated by "
                        f"spaces, got {len(parts) - 1} values.")
      word = parts[0].lower() if lower else parts[0]
      if (keep is not None and word not in keep) or word in seen:
        continue
      try:
        rows.append(np.asarray(parts[1:], np.float32))
      except ValueError:
        raise DataError(f"{path}:{lineno}: the values after {parts[0]!r} are not all numbers.") from None
      words.append(word)
      seen.add(word)
  if dim is None:
    raise DataError(f"{path}: no word vectors (empty file).")
  vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
  return words, vectors
