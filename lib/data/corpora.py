"""Readers for the language-model corpora, with errors that name the file and line.

* :func:`read_ptb`: Penn-Treebank-format text (one sentence a line, tokens
  separated by spaces, ``<unk>`` already in place), e.g. ``../shared/data/ptb``.
* :func:`read_csv_column`: one text column of a CSV with a header row, e.g. the
  reddit comments of notes 001 (column ``body``).
* :func:`embedded_text`: real English prose that ships with Python itself (the
  Python Language Reference topics of ``pydoc_data``), so the notes' LM runs
  with nothing downloaded.

Why plain readers and not TFDS builders: see WORKSPACE.md ("Data").
"""
from __future__ import annotations

import csv
import os
import re
import sys
from typing import Optional

from absl import logging

from lib.errors import DataError

PTB_SPLITS = ("train", "valid", "test")


def ptb_paths(data_dir: str) -> dict[str, str]:
  """``{split: path}`` of ``ptb.{train,valid,test}.txt`` in ``data_dir``, all checked to exist."""
  paths = {s: os.path.join(data_dir, f"ptb.{s}.txt") for s in PTB_SPLITS}
  missing = [p for p in paths.values() if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(
        f"PTB files not found: {missing}. Expected ptb.train.txt, ptb.valid.txt and "
        f"ptb.test.txt in {data_dir!r} (Mikolov's preprocessing, one sentence a line).")
  return paths


def read_ptb(path: str) -> list[list[str]]:
  """Sentences as token lists; blank lines are skipped. Errors name the line."""
  sentences = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, 1):
      if "\t" in line or "\x00" in line:
        raise DataError(f"{path}:{lineno}: expected space-separated tokens, found a "
                        f"{'tab' if chr(9) in line else 'NUL byte'}; is this PTB-format text?")
      toks = line.split()
      if toks:
        sentences.append(toks)
  if not sentences:
    raise DataError(f"{path}: no sentences (expected one sentence a line).")
  return sentences


def read_csv_column(path: str, column: str = "body", *, skip_bad_records: bool = False,
                    max_records: Optional[int] = None) -> list[str]:
  """One column of a CSV file with a header row (notes 001's reddit comments).

  A record cut off inside a quoted field (a truncated file) or with the wrong
  number of fields raises :class:`DataError` naming the line where that record
  starts; ``skip_bad_records=True`` logs it and keeps the good records instead.
  """
  csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
  out = []
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.reader(f, strict=True, skipinitialspace=True)
    try:
      header = next(reader)
    except StopIteration:
      raise DataError(f"{path}:1: empty file; expected a header row naming a {column!r} column.")
    if column not in header:
      raise DataError(f"{path}:1: header {header[:8]} has no column {column!r}.")
    col, width = header.index(column), len(header)
    record, start = 0, reader.line_num + 1
    while True:
      try:
        row = next(reader)
      except StopIteration:
        break
      except csv.Error as e:
        msg = (f"{path}:{start}: record {record + 1} (starting at line {start}) is malformed: {e}"
               + ("; the file ends inside a quoted field, so it looks truncated"
                  if "end of data" in str(e) else "")
               + ". Expected comma-separated fields with balanced double quotes.")
        if not skip_bad_records:
          raise DataError(msg + " Pass skip_bad_records=True to keep the good records.") from None
        logging.warning("Skipping: %s", msg)
        break  # the reader cannot resynchronise after a broken quote
      record += 1
      if row and len(row) != width:
        msg = f"{path}:{start}: record {record} has {len(row)} fields; the header has {width}."
        if not skip_bad_records:
          raise DataError(msg)
        logging.warning("Skipping: %s", msg)
      elif row:
        out.append(row[col])
      start = reader.line_num + 1
      if max_records and len(out) >= max_records:
        break
  return out


# Lines of the reference that are grammar rules, code or tables, not prose.
_NOT_PROSE = re.compile(r"^(\s{3,}|\s*>>>|\s*\.\.\.|\s*[*=\-+]{3,}|\s*\|)")


def read_utf8(path: str) -> str:
  """A text file's contents; bytes that are not UTF-8 are a :class:`DataError`
  naming ``path:line``."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:  # e.start: a byte offset into the whole file
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason}).") from None


def embedded_text() -> str:
  """English prose shipped with Python: the topics of the Language Reference
  (``pydoc_data.topics``, about 60,000 words), with code and grammar lines removed."""
  from pydoc_data import topics

  paragraphs = []
  for name in sorted(topics.topics):
    lines = [l for l in topics.topics[name].splitlines() if not _NOT_PROSE.match(l)]
    paragraphs.append("\n".join(lines))
  return "\n\n".join(paragraphs)
