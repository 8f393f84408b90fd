"""Encoder-decoder (seq2seq) models as pure functions of a parameter dict.

One :class:`Seq2Seq` covers the variants of notes 002 and "Deep Learning from
Scratch 2" (chapters 7-8) by flags:

* ``shared_embedding``: one table for encoder and decoder tokens (one vocabulary);
* ``reverse_input``: the encoder reads each source backwards (its real part;
  padding stays at the end), so the first answer character sits next to the
  last question character (Sutskever et al. 2014);
* ``peeky``: the encoder's summary ``h`` joins every decoder input and the
  read-out, not only the initial state;
* ``attention``: ``dot``, ``general`` or ``additive`` attention over the encoder
  outputs, read out from ``[h_t, context_t]`` (Luong-style, as the book);
* ``bidirectional``: a forward and a backward encoder; their final states are
  concatenated into the decoder's (the notes' Keras workaround), so the decoder
  has twice the encoder's width;
* ``embed_dim=0``: one-hot inputs (the Keras character seq2seq), done as a row
  gather of the input kernel rather than a product with a one-hot matrix.

The teacher-forced decoder and greedy decoding share :meth:`Seq2Seq.readout`
and the cell's ``step``, so training and inference compute the same function;
:meth:`greedy` and :meth:`beam_search` are each one ``lax.scan`` over a fixed
maximum length that freezes each sequence after its end symbol.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lib import metrics
from lib.errors import ConfigError
from lib.nn import attention as attention_lib, cells, initializers, recurrence, stacks

Params = dict[str, Any]


class Encoded(NamedTuple):
  carry: Any            # the decoder's initial state
  memory_BxSxK: jax.Array  # encoder outputs (attention reads them)
  mask_BxS: Optional[jax.Array]
  summary_BxH: jax.Array   # the encoder's final h (what ``peeky`` feeds forward)


def reverse_padded(ids_BxS: jax.Array, lengths_B: Optional[jax.Array]) -> jax.Array:
  """Each row's first ``length`` items reversed in place; padding stays at the end."""
  S = ids_BxS.shape[1]
  if lengths_B is None:
    return ids_BxS[:, ::-1]
  t = jnp.arange(S)[None, :]
  n = lengths_B[:, None]
  return jnp.take_along_axis(ids_BxS, jnp.where(t < n, n - 1 - t, t), axis=1)


@dataclasses.dataclass(frozen=True)
class Seq2Seq:
  src_vocab: int
  tgt_vocab: int
  embed_dim: int = 16        # 0: one-hot inputs
  hidden: int = 128
  cell: str = "lstm"         # any lib.nn.cells name
  shared_embedding: bool = False
  reverse_input: bool = False
  peeky: bool = False
  attention: str = "none"    # none | dot | general | additive
  attention_dim: int = 0     # additive: hidden size (0 = decoder width)
  bidirectional: bool = False
  encoder_layers: int = 1      # stacked encoder layers; the decoder starts from the top one's carry
  order: str = "auto"          # the encoder stack's order (lib.nn.stacks.Order)
  unroll: int = 1
  dtype: Optional[str] = None  # the cells' compute type (bfloat16: mixed precision)
  scan: str = "auto"           # linear cells' scan (lib.nn.scans.ScanType)

  def __post_init__(self):
    if self.shared_embedding and (not self.embed_dim or self.src_vocab != self.tgt_vocab):
      raise ConfigError("shared_embedding needs embed_dim > 0 and one vocabulary for both sides "
                       f"(got embed_dim={self.embed_dim}, vocabularies {self.src_vocab}/"
                       f"{self.tgt_vocab}).")
    if self.attention not in ("none", *attention_lib.KINDS):
      raise ConfigError(f"Unknown attention {self.attention!r}.")
    if self.encoder_layers < 1:
      raise ConfigError(f"encoder_layers={self.encoder_layers}: expected at least one layer.")
    stacks.parse(self.order)

  # -- shapes and parameters --------------------------------------------------------
  @property
  def dec_hidden(self) -> int:
    return self.hidden * (2 if self.bidirectional else 1)

  def enc_cell(self) -> cells.Cell:
    return cells.make_supported(self.cell, self.hidden, dtype=self.dtype, scan=self.scan)

  def dec_cell(self) -> cells.Cell:
    """The encoder's cell; with ``bidirectional``, the one whose carry is the two
    encoder directions' final carries joined (``Cell.doubled``)."""
    cell = self.enc_cell()
    return cell.doubled() if self.bidirectional else cell

  def init(self, key: jax.Array) -> Params:
    k = dict(zip(("src", "tgt", "enc", "dec", "peek", "att", "out"), jax.random.split(key, 7)))
    embed = initializers.get("uniform:0.05")  # Keras' Embedding default
    p: Params = {}
    if self.embed_dim and self.shared_embedding:
      p["embed"] = embed(k["src"], (self.src_vocab, self.embed_dim))
    elif self.embed_dim:
      p["src_embed"] = embed(k["src"], (self.src_vocab, self.embed_dim))
      p["tgt_embed"] = embed(k["tgt"], (self.tgt_vocab, self.embed_dim))
    src_in = self.embed_dim or self.src_vocab
    layers = stacks.init_stack([self.enc_cell()] * self.encoder_layers, k["enc"], src_in,
                               bidirectional=self.bidirectional)
    # One layer is stored as itself (the layout of one-layer checkpoints), more as a list.
    p["encoder"] = layers[0] if self.encoder_layers == 1 else layers
    dec = self.dec_cell()
    p["decoder"] = dec.init(k["dec"], self.embed_dim or self.tgt_vocab)
    glorot = initializers.get("glorot_uniform")
    H = self.dec_hidden
    if self.peeky:  # the summary's share of every decoder step's input projection
      p["peek"] = glorot(k["peek"], (H, dec.proj_width))
    feats = H
    if self.attention != "none":
      p["attention"] = attention_lib.init(self.attention, k["att"], H, H, self.attention_dim)
      feats += H
    if self.peeky:
      feats += H
    p["out"] = {"w": glorot(k["out"], (feats, self.tgt_vocab)),
                "b": jnp.zeros((self.tgt_vocab,))}
    return p

  # -- pieces -----------------------------------------------------------------------
  def _table(self, params: Params, side: str):
    if not self.embed_dim:
      return None
    return params["embed"] if self.shared_embedding else params[f"{side}_embed"]

  @staticmethod
  def _project(cell: cells.Cell, cell_params: Params, table, ids: jax.Array) -> jax.Array:
    """``x @ w_x + b`` for token ids: rows of ``w_x`` when inputs are one-hot."""
    if table is None:
      return cell.project_ids(cell_params, ids)
    return cell.project(cell_params, table[ids])

  def encode(self, params: Params, src_BxS: jax.Array, src_len_B: Optional[jax.Array] = None
             ) -> Encoded:
    """Runs the encoder. ``src_len_B=None`` means every position is real (fixed width)."""
    if self.reverse_input:
      src_BxS = reverse_padded(src_BxS, src_len_B)
    mask = None
    if src_len_B is not None:
      mask = (jnp.arange(src_BxS.shape[1])[None, :] < src_len_B[:, None]).astype(jnp.float32)
    table = self._table(params, "src")
    cell = self.enc_cell()
    layers = [params["encoder"]] if self.encoder_layers == 1 else list(params["encoder"])
    if self.bidirectional:
      xp = tuple(self._project(cell, layers[0][d], table, src_BxS) for d in ("fwd", "bwd"))
    else:
      xp = self._project(cell, layers[0], table, src_BxS)
    carries, memory = stacks.stack([cell] * len(layers), layers, xp, mask_BxT=mask,
                                   unroll=self.unroll, projected=True,
                                   bidirectional=self.bidirectional, order=self.order)
    carry = carries[-1]
    if self.bidirectional:
      carry = cell.join(*carry)
    return Encoded(carry, memory, mask, self.dec_cell().output(carry))

  def readout(self, params: Params, enc: Encoded, h_BxTxH: jax.Array) -> jax.Array:
    """Logits ``BxTxV`` from decoder outputs (plus context and peeked summary)."""
    feats = [h_BxTxH]
    if self.attention != "none":
      ctx, _ = attention_lib.attend(self.attention, params["attention"], h_BxTxH,
                                    enc.memory_BxSxK, enc.mask_BxS)
      feats.append(ctx)
    if self.peeky:
      feats.append(jnp.broadcast_to(enc.summary_BxH[:, None], h_BxTxH.shape))
    x = jnp.concatenate(feats, -1) if len(feats) > 1 else h_BxTxH
    return x @ params["out"]["w"] + params["out"]["b"]

  def _decoder_inputs(self, params: Params, enc: Encoded, ids: jax.Array) -> jax.Array:
    xp = self._project(self.dec_cell(), params["decoder"], self._table(params, "tgt"), ids)
    if self.peeky:
      peek = enc.summary_BxH @ params["peek"]
      xp = xp + (peek[:, None] if ids.ndim == 2 else peek)
    return xp

  def decode(self, params: Params, enc: Encoded, tgt_in_BxT: jax.Array) -> jax.Array:
    """Teacher forcing: logits ``BxTxV`` for every step of ``tgt_in`` at once."""
    xp = self._decoder_inputs(params, enc, tgt_in_BxT)
    _, h = recurrence.unroll(self.dec_cell(), params["decoder"], xp, initial_carry=enc.carry,
                             unroll=self.unroll, projected=True)
    return self.readout(params, enc, h)

  def apply(self, params: Params, batch: dict) -> jax.Array:
    """Teacher-forced logits for a batch of :func:`lib.data.char_pairs.encode_pairs` arrays."""
    enc = self.encode(params, batch["src"], batch.get("src_len"))
    return self.decode(params, enc, batch["tgt_in"])

  def attention_weights(self, params: Params, batch: dict) -> jax.Array:
    """``BxTxS`` attention of each teacher-forced decoder step over the source
    (``batch`` as for :meth:`apply`; needs ``attention``)."""
    if self.attention == "none":
      raise ConfigError("attention_weights needs a model with attention.")
    enc = self.encode(params, batch["src"], batch.get("src_len"))
    xp = self._decoder_inputs(params, enc, batch["tgt_in"])
    _, h = recurrence.unroll(self.dec_cell(), params["decoder"], xp, initial_carry=enc.carry,
                             unroll=self.unroll, projected=True)
    return attention_lib.attend(self.attention, params["attention"], h, enc.memory_BxSxK,
                                enc.mask_BxS)[1]

  def greedy(self, params: Params, src_BxS: jax.Array, src_len_B: Optional[jax.Array] = None, *,
             max_len: int, start_id: int, end_id: Optional[int] = None, pad_id: int = 0
             ) -> tuple[jax.Array, jax.Array]:
    """Greedy decoding as one scan: ``(tokens_BxL, lengths_B)``.

    Each step feeds back the previous argmax. With ``end_id`` a sequence stops
    at its end symbol (kept in the tokens; later positions are ``pad_id``) and
    its length counts up to and including it; without, all ``max_len`` symbols
    are produced (the book's fixed-width answers).
    """
    enc = self.encode(params, src_BxS, src_len_B)
    cell, B = self.dec_cell(), src_BxS.shape[0]

    def body(state, _):
      carry, tok, done = state
      carry, h = cell.step(params["decoder"], carry, self._decoder_inputs(params, enc, tok))
      nxt = jnp.argmax(self.readout(params, enc, h[:, None])[:, 0], -1).astype(jnp.int32)
      nxt = jnp.where(done, pad_id, nxt)
      if end_id is not None:
        done = done | (nxt == end_id)
      return (carry, nxt, done), (nxt, done)

    init = (enc.carry, jnp.full((B,), start_id, jnp.int32), jnp.zeros((B,), bool))
    _, (toks_LxB, done_LxB) = jax.lax.scan(body, init, None, length=max_len)
    # Length: steps before the first 'done' plus the end symbol itself.
    lengths = jnp.sum(~done_LxB, axis=0) + jnp.any(done_LxB, axis=0)
    return toks_LxB.T, lengths.astype(jnp.int32)


  def beam_search(self, params: Params, src_BxS: jax.Array,
                  src_len_B: Optional[jax.Array] = None, *, beam: int, max_len: int,
                  start_id: int, end_id: Optional[int] = None, pad_id: int = 0,
                  length_penalty: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Beam search as one scan: ``(tokens_BxL, lengths_B, log_prob_B)`` of each
    source's best hypothesis (``log_prob``: the sum over its symbols, end included).

    ``beam`` hypotheses per source are kept: each step extends every one by every
    symbol and keeps the best ``beam`` of the ``beam x V`` (``lax.top_k``). A
    hypothesis that produced ``end_id`` is finished: it extends only by ``pad_id``,
    at no cost, and competes on its score. The best is the highest
    ``log_prob / length ** length_penalty`` (0: the plain sum). ``beam=1`` is :meth:`greedy`.
    """
    B, K, V = src_BxS.shape[0], beam, self.tgt_vocab
    enc = jax.tree.map(lambda x: jnp.repeat(x, K, axis=0), self.encode(params, src_BxS, src_len_B))
    cell = self.dec_cell()
    finished = jnp.full((V,), -jnp.inf).at[pad_id].set(0.0)

    def body(state, t):
      carry, tok_BK, score_BxK, done_BxK, toks_BxKxL = state
      carry, h = cell.step(params["decoder"], carry, self._decoder_inputs(params, enc, tok_BK))
      logp = jax.nn.log_softmax(self.readout(params, enc, h[:, None])[:, 0], -1).reshape(B, K, V)
      logp = jnp.where(done_BxK[..., None], finished, logp)
      score_BxK, idx = jax.lax.top_k((score_BxK[..., None] + logp).reshape(B, K * V), K)
      parent, tok = idx // V, (idx % V).astype(jnp.int32)
      carry = jax.tree.map(lambda x: x[(jnp.arange(B)[:, None] * K + parent).reshape(-1)], carry)
      toks_BxKxL = jnp.take_along_axis(toks_BxKxL, parent[..., None], 1).at[:, :, t].set(tok)
      done_BxK = jnp.take_along_axis(done_BxK, parent, 1)
      if end_id is not None:
        done_BxK = done_BxK | (tok == end_id)
      return (carry, tok.reshape(-1), score_BxK, done_BxK, toks_BxKxL), None

    first = jnp.where(jnp.arange(K) == 0, 0.0, -jnp.inf)  # one live hypothesis to start
    init = (enc.carry, jnp.full((B * K,), start_id, jnp.int32), jnp.tile(first, (B, 1)),
            jnp.zeros((B, K), bool), jnp.full((B, K, max_len), pad_id, jnp.int32))
    (_, _, score_BxK, _, toks_BxKxL), _ = jax.lax.scan(body, init, jnp.arange(max_len))
    lengths_BxK = _lengths(toks_BxKxL, end_id)
    rank = score_BxK / lengths_BxK.astype(score_BxK.dtype) ** length_penalty
    best = jnp.argmax(rank, axis=1)
    pick = lambda x: jnp.take_along_axis(x, best.reshape((B,) + (1,) * (x.ndim - 1)), 1)[:, 0]  # noqa: E731
    return pick(toks_BxKxL), pick(lengths_BxK), pick(score_BxK)


def _lengths(tokens_xL: jax.Array, end_id: Optional[int]) -> jax.Array:
  """Symbols up to and including the first ``end_id`` (all ``L`` without one)."""
  L = tokens_xL.shape[-1]
  if end_id is None:
    return jnp.full(tokens_xL.shape[:-1], L, jnp.int32)
  is_end = tokens_xL == end_id
  return jnp.where(is_end.any(-1), jnp.argmax(is_end, -1) + 1, L).astype(jnp.int32)


def token_loss(logits_BxTxV: jax.Array, targets_BxT: jax.Array,
               mask_BxT: Optional[jax.Array] = None) -> tuple[jax.Array, dict]:
  """Cross-entropy per real target symbol: ``(mean, metrics)``.

  Metrics are (sum, count) pairs: ``loss`` and ``char_acc`` per real symbol
  (padding excluded), ``seq_acc`` the share of sequences whose every real
  symbol is right under teacher forcing.
  """
  nll = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT)
  m = jnp.ones_like(nll) if mask_BxT is None else mask_BxT.astype(nll.dtype)
  correct = (jnp.argmax(logits_BxTxV, -1) == targets_BxT).astype(nll.dtype)
  count = m.sum()
  total = (nll * m).sum()
  seq_ok = jnp.all((correct > 0) | (m == 0), axis=-1).astype(nll.dtype)
  return total / count, {
      "loss": metrics.Average(total, count),
      "char_acc": metrics.Average((correct * m).sum(), count),
      "seq_acc": metrics.Average(seq_ok.sum(), jnp.asarray(seq_ok.shape[0], nll.dtype)),
  }


def num_params(params: Params) -> int:
  return sum(int(x.size) for x in jax.tree.leaves(params))
