"""Text to tokens: sentence splitting and word tokenizing (notes 001).

The notes use NLTK's ``sent_tokenize`` (the punkt model, a download) and
``word_tokenize`` (Penn Treebank conventions). Here both are regular
expressions that need nothing downloaded and follow the same conventions where
they matter for a language model: punctuation is its own token and English
contractions split as the Treebank does (``don't -> do n't``, ``it's -> it 's``).

  sentences = text.split_sentences(comment.lower())
  tokens = [text.word_tokenize(s) for s in sentences]
  vocab = lib.data.vocab.Vocab.build(tokens, size=8000, specials=(START, END))
  ids = vocab.encode([START, *tokens[0], END])
"""
from __future__ import annotations

import re


# The notes' special tokens.
UNKNOWN = "UNKNOWN_TOKEN"
START = "SENTENCE_START"
END = "SENTENCE_END"

# Words after which a full stop does not end a sentence (lower case).
_ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st vs etc e.g i.e cf al fig no vol approx dept est inc ltd co corp
jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m
""".split())

# A sentence ends at . ! ? (runs of them, optionally followed by closing quotes
# or brackets) followed by white space, or at a blank line.
_SENT_END = re.compile(r"""([.!?]+["')\]]*)(\s+)|\n\s*\n""")

_TOKEN = re.compile(r"""
    https?://\S*[^\s.,!?;:)\]"']           # URLs stay whole (not their final stop)
  | [A-Za-z]+(?=n't\b)                        # "do" of "don't", "ca" of "can't" (Treebank)
  | n't\b
  | '(?:s|re|ve|ll|d|m)\b                     # clitics: 's 're 've 'll 'd 'm
  | \d+(?:[.,:]\d+)*                          # numbers: 3.14, 1,000, 10:30
  | \w+(?:[-_]\w+)*                           # words, hyphenated words
  | \.\.\.|--|[^\w\s]                         # ellipsis, dash, any other symbol
""", re.VERBOSE | re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
  """Splits running text into sentences (no model download; see module docstring).

  A sentence ends at ``.``, ``!`` or ``?`` followed by white space, unless the
  word before a full stop is a known abbreviation or a single letter (an
  initial), and at every blank line.
  """
  out, start = [], 0
  for m in _SENT_END.finditer(text):
    if m.group(1):
      end = m.end(1)
      if m.group(1) == "." and _is_abbreviation(text[start:m.start(1)]):
        continue
    else:
      end = m.start()
    piece = text[start:end].strip()
    if piece:
      out.append(" ".join(piece.split()))
    start = m.end()
  tail = text[start:].strip()
  if tail:
    out.append(" ".join(tail.split()))
  return out


def _is_abbreviation(before: str) -> bool:
  words = before.split()
  if not words:
    return False
  w = words[-1].lower().lstrip("(\"'")
  return w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha())


def word_tokenize(sentence: str) -> list[str]:
  """Penn-Treebank-style word tokens: ``"don't stop!" -> ['do', "n't", 'stop', '!']``."""
  return _TOKEN.findall(sentence)


def tokenize_sentences(text: str, lower: bool = True) -> list[list[str]]:
  """``split_sentences`` then ``word_tokenize``; lower-cased first as the notes do."""
  if lower:
    text = text.lower()
  return [t for t in (word_tokenize(s) for s in split_sentences(text)) if t]
