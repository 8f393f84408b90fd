"""Character translation: the embedded pair set, Anki files by path, malformed lines, chrF."""
import json

import numpy as np
import pytest
import sacrebleu

from experiments.translation import config as config_lib, numbers, experiment
from lib.data import batching, char_pairs as pairs
from tests import interrupt
from tests.lib.data import tfds_builders
from lib.errors import DataError
from lib.runtime import writers

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


@pytest.mark.parametrize("n, en, ja", [
    (7, "seven", "七"), (10, "ten", "十"), (15, "fifteen", "十五"), (40, "forty", "四十"),
    (101, "one hundred one", "百一"), (1000, "one thousand", "千"),
    (10000, "ten thousand", "一万"), (42107, "forty-two thousand one hundred seven", "四万二千百七"),
    (99999, "ninety-nine thousand nine hundred ninety-nine", "九万九千九百九十九")])
def test_number_words_and_numerals(n, en, ja):
  assert numbers.english(n) == en and numbers.japanese(n) == ja


def test_generated_pairs_are_distinct_multibyte_and_seeded():
  pp = numbers.number_pairs(500, seed=1)
  assert len({s for s, _ in pp}) == 500
  assert all(len(t.encode()) == 3 * len(t) for _, t in pp)  # every target char is 3 UTF-8 bytes
  assert pp == numbers.number_pairs(500, seed=1) and pp != numbers.number_pairs(500, seed=2)


def _tiny(variant="lstm", **data_kw):
  c = config_lib.get_config(variant)
  c.data.update(num=400, batch_size=32, eval_batch_size=40, **data_kw)
  c.model.hidden, c.trainer.num_epochs, c.num_samples = 16, 2, 3
  c.trainer.tensorboard = False
  return c


def test_keras_style_split_and_training_vocabularies():
  ds = experiment.load(_tiny().data)
  assert len(ds.train["src"]) == 320 and len(ds.valid["src"]) == 80
  assert ds.tgt_vocab.tokens[:4] == [pairs.PAD, pairs.UNK, "\t", "\n"]
  pp = numbers.number_pairs(400, 0)
  assert ds.src_vocab.decode_text(ds.valid["src"][0]) == pp[320][0]  # the last fifth, unshuffled


@pytest.mark.parametrize("variant", config_lib.VARIANTS)
def test_smoke_embedded_default(variant, tmp_path):
  out = experiment.run(_tiny(variant), str(tmp_path), verbose=False)
  r = out["report"]
  assert out["status"] == "completed" and 0.0 <= r["chrf"] <= 100.0
  assert (tmp_path / "curves.png").stat().st_size > 10_000
  evals = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
           if '"eval"' in l]
  assert len(evals) == 2 and all({"loss", "char_acc", "chrf", "exact"} <= set(e) for e in evals)
  heatmap = tmp_path / "attention.png"
  assert heatmap.exists() == (variant == "attention")
  if heatmap.exists():
    assert r["attention_figure"] == str(heatmap) and heatmap.stat().st_size > 10_000


def test_anki_file_by_path_with_malformed_lines(tmp_path):
  lines = [f"{s}\t{t}\tCC-BY 2.0 (France) Attribution: tatoeba.org" for s, t in
           numbers.number_pairs(200, 3)]
  raw = ("\n".join(lines[:50]) + "\nthis line has no tab\n" + "\n".join(lines[50:])).encode()
  raw += b"\nbroken\t\xff\xfe\n"  # not UTF-8
  p = tmp_path / "jpn.txt"
  p.write_bytes(raw)
  c = _tiny()
  c.data.path = str(p)
  with pytest.raises(DataError, match=r"jpn.txt:51: no tab"):
    experiment.load(c.data)
  c.data.skip_bad_lines = True
  ds = experiment.load(c.data)
  assert ds.skipped == 2 and len(ds.train["src"]) + len(ds.valid["src"]) == 200
  out = experiment.run(c, str(tmp_path / "run"), verbose=False)
  assert out["report"]["skipped_lines"] == 2 and "Input sentence:" in (
      tmp_path / "run" / "samples.txt").read_text(encoding="utf-8")


def test_chrf_is_sacrebleus_corpus_score():
  hyp, ref = ["四万二千百七", "十五"], ["四万二千百八", "十五"]
  assert experiment.chrf(hyp, ref)["chrf"] == pytest.approx(
      sacrebleu.corpus_chrf(hyp, [ref]).score)
  assert experiment.chrf(ref, ref)["chrf"] == pytest.approx(100.0)


def test_eng_fra_study_writes_greedy_beam_and_seen_pair_scores(tmp_path):
  from experiments.translation import eng_fra
  lines = [f"{s}\t{t}" for s, t in numbers.number_pairs(60, 5)]
  (tmp_path / "fra.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  eng_fra.SETTINGS["tiny"] = ("attention", {"model.hidden": 8, "data.batch_size": 16,
                                            "data.eval_batch_size": 12})
  try:
    rows = eng_fra.study(str(tmp_path / "out"), str(tmp_path / "fra.txt"), ["tiny"], epochs=1,
                         beam=3, verbose=False)
  finally:
    del eng_fra.SETTINGS["tiny"]
  r = rows[0]
  assert {"chrf_greedy", "chrf_beam3", "train_chrf", "train_exact"} <= set(r)
  assert 0.0 <= r["chrf_beam3"] <= 100.0 and 0.0 <= r["exact_beam3"] <= 1.0
  assert (tmp_path / "out" / "tiny" / "attention.png").exists()
  assert "Input sentence:" in (tmp_path / "out" / "tiny" / "train_samples.txt").read_text("utf-8")
  assert "| tiny | 1 |" in (tmp_path / "out" / "comparison.md").read_text()


def test_seen_pairs_count_any_of_their_translations():
  from experiments.translation import eng_fra
  from lib.eval.decoding import Decoded
  d = Decoded(inputs=["Go.", "Go.", "Hi.", "Run!"], outputs=["Va !", "Va !", "Salut.", "Cours."],
              labels=["Va !", "Marche.", "Bonjour.", "Fuis !"], correct=np.zeros(4, bool))
  assert eng_fra.exact_any(d) == 0.5  # both "Go." right ("Va !" is one of its two); the others not


def test_an_early_stopped_setting_is_judged_at_its_best_epoch(tmp_path):
  from experiments.translation import eng_fra
  lines = [f"{s}\t{t}" for s, t in numbers.number_pairs(60, 5)]
  (tmp_path / "fra.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
  # The validation loss falls, so watching its maximum the first epoch stays the best.
  eng_fra.SETTINGS["tiny"] = ("lstm", {"model.hidden": 8, "data.batch_size": 16,
                                       "data.eval_batch_size": 12, "trainer.early_stop_metric": "loss",
                                       "trainer.early_stop_mode": "max",
                                       "trainer.early_stop_patience": 1})
  try:
    rows = eng_fra.study(str(tmp_path / "out"), str(tmp_path / "fra.txt"), ["tiny"], epochs=6,
                         beam=2, verbose=False)
  finally:
    del eng_fra.SETTINGS["tiny"]
  r = rows[0]
  assert (r["epochs"], r["best_epoch"]) == (2, 1)
  evals = writers.read_records(str(tmp_path / "out" / "tiny"), "eval")
  assert [e["step"] for e in evals] == [3, 6]  # 3 steps an epoch
  assert r["valid_loss"] == pytest.approx(evals[0]["loss"], rel=1e-6)  # epoch 1's parameters
  assert "| tiny | 2 (1) |" in (tmp_path / "out" / "comparison.md").read_text()


def test_tfds_translation_pairs_end_to_end_and_resumable(tmp_path, monkeypatch):
  pp = numbers.number_pairs(240, 7)
  name = tfds_builders.translation(tmp_path / "tfds", {"train": pp}, languages=("en", "ja"))
  c = _tiny(tfds=name, tfds_dir=str(tmp_path / "tfds"), tfds_fields="en,ja", max_pairs=200)
  ds = experiment.load(c.data)
  assert len(ds.train["src"]) == 160 and len(ds.valid["src"]) == 40  # max_pairs, then valid=0.2
  assert set(ds.tgt_vocab.tokens) <= set("".join(t for _, t in pp)) | set(ds.tgt_vocab.tokens[:4])
  c.trainer.checkpoint_every_epochs, c.trainer.checkpoint_every_steps = None, 3
  full = experiment.run(c, str(tmp_path / "full"), verbose=False)
  assert full["report"]["data"] == f"tfds {name}" and full["report"]["status"] == "completed"

  resumed = interrupt.cut_then_resume(monkeypatch, batching.EpochBatches, "__call__", 7,
                                      lambda: experiment.run(c, str(tmp_path / "cut"), verbose=False))
  assert resumed["resumed_from"] == 7
  # The validation metrics are functions of the final parameters: equal after the resume.
  # (train/* are running means over the logging window, which restarts at a resume.)
  valid = lambda s: {k: v for k, v in s["final"].items() if k.startswith("eval/")}  # noqa: E731
  assert valid(resumed) == valid(full) and "eval/chrf" in valid(full)
  with pytest.raises(DataError, match=r"no field\(s\) \['fr'\]; its fields: \['en', 'ja'\]"):
    experiment.load(_tiny(tfds=name, tfds_dir=str(tmp_path / "tfds")).data)
