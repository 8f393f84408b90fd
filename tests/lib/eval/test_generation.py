"""Batched, jitted sentence sampling."""
import jax
import numpy as np

from lib.data.vocab import Vocab
from lib.eval import generation
from lib.nn import lm

START, END, UNK = 0, 1, 9


def biased_model():
  """An LM whose softmax prefers the unknown token, then the end token."""
  model = lm.RecurrentLM(10, 6, cell="lstm", layers=1)
  params = model.init(jax.random.key(0))
  params["out"]["b"] = params["out"]["b"].at[UNK].set(20.0).at[END].set(10.0)
  return model, params


def draw(model, params, key=0, **kw):
  kw = {"num": 64, "max_len": 30, "start_id": START, "end_id": END,
        "forbid": (UNK, START), "min_len": 7, "temperature": 1.0, **kw}
  return generation.sample(model, params, jax.random.key(key), **kw)


def test_never_emits_forbidden_tokens_and_respects_min_len():
  model, params = biased_model()
  toks, lens, done = map(np.asarray, draw(model, params))
  assert done.all()                      # the end token is likely once allowed
  assert (lens >= 7).all()
  for t, n in zip(toks, lens):
    assert UNK not in t[:n] and START not in t[:n] and END not in t[:n]
    assert t[n] == END


def test_sampling_is_reproducible_and_greedy_works():
  model, params = biased_model()
  a, b = draw(model, params, key=3), draw(model, params, key=3)
  np.testing.assert_array_equal(a[0], b[0])
  toks, lens, _ = map(np.asarray, draw(model, params, temperature=0.0, num=4))
  assert (lens == 7).all() and (toks == toks[0]).all()   # argmax: the end token at 7 words


def test_decode_drops_unfinished():
  v = Vocab.build([["a", "b"]])
  toks = np.array([[2, 3, 1], [2, 2, 2]])
  assert generation.decode_sentences(v, toks, np.array([2, 3]), np.array([True, False])) == ["a b"]
