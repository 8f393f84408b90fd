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

from lib.data import text, tfds_source
from lib.data.vocab import Vocab
from lib.errors import DataError


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


def _read_rows(path: str, what: str, pick, num_classes: int, lower: bool,
               label=_parse_label) -> Pairs:
  """The shared loop: ``pick(fields, where) -> (sentence A, sentence B, label field)``
  checks a row's layout (``None``: a row to leave out); ``label(field, where,
  num_classes)`` makes the class. Blank lines are skipped."""
  a, b, y = [], [], []
  for lineno, line in _lines(path):
    if not line.strip():
      continue
    where = f"{path}:{lineno}"
    row = pick(line.split("\t"), where)
    if row is None:
      continue
    sa, sb, field = row
    y.append(label(field, where, num_classes))
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


SICK_A, SICK_B, SICK_SCORE, SICK_SET = 1, 2, 4, 11  # 0-based columns
SICK_SETS = ("TRAIN", "TRIAL", "TEST")


def sick_class(field: str, where: str, num_classes: int = 6) -> int:
  """A SICK relatedness score (1-5) as one of ``num_classes`` classes (module docstring)."""
  try:
    score = float(field)
  except ValueError:
    raise DataError(f"{where}: the relatedness score {field!r} (column 5) is not a number.") from None
  if not 1.0 <= score <= 5.0:
    raise DataError(f"{where}: relatedness score {field!r} (column 5) outside 1..5.")
  # rounded to 9 places first, so 1.4 maps to 0.5 (not 0.4999...) and then rounds up
  return score_to_class(round((score - 1.0) * (num_classes - 1) / 4.0, 9), num_classes)


def read_sick(path: str, num_classes: int = 6, lower: bool = True,
              sets: Sequence[str] = ("TRAIN",)) -> Pairs:
  """The rows of a SICK file whose SemEval set is in ``sets`` (module docstring)."""
  unknown = set(sets) - set(SICK_SETS)
  if unknown:
    raise ValueError(f"Unknown SICK sets {sorted(unknown)}; expected some of {SICK_SETS}.")

  def pick(fields: list[str], where: str):
    if fields[0] == "pair_ID":  # the header row
      return None
    if len(fields) != 12:
      raise DataError(f"{where}: expected 12 tab-separated SICK columns (pair_ID, sentence_A, "
                      f"sentence_B, entailment_label, relatedness_score, ..., SemEval_set), "
                      f"got {len(fields)}.")
    if fields[SICK_SET] not in SICK_SETS:
      raise DataError(f"{where}: SemEval set {fields[SICK_SET]!r} (column 12) is not one of "
                      f"{', '.join(SICK_SETS)}.")
    if not fields[SICK_A].strip() or not fields[SICK_B].strip():
      raise DataError(f"{where}: empty sentence in column 2 or 3.")
    sick_class(fields[SICK_SCORE], where, num_classes)  # every row checked, whichever part
    if fields[SICK_SET] not in sets:
      return None
    return fields[SICK_A], fields[SICK_B], fields[SICK_SCORE]
  return _read_rows(path, f"SICK rows of {'/'.join(sets)}", pick, num_classes, lower, sick_class)


def read_tfds(name: str, split: str, fields: Sequence[str], data_dir: str = "",
              num_classes: int = 6, lower: bool = True) -> Pairs:
  """The pairs of a prepared TFDS dataset's split (``glue/stsb``: ``sentence1``,
  ``sentence2``, ``label`` 0-5), scores to classes by :func:`score_to_class`;
  a label outside ``0..C-1`` (GLUE hides test labels as -1) is named by record."""
  rows = tfds_source.read_fields(name, split, fields, data_dir)
  src = tfds_source.where(name, split, data_dir)
  y = [_parse_label(str(r[2]), f"{src} record {i}", num_classes) for i, r in enumerate(rows)]
  return Pairs([tokenize(r[0], lower) for r in rows], [tokenize(r[1], lower) for r in rows],
               np.asarray(y, np.int32))


READERS = {"pairs": read_pairs_tsv, "stsb": read_stsb, "sick": read_sick}
# Formats whose one file holds the test split too: the reader's keyword for each part.
SPLIT_IN_FILE = {"sick": {"train": dict(sets=("TRAIN", "TRIAL")), "test": dict(sets=("TEST",))}}


def read(path: str, fmt: str, num_classes: int = 6, part: str = "train") -> Pairs:
  """The pairs of a file; for a format in :data:`SPLIT_IN_FILE`, the rows of ``part``
  (``train`` or ``test``)."""
  if fmt not in READERS:
    raise ValueError(f"Unknown pair format {fmt!r}; expected one of {sorted(READERS)}.")
  return READERS[fmt](path, num_classes, **SPLIT_IN_FILE.get(fmt, {}).get(part, {}))


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
