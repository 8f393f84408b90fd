"""The translation experiment's embedded pair set: English number words to Japanese numerals.

``forty-two thousand one hundred seven`` -> ``四万二千百七``: a character-level
translation with multi-byte targets that needs no download. It has what makes
the notes' English-Japanese task hard for a character model (a target script
unlike the source, reordering of units: "thousand" becomes 千 after its digit,
"ten thousand" has its own unit 万 that English lacks) yet a unique right answer,
so exact match and chrF measure learning rather than the data's ambiguity.
"""
from __future__ import annotations

import numpy as np

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_KANJI = "〇一二三四五六七八九"


def english(n: int) -> str:
  """American English words without "and": 1,234 -> one thousand two hundred thirty-four."""
  if n < 20:
    return _ONES[n]
  if n < 100:
    return _TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else "")
  if n < 1000:
    return _ONES[n // 100] + " hundred" + (" " + english(n % 100) if n % 100 else "")
  if n < 1_000_000:
    return english(n // 1000) + " thousand" + (" " + english(n % 1000) if n % 1000 else "")
  raise ValueError(f"{n} is out of range (< 1,000,000).")


def _below_10000(n: int) -> str:
  out = ""
  for unit, name in ((1000, "千"), (100, "百"), (10, "十")):
    d, n = divmod(n, unit)
    if d:
      out += ("" if d == 1 else _KANJI[d]) + name  # 千, 百, 十 without a leading 一
  return out + (_KANJI[n] if n else "")


def japanese(n: int) -> str:
  """Kanji numerals: 10 -> 十, 1,000 -> 千, 10,000 -> 一万, 42,107 -> 四万二千百七."""
  if n == 0:
    return _KANJI[0]
  man, rest = divmod(n, 10_000)
  if man >= 10_000:
    raise ValueError(f"{n} is out of range (< 100,000,000).")
  prefix = ("一" if man == 1 else _below_10000(man)) + "万" if man else ""
  return prefix + _below_10000(rest)


def number_pairs(n: int = 10_000, seed: int = 0, max_digits: int = 5) -> list[tuple[str, str]]:
  """``n`` distinct numbers, their digit count uniform in 1..max_digits, as (English, Japanese)."""
  rng = np.random.default_rng(seed)
  limit = 10 ** max_digits - 1
  if n > limit:
    raise ValueError(f"Only {limit} distinct numbers of at most {max_digits} digits.")
  seen, out = set(), []
  while len(out) < n:
    digits = rng.integers(1, max_digits + 1, 4 * n)
    values = rng.integers(10 ** (digits - 1) - (digits == 1), 10 ** digits)
    for v in values:  # keep first draws in order; python ints for the formatters
      v = int(v)
      if v not in seen:
        seen.add(v)
        out.append((english(v), japanese(v)))
        if len(out) == n:
          break
  return out
