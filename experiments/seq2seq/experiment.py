"""Data, model and task glue of the seq2seq toy tasks (addition, dates)."""
from __future__ import annotations

import dataclasses
import json
import os

from absl import logging
import jax
import ml_collections
import numpy as np

from experiments.seq2seq import questions
from lib.data import batching, char_pairs as pairs
from lib.data.vocab import Vocab
from lib.eval import decoding
from lib.nn import cells, seq2seq, stacks
from lib.runtime import configs, durations
from lib.train import seq2seq_task, trainer
from lib.train.state import restore_params
from lib.train.task import Built

START = pairs.QA_SEPARATOR  # the book feeds '_' as the decoder's first input


@dataclasses.dataclass
class Dataset:
  vocab: Vocab
  train: dict[str, np.ndarray]
  valid: dict[str, np.ndarray]


def load(d: ml_collections.ConfigDict) -> Dataset:
  """Pairs (file or generated), the book's split, one character vocabulary for both sides."""
  qa = questions.load_pairs(d.task, d.path, d.num, d.gen_seed)
  vocab = pairs.char_vocab([q + START + a for q, a in qa])
  arrays = pairs.encode_pairs(qa, vocab, vocab, start=START)
  train_idx, valid_idx = pairs.split_indices(len(qa), d.valid, d.split_seed,
                                                 d.path or f"the generated {d.task} pairs")
  take = lambda idx: {k: v[idx] for k, v in arrays.items()}  # noqa: E731
  return Dataset(vocab, take(train_idx), take(valid_idx))


def make_model(m: ml_collections.ConfigDict, vocab_size: int) -> seq2seq.Seq2Seq:
  return seq2seq.Seq2Seq(src_vocab=vocab_size, tgt_vocab=vocab_size, **m.to_dict())


# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.num", "data.batch_size", "data.eval_batch_size", "model.hidden",
              "model.unroll", "model.encoder_layers"),
    nonnegative=("data.valid", "model.embed_dim", "model.attention_dim"),
    choices={"data.task": ("addition", "date"), "model.order": stacks.NAMES,
             **cells.config_choices("cell", "scan", "dtype")})


# Sweep keys (lib.sweeps.tunable): beyond seed and the optimizer's floats, these
# split a vmapped sweep into one program per value.
STRUCTURAL = ("model.cell", "model.dtype", "model.scan", "model.embed_dim", "model.hidden",
              "model.shared_embedding", "model.reverse_input", "model.peeky", "model.attention", "model.attention_dim",
              "model.bidirectional", "model.encoder_layers", "model.order", "model.unroll", "data.task", "data.num", "data.batch_size",
              "data.shuffle_seed")


def build(config: ml_collections.ConfigDict, data: Dataset | None = None) -> Built:
  """The teacher-forcing task; ``data``: a :func:`load` result (default: from ``config.data``)."""
  configs.check(config, **CONFIG_RULES)
  ds = data or load(config.data)
  model = make_model(config.model, len(ds.vocab))
  evaluator = decoding.Evaluator(model, ds.valid, ds.vocab, ds.vocab, start=START, end=None,
                                      fixed_width=True, batch_size=config.data.eval_batch_size)
  order = batching.order_seed(config)
  task = seq2seq_task.teacher_forcing_task(
      f"seq2seq/{config.data.task}/{config.variant}", model, ds.train,
      batch_size=config.data.batch_size, seed=order, fixed_width=True, evaluators=(evaluator,))
  config = durations.resolve(config, task.train_batch.steps_per_epoch,
                             examples_per_step=config.data.batch_size)
  return Built(task=task, config=config, model=model, data=ds)


def sample_indices(correct: np.ndarray, num: int) -> list[int]:
  """The first ``num`` held-out examples, with up to a third of them swapped for wrong ones."""
  wrong = [int(i) for i in np.flatnonzero(~correct)[:num // 3]]
  right = [i for i in range(len(correct)) if i not in wrong][:num - len(wrong)]
  return sorted(right + wrong)


def run(config: ml_collections.ConfigDict, workdir: str, *, data: Dataset | None = None,
        verbose: bool = True) -> dict:
  """Trains (resuming), evaluates the final parameters, writes ``report.json`` and ``samples.txt``."""
  built = build(config, data)
  task, config, model, ds = built.task, built.config, built.model, built.data
  epochs = config.trainer.num_steps / task.train_batch.steps_per_epoch
  n_params = seq2seq.num_params(model.init(jax.random.key(0)))
  msg = (f"{task.name}: {len(ds.train['src'])} train / {len(ds.valid['src'])} held-out pairs, "
         f"{len(ds.vocab)} symbols, {n_params} parameters, {task.train_batch.steps_per_epoch} "
         "steps per epoch.")
  logging.info(msg)
  if verbose:
    print(msg, flush=True)
  summary = trainer.fit(task, config, workdir)
  final, decoded = task.evaluators[0].evaluate(restore_params(task, config, workdir)[0])
  samples = decoding.format_samples(decoded, sample_indices(decoded.correct, config.num_samples))
  with open(os.path.join(workdir, "samples.txt"), "w") as f:
    f.write(samples + "\n")
  ds.vocab.save(os.path.join(workdir, "vocab.json"))
  report = {"task": config.data.task, "variant": config.variant, "params": n_params,
            "epochs": epochs, "held_out": len(ds.valid["src"]), **final,
            "wall_time_s": summary["wall_time_s"], "status": summary["status"]}
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  if verbose:
    print(samples)
    print(f"{task.name}: held-out exact match {final['exact']:.4f}, per-character "
          f"{final['greedy_char_acc']:.4f}, loss per symbol {final['loss']:.4f} after "
          f"{epochs:g} epochs ({summary['wall_time_s']:.0f} s).")
  return {**summary, "report": report}
