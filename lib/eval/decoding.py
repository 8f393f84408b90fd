"""Held-out evaluation of a seq2seq model by teacher forcing and greedy decoding.

* :class:`Evaluator`: one jitted pass over a held-out split giving the
  teacher-forced loss and per-symbol accuracy and, from greedy decoding, the
  exact-match (whole answer) and per-symbol accuracy, plus text metrics of the
  decoded strings (chrF); :meth:`Evaluator.evaluate` returns the decodes too.
* :func:`format_samples`: decodes printed as the notes print them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lib.data import char_pairs as pairs_lib
from lib.data.vocab import Vocab
from lib.nn import seq2seq
from lib.train.seq2seq_task import model_batch

@dataclasses.dataclass
class Decoded:
  inputs: list[str]
  outputs: list[str]
  labels: list[str]
  correct: np.ndarray  # bool per example: the whole answer is right


class Evaluator:
  """Held-out metrics of a model, computed in fixed-size jitted batches.

  ``run(params)`` yields ``loss`` / ``char_acc`` (teacher forcing, per real
  symbol), ``exact`` (the decode equals the whole answer, end symbol
  included) and ``greedy_char_acc`` (decoded symbols right per real target
  symbol), plus whatever ``text_metrics(outputs, labels)`` adds. Decoding is
  greedy, or with ``beam > 1`` :meth:`lib.nn.seq2seq.Seq2Seq.beam_search` (the
  metric names stay);
  :meth:`evaluate` returns those metrics and the :class:`Decoded` strings.
  """

  def __init__(self, model: seq2seq.Seq2Seq, arrays: Mapping[str, np.ndarray],
               src_vocab: Vocab, tgt_vocab: Vocab, *,
               start: str, end: Optional[str], fixed_width: bool, batch_size: int = 1000,
               text_metrics: Optional[Callable[[list[str], list[str]], dict]] = None,
               beam: int = 1, length_penalty: float = 0.0):
    self.model, self.src_vocab, self.tgt_vocab = model, src_vocab, tgt_vocab
    self.end_id = tgt_vocab.id(end) if end is not None else None
    self.text_metrics = text_metrics
    n = len(arrays["src"])
    self.n, self.bs = n, min(batch_size, n)
    pad = (-n) % self.bs  # repeat the first rows so every batch has one shape; weight 0
    self.host = {k: np.asarray(v) for k, v in arrays.items()}
    batch = {k: np.concatenate([v, v[:pad]]) for k, v in model_batch(arrays, fixed_width).items()}
    batch["weight"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    self.batches = [{k: jnp.asarray(v[i:i + self.bs]) for k, v in batch.items()}
                    for i in range(0, n + pad, self.bs)]
    pad_id = tgt_vocab.id(pairs_lib.PAD) if pairs_lib.PAD in tgt_vocab else 0
    decode_kw = dict(max_len=arrays["tgt_out"].shape[1], start_id=tgt_vocab.id(start),
                     end_id=self.end_id, pad_id=pad_id)
    if beam > 1:
      decode = lambda p, b: model.beam_search(  # noqa: E731
          p, b["src"], b.get("src_len"), beam=beam, length_penalty=length_penalty, **decode_kw)[0]
    else:
      decode = lambda p, b: model.greedy(p, b["src"], b.get("src_len"), **decode_kw)[0]  # noqa: E731
    self._run = jax.jit(lambda p, b: _eval_batch(model, p, b, decode))

  def run(self, params):
    yield from self.evaluate(params)[0].items()

  def evaluate(self, params) -> tuple[dict[str, float], Decoded]:
    sums, toks = None, []
    for b in self.batches:
      s, t = self._run(params, b)
      sums = s if sums is None else jax.tree.map(jnp.add, sums, s)
      toks.append(t)
    sums = jax.device_get(sums)
    tokens = np.concatenate(jax.device_get(toks))[:self.n]
    out = {"loss": sums["nll"] / sums["symbols"], "char_acc": sums["tf_correct"] / sums["symbols"],
           "exact": sums["exact"] / self.n, "greedy_char_acc": sums["greedy_correct"] / sums["symbols"]}
    decoded = self._strings(tokens)
    if self.text_metrics is not None:
      out.update(self.text_metrics(decoded.outputs, decoded.labels))
    return {k: float(v) for k, v in out.items()}, decoded

  def _strings(self, tokens: np.ndarray) -> Decoded:
    h = self.host
    inputs = [self.src_vocab.decode_text(s[:n]) for s, n in zip(h["src"], h["src_len"])]
    labels = [self.tgt_vocab.decode_text(t[m > 0], stop=self.end_id)
              for t, m in zip(h["tgt_out"], h["tgt_mask"])]
    outputs = [self.tgt_vocab.decode_text(t, stop=self.end_id) for t in tokens]
    m = h["tgt_mask"] > 0
    correct = np.all((tokens == h["tgt_out"]) | ~m, axis=1)
    return Decoded(inputs, outputs, labels, correct)


def _eval_batch(model, params, b, decode):
  w = b["weight"]
  m = b["tgt_mask"] * w[:, None]
  logits = model.apply(params, b)
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), b["tgt_out"][..., None], -1)[..., 0]
  tf_ok = jnp.argmax(logits, -1) == b["tgt_out"]
  toks = decode(params, b)
  g_ok = toks == b["tgt_out"]
  exact = jnp.all(g_ok | (b["tgt_mask"] == 0), axis=1)
  sums = {"nll": (nll * m).sum(), "symbols": m.sum(), "tf_correct": (tf_ok * m).sum(),
          "greedy_correct": (g_ok * m).sum(), "exact": (exact * w).sum()}
  return sums, toks


def format_samples(decoded: Decoded, indices: Sequence[int], as_lists: bool = True) -> str:
  """Decodes in the notes' form; a wrong answer is flagged on its ``Decoded`` line.

  ``as_lists`` prints character lists (``['4', '2', '2', ' ']``), as the
  addition notes do, so spaces stay visible.
  """
  show = (lambda s: str(list(s))) if as_lists else (lambda s: s)
  out = []
  for i in indices:
    mark = "" if decoded.correct[i] else "   <-- wrong"
    out += [f"Input sentence:   {show(decoded.inputs[i])}",
            f"Decoded sentence: {show(decoded.outputs[i])}{mark}",
            f"label sentence:   {show(decoded.labels[i])}", "-"]
  return "\n".join(out)
