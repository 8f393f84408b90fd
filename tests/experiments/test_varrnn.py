"""The variational-RNN experiment: the embedded task, masks, vmap, runs end to end."""
import math
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.varrnn.model import kl_notes
from experiments.varrnn import compare, config as config_lib, inputs, experiment
from experiments.varrnn.model import PairRNN
from experiments.varrnn import sentence_pairs
from lib.data import batching, word_vectors
from tests import interrupt
from tests.lib.data import tfds_builders
from lib.errors import DataError
from lib.nn import variational as vi

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`


def _small(variant, num=400, epochs=1, **data_overrides):
  c = config_lib.get_config(variant)
  c.data.num, c.trainer.num_epochs, c.trainer.eval_every_epochs = num, epochs, epochs
  c.data.eval_batch_size, c.eval.num_samples, c.data.eval_draws = 64, 2, 3
  c.trainer.tensorboard = c.trainer.plot = False
  for k, v in data_overrides.items():
    c.data[k] = v
  return c


def test_generated_pairs_need_word_order():
  pairs = inputs.first_marker_pairs(3000, seed=0)
  assert len(pairs) == 3000
  for toks in pairs.a[:200] + pairs.b[:200]:
    assert sorted(t for t in toks if t in inputs.MARKERS) == sorted(inputs.MARKERS)  # same bag
    assert 6 <= len(toks) <= 20
  first = lambda toks: inputs.MARKERS.index(next(t for t in toks if t in inputs.MARKERS))  # noqa: E731
  for a, b, y in zip(pairs.a[:300], pairs.b[:300], pairs.y[:300]):
    i, j = sorted((first(a), first(b)))
    assert inputs.CLASS_NAMES[y] == inputs.MARKERS[i][0] + inputs.MARKERS[j][0]
  freq = np.bincount(pairs.y, minlength=6) / len(pairs)
  np.testing.assert_allclose(freq, [1 / 9] * 3 + [2 / 9] * 3, atol=0.025)
  again = inputs.first_marker_pairs(50, seed=0)
  assert again.a == pairs.a[:50] and inputs.first_marker_pairs(50, seed=1).a != again.a


def _model_and_inputs(B=4, T=9, vocab=30, cell="elman"):
  model = PairRNN(input_dim=8, hidden=6, init="inv_sqrt_fan_in", cell=cell)
  rng = np.random.default_rng(0)
  lengths = np.asarray([[9, 3, 5, 1], [2, 9, 4, 6]])
  mask = (np.arange(T)[None, None] < lengths[..., None]).astype(np.float32)
  inputs = {"ids1": rng.integers(0, vocab, (B, T)), "mask1": mask[0],
            "ids2": rng.integers(0, vocab, (B, T)), "mask2": mask[1]}
  vectors = jnp.asarray(rng.standard_normal((vocab, 8)).astype(np.float32))
  return model, {k: jnp.asarray(v) for k, v in inputs.items()}, vectors


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("mode", ["mean", "example", "minibatch", "flipout"])
def test_padded_steps_change_nothing(mode, cell):
  model, inputs, vectors = _model_and_inputs(cell=cell)
  post = vi.init_posterior(model.init_params(jax.random.key(0)), np.log(0.1))
  garbage = dict(inputs)
  for k in ("ids1", "ids2"):  # new ids wherever the mask is 0
    m = inputs["mask" + k[-1]] > 0
    garbage[k] = jnp.where(m, inputs[k], (inputs[k] * 7 + 3) % 30)
  assert not np.array_equal(garbage["ids1"], inputs["ids1"])

  def out(p, x):
    w, ax = vi.draw(p, jax.random.key(5), 4, mode)
    return vi.per_example(lambda q, i: model.logits(q, i, vectors), w, ax, x)

  np.testing.assert_array_equal(out(post, inputs), out(post, garbage))
  g1 = jax.grad(lambda p: out(p, inputs).sum())(post)
  g2 = jax.grad(lambda p: out(p, garbage).sum())(post)
  jax.tree.map(np.testing.assert_array_equal, g1, g2)


@pytest.mark.parametrize("name", ["elman", "gru", "lstm"])
def test_the_encoders_are_lib_cells_stepped_over_the_real_words(name):
  from lib.nn import cells
  model, inputs, vectors = _model_and_inputs(cell=name)
  p = model.init_params(jax.random.key(3))
  p = {k: v + 0.1 * jax.random.normal(jax.random.key(len(k)), v.shape) for k, v in p.items()}
  cell = cells.make(name, 6)
  r = jax.random.normal(jax.random.key(9), (6,))

  def by_hand(p, b):
    cp = {k: p[k] for k in ("w_x", "w_rec", "b", "b_rec") if k in p}
    x = vectors[inputs["ids1"][b]]
    carry = (p["h0"], jnp.zeros(6)) if name == "lstm" else p["h0"]
    for t in range(int(inputs["mask1"][b].sum())):
      carry, _ = cell.step(cp, carry, cell.project(cp, x[t]))
    return cell.output(carry)

  def ours(p, b):
    return model.encode(p, vectors[inputs["ids1"][b]][None], inputs["mask1"][b][None])[0]

  for b in range(4):
    np.testing.assert_allclose(ours(p, b), by_hand(p, b), rtol=1e-5, atol=1e-6)
    # The gradients too: the encoder's backward pass is its own (lib.nn.recurrence).
    g_ours = jax.grad(lambda q: ours(q, b) @ r)(p)
    g_hand = jax.grad(lambda q: by_hand(q, b) @ r)(p)
    for k in g_hand:
      np.testing.assert_allclose(g_ours[k], g_hand[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_pair_model_under_vmap_equals_a_loop_with_the_same_samples():
  model, inputs, vectors = _model_and_inputs()
  post = vi.init_posterior(model.init_params(jax.random.key(0)), np.log(0.1))
  w, ax = vi.draw(post, jax.random.key(1), 4, "example")
  batched = vi.per_example(lambda q, i: model.logits(q, i, vectors), w, ax, inputs)
  for b in range(4):
    one = model.logits(jax.tree.map(lambda x: x[b], w), {k: v[b] for k, v in inputs.items()},
                       vectors)
    np.testing.assert_allclose(batched[b], one, rtol=1e-5, atol=1e-6)


def test_the_notes_model_beats_chance_and_a_bag_of_words_does_not(tmp_path):
  notes = experiment.run(_small("notes", num=1000, epochs=4), str(tmp_path / "notes"),
                         verbose=False)["report"]
  bow = experiment.run(_small("bow", num=1000, epochs=4), str(tmp_path / "bow"),
                       verbose=False)["report"]
  chance = 1 / 6
  assert notes["f1_bal"] > chance + 0.15, notes
  assert bow["f1_bal"] < chance + 0.05, bow
  assert notes["status"] == "completed" and notes["neg_elbo"] > 0 and notes["sigma"] > 0
  for p in experiment.PREDICTORS:
    assert 0.0 <= notes[f"{p}/ece"] <= 1.0
  recs = [json.loads(line) for line in open(tmp_path / "notes" / "metrics.jsonl")]
  evid = [r["neg_elbo"] for r in recs if r["split"] == "train"]
  assert evid[-1] < evid[0]  # the evidence bound improves
  assert os.path.exists(notes["figure"])


@pytest.mark.parametrize("variant", ["minibatch", "flipout", "bbb", "map"])
def test_every_variant_runs(tmp_path, variant):
  r = experiment.run(_small(variant), str(tmp_path / variant), verbose=False)["report"]
  assert r["status"] == "completed" and 0.0 <= r["f1_bal"] <= 1.0
  assert ("sample/f1_bal" in r) == (variant != "map")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_encoders_train_in_the_notes_sampling(tmp_path, cell):
  c = _small("notes", num=200)
  c.model.cell, c.model.init = cell, "inv_sqrt_fan_in"
  b = experiment.build(c)
  G = {"gru": 3, "lstm": 4}[cell] * c.model.hidden
  assert b.task.init_params(jax.random.key(0))["mean"]["w_rec"].shape == (c.model.hidden, G)
  r = experiment.run(c, str(tmp_path / cell), verbose=False)["report"]
  assert r["status"] == "completed" and np.isfinite(r["f1_bal"])


def test_same_seed_same_numbers(tmp_path):
  def numbers(sub):
    experiment.run(_small("flipout", num=200), str(tmp_path / sub), verbose=False)
    recs = [json.loads(line) for line in open(tmp_path / sub / "metrics.jsonl")]
    return [{k: v for k, v in r.items() if k != "time"} for r in recs]
  assert numbers("a") == numbers("b")


def test_compare_writes_the_side_by_side_table(tmp_path):
  res = compare.compare(str(tmp_path), ["notes", "map"], epochs=1, eval_every=1, verbose=False,
                        overrides={"data.num": 300, "eval.num_samples": 2, "data.eval_draws": 2})
  assert set(res["reports"]) == {"notes", "map"}
  assert "| notes | example | sample (headline) |" in res["table"]
  assert "| map | none | mean |" in res["table"]
  assert os.path.exists(tmp_path / "comparison.png")


def _write_stsb(path, rows):
  with open(path, "w") as f:
    for i, (score, a, b) in enumerate(rows):
      extra = "\tsrc-a\tsrc-b" if i % 3 == 0 else ""
      f.write(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{score:.3f}\t{a}\t{b}{extra}\n")


def test_stsb_files_end_to_end(tmp_path):
  rng = np.random.default_rng(0)
  words = "a man woman is playing guitar flute dog cat runs eats the on grass".split()
  sent = lambda: " ".join(rng.choice(words, rng.integers(3, 9))).capitalize() + "."  # noqa: E731
  _write_stsb(tmp_path / "sts-train.csv", [(rng.uniform(0, 5), sent(), sent()) for _ in range(80)])
  _write_stsb(tmp_path / "sts-dev.csv", [(s, sent(), sent()) for s in (0, 1.2, 2, 3.4, 4, 5) * 4])
  vec_words = [w for w in words if w != "flute"] + ["."]
  word_vectors.write(str(tmp_path / "vectors.txt"), vec_words,
                     rng.standard_normal((len(vec_words), 8)))
  c = _small("notes", epochs=2, format="stsb", path=str(tmp_path / "sts-train.csv"),
             test_path=str(tmp_path / "sts-dev.csv"), vectors=str(tmp_path / "vectors.txt"),
             batch_size=16)
  r = experiment.run(c, str(tmp_path / "run"), verbose=False)["report"]
  assert r["status"] == "completed" and r["test_pairs"] == 24
  b = experiment.build(c)
  assert b.model.input_dim == 8  # taken from the vectors file
  ds = b.data
  np.testing.assert_array_equal(np.bincount(ds.test["y"], minlength=6), [4] * 6)
  # A word without a vector is unknown; the unknown row is zeros.
  assert "flute" not in ds.vocab and "guitar" in ds.vocab and ds.vocab.tokens[-1] == inputs.UNK
  assert ds.vectors[-1].tolist() == [0.0] * 8 and len(ds.vectors) == len(ds.vocab)
  # Learned embeddings need no vectors file.
  c2 = _small("map", format="stsb", path=str(tmp_path / "sts-train.csv"), batch_size=16)
  c2.model.embeddings = "learned"
  r2 = experiment.run(c2, str(tmp_path / "learned"), verbose=False)["report"]
  assert r2["status"] == "completed" and r2["test_pairs"] == 12  # the last 15% of 80
  c3 = _small("notes", format="stsb", path=str(tmp_path / "sts-train.csv"))
  with pytest.raises(DataError, match="needs word vectors"):
    experiment.build(c3)


def test_sick_file_end_to_end_with_matching_features(tmp_path):
  rng = np.random.default_rng(1)
  words = "a man woman is playing guitar dog cat runs eats the on grass".split()
  sent = lambda: " ".join(rng.choice(words, rng.integers(3, 8))).capitalize()  # noqa: E731
  rows = ["pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\t"
          "entailment_AB\tentailment_BA\tsentence_A_original\tsentence_B_original\t"
          "sentence_A_dataset\tsentence_B_dataset\tSemEval_set"]
  for i in range(90):
    a, b, part = sent(), sent(), ("TRAIN", "TRIAL", "TEST")[i % 3]
    rows.append("\t".join([str(i), a, b, "NEUTRAL", f"{rng.uniform(1, 5):.1f}", "x", "y", a, b,
                           "FLICKR", "FLICKR", part]))
  (tmp_path / "SICK.txt").write_bytes(("\r\n".join(rows) + "\r\n").encode())
  word_vectors.write(str(tmp_path / "vectors.txt"), words, rng.standard_normal((len(words), 8)))
  c = _small("flipout", epochs=2, format="sick", path=str(tmp_path / "SICK.txt"),
             vectors=str(tmp_path / "vectors.txt"), batch_size=10)
  c.model.features = "match"
  b = experiment.build(c)
  assert len(b.data.train["y"]) == 60 and len(b.data.test["y"]) == 30  # TRAIN + TRIAL / TEST
  assert b.task.init_params(jax.random.key(0))["mean"]["w_out"].shape == (4 * c.model.hidden, 6)
  r = experiment.run(c, str(tmp_path / "run"), verbose=False)["report"]
  assert r["status"] == "completed" and np.isfinite(r["f1_bal"])


def test_configs_are_locked_and_variants_checked():
  c = config_lib.get_config("notes")
  assert (c.vi.sampling, c.vi.sigma, c.vi.prior_sigma, c.data.batch_size) == ("example", "shared", 1000.0, 25)
  assert c.optimizer.name == "adagrad" and c.optimizer.adagrad.initial_accumulator == 0.0
  with pytest.raises(AttributeError):
    c.vi.sampeling = "flipout"
  with pytest.raises(ValueError, match="Unknown varrnn variant"):
    config_lib.get_config("dropout")
  assert config_lib.get_config("bbb").vi.prior == "mixture"
  assert sentence_pairs.score_to_class(4.5) == 5


def test_notes_kl_counts_the_sigma_terms_once():
  prior = vi.Gaussian(sigma=1000.0)
  one = vi.init_posterior({"w": jnp.asarray([0.7])}, math.log(0.01))
  # One weight: the notes' expression is the closed form.
  assert float(kl_notes(one, prior)) == pytest.approx(float(vi.kl_gaussian(one, prior)), rel=1e-5)
  many = vi.init_posterior({"w": jnp.full((10,), 0.7)}, math.log(0.01))
  per_weight_sigma_terms = 0.5 * (0.01 ** 2 / 1000.0 ** 2 + 2 * math.log(1000.0) - 2 * math.log(0.01))
  diff = float(vi.kl_gaussian(many, prior)) - float(kl_notes(many, prior))
  assert diff == pytest.approx(9 * per_weight_sigma_terms, rel=1e-4)
  with pytest.raises(ValueError, match="shared log_sigma"):
    kl_notes(vi.init_posterior({"w": jnp.ones((3,))}, 0.0, "weight"), vi.Gaussian(1.0))


def test_tfds_sentence_pairs_end_to_end_and_resumable(tmp_path, monkeypatch):
  rng = np.random.default_rng(2)
  words = "a man woman is playing guitar dog cat runs eats the on grass".split()
  sent = lambda: " ".join(rng.choice(words, rng.integers(3, 8)))  # noqa: E731
  train = [(sent(), sent(), rng.uniform(0, 5)) for _ in range(96)]
  valid = [(sent(), sent(), s) for s in (0, 1, 2.4, 2.6, 4, 5) * 3]
  name = tfds_builders.sentence_pairs(tmp_path / "tfds", {"train": train, "validation": valid})
  c = _small("map", epochs=3, tfds=name, tfds_dir=str(tmp_path / "tfds"), batch_size=16)
  c.model.embeddings = "learned"
  c.trainer.checkpoint_every_epochs, c.trainer.checkpoint_every_steps = None, 4
  full = experiment.run(c, str(tmp_path / "full"), verbose=False)
  assert full["report"]["status"] == "completed" and full["report"]["test_pairs"] == 18
  np.testing.assert_array_equal(np.bincount(experiment.build(c).data.test["y"], minlength=6),
                                [3, 3, 3, 3, 3, 3])  # 2.4 -> 2, 2.6 -> 3: the score-to-class rule

  resumed = interrupt.cut_then_resume(monkeypatch, batching.EpochBatches, "__call__", 9,
                                      lambda: experiment.run(c, str(tmp_path / "cut"), verbose=False))
  assert resumed["resumed_from"] == 9
  assert resumed["final"] == full["final"] and "train/loss" in full["final"]
