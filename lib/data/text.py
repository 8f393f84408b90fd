"""Text to integer ids: sentence splitting, word tokenizing, vocabulary (notes 001).

The notes use NLTK's ``sent_tokenize`` (the punkt model, a download) and
``word_tokenize`` (Penn Treebank conventions). Here both are regular
expressions that need nothing downloaded and follow the same conventions where
they matter for a language model: punctuation is its own token and English
contractions split as the Treebank does (``don't -> do n't``, ``it's -> it 's``).

  sentences = text.split_sentences(comment.lower())
  tokens = [text.word_tokenize(s) for s in sentences]
  vocab = text.Vocab.build(tokens, size=8000, specials=(START, END))
  ids = vocab.encode([START, *tokens[0], END])
"""
from __future__ import annotations

import collections
import json
import re
from typing import Iterable, Optional, Sequence

import numpy as np

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


class Vocab:
  """Word <-> id. Special tokens come first, then words by falling frequency
  (ties in order of first appearance), and the unknown token last, so a
  vocabulary of size V holds the V-1 most frequent tokens plus unknown, as the
  notes' ``most_common(vocabulary_size - 1) + [unknown_token]``.
  """

  def __init__(self, words: Sequence[str], unk: str = UNKNOWN, counts: Optional[Sequence[int]] = None):
    if unk not in words:
      raise ValueError(f"The unknown token {unk!r} is not among the words.")
    if len(set(words)) != len(words):
      dup = [w for w, c in collections.Counter(words).items() if c > 1][:5]
      raise ValueError(f"Duplicate words in vocabulary: {dup}")
    self.words = list(words)
    self.unk = unk
    self.counts = list(counts) if counts is not None else None
    self.index = {w: i for i, w in enumerate(self.words)}
    self.unk_id = self.index[unk]

  @classmethod
  def build(cls, token_lists: Iterable[Sequence[str]], size: Optional[int] = None,
            unk: str = UNKNOWN, specials: Sequence[str] = (START, END),
            min_count: int = 1) -> "Vocab":
    """The ``size``-word vocabulary of a corpus (``None``: every word seen).

    ``specials`` (e.g. sentence start/end) are always in, whatever their
    counts; tokens equal to ``unk`` in the text map to the unknown id.
    """
    freq = collections.Counter()
    for toks in token_lists:
      freq.update(toks)
    reserved = set(specials) | {unk}
    ranked = [(w, c) for w, c in freq.most_common() if w not in reserved and c >= min_count]
    if size is not None:
      room = size - len(specials) - 1
      if room < 0:
        raise ValueError(f"size={size} leaves no room for specials {list(specials)} and {unk!r}.")
      ranked = ranked[:room]
    words = [*specials, *(w for w, _ in ranked), unk]
    counts = [freq.get(w, 0) for w in specials] + [c for _, c in ranked] + [freq.get(unk, 0)]
    return cls(words, unk=unk, counts=counts)

  def __len__(self) -> int:
    return len(self.words)

  def __contains__(self, word: str) -> bool:
    return word in self.index

  def id(self, word: str) -> int:
    return self.index.get(word, self.unk_id)

  def encode(self, tokens: Sequence[str]) -> np.ndarray:
    """Token strings -> int32 ids; words outside the vocabulary -> the unknown id."""
    get, unk = self.index.get, self.unk_id
    return np.fromiter((get(t, unk) for t in tokens), np.int32, count=len(tokens))

  def decode(self, ids: Iterable[int]) -> list[str]:
    return [self.words[int(i)] for i in ids]

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump({"words": self.words, "unk": self.unk, "counts": self.counts}, f)

  @classmethod
  def load(cls, path: str) -> "Vocab":
    with open(path) as f:
      d = json.load(f)
    return cls(d["words"], unk=d["unk"], counts=d.get("counts"))
