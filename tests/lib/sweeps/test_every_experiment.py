"""Every experiment's trials vmapped together (lib.sweeps.trial_batch) give what
separate single runs give, when they differ in the learning rate and one more
hyperparameter, and their checkpoints restore in the single-run trainer."""
import dataclasses
import importlib

import jax
import numpy as np
import pytest

from launch import registry
from lib.sweeps import space, trial_batch
from lib.train import trainer
from lib.train.state import restore_params

pytestmark = pytest.mark.slow  # trains: left out of `make test-fast`

QUIET = {"trainer.tensorboard": False, "trainer.plot": False}
# name -> (config variant, tiny overrides, two trials: lr and one more key)
CASES = {
    "counting": ("rmsprop", {"trainer.num_epochs": 30},
                 [{"optimizer.lr": 0.01, "optimizer.rmsprop.decay": 0.9},
                  {"optimizer.lr": 0.03, "optimizer.rmsprop.decay": 0.5}]),
    "rnnlm": ("ptb_small", {"model.hidden": 16, "data.batch_size": 4, "data.eval_batch_size": 4,
                            "data.num_steps": 5, "trainer.num_steps": 12,
                            "trainer.eval_every_steps": 6},
              [{"optimizer.lr": 1.0, "model.dropout": 0.0},
               {"optimizer.lr": 0.5, "model.dropout": 0.4}]),
    "seq2seq": ("quick", {"data.num": 400, "data.valid": 40, "data.batch_size": 32,
                          "data.eval_batch_size": 40, "model.hidden": 16,
                          "trainer.num_steps": 10, "data.shuffle_seed": 0},
                [{"optimizer.lr": 1e-3, "optimizer.adam.b1": 0.9},
                 {"optimizer.lr": 3e-3, "optimizer.adam.b1": 0.5, "seed": 1}]),
    "translation": ("lstm", {"data.num": 200, "data.batch_size": 32, "data.eval_batch_size": 40,
                             "model.hidden": 16, "trainer.num_steps": 8},
                    [{"optimizer.lr": 1e-3, "optimizer.rmsprop.decay": 0.9},
                     {"optimizer.lr": 3e-3, "optimizer.rmsprop.decay": 0.6}]),
    "varrnn": ("notes", {"data.num": 100, "trainer.num_steps": 6, "trainer.eval_every_steps": 3,
                         "data.eval_batch_size": 64, "eval.num_samples": 2, "data.eval_draws": 2},
               [{"optimizer.lr": 0.01, "vi.kl_weight": 1.0, "vi.prior_sigma": 1000.0},
                {"optimizer.lr": 0.03, "vi.kl_weight": 0.1, "vi.prior_sigma": 1.0,
                 "vi.log_sigma_init": -2.0}]),
    "long_range": ("adding_100", {"data.train_len": 10, "data.test_lens": (10, 20),
                                  "data.test_size": 16, "model.hidden": 8,
                                  "trainer.num_steps": 6, "trainer.eval_every_steps": 3},
                   [{"optimizer.lr": 1e-2, "optimizer.adam.b1": 0.9},
                    {"optimizer.lr": 3e-2, "optimizer.adam.b1": 0.5, "seed": 1}]),
    "word2vec": ("embedded", {"trainer.num_epochs": 1, "model.dim": 16,
                              "train.minibatches_per_step": 4},
                 [{"optimizer.lr": 0.025, "model.negatives": 5},
                  {"optimizer.lr": 0.05, "model.negatives": 2}]),
}
# The variational RNN's other sampling modes (one weight sample per minibatch,
# flipout, and the MAP twin), with the learning rate and the KL weight (or the
# prior's sigma); their training only (the evaluators are the example mode's).
VARRNN_MODES = ("minibatch", "flipout", "none")


def _base(name, variant, overrides, tmp_path):
  config = importlib.import_module(f"experiments.{name}.config").get_config(variant)
  if name == "rnnlm":  # the PTB layout: a carried state across windows
    words = [f"w{i}" for i in range(30)]
    rng = np.random.default_rng(0)
    for split, n in (("train", 120), ("valid", 20), ("test", 20)):
      lines = [" ".join(rng.choice(words, rng.integers(3, 10))) for _ in range(n)]
      (tmp_path / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    overrides = {**overrides, "data.path": str(tmp_path)}
  return space.apply(config, {**overrides, **QUIET})


def _check(name, variant, overrides, trials, tmp_path, evaluate=True, seeds=False):
  """Trains ``trials`` vmapped, then the last one (which moves both keys off the
  config's values) alone; its metrics and parameters must agree. Without
  ``evaluate``, the tasks' evaluators are left out (only the training is compared)."""
  exp = importlib.import_module(f"experiments.{name}.experiment")
  build = exp.build if evaluate else _without_evaluators(exp.build)
  base = _base(name, variant, overrides, tmp_path)
  if seeds:  # each trial with two seeds: a 2-seed x 2-configuration sweep
    trials = [{**t, "seed": t.get("seed", base.seed) + s} for t in trials for s in (0, 1)]
  dirs = [str(tmp_path / f"t{i}") for i in range(len(trials))]
  together = trial_batch.fit(build, base, trials, dirs)
  assert [s["status"] for s in together] == ["completed"] * len(trials)
  if seeds:  # the sweep's summary: mean and spread over the seeds of each configuration
    from launch import sweep as sweep_lib
    plan = [sweep_lib.Trial(i, t, d) for i, (t, d) in enumerate(zip(trials, dirs))]
    metric = sorted(together[0]["final"])[0]
    configs = sweep_lib.summarize(str(tmp_path), plan, metric)["configs"]
    assert [c["completed"] for c in configs] == [2, 2], configs
    assert all(np.isfinite(c["mean"]) and np.isfinite(c["std"]) for c in configs), configs
  built = build(space.apply(base, trials[-1]))
  alone = trainer.fit(built.task, built.config, str(tmp_path / "alone"))
  assert together[-1]["final"].keys() == alone["final"].keys()
  for k, v in alone["final"].items():
    assert together[-1]["final"][k] == pytest.approx(v, rel=2e-4, abs=1e-5), (name, k)
  got, step = restore_params(built.task, built.config, dirs[-1])  # the single-run trainer's
  want, _ = restore_params(built.task, built.config, str(tmp_path / "alone"))
  assert step == built.config.trainer.num_steps
  # Float tolerance: a vmapped GEMM sums in another order than the single run's.
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)
  # The trials did differ: the first trial's parameters are not the last's.
  first = restore_params(built.task, built.config, dirs[0])[0]
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(got)))


def _without_evaluators(build):
  def no_eval(config, data=None):
    b = build(config, data)
    return dataclasses.replace(b, task=dataclasses.replace(b.task, evaluators=()))
  return no_eval


def test_every_registered_experiment_has_a_case():
  assert set(CASES) == set(registry.EXPERIMENTS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_vmapped_trials_equal_separate_runs(name, tmp_path):
  """Two configurations x two seeds: the default data order does not follow ``seed``."""
  _check(name, *CASES[name], tmp_path, seeds=True)


@pytest.mark.parametrize("mode", VARRNN_MODES)
def test_varrnn_sampling_modes_vmap(mode, tmp_path):
  variant, overrides, _ = CASES["varrnn"]
  trials = [{"optimizer.lr": 0.01, "vi.kl_weight": 1.0}, {"optimizer.lr": 0.03, "vi.kl_weight": 0.3}]
  if mode == "none":
    trials = [{"optimizer.lr": 0.01, "vi.prior_sigma": 1000.0},
              {"optimizer.lr": 0.03, "vi.prior_sigma": 0.5}]
  _check("varrnn", variant, {**overrides, "vi.sampling": mode, "trainer.num_steps": 4,
                             "data.num": 100}, trials, tmp_path, evaluate=False)


def test_lm_sentences_of_different_padded_lengths_vmap(tmp_path):
  """The notes' LM pads each batch to its own length: steps whose batches differ in
  shape run one at a time inside the group, and still equal separate runs."""
  overrides = {"model.hidden": 8, "data.vocab_size": 200, "data.batch_size": 1,
               "data.eval_batch_size": 16, "trainer.num_steps": 10, "trainer.eval_every_steps": 5}
  build = importlib.import_module("experiments.rnnlm.experiment").build
  task = build(_base("rnnlm", "notes", overrides, tmp_path)).task
  assert len({task.train_batch(s)["x"].shape for s in range(10)}) > 1  # the case at hand
  _check("rnnlm", "notes", overrides, [{"optimizer.lr": 0.03, "model.dropout": 0.0},
                                       {"optimizer.lr": 0.1, "model.dropout": 0.25}], tmp_path,
         seeds=True)
