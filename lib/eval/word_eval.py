"""Word-vector evaluation: nearest neighbours by cosine (the notes' ``similarity``)
and analogies in the ``questions-words.txt`` format (3CosAdd), as gensim's
``evaluate_word_analogies`` scores them.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from lib.data import corpora
from lib.errors import DataError


def normalize(vectors_VxD: np.ndarray) -> np.ndarray:
  """Rows scaled to unit length (the notes' ``embeddings / norm``; zero rows stay zero)."""
  v = np.asarray(vectors_VxD, np.float32)
  norm = np.linalg.norm(v, axis=1, keepdims=True)
  return v / np.maximum(norm, 1e-12)


def nearest(unit_VxD: np.ndarray, query_ids: Sequence[int], k: int = 5,
            exclude_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """``(ids_QxK, similarity_QxK)``: the ``k`` most cosine-similar words of each
  query, best first: the notes' ``matmul(valid_embeddings, normalized_embeddings^T)``."""
  q = np.asarray(query_ids)
  sim = unit_VxD[q] @ unit_VxD.T
  if exclude_self:
    sim[np.arange(len(q)), q] = -np.inf
  top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  return top, np.take_along_axis(sim, top, 1)


@dataclasses.dataclass
class Section:
  name: str
  questions: list[tuple[str, str, str, str]]


def read_analogies(path: str) -> list[Section]:
  """``: section`` lines, then ``a b c d`` per question (a is to b as c is to d)."""
  sections: list[Section] = []
  for lineno, line in enumerate(corpora.read_utf8(path).splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    if line.startswith(":"):
      sections.append(Section(line[1:].strip(), []))
      continue
    parts = line.split()
    if len(parts) != 4:
      raise DataError(f"{path}:{lineno}: expected four words 'a b c d' or a ': section' "
                      f"line, got {len(parts)} fields.")
    if not sections:
      raise DataError(f"{path}:{lineno}: a question before the first ': section' line.")
    sections[-1].questions.append(tuple(parts))
  if not sections:
    raise DataError(f"{path}: no analogy sections (expected ': name' lines).")
  return sections


def evaluate_analogies(words: Sequence[str], vectors_VxD: np.ndarray, sections: Sequence[Section],
                       restrict_vocab: int = 300_000, case_insensitive: bool = True,
                       batch: int = 2048) -> dict:
  """Accuracy per section and in total, gensim's rules: only the first
  ``restrict_vocab`` words (ids sorted by falling count) are candidates and
  questions; a question with a word outside them is skipped; the answer is the
  argmax of ``cos(w, b) - cos(w, a) + cos(w, c)`` over words other than a, b, c.

  Returns ``{'sections': [{'section', 'correct', 'total', 'accuracy'}], 'correct',
  'total', 'accuracy', 'skipped'}``.
  """
  n = min(restrict_vocab, len(words))
  unit = normalize(np.asarray(vectors_VxD)[:n])
  fold = (lambda w: w.upper()) if case_insensitive else (lambda w: w)
  index: dict[str, int] = {}
  for i in range(n - 1, -1, -1):  # the most frequent spelling wins, as gensim
    index[fold(words[i])] = i
  rows, skipped = [], 0
  for sec in sections:
    qs = [tuple(index.get(fold(w), -1) for w in q) for q in sec.questions]
    ok = np.array([q for q in qs if min(q) >= 0], np.int64).reshape(-1, 4)
    skipped += len(qs) - len(ok)
    correct = 0
    for i in range(0, len(ok), batch):
      a, b, c, d = ok[i:i + batch].T
      sim = (unit[b] - unit[a] + unit[c]) @ unit.T
      r = np.arange(len(a))
      sim[r, a] = sim[r, b] = sim[r, c] = -np.inf
      correct += int((sim.argmax(1) == d).sum())
    rows.append({"section": sec.name, "correct": correct, "total": len(ok),
                 "accuracy": correct / len(ok) if len(ok) else 0.0})
  correct, total = sum(r["correct"] for r in rows), sum(r["total"] for r in rows)
  return {"sections": rows, "correct": correct, "total": total,
          "accuracy": correct / total if total else 0.0, "skipped": skipped}
