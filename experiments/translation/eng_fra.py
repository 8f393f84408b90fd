"""Character translation on Tatoeba English-French, setting beside setting.

  python -m experiments.translation.eng_fra --path=../shared/data/eng_fra/fra.txt \\
      --out=runs/translation/eng_fra [--settings=notes,attention] [--epochs=100] [--beam=5]

Settings (:data:`SETTINGS`): ``notes`` is the notes' and Keras' ``lstm_seq2seq``
(the first 10,000 pairs, one-hot LSTM 256, RMSprop 1e-3, batch 64, the last 20%
for validation, unshuffled); ``early_stop`` the same on a shuffled split, stopped
on validation chrF and judged at its best epoch; ``dot_attention`` adds dot-product
attention to it; ``attention`` a bidirectional encoder with additive attention and
a shuffled split. Each trains in
``<out>/<setting>`` (re-running resumes or skips), is evaluated greedily and with
beam search of width ``--beam`` on the validation pairs, greedily on 500 of its
training pairs (``train_samples.txt``: the notes' decodes of seen sentences), and
writes its curves
(and, with attention, ``attention.png``). ``<out>/comparison.md`` holds the table.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

from experiments.translation import config as config_lib, experiment
from lib.eval import decoding
from lib.runtime import cli
from lib.sweeps import space
from lib.train.state import restore_params

SETTINGS = {
    "notes": ("lstm", {"data.max_pairs": 10_000}),
    # The notes' model on a shuffled split, stopped when validation chrF has not risen for
    # 5 epochs; its best epoch is the one evaluated.
    "early_stop": ("lstm", {"data.max_pairs": 10_000, "data.split_seed": 0,
                            "trainer.early_stop_metric": "chrf", "trainer.early_stop_patience": 5}),
    "attention": ("attention", {"data.max_pairs": 10_000, "data.split_seed": 0}),
    # The notes' encoder and decoder with dot-product (Luong) attention over the encoder
    # outputs, after the decoder: no parameters, one batched product for all steps.
    "dot_attention": ("lstm", {"data.max_pairs": 10_000, "data.split_seed": 0,
                               "model.attention": "dot", "trainer.early_stop_metric": "chrf",
                               "trainer.early_stop_patience": 5}),
}


def _params(built, workdir: str):
  """The parameters a setting is judged by: its best evaluation's when it stopped early."""
  best = bool(built.config.trainer.early_stop_patience)
  return restore_params(built.task, built.config, workdir, best=best)[0]


def evaluate_beam(config, workdir: str, beam: int, data) -> dict:
  """The trained parameters of ``workdir`` decoded with beam search of width ``beam``."""
  c = space.apply(config, {"decoding.beam": beam})
  built = experiment.build(c, data)
  return built.task.evaluators[0].evaluate(_params(built, workdir))[0]


def exact_any(decoded) -> float:
  """Decodes equal to any of their source's translations among the decoded pairs
  (Tatoeba gives one English sentence several French ones: "Go." -> "Va !", "Marche.")."""
  refs: dict[str, set] = {}
  for src, label in zip(decoded.inputs, decoded.labels):
    refs.setdefault(src, set()).add(label)
  hits = [out in refs[src] for src, out in zip(decoded.inputs, decoded.outputs)]
  return sum(hits) / max(len(hits), 1)


def train_decodes(config, workdir: str, data, n: int = 500) -> dict:
  """Greedy decodes of the first ``n`` training pairs (seen sentences: the notes' check
  that the model fits them); writes ``train_samples.txt`` (10 of them)."""
  built = experiment.build(config, data)
  params = _params(built, workdir)
  n = min(n, len(data.train["src"]))
  seen = {k: v[:n] for k, v in data.train.items()}
  ev = decoding.Evaluator(built.model, seen, data.src_vocab, data.tgt_vocab,
                               start=experiment.START, end=experiment.END, fixed_width=False,
                               batch_size=n, text_metrics=experiment.chrf)
  metrics, decoded = ev.evaluate(params)
  metrics["exact_any"] = exact_any(decoded)
  with open(os.path.join(workdir, "train_samples.txt"), "w", encoding="utf-8") as f:
    f.write(decoding.format_samples(decoded, range(0, n, max(n // 10, 1)), as_lists=False) + "\n")
  return metrics


def study(out: str, path: str, settings: list[str], epochs: int, beam: int,
          verbose: bool = True) -> list[dict]:
  rows = []
  for s in settings:
    variant, overrides = SETTINGS[s]
    c = space.apply(config_lib.get_config(variant),
                     {"data.path": path, "trainer.num_epochs": epochs, **overrides})
    workdir = os.path.join(out, s)
    data = experiment.load(c.data)
    rep = experiment.run(c, workdir, data=data, verbose=verbose)["report"]
    beamed = evaluate_beam(c, workdir, beam, data)
    seen = train_decodes(c, workdir, data)
    stop = rep.get("early_stop") or {}  # rep: the best epoch's figures when it stopped early
    rows.append({"setting": s, "epochs": rep["epochs"], "best_epoch": stop.get("best_epoch"),
                 "chrf_greedy": rep["chrf"],
                 f"chrf_beam{beam}": beamed["chrf"], "exact_greedy": rep["exact"],
                 f"exact_beam{beam}": beamed["exact"], "valid_loss": rep["loss"],
                 "train_chrf": seen["chrf"], "train_exact": seen["exact"],
                 "train_exact_any": seen["exact_any"],
                 "train_s": rep["wall_time_s"], "figure": rep["figure"],
                 "attention_figure": rep["attention_figure"]})
  path = os.path.join(out, "comparison.json")  # settings run before (other epochs) stay
  if os.path.exists(path):
    with open(path) as f:
      done = [r for r in json.load(f) if r["setting"] not in settings]
    rows = [r for r in done if f"chrf_beam{beam}" in r] + rows
  with open(path, "w") as f:
    json.dump(rows, f, indent=2)
  with open(os.path.join(out, "comparison.md"), "w") as f:
    f.write(markdown(rows, beam) + "\n")
  if verbose:
    print(markdown(rows, beam))
  return rows


def markdown(rows: list[dict], beam: int) -> str:
  out = [f"| setting | epochs (best) | chrF greedy | chrF beam {beam} | exact greedy "
         f"| exact beam {beam} | validation loss | seen pairs: chrF / exact / exact, any "
         "translation | train s |",
         "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    best = f" ({r['best_epoch']:g})" if r.get("best_epoch") else ""
    any_ = f" / {r['train_exact_any']:.3f}" if "train_exact_any" in r else ""
    out.append(f"| {r['setting']} | {r['epochs']:g}{best} | {r['chrf_greedy']:.1f} | "
               f"{r[f'chrf_beam{beam}']:.1f} | {r['exact_greedy']:.3f} | "
               f"{r[f'exact_beam{beam}']:.3f} | {r['valid_loss']:.3f} | "
               f"{r['train_chrf']:.1f} / {r['train_exact']:.3f}{any_} | {r['train_s']:.0f} |")
  return "\n".join(out)


if __name__ == "__main__":
  _OUT = flags.DEFINE_string("out", "runs/translation/eng_fra", "Output folder.")
  _PATH = flags.DEFINE_string("path", "../shared/data/eng_fra/fra.txt", "The pairs file.")
  _SETTINGS = flags.DEFINE_list("settings", list(SETTINGS), f"Of {list(SETTINGS)}.")
  _EPOCHS = flags.DEFINE_integer("epochs", 100, "Epochs per setting (Keras: 100).")
  _BEAM = flags.DEFINE_integer("beam", 5, "Beam width of the second evaluation.")

  def main(argv):
    cli.no_extra_args(argv)
    settings = cli.known("settings", _SETTINGS.value, SETTINGS)
    study(_OUT.value, _PATH.value, settings, _EPOCHS.value, _BEAM.value)

  cli.prepare_process()
  app.run(main)
