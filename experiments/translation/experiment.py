"""Data, model and task glue of character-level translation (notes 002)."""
from __future__ import annotations

import dataclasses
import json
import os

from absl import logging
import jax
import ml_collections
import numpy as np
import sacrebleu

from experiments.translation import numbers
from lib.data import batching, char_pairs as pairs, tfds_source
from lib.data.vocab import Vocab
from lib.eval import decoding
from lib.nn import cells, seq2seq, stacks
from lib.runtime import configs, durations, plotting, writers
from lib.train import seq2seq_task, trainer
from lib.train.state import restore_params
from lib.train.task import Built

START, END = "\t", "\n"  # the notes' (and Keras') start and stop characters


@dataclasses.dataclass
class Dataset:
  src_vocab: Vocab
  tgt_vocab: Vocab
  train: dict[str, np.ndarray]
  valid: dict[str, np.ndarray]
  skipped: int = 0


def load(d: ml_collections.ConfigDict) -> Dataset:
  """Pairs from an Anki file, a TFDS dataset, or generated; vocabularies from the
  training split only."""
  skipped = 0
  if d.tfds:
    fields = tfds_source.parse_names(d.tfds_fields, 2, "data.tfds_fields")
    pp = tfds_source.read_fields(d.tfds, d.tfds_split, fields, d.tfds_dir, d.max_pairs)
  elif d.path:
    f = pairs.read_pair_file(d.path, skip_bad_lines=d.skip_bad_lines, max_pairs=d.max_pairs or None)
    pp, skipped = f.pairs, len(f.skipped)
  else:
    pp = numbers.number_pairs(d.num, d.gen_seed)
  train_idx, valid_idx = pairs.split_indices(len(pp), d.valid,
                                             None if d.split_seed < 0 else d.split_seed,
                                             d.tfds or d.path or "the generated pairs")
  train_pairs = [pp[i] for i in train_idx]
  src_vocab = pairs.char_vocab([s for s, _ in train_pairs], specials=(pairs.PAD, pairs.UNK))
  tgt_vocab = pairs.char_vocab([t for _, t in train_pairs],
                                    specials=(pairs.PAD, pairs.UNK, START, END))
  arrays = pairs.encode_pairs(pp, src_vocab, tgt_vocab, start=START, end=END)
  take = lambda idx: {k: v[idx] for k, v in arrays.items()}  # noqa: E731
  return Dataset(src_vocab, tgt_vocab, take(train_idx), take(valid_idx), skipped)


def chrf(outputs: list[str], labels: list[str]) -> dict[str, float]:
  """Corpus chrF (sacrebleu's defaults: character 6-grams, beta 2), 0-100."""
  return {"chrf": sacrebleu.corpus_chrf(outputs, [labels]).score}


# Values that would make a run meaningless, refused before anything starts.
CONFIG_RULES = dict(
    positive=("data.num", "data.batch_size", "data.eval_batch_size", "model.hidden",
              "model.unroll", "model.encoder_layers", "decoding.beam"),
    nonnegative=("data.valid", "data.max_pairs", "model.embed_dim", "model.attention_dim"),
    choices={"model.order": stacks.NAMES, **cells.config_choices("cell", "scan", "dtype")})


# Sweep keys (lib.sweeps.tunable): beyond seed and the optimizer's floats, these
# split a vmapped sweep into one program per value.
STRUCTURAL = ("model.cell", "model.dtype", "model.scan", "model.embed_dim", "model.hidden",
              "model.shared_embedding", "model.reverse_input", "model.peeky", "model.attention", "model.attention_dim",
              "model.bidirectional", "model.encoder_layers", "model.order", "model.unroll", "data.max_pairs", "data.num",
              "data.batch_size", "data.split_seed", "data.shuffle_seed", "decoding.beam",
              "decoding.length_penalty")


def build(config: ml_collections.ConfigDict, data: Dataset | None = None) -> Built:
  """The teacher-forcing task; ``data``: a :func:`load` result (default: from ``config.data``)."""
  configs.check(config, **CONFIG_RULES)
  ds = data or load(config.data)
  model = seq2seq.Seq2Seq(src_vocab=len(ds.src_vocab), tgt_vocab=len(ds.tgt_vocab),
                          **config.model.to_dict())
  evaluator = decoding.Evaluator(model, ds.valid, ds.src_vocab, ds.tgt_vocab, start=START,
                                      end=END, fixed_width=False,
                                      batch_size=config.data.eval_batch_size, text_metrics=chrf,
                                      beam=config.decoding.beam,
                                      length_penalty=config.decoding.length_penalty)
  task = seq2seq_task.teacher_forcing_task(
      f"translation/{config.variant}", model, ds.train, batch_size=config.data.batch_size,
      seed=batching.order_seed(config), fixed_width=False, evaluators=(evaluator,))
  config = durations.resolve(config, task.train_batch.steps_per_epoch,
                             examples_per_step=config.data.batch_size)
  return Built(task=task, config=config, model=model, data=ds)


def plot(workdir: str, steps_per_epoch: int, title: str) -> str:
  """Train vs validation loss and per-character accuracy, and validation chrF, per epoch."""
  c = writers.epoch_curves(workdir, steps_per_epoch)
  pick = lambda name: {s: c[f"{s}/{name}"] for s in ("train", "eval") if f"{s}/{name}" in c}  # noqa: E731
  return plotting.plot_panels(
      [("loss per character (teacher forcing)", "loss", pick("loss")),
       ("per-character accuracy (teacher forcing)", "accuracy", pick("char_acc")),
       ("validation chrF (greedy decoding)", "chrF", {"eval": c["eval/chrf"]})],
      os.path.join(workdir, "curves.png"), title=title)


def attention_figure(model: seq2seq.Seq2Seq, params, ds: Dataset, path: str, n: int = 4) -> str:
  """Heatmaps of the attention of the model's own greedy translation of the first
  ``n`` validation sentences over their source characters."""
  v = {k: x[:n] for k, x in ds.valid.items()}
  end_id = ds.tgt_vocab.id(END)
  toks, lens = model.greedy(params, v["src"], v["src_len"], max_len=v["tgt_out"].shape[1],
                            start_id=ds.tgt_vocab.id(START), end_id=end_id,
                            pad_id=ds.tgt_vocab.id(pairs.PAD))
  toks, lens = np.asarray(toks), np.asarray(lens)
  tgt_in = np.concatenate([np.full((len(toks), 1), ds.tgt_vocab.id(START)), toks[:, :-1]], 1)
  w = np.asarray(model.attention_weights(params, {"src": v["src"], "src_len": v["src_len"],
                                                  "tgt_in": tgt_in}))
  show = lambda ch: {" ": "␣", END: "⏎"}.get(ch, ch)  # noqa: E731
  panels = []
  for i in range(len(toks)):
    src = [ds.src_vocab.tokens[t] for t in v["src"][i][:v["src_len"][i]]]
    out = [ds.tgt_vocab.tokens[t] for t in toks[i][:lens[i]]]
    panels.append((f"{''.join(src)} -> {''.join(out).rstrip(END)}",
                   w[i, :lens[i], :len(src)], [show(c) for c in src], [show(c) for c in out]))
  return plotting.plot_heatmaps(panels, path, xlabel="source character",
                                ylabel="output character")


def run(config: ml_collections.ConfigDict, workdir: str, *, data: Dataset | None = None,
        verbose: bool = True) -> dict:
  """Trains (resuming), evaluates the final parameters (the best evaluation's when the
  run stops early, ``trainer.early_stop_*``), writes samples, vocabularies,
  ``curves.png`` and ``report.json``."""
  built = build(config, data)
  task, config, model, ds = built.task, built.config, built.model, built.data
  epochs = config.trainer.num_steps / task.train_batch.steps_per_epoch
  n_params = seq2seq.num_params(model.init(jax.random.key(0)))
  spe = task.train_batch.steps_per_epoch
  msg = (f"{task.name}: {len(ds.train['src'])} train / {len(ds.valid['src'])} validation pairs"
         f"{f' ({ds.skipped} malformed lines skipped)' if ds.skipped else ''}; "
         f"{len(ds.src_vocab)} source / {len(ds.tgt_vocab)} target symbols; max lengths "
         f"{ds.train['src'].shape[1]} / {ds.train['tgt_out'].shape[1]}; {n_params} parameters; "
         f"{spe} steps per epoch.")
  logging.info(msg)
  if verbose:
    print(msg, flush=True)
  summary = trainer.fit(task, config, workdir)
  stop = summary.get("early_stop")
  params = restore_params(task, config, workdir, best=stop is not None)[0]
  if stop is not None:
    epochs = summary["steps"] / spe
    stop = {**stop, "best_epoch": stop["best_step"] and stop["best_step"] / spe}
  final, decoded = task.evaluators[0].evaluate(params)
  idx = list(range(min(config.num_samples, len(decoded.inputs))))
  samples = decoding.format_samples(decoded, idx, as_lists=False)
  with open(os.path.join(workdir, "samples.txt"), "w", encoding="utf-8") as f:
    f.write(samples + "\n")
  ds.src_vocab.save(os.path.join(workdir, "src_vocab.json"))
  ds.tgt_vocab.save(os.path.join(workdir, "tgt_vocab.json"))
  source = (f"tfds {config.data.tfds}" if config.data.tfds else config.data.path) or "generated numbers"
  figure = plot(workdir, spe, f"translation/{config.variant}: {source}")
  heatmap = (attention_figure(model, params, ds, os.path.join(workdir, "attention.png"))
             if config.model.attention != "none" else None)
  report = {"variant": config.variant, "data": source,
            "params": n_params, "epochs": epochs, "validation": len(ds.valid["src"]),
            "skipped_lines": ds.skipped, **final, "wall_time_s": summary["wall_time_s"],
            "status": summary["status"], "figure": figure,
            "attention_figure": heatmap, "beam": config.decoding.beam, "early_stop": stop}
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2)
  if verbose:
    print(samples)
    print(f"{task.name}: validation chrF {final['chrf']:.1f}, exact match {final['exact']:.4f}, "
          f"per-character accuracy {final['greedy_char_acc']:.4f} (greedy), loss "
          f"{final['loss']:.4f} after {epochs:g} epochs ({summary['wall_time_s']:.0f} s). "
          f"Curves: {figure}")
  return {**summary, "report": report}
