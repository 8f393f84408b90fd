"""The RNN LM experiment: a 2-step smoke test per config, and the notes' run end to end."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.rnnlm import config as config_lib, experiment
from experiments.rnnlm.config import NOTES_LM
from experiments.rnnlm.numpy_reference import RNNNumpy
from lib.data import text
from lib.data.vocab import Vocab
from lib.errors import DataError
from lib.nn import lm
from tests.lib.data import tfds_builders
from lib.train import checkpoint, optim, trainer
from lib.train.state import init_state, restore_params
from lib.train.step import task_step

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

WORDS = "the cat sat on a mat and dog ran to house it was big small red".split()


X = np.array([0, 5, 7, 3, 9, 2, 11])
Y = np.array([5, 7, 3, 9, 2, 11, 1])


def notes_grads(model, params):
  def loss(p):
    return lm.window_loss(model, p, {"x": jnp.asarray(X)[None], "y": jnp.asarray(Y)[None]},
                          None, None, False)[0]
  return jax.grad(loss)(params)


@pytest.mark.parametrize("truncate", [1, 2, 100])
def test_truncated_bptt_equals_the_notes_numpy_bptt(truncate):
  with jax.enable_x64(True):
    ref = RNNNumpy(30, 8, bptt_truncate=truncate, seed=10)
    dU, dV, dW = ref.bptt(X, Y)
    model = lm.RecurrentLM(30, 8, **NOTES_LM, truncate=truncate)
    g = notes_grads(model, jax.tree.map(jnp.asarray, ref.as_params()))
    np.testing.assert_allclose(g["embed"].T, dU, atol=1e-12)
    np.testing.assert_allclose(g["out"]["w"].T, dV, atol=1e-12)
    np.testing.assert_allclose(g["layers"][0]["w_rec"].T, dW, atol=1e-12)
    # Loss per word as the notes' calculate_loss.
    loss = lm.nll(model.apply(ref.as_params(), jnp.asarray(X)[None])[0], jnp.asarray(Y)[None])
    assert float(loss.total / loss.count) == pytest.approx(ref.calculate_loss([X], [Y]), rel=1e-10)



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("lmdata")
  rng = np.random.default_rng(0)
  for split, n in (("train", 600), ("valid", 60), ("test", 60)):
    lines = [" ".join(rng.choice(WORDS + ["<unk>"], rng.integers(3, 12))) for _ in range(n)]
    (d / f"ptb.{split}.txt").write_text("\n".join(f" {l} " for l in lines) + "\n")
  comments = ['"' + ". ".join(" ".join(rng.choice(WORDS, 6)) for _ in range(3)) + '."'
              for _ in range(60)]
  (d / "comments.csv").write_text("body\n" + "\n".join(comments) + "\n")
  return d


def configured(variant, data_dir):
  c = config_lib.get_config(variant)
  if c.data.source == "ptb":
    c.data.path = str(data_dir)
  elif c.data.source == "csv":
    c.data.path = str(data_dir / "comments.csv")
  return c


@pytest.mark.parametrize("variant", config_lib.VARIANTS)
def test_two_training_steps_per_config(variant, data_dir, tmp_path):
  c = configured(variant, data_dir)
  if c.data.source == "ptb":  # the published sizes, on short windows of a few rows
    c.data.batch_size = c.data.eval_batch_size = 4
    c.data.num_steps = 5
  b = experiment.build(c)
  task, c = b.task, b.config
  c.trainer.num_steps, c.trainer.eval_every_steps, c.trainer.checkpoint_every_steps = 2, 0, 0
  summary = trainer.fit(task, c, str(tmp_path))
  assert summary["status"] == "completed" and summary["steps"] == 2
  assert math.isfinite(summary["final"]["train/nll"]) and math.isfinite(summary["final"]["eval/ppl"])
  if variant.startswith("ptb"):
    assert "test_ppl" in summary["extra"]
    sizes = {"ptb_small": 200, "ptb_medium": 650, "ptb_large": 1500,
             **{f"ptb_small_{cell}": h for cell, h in config_lib.PTB_SMALL_LINEAR.items()}}
    assert c.model.hidden == sizes[variant]


def test_the_linear_ptb_models_have_ptb_smalls_parameter_count():
  """Within 10% of the 2x200 LSTM's (vocabulary 10,000: PTB's)."""
  def count(variant):
    model = experiment.make_model(config_lib.get_config(variant), 10_000)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))
  lstm = count("ptb_small")
  assert lstm == 4_651_600
  for cell in config_lib.PTB_SMALL_LINEAR:
    assert abs(count(f"ptb_small_{cell}") / lstm - 1) < 0.1, cell


@pytest.mark.parametrize("variant", ["notes", "ptb_small"])
def test_embedding_row_updates_equal_the_dense_step(variant, data_dir):
  # notes: sentences, truncated BPTT, reduce-on-plateau; ptb_small as a stream with a
  # carried state, dropout and no clipping (the row update needs plain SGD).
  c = configured(variant, data_dir)
  if variant == "ptb_small":
    c.data.batch_size, c.data.num_steps, c.model.hidden = 4, 5, 16
    c.model.dropout, c.optimizer.clip_norm = 0.3, 0.0
  b = experiment.build(c)
  task, rc = b.task, b.config
  assert task.row_tables == {"embed": "x"} and optim.scales_gradients(rc.optimizer)
  final = []
  for rows in (False, True):
    state, tx, schedule, key = init_state(task, rc)
    step = jax.jit(task_step(task, tx, schedule, scales_gradients=rows))
    for s in range(4):
      state, m = step(state, task.train_batch(s), jax.random.fold_in(key, s), dict(task.hparams))
    final.append((state, {k: float(v.total / v.count) for k, v in m.items()}))
  for a, b in zip(jax.tree.leaves(final[0][0]), jax.tree.leaves(final[1][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert final[0][1] == pytest.approx(final[1][1], rel=1e-5)


def test_stream_config_resolves_the_tutorial_schedule(data_dir):
  c = configured("ptb_small", data_dir)
  b = experiment.build(c)
  task, rc = b.task, b.config
  spe = task.train_batch.steps_per_epoch
  assert rc.trainer.num_steps == 13 * spe and rc.trainer.eval_every_steps == spe
  _, tx_sched = optim.make_optimizer(rc.optimizer, rc.trainer.num_steps)
  lrs = [float(tx_sched(e * spe)) for e in range(6)]
  assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25]   # TF tutorial: decay from epoch 5 (1-based)


def test_malformed_csv_gives_a_clear_error(data_dir, tmp_path):
  bad = tmp_path / "bad.csv"
  bad.write_text('body\n"fine."\n"cut off')
  c = config_lib.get_config("notes_csv")
  c.data.path = str(bad)
  with pytest.raises(DataError, match=r"bad.csv:3: record 2"):
    experiment.build(c)


def test_notes_run_end_to_end(tmp_path):
  """Embedded corpus, 0.3 epochs: loss starts at log V and falls, 10 clean sentences."""
  c = config_lib.get_config("notes")
  c.trainer.num_epochs = 0.3
  workdir = str(tmp_path / "notes")
  out = experiment.run(c, workdir, verbose=False)
  report = out["lm"]
  assert report["initial_nll"] == pytest.approx(math.log(2000), abs=0.05)
  assert report["final"]["train/nll"] < report["initial_nll"] - 1.5
  samples = report["samples"]
  assert len(samples) == 10
  assert all(len(s.split()) >= 7 and text.UNKNOWN not in s.split() for s in samples)
  # Parameters exported as .npz load back into the model's structure.
  b = experiment.build(c)
  task, rc = b.task, b.config
  params, _ = restore_params(task, rc, workdir)
  loaded = checkpoint.load_npz(os.path.join(workdir, "params.npz"), params)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  assert Vocab.load(os.path.join(workdir, "vocab.json")).tokens == b.data.vocab.tokens
  with open(os.path.join(workdir, "lm_report.json")) as f:
    assert json.load(f)["samples"] == samples


def test_a_tfds_text_dataset_reads_as_the_embedded_corpus(tmp_path):
  from lib.data import corpora
  name = tfds_builders.text(tmp_path, {"train": [corpora.embedded_text()]})
  c = config_lib.get_config("notes")
  c.data.update(source="tfds", tfds=name, tfds_dir=str(tmp_path))
  ours, embedded = experiment.load_corpus(c.data), experiment.load_corpus(
      config_lib.get_config("notes").data)
  assert ours.vocab.tokens == embedded.vocab.tokens
  for split in embedded.splits:
    assert len(ours.splits[split]) == len(embedded.splits[split]) > 0
    for a, b in zip(ours.splits[split], embedded.splits[split]):
      np.testing.assert_array_equal(a, b)
