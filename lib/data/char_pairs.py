"""Character-level sequence pairs: file formats, vocabularies, arrays, splits.

Two formats, each read with errors that name the file and the line:

* **Fixed-width question/answer lines** ("Deep Learning from Scratch 2":
  ``addition.txt``, ``date.txt``): the question padded with spaces to a fixed
  width, ``_``, the answer padded to a fixed width, e.g. ``16+75  _91  ``. The
  ``_`` is kept as the decoder's start symbol, as the book does, and the spaces
  are characters to predict, so nothing is padding.
* **Anki/Tatoeba pair files**: ``source<TAB>target[<TAB>attribution]`` per line,
  UTF-8, any script (the notes' English-Japanese ``jpn.txt``).

:func:`char_vocab` builds their character vocabulary (a :class:`lib.data.vocab.Vocab`);
:func:`encode_pairs` turns string pairs into the arrays every seq2seq model in
rnnlab reads: ``src`` (BxS ids), ``src_len``, ``tgt_in`` (start symbol then the
target), ``tgt_out`` (the target then the end symbol) and ``tgt_mask``.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

from absl import logging
import numpy as np

from lib.data.vocab import Vocab
from lib.errors import DataError

PAD = "<pad>"
UNK = "<unk>"
QA_SEPARATOR = "_"


def char_vocab(texts: Iterable[str], specials: Sequence[str] = ()) -> Vocab:
  """The characters of ``texts`` after ``specials``; ``<unk>`` and ``<pad>``, when among
  the specials, become the vocabulary's unknown and padding tokens."""
  return Vocab.build_chars(texts, specials, unk=UNK if UNK in specials else None,
                           pad=PAD if PAD in specials else None)


# -- fixed-width question/answer lines ------------------------------------------------
def format_qa(question: str, answer: str, question_width: int, answer_width: int) -> str:
  """One line of the book's format: ``question.ljust(w) + '_' + answer.ljust(w)``."""
  if len(question) > question_width or len(answer) > answer_width:
    raise ValueError(f"{question!r}/{answer!r} do not fit widths {question_width}/{answer_width}.")
  return question.ljust(question_width) + QA_SEPARATOR + answer.ljust(answer_width)


def parse_qa_lines(lines: Iterable[str], source: str = "<lines>") -> list[tuple[str, str]]:
  """``[(question, answer)]`` of fixed-width lines; the separator is the first ``_``.

  Every line must have the first line's widths: a ragged line is a
  :class:`DataError` naming ``source:line``.
  """
  pairs, widths = [], None
  for lineno, line in enumerate(lines, 1):
    line = line.rstrip("\r\n")
    if not line:
      continue
    cut = line.find(QA_SEPARATOR)
    if cut <= 0:
      raise DataError(f"{source}:{lineno}: expected a question, '{QA_SEPARATOR}' and an answer "
                      f"(e.g. '16+75  _91  '), got {line!r}.")
    q, a = line[:cut], line[cut + 1:]
    if widths is None:
      widths = (len(q), len(a))
    elif (len(q), len(a)) != widths:
      raise DataError(f"{source}:{lineno}: question/answer widths {len(q)}/{len(a)}; the file "
                      f"started with {widths[0]}/{widths[1]} (fixed width, space padded).")
    pairs.append((q, a))
  if not pairs:
    raise DataError(f"{source}: no question/answer lines.")
  return pairs


def read_qa_file(path: str) -> list[tuple[str, str]]:
  """Reads a fixed-width question/answer file such as ``addition.txt`` or ``date.txt``."""
  with open(path, encoding="utf-8") as f:
    return parse_qa_lines(f, path)


# -- Anki / Tatoeba pair files ----------------------------------------------------------
@dataclasses.dataclass
class PairFile:
  pairs: list[tuple[str, str]]
  skipped: list[tuple[int, str]]  # (line number, why) of the lines left out


def read_pair_file(path: str, *, skip_bad_lines: bool = False,
                   max_pairs: Optional[int] = None) -> PairFile:
  """Reads ``source<TAB>target[<TAB>...]`` lines (UTF-8) as Anki and Tatoeba export them.

  A line without a tab, with an empty side, or with bytes that are not UTF-8 is a
  :class:`DataError` naming the line; with ``skip_bad_lines`` it is left out,
  counted and logged instead. Blank lines are ignored; a byte-order mark is dropped.
  """
  pairs, skipped = [], []
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, 1):
      why = None
      try:
        line = raw.decode("utf-8").rstrip("\r\n")
      except UnicodeDecodeError as e:
        why, line = f"not UTF-8 ({e.reason} at byte {e.start})", ""
      if lineno == 1:
        line = line.lstrip("\ufeff")
      if why is None and not line.strip():
        continue
      if why is None:
        fields = line.split("\t")
        if len(fields) < 2:
          why = "no tab: expected 'source<TAB>target[<TAB>attribution]'"
        elif not fields[0].strip() or not fields[1].strip():
          why = "empty source or target"
      if why is not None:
        if not skip_bad_lines:
          raise DataError(f"{path}:{lineno}: {why}. Fix the line, or set skip_bad_lines "
                          "(--config.data.skip_bad_lines=True) to leave such lines out.")
        skipped.append((lineno, why))
        continue
      pairs.append((fields[0], fields[1]))
      if max_pairs and len(pairs) >= max_pairs:
        break
  if skipped:
    logging.warning("%s: skipped %d malformed lines (first: line %d, %s).", path, len(skipped),
                    *skipped[0])
  if not pairs:
    raise DataError(f"{path}: no 'source<TAB>target' pairs.")
  return PairFile(pairs, skipped)


def format_pair_lines(pairs: Iterable[tuple[str, str]], attribution: str = "") -> str:
  """The Anki format of ``pairs`` (what :func:`read_pair_file` reads)."""
  tail = f"\t{attribution}" if attribution else ""
  return "".join(f"{s}\t{t}{tail}\n" for s, t in pairs)


# -- arrays -------------------------------------------------------------------------------
def encode_pairs(pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab, *,
                 start: str, end: Optional[str] = None, src_len: Optional[int] = None,
                 tgt_len: Optional[int] = None) -> dict[str, np.ndarray]:
  """Arrays of a pair set, padded with ``<pad>`` (which must then be in the vocabulary).

  ``tgt_in`` is ``start`` then the target; ``tgt_out`` is the target then
  ``end`` (when given): teacher forcing reads ``tgt_in`` and predicts ``tgt_out``.
  Lengths default to the longest sequence; a longer sequence is an error.
  """
  srcs = [src_vocab.encode(s) for s, _ in pairs]
  tgts = [tgt_vocab.encode(t) for _, t in pairs]
  extra = 1 if end is not None else 0
  S = src_len or max(len(s) for s in srcs)
  T = tgt_len or max(len(t) for t in tgts) + extra
  if max(len(s) for s in srcs) > S or max(len(t) for t in tgts) + extra > T:
    raise ValueError(f"A pair is longer than the lengths {S}/{T}.")

  def pad_id(vocab):
    if PAD not in vocab:
      raise ValueError(f"Sequences of different lengths need {PAD!r} in the vocabulary.")
    return vocab.id(PAD)

  n = len(pairs)
  ragged_src = any(len(s) != S for s in srcs)
  ragged_tgt = any(len(t) + extra != T for t in tgts)
  src = np.full((n, S), pad_id(src_vocab) if ragged_src else 0, np.int32)
  fill = pad_id(tgt_vocab) if ragged_tgt else 0
  tgt_in = np.full((n, T), fill, np.int32)
  tgt_out = np.full((n, T), fill, np.int32)
  tgt_mask = np.zeros((n, T), np.float32)
  s_id = tgt_vocab.id(start)
  for i, (s, t) in enumerate(zip(srcs, tgts)):
    src[i, :len(s)] = s
    tgt_in[i, 0] = s_id
    tgt_in[i, 1:len(t) + 1] = t[:T - 1]
    tgt_out[i, :len(t)] = t
    if end is not None:
      tgt_out[i, len(t)] = tgt_vocab.id(end)
    tgt_mask[i, :len(t) + extra] = 1.0
  return {"src": src, "src_len": np.asarray([len(s) for s in srcs], np.int32),
          "tgt_in": tgt_in, "tgt_out": tgt_out, "tgt_mask": tgt_mask}


def split_indices(n: int, valid: float | int, seed: Optional[int], source: str = "the data"
                  ) -> tuple[np.ndarray, np.ndarray]:
  """``(train, valid)`` indices: the last ``valid`` items (a count, or a fraction
  rounded down as the book does) of a permutation. A split that leaves either side
  empty is a :class:`DataError` naming ``source`` (the file).

  The permutation is numpy's legacy ``RandomState(seed)``, which reproduces the
  book's ``np.random.seed(1984); np.random.shuffle(indices)`` split exactly.
  ``seed=None`` keeps the file order (Keras' ``validation_split`` takes the
  last lines unshuffled).
  """
  n_valid = int(valid) if valid >= 1 else int(n * valid)
  if not 0 < n_valid < n:
    raise DataError(f"{source}: {n} pair(s); holding out data.valid={valid} leaves {n - n_valid} "
                    f"to train on and {n_valid} to validate; both need at least one.")
  order = np.arange(n) if seed is None else np.random.RandomState(seed).permutation(n)
  return order[:n - n_valid], order[n - n_valid:]
