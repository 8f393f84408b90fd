"""Sentence-pair classification data: readers, labels, and padded id arrays.

Two file formats, both tab-separated and read as plain text (no CSV quoting:
STS-B sentences contain quote characters):

* a pairs file: ``sentence A<TAB>sentence B<TAB>label`` where the label is a
  class id (``0 .. C-1``) or a score (``3.8``) rounded to a class;
* STS-Benchmark (``sts-train.csv``, ``sts-dev.csv``, ``sts-test.csv``): genre,
  file, year, id, **score (column 5)**, **sentence 1 (column 6)**, **sentence 2
  (column 7)**, and on some rows extra columns (sources), which are ignored. The
  0-5 similarity score rounds to 6 classes, which is how notes 000's 6-class
  task reads.

A malformed row is a :class:`~lib.data.DataError` naming the file, the line
and what was expected.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from lib.data import text
from lib.data.errors import DataError
from lib.data.vocab import Vocab


@dataclasses.dataclass
class Pairs:
  a: list[list[str]]   # tokens of sentence A
  b: list[list[str]]
  y: np.ndarray        # int32 class per pair

  def __len__(self) -> int:
    return len(self.y)

  def take(self, idx: Sequence[int]) -> "Pairs":
    return Pairs([self.a[i] for i in idx], [self.b[i] for i in idx], self.y[np.asarray(idx, int)])


def score_to_class(score: float, num_classes: int = 6) -> int:
  """A 0 .. C-1 score rounded half up (2.5 -> 3), clipped to the classes."""
  return int(min(max(math.floor(score + 0.5), 0), num_classes - 1))


def _parse_label(field: str, where: str, num_classes: int) -> int:
  try:
    value = float(field)
  except ValueError:
    raise DataError(f"{where}: the label {field!r} is not a number (expected a class id "
                    f"0..{num_classes - 1} or a score).") from None
  if not 0 <= value <= num_classes - 1:
    raise DataError(f"{where}: label {field!r} outside 0..{num_classes - 1}.")
  return score_to_class(value, num_classes)


def tokenize(sentence: str, lower: bool = True) -> list[str]:
  return text.word_tokenize(sentence.lower() if lower else sentence)


def _lines(path: str):
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8").rstrip("\r\n")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start}).") from None
      yield lineno, (line.lstrip("\ufeff") if lineno == 1 else line)


def _read_rows(path: str, what: str, pick, num_classes: int, lower: bool) -> Pairs:
  """The shared loop: ``pick(fields, where) -> (sentence A, sentence B, label field)``
  checks a row's layout; blank lines are skipped."""
  a, b, y = [], [], []
  for lineno, line in _lines(path):
    if not line.strip():
      continue
    where = f"{path}:{lineno}"
    sa, sb, label = pick(line.split("\t"), where)
    y.append(_parse_label(label, where, num_classes))
    a.append(tokenize(sa, lower))
    b.append(tokenize(sb, lower))
  if not y:
    raise DataError(f"{path}: no {what}.")
  return Pairs(a, b, np.asarray(y, np.int32))


def _pick_pair(fields: list[str], where: str) -> tuple[str, str, str]:
  if len(fields) != 3:
    raise DataError(f"{where}: expected 3 tab-separated fields 'sentence A<TAB>sentence "
                    f"B<TAB>label', got {len(fields)}.")
  return fields[0], fields[1], fields[2]


def read_pairs_tsv(path: str, num_classes: int = 6, lower: bool = True) -> Pairs:
  """``sentence A<TAB>sentence B<TAB>label`` lines; blank lines are skipped."""
  return _read_rows(path, "sentence pairs", _pick_pair, num_classes, lower)


STSB_SCORE, STSB_A, STSB_B = 4, 5, 6  # 0-based columns 5, 6 and 7


def _pick_stsb(fields: list[str], where: str) -> tuple[str, str, str]:
  if len(fields) < 7:
    raise DataError(f"{where}: expected at least 7 tab-separated columns (genre, file, year, "
                    f"id, score, sentence 1, sentence 2), got {len(fields)}.")
  if not fields[STSB_A].strip() or not fields[STSB_B].strip():
    raise DataError(f"{where}: empty sentence in column 6 or 7.")
  return fields[STSB_A], fields[STSB_B], fields[STSB_SCORE]


def read_stsb(path: str, num_classes: int = 6, lower: bool = True) -> Pairs:
  """An STS-Benchmark file (see the module docstring); rows may carry extra columns."""
  return _read_rows(path, "STS-B rows", _pick_stsb, num_classes, lower)


READERS = {"pairs": read_pairs_tsv, "stsb": read_stsb}


def read(path: str, fmt: str, num_classes: int = 6) -> Pairs:
  if fmt not in READERS:
    raise ValueError(f"Unknown pair format {fmt!r}; expected one of {sorted(READERS)}.")
  return READERS[fmt](path, num_classes)


def encode(token_lists: Sequence[Sequence[str]], vocab: Vocab,
           max_len: int) -> tuple[np.ndarray, np.ndarray, int]:
  """``(ids_NxT, mask_NxT, truncated)``: right-padded ids (``T = max_len``), their mask,
  and how many sentences were cut to ``max_len``. Words outside ``vocab`` (which needs
  an unknown token) and empty sentences become the unknown token, so every row has a
  real step."""
  n = len(token_lists)
  ids = np.zeros((n, max_len), np.int32)
  mask = np.zeros((n, max_len), np.float32)
  truncated = 0
  for i, toks in enumerate(token_lists):
    row = [vocab.id(t) for t in toks] or [vocab.unk_id]
    truncated += len(row) > max_len
    row = row[:max_len]
    ids[i, :len(row)] = row
    mask[i, :len(row)] = 1.0
  return ids, mask, truncated


def length_limit(token_lists: Sequence[Sequence[str]], cap: Optional[int]) -> int:
  longest = max((len(t) for t in token_lists), default=1) or 1
  return min(longest, cap) if cap else longest
