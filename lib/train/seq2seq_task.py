"""The training task of a :class:`lib.nn.seq2seq.Seq2Seq`: teacher forcing on seeded,
reshuffled-per-epoch minibatches of :func:`lib.data.char_pairs.encode_pairs` arrays."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from lib.data import batching as data
from lib.nn import seq2seq
from lib.train.task import Task

TRAIN_KEYS = ("src", "src_len", "tgt_in", "tgt_out", "tgt_mask")


def model_batch(arrays: Mapping[str, np.ndarray], fixed_width: bool) -> dict[str, np.ndarray]:
  """The arrays a model step reads; fixed-width data drops ``src_len`` (no masking work)."""
  return {k: arrays[k] for k in TRAIN_KEYS if not (fixed_width and k == "src_len")}


def teacher_forcing_task(name: str, model: seq2seq.Seq2Seq, train: Mapping[str, np.ndarray], *,
                        batch_size: int, seed: int, fixed_width: bool,
                        evaluators: Sequence = ()) -> Task:
  """Teacher forcing on seeded, reshuffled-per-epoch minibatches of ``train``."""
  def loss_fn(params, batch, rng):
    del rng  # deterministic model
    logits = model.apply(params, batch)
    return seq2seq.token_loss(logits, batch["tgt_out"], batch["tgt_mask"])

  source = data.EpochBatches(model_batch(train, fixed_width), batch_size, seed)
  return Task(name=name, init_params=model.init, loss_fn=loss_fn, train_batch=source,
              evaluators=evaluators)
