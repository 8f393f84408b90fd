"""Sampling sentences from a language model: batched and jitted, one ``lax.scan``.

Notes 001 generate one sentence at a time in Python, re-running the model over
the whole prefix for every word, re-drawing whenever the unknown token comes
out and throwing away sentences shorter than 7 words. Here all sentences are
drawn together, one model step per token with the state carried, and the same
constraints are applied to the distribution itself: forbidden ids (unknown,
start) get probability 0, and the end token gets probability 0 until a
sentence has ``min_len`` words.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("model", "num", "max_len", "start_id", "end_id",
                                             "forbid", "min_len", "temperature"))
def sample(model, params, key: jax.Array, *, num: int, max_len: int, start_id: int, end_id: int,
           forbid: Sequence[int] = (), min_len: int = 0, temperature: float = 1.0):
  """Draws ``num`` sentences of at most ``max_len`` words after the start token.

  ``model`` needs ``zero_carry(batch)`` and ``step(params, carry, token_B) ->
  (logits_BxV, carry)`` (e.g. :class:`lib.nn.lm.RecurrentLM`). ``temperature``
  divides the logits; 0 means greedy. Returns ``(tokens_BxL, lengths_B,
  finished_B)``: each row's words are ``tokens[:length]``; ``finished`` says the
  end token was drawn within ``max_len``.
  """
  V = model.vocab_size
  vocab = jnp.arange(V)
  banned = jnp.isin(vocab, jnp.asarray(forbid, jnp.int32)) if forbid else jnp.zeros((V,), bool)

  def body(state, key_t):
    carry, tok, done, length = state
    logits, carry = model.step(params, carry, tok)
    logits = jnp.where(banned, -jnp.inf, logits.astype(jnp.float32))
    too_short = (length < min_len)[:, None] & (vocab == end_id)[None, :]
    logits = jnp.where(too_short, -jnp.inf, logits)
    if temperature > 0:
      new = jax.random.categorical(key_t, logits / temperature, axis=-1)
    else:
      new = jnp.argmax(logits, axis=-1)
    new = jnp.where(done, end_id, new).astype(jnp.int32)
    ended = new == end_id
    length = length + (~done & ~ended)
    return (carry, new, done | ended, length), new

  init = (model.zero_carry(num), jnp.full((num,), start_id, jnp.int32),
          jnp.zeros((num,), bool), jnp.zeros((num,), jnp.int32))
  (_, _, done, length), toks = jax.lax.scan(body, init, jax.random.split(key, max_len))
  return toks.T, length, done


def decode_sentences(vocab, tokens_BxL, lengths_B, finished_B=None) -> list[str]:
  """Joins each finished row's words with spaces (unfinished rows are dropped)."""
  tokens, lengths = np.asarray(tokens_BxL), np.asarray(lengths_B)
  keep = np.ones(len(tokens), bool) if finished_B is None else np.asarray(finished_B)
  return [" ".join(vocab.decode(t[:n])) for t, n, k in zip(tokens, lengths, keep) if k]
