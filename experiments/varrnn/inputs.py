"""Data of the variational-RNN experiment: the embedded pair task, files, word vectors.

Embedded default (no download), "which came first": every sentence holds the
three marker words ``red``, ``green`` and ``blue`` once each, at random places
among filler words. The class of a pair is the unordered pair of the markers
that come first in sentence A and in sentence B: {rr, gg, bb, rg, rb, gb}, 6
classes with priors 1/9 (same) and 2/9 (mixed). Every sentence contains the
same words in some order, so a bag of words carries no information about the
class (chance: balanced macro-F1 1/6); a recurrent encoder must remember which
marker it saw first. The word vectors are a fixed random table (seeded), as
the notes feed fixed 50-d word vectors.

Real data by path: a pairs TSV or STS-Benchmark file (``experiments.varrnn.sentence_pairs``),
with word vectors from a word2vec/GloVe text file (``data.vectors``) or
embeddings learned with the model (``model.embeddings='learned'``).
"""
from __future__ import annotations

import dataclasses
import itertools

from absl import logging
import ml_collections
import numpy as np

from experiments.varrnn import sentence_pairs
from lib.data import tfds_source, word_vectors
from lib.data.vocab import Vocab
from lib.errors import DataError

MARKERS = ("red", "green", "blue")
FILLER = tuple("""the a of to and in is it that was for on are with as his they be at one
have this from or had by not but what all were when we there can an your which their said if
do will each about how up out them then she many some so these would other into has more her
two like him see time could no make than first been its who now people my made over did down
only way find use may water long little very after words called just where most know""".split())
# Class order: the same-marker pairs (rr, gg, bb), then the mixed ones (rg, rb, gb).
CLASSES = tuple(sorted(itertools.combinations_with_replacement(range(3), 2),
                       key=lambda p: (p[0] != p[1], p)))
CLASS_NAMES = tuple(MARKERS[i][0] + MARKERS[j][0] for i, j in CLASSES)
_CLASS_OF = {p: k for k, p in enumerate(CLASSES)}
UNK = "<unk>"


def _sentence(rng: np.random.Generator, min_len: int, max_len: int) -> tuple[list[str], int]:
  n = int(rng.integers(min_len, max_len + 1))
  words = list(rng.choice(FILLER, n - len(MARKERS)))
  order = rng.permutation(len(MARKERS))           # marker order of appearance
  slots = np.sort(rng.choice(n, len(MARKERS), replace=False))
  for slot, m in zip(slots, order):
    words.insert(int(slot), MARKERS[m])
  return words, int(order[0])


def first_marker_pairs(num: int, seed: int, min_len: int = 6, max_len: int = 20
                       ) -> sentence_pairs.Pairs:
  """``num`` generated pairs of the embedded task (see the module docstring)."""
  if min_len < len(MARKERS):
    raise ValueError(f"min_len must be at least {len(MARKERS)} (the markers).")
  rng = np.random.default_rng(seed)
  a, b, y = [], [], []
  for _ in range(num):
    sa, fa = _sentence(rng, min_len, max_len)
    sb, fb = _sentence(rng, min_len, max_len)
    a.append(sa)
    b.append(sb)
    y.append(_CLASS_OF[tuple(sorted((fa, fb)))])
  return sentence_pairs.Pairs(a, b, np.asarray(y, np.int32))


def random_vectors(words: list[str], dim: int, seed: int) -> np.ndarray:
  """A fixed random table (norm about 2 per word), standing in for pretrained vectors."""
  return (np.random.default_rng(seed).standard_normal((len(words), dim)) * 0.3).astype(np.float32)


@dataclasses.dataclass
class Dataset:
  train: dict[str, np.ndarray]
  test: dict[str, np.ndarray]
  vocab: Vocab            # the training words by count, UNK last
  vectors: np.ndarray | None  # V x D when the word vectors are fixed inputs
  num_classes: int
  info: str


def _split(pairs: sentence_pairs.Pairs, test_fraction: float):
  """The notes' split: the first 85% train, the rest test (no shuffle)."""
  part = int(len(pairs) * (1.0 - test_fraction))
  return pairs.take(range(part)), pairs.take(range(part, len(pairs)))


def _arrays(p: sentence_pairs.Pairs, vocab: Vocab, max_len: int):
  ids1, m1, t1 = sentence_pairs.encode(p.a, vocab, max_len)
  ids2, m2, t2 = sentence_pairs.encode(p.b, vocab, max_len)
  return {"ids1": ids1, "mask1": m1, "ids2": ids2, "mask2": m2, "y": p.y}, t1 + t2


def load(d: ml_collections.ConfigDict, embeddings: str, embed_dim: int) -> Dataset:
  """Pairs (generated or from files), the vocabulary, and fixed vectors or none.

  ``embeddings``: ``fixed`` (vectors are inputs: from ``d.vectors``, or a random
  table for the generated task) or ``learned`` (the model owns a table).
  """
  if d.tfds:
    train_split, test_split = tfds_source.parse_names(d.tfds_splits, 2, "data.tfds_splits")
    fields = tfds_source.parse_names(d.tfds_fields, 3, "data.tfds_fields")
    read = lambda split: sentence_pairs.read_tfds(d.tfds, split, fields, d.tfds_dir,  # noqa: E731
                                                  d.num_classes)
    train, test = read(train_split), read(test_split)
    source = f"tfds {d.tfds} ({train_split} / {test_split})"
  elif d.format == "generated":
    pairs = first_marker_pairs(d.num, d.gen_seed, d.min_len, d.max_len or 20)
    train, test = _split(pairs, d.test_fraction)
    source = f"generated 'which came first' pairs ({d.num})"
  else:
    if not d.path:
      raise DataError(f"data.format={d.format!r} needs data.path (a {d.format} file).")
    train = sentence_pairs.read(d.path, d.format, d.num_classes)
    if d.test_path or d.format in sentence_pairs.SPLIT_IN_FILE:
      test = sentence_pairs.read(d.test_path or d.path, d.format, d.num_classes, part="test")
    else:
      train, test = _split(train, d.test_fraction)
    source = d.path + (f" + {d.test_path}" if d.test_path else "")
  # Vocabulary: the training words (test words too when the vectors are given: a test
  # word with a pretrained vector is not unknown).
  counts: dict[str, int] = {}
  for toks in itertools.chain(train.a, train.b):
    for t in toks:
      counts[t] = counts.get(t, 0) + 1
  words = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if counts[w] >= d.min_count]
  vectors = None
  if embeddings == "fixed":
    if d.vectors:
      test_words = {t for toks in itertools.chain(test.a, test.b) for t in toks}
      vec_words, vecs = word_vectors.read(d.vectors, keep=set(words) | test_words, lower=True)
      found = len(set(words) & set(vec_words))
      logging.info("%s: vectors for %d of %d training words.", d.vectors, found, len(words))
      words, vectors = vec_words, vecs
    elif d.format == "generated":
      vectors = random_vectors(words, embed_dim, d.gen_seed + 1)
    else:
      raise DataError("model.embeddings='fixed' needs word vectors: set data.vectors to a "
                      "word2vec/GloVe text file, or use --config.model.embeddings=learned.")
    # Unknown words get a zero vector.
    vectors = np.concatenate([vectors, np.zeros((1, vectors.shape[1]), np.float32)])
  elif embeddings != "learned":
    raise ValueError(f"Unknown embeddings {embeddings!r}; expected 'fixed' or 'learned'.")
  vocab = Vocab([*words, UNK], unk=UNK)
  max_len = sentence_pairs.length_limit(list(itertools.chain(train.a, train.b)), d.max_len)
  tr, cut_tr = _arrays(train, vocab, max_len)
  te, cut_te = _arrays(test, vocab, max_len)
  if cut_tr + cut_te:
    logging.warning("%d sentences cut to data.max_len=%d tokens.", cut_tr + cut_te, max_len)
  info = (f"{source}: {len(train)} train / {len(test)} test pairs, {len(vocab)} words, "
          f"length <= {max_len}, class counts train {np.bincount(train.y, minlength=d.num_classes).tolist()}")
  return Dataset(tr, te, vocab, vectors, d.num_classes, info)
