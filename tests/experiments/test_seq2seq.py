"""The seq2seq toy tasks: the book's data format and split exactly, and a smoke run per variant."""
import datetime
import json
import os
import re

import numpy as np
import pytest

from experiments.seq2seq import compare, config as config_lib, questions, experiment
from lib.errors import DataError

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


def test_generated_addition_has_the_books_format_and_split():
  lines = questions.addition_lines(50_000, seed=0)
  assert len(lines) == 50_000
  keys = set()
  for line in lines:
    assert len(line) == 12 and line[7] == "_"
    a, b = line[:7].rstrip().split("+")
    assert 0 <= int(a) <= 999 and 0 <= int(b) <= 999
    assert line[:7] == f"{a}+{b}".ljust(7) and line[8:] == str(int(a) + int(b)).ljust(4)
    keys.add((min(int(a), int(b)), max(int(a), int(b))))
  assert len(keys) == 50_000  # unique up to operand order, as the book's file
  c = config_lib.get_config("baseline")
  ds = experiment.load(c.data)
  assert len(ds.train["src"]) == 45_000 and len(ds.valid["src"]) == 5_000
  assert ds.train["src"].shape[1] == 7 and ds.train["tgt_out"].shape[1] == 4
  assert ds.vocab.tokens == sorted("0123456789+ _")  # the notes' 13 characters
  assert questions.addition_lines(100, seed=3) == questions.addition_lines(100, seed=3)
  assert questions.addition_lines(100, seed=3) != questions.addition_lines(100, seed=4)


def test_generated_dates_parse_to_their_iso_answer():
  for line in questions.date_lines(2_000, seed=1):
    assert len(line) == 40 and line[29] == "_"
    q, iso = line[:29].rstrip(), line[30:]
    want = datetime.date.fromisoformat(iso)
    assert 1970 <= want.year <= 2017
    if re.fullmatch(r"\d+/\d+/\d\d", q):
      m, d, y = map(int, q.split("/"))
      got = datetime.date(1900 + y if y >= 70 else 2000 + y, m, d)
    else:
      q = q.split(", ", 1)[1] if q.count(",") == 2 else q
      got = datetime.datetime.strptime(q.title(), "%B %d, %Y" if len(q.split()[0]) > 3 or
                                       q.split()[0].lower() == "may" else "%b %d, %Y").date()
    assert got == want, line


def test_reading_a_file_uses_the_same_format(tmp_path):
  p = tmp_path / "addition.txt"
  p.write_text("\n".join(questions.addition_lines(200, seed=5)) + "\n")
  c = config_lib.get_config("peeky")
  c.data.path, c.data.valid = str(p), 20
  ds = experiment.load(c.data)
  assert len(ds.valid["src"]) == 20 and len(ds.train["src"]) == 180
  p.write_text("16+75  _91  \n52+607_659 \n")
  with pytest.raises(DataError, match="addition.txt:2"):
    experiment.load(c.data)


def _tiny(variant, tmp_path=None):
  c = config_lib.get_config(variant)
  c.data.num, c.data.valid, c.data.batch_size, c.data.eval_batch_size = 640, 64, 32, 50
  c.model.hidden, c.trainer.num_epochs, c.num_samples = 16, 1, 4
  c.trainer.tensorboard = c.trainer.plot = False
  return c


@pytest.mark.parametrize("variant", config_lib.MODELS)
def test_smoke_one_epoch_per_variant(variant, tmp_path):
  out = experiment.run(_tiny(variant), str(tmp_path), verbose=False)
  r = out["report"]
  assert out["status"] == "completed" and out["steps"] == 18
  assert np.isfinite(r["loss"]) and 0.0 <= r["exact"] <= 1.0 and r["greedy_char_acc"] > 0.0
  samples = (tmp_path / "samples.txt").read_text()
  assert samples.count("Input sentence:   [") == 4 and "label sentence:" in samples


def test_date_variant_defaults():
  c = config_lib.get_config("date_attention")
  assert (c.data.task, c.model.hidden, c.trainer.num_epochs, c.model.attention) == ("date", 256, 10, "dot")
  with pytest.raises(ValueError, match="Unknown seq2seq variant"):
    config_lib.get_config("date_nope")


def test_compare_writes_one_figure_and_a_table(tmp_path, monkeypatch):
  real = config_lib.get_config

  def small(arg=None):
    c = real(arg)
    c.unlock()  # only the test shrinks the model; users override by flags
    c.model.hidden, c.data.batch_size, c.data.eval_batch_size = 16, 32, 50
    c.trainer.tensorboard = False
    return c

  monkeypatch.setattr(config_lib, "get_config", small)
  res = compare.compare(str(tmp_path), "addition", ["baseline", "reversed"], epochs=2, num=640,
                        verbose=False)
  assert os.path.getsize(res["figure"]) > 10_000
  assert res["table"].count("\n| ") == 2  # one row per variant
  assert set(json.loads((tmp_path / "results.json").read_text())) == {"baseline", "reversed"}


def _tiny_quick(over=None):
  from lib.sweeps import space
  return space.apply(config_lib.get_config("quick"), {
      "data.num": 1500, "trainer.num_epochs": 1, "model.hidden": 32, "trainer.tensorboard": False,
      **(over or {})})


def test_vmap_refuses_seeds_whose_minibatch_order_differs_before_anything_runs(tmp_path):
  """``data.shuffle_seed=-1``: the minibatch order follows ``seed``."""
  from launch import sweep as sweep_lib
  from lib.errors import ConfigError
  from lib.sweeps import trial_batch
  follow = {"data.shuffle_seed": -1}
  with pytest.raises(ConfigError, match="depend on the seed.*data.shuffle_seed >= 0"):
    trial_batch.fit(experiment.build, _tiny_quick(follow), [{"seed": 0}, {"seed": 1}],
                      [str(tmp_path / "t0"), str(tmp_path / "t1")])
  with pytest.raises(ConfigError, match="depend on the seed"):
    sweep_lib.sweep("experiments/seq2seq/config.py:quick", "", str(tmp_path / "sweep"),
                    backend="vmap", seeds=2, common={**follow, "data.num": 1500})
  assert not (tmp_path / "sweep").exists()


def test_quick_config_and_its_sweeps():
  from lib.sweeps import space
  c = config_lib.get_config("quick")
  assert (c.variant, c.data.num, c.trainer.num_epochs, c.model.reverse_input) == ("quick", 10_000, 2, True)
  seeds = space.build(config_lib.sweep, "seeds")
  assert len(seeds) == 32 and {t["data.shuffle_seed"] for t in seeds} == {0}
  assert len(space.build(config_lib.sweep, "")) == 8
