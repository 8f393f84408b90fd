"""The seq2seq toy tasks of "Deep Learning from Scratch 2" (notes 002): generators and loading.

* **addition**: ``16+75  _91  ``: two operands of 1-3 random digits (the digit
  count uniform, so small numbers are common), the question padded to 7
  characters, ``_``, the sum padded to 4. Questions are unique up to operand
  order. This is the Keras addition example's generator, which made the book's
  ``addition.txt``: with it, 50,000 draws give the file's mix of operand
  lengths (55 one-digit pairs, 12,566 three-digit pairs; the file has 55 and 12,577).
* **date**: free-form dates (``september 27, 1994``, ``2/10/93``,
  ``TUESDAY, SEPTEMBER 25, 1984`` ...) padded to 29 characters, ``_``, the ISO date
  (10 characters), years 1970-2017, as in the book's ``date.txt``.

Both produce lines of the book's fixed-width format, so the generated data and
the book's files go through the same reader (:func:`lib.data.char_pairs.parse_qa_lines`).
"""
from __future__ import annotations

import datetime

import numpy as np

from lib.data import char_pairs as pairs

DATE_WIDTHS = (29, 10)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _random_operands(rng: np.random.Generator, n: int, digits: int) -> np.ndarray:
  """Numbers of 1..digits random digits (leading zeros collapse, as in Keras' example)."""
  count = rng.integers(1, digits + 1, n)
  d = rng.integers(0, 10, (n, digits))
  value = np.zeros(n, np.int64)
  for k in range(digits):  # a loop over digit positions, not over examples
    value = np.where(k < count, value * 10 + d[:, k], value)
  return value


def addition_lines(n: int = 50_000, seed: int = 0, digits: int = 3) -> list[str]:
  """``n`` unique addition questions (up to operand order) in the book's format."""
  rng = np.random.default_rng(seed)
  keep_a, keep_b, seen = [], [], set()
  q_width = 2 * digits + 1
  while len(keep_a) < n:
    a, b = _random_operands(rng, 2 * n, digits), _random_operands(rng, 2 * n, digits)
    key = np.minimum(a, b) * 10 ** digits + np.maximum(a, b)
    _, first = np.unique(key, return_index=True)  # first draw of each key in this round
    for i in np.sort(first):
      if key[i] not in seen:
        seen.add(key[i])
        keep_a.append(a[i])
        keep_b.append(b[i])
        if len(keep_a) == n:
          break
  return [pairs.format_qa(f"{x}+{y}", str(x + y), q_width, digits + 1)
          for x, y in zip(keep_a, keep_b)]


def _case(rng: np.random.Generator, s: str) -> str:
  r = rng.random()
  return s.lower() if r < 0.25 else s.upper() if r < 0.5 else s


def date_lines(n: int = 50_000, seed: int = 0) -> list[str]:
  """``n`` free-form dates (1970-2017) and their ISO forms, in the book's format."""
  rng = np.random.default_rng(seed)
  first = datetime.date(1970, 1, 1).toordinal()
  days = rng.integers(first, datetime.date(2017, 12, 31).toordinal() + 1, n)
  kinds = rng.choice(4, n, p=[0.25, 0.35, 0.25, 0.15])
  out = []
  for o, kind in zip(days, kinds):  # string formatting only; 50k dates in ~0.3 s
    d = datetime.date.fromordinal(int(o))
    month = _MONTHS[d.month - 1]
    if kind == 0:
      q = f"{d.month}/{d.day}/{d.year % 100:02d}"
    elif kind == 1:
      q = _case(rng, f"{month[:3]} {d.day}, {d.year}")
    elif kind == 2:
      q = _case(rng, f"{month} {d.day}, {d.year}")
    else:
      q = _case(rng, f"{_DAYS[d.weekday()]}, {month} {d.day}, {d.year}")
    out.append(pairs.format_qa(q, d.isoformat(), *DATE_WIDTHS))
  return out


GENERATORS = {"addition": addition_lines, "date": date_lines}


def load_pairs(task: str, path: str, num: int, seed: int) -> list[tuple[str, str]]:
  """Question/answer pairs: read from ``path`` when given, else generated."""
  if path:
    return pairs.read_qa_file(path)
  if task not in GENERATORS:
    raise ValueError(f"Unknown task {task!r}; expected one of {sorted(GENERATORS)}.")
  return pairs.parse_qa_lines(GENERATORS[task](num, seed), f"<generated {task}>")
