"""The largest English text beside the project, as one corpus folder for word2vec.

``build(data_dir, out_dir)`` writes one sentence a line, lower-cased tokens
separated by spaces (the ``lines`` format, PTB's own), from what
``../shared/data`` holds (its README says where each comes from):

* ``ptb.txt``: PTB train as it is (887,521 words, ``<unk>`` for rare words);
* ``tatoeba_en.txt``: the English column of ``eng_fra/fra.txt``, each distinct
  sentence once (many have several French translations);
* ``sick.txt``: the TRAIN and TRIAL sentences of ``sick/SICK.txt`` (the variational
  RNN's training side; its TEST sentences stay out);
* ``lee.txt``: the news prose of ``w2v_corpus/`` (read as Latin-1: ``lee.cor``
  is not UTF-8), split into sentences.

Non-PTB text goes through :func:`lib.data.text.word_tokenize`.

  python -m experiments.word2vec.english_corpus --data=../shared/data --out=runs/corpus_en
"""
from __future__ import annotations

import os
import sys

from lib.data import corpora, text


def _tokens(sentence: str) -> str:
  return " ".join(text.word_tokenize(sentence.lower()))


def _tatoeba_english(path: str) -> list[str]:
  seen: dict[str, None] = {}
  for line in corpora.read_utf8(path).splitlines():
    en = line.split("\t", 1)[0].strip()
    if en:
      seen.setdefault(en, None)
  return [_tokens(s) for s in seen]


def _sick_sentences(path: str) -> list[str]:
  out: dict[str, None] = {}
  for line in corpora.read_utf8(path).splitlines()[1:]:
    f = line.rstrip("\r").split("\t")
    if len(f) == 12 and f[11] in ("TRAIN", "TRIAL"):
      out.setdefault(f[1], None)
      out.setdefault(f[2], None)
  return [_tokens(s) for s in out]


def _lee(folder: str) -> list[str]:
  out = []
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), encoding="latin-1") as f:  # lee.cor: Latin-1 bytes
      out += [" ".join(s) for s in text.tokenize_sentences(f.read())]
  return out


def build(data_dir: str, out_dir: str) -> dict[str, int]:
  """Writes the corpus files; returns words per file."""
  parts = {
      "ptb.txt": [l.strip() for l in corpora.read_utf8(
          os.path.join(data_dir, "ptb", "ptb.train.txt")).splitlines() if l.strip()],
      "tatoeba_en.txt": _tatoeba_english(os.path.join(data_dir, "eng_fra", "fra.txt")),
      "sick.txt": _sick_sentences(os.path.join(data_dir, "sick", "SICK.txt")),
      "lee.txt": _lee(os.path.join(data_dir, "w2v_corpus")),
  }
  os.makedirs(out_dir, exist_ok=True)
  words = {}
  for name, lines in parts.items():
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
    words[name] = sum(len(l.split()) for l in lines)
  return words


def main(argv: list[str]) -> None:
  args = dict(a.lstrip("-").split("=", 1) for a in argv[1:])
  words = build(args.get("data", "../shared/data"), args.get("out", "runs/corpus_en"))
  for name, n in words.items():
    print(f"{name}: {n:,} words")
  print(f"total: {sum(words.values()):,} words")


if __name__ == "__main__":
  main(sys.argv)
