"""The cost of attention in a translation train step.

The ``attention`` setting of ``experiments/translation`` (bidirectional LSTM 256
encoder, 512-wide decoder, additive attention) against the same model without
attention (``bidirectional``) and with dot attention, at one batch of the shapes of
Tatoeba's first 10,000 English-French pairs: 64 pairs, 16 source and 59 target
characters, 70 and 90 symbols. RMSprop, teacher forcing, timed in alternation;
``vs_plain``: the step's time over the plain step's.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch.benchtools import jitted_step, time_alternating_ms
from lib.nn import seq2seq

COLUMNS = ("setting", "ms", "vs_plain")
B, S, T, V_SRC, V_TGT, H = 64, 16, 59, 70, 90, 256
SETTINGS = {"plain (bidirectional)": "none", "dot attention": "dot", "additive attention": "additive"}


def _batch(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  src_len = rng.integers(4, S + 1, B)
  tgt_len = rng.integers(4, T + 1, B)
  return {"src": jnp.asarray(rng.integers(1, V_SRC, (B, S)), jnp.int32),
          "src_len": jnp.asarray(src_len, jnp.int32),
          "tgt_in": jnp.asarray(rng.integers(1, V_TGT, (B, T)), jnp.int32),
          "tgt_out": jnp.asarray(rng.integers(1, V_TGT, (B, T)), jnp.int32),
          "tgt_mask": jnp.asarray(np.arange(T)[None] < tgt_len[:, None], jnp.float32)}


def step_fn(attention: str, batch: dict, **model_fields):
  """A closure running one jitted RMSprop step of the translation model (bidirectional
  LSTM ``H`` unless ``model_fields`` say otherwise)."""
  model = seq2seq.Seq2Seq(V_SRC, V_TGT, **{"embed_dim": 0, "hidden": H, "bidirectional": True,
                                           "attention": attention, **model_fields})

  def loss_fn(params, b, rng):
    del rng
    return seq2seq.token_loss(model.apply(params, b), b["tgt_out"], b["tgt_mask"])

  return jitted_step(loss_fn, optax.rmsprop(1e-3, decay=0.9, eps=1e-7),
                     model.init(jax.random.key(0)), batch)


def run(peers=(), repeats: int = 5) -> list[dict]:
  del peers
  batch = _batch()
  fns = {name: step_fn(att, batch) for name, att in SETTINGS.items()}
  times = time_alternating_ms(fns, number=5, repeats=repeats, warmup=1,
                              syncs={name: jax.block_until_ready for name in fns})
  plain = times["plain (bidirectional)"]
  rows = []
  for name, ms in times.items():
    rows.append({"setting": name, "ms": ms, "vs_plain": ms / plain})
    print(rows[-1], flush=True)
  return rows
