"""The long-range tasks: each generator's answers against a plain Python solution, a
smoke run per task, and notes 003's counting far past training."""
import math

import numpy as np
import pytest

from experiments.long_range import config as config_lib, experiment, tasks
from lib.sweeps import space

QUIET = {"trainer.tensorboard": False, "trainer.plot": False}


def _check_last_only(w, T):
  assert w.shape[1] == T and (w[:, :-1] == 0).all() and (w[:, -1] == 1).all()


def test_adding_targets_are_the_sum_of_the_two_marked_values():
  b = tasks.adding(6, 20, seed=3, index=2)
  _check_last_only(b["w"], 20)
  for x, y in zip(b["x"].tolist(), b["y"].tolist()):
    marked = [t for t, (_, mark) in enumerate(x) if mark == 1.0]
    assert len(marked) == 2 and marked[0] < 10 <= marked[1]
    assert y[-1] == pytest.approx(x[marked[0]][0] + x[marked[1]][0], abs=1e-6)


def test_copying_targets_are_the_data_tokens_in_order():
  T, tokens, vocab = 30, 5, 7
  b = tasks.copying(4, T, seed=1, tokens=tokens, vocab=vocab)
  for x, y, w in zip(b["x"].tolist(), b["y"].tolist(), b["w"].tolist()):
    data = [v for v in x[:T] if v != 0]
    assert len(data) == tokens and all(1 <= v <= vocab for v in data)
    assert x[T:] == [vocab + 1] * tokens
    assert y[T:] == [v - 1 for v in data]
    assert w == [0.0] * T + [1.0] * tokens


def test_mqar_targets_are_the_values_of_the_queried_keys():
  T, pairs, vocab = 32, 4, 64
  b = tasks.mqar(5, T, seed=2, pairs=pairs, vocab=vocab)
  for x, y, w in zip(b["x"].tolist(), b["y"].tolist(), b["w"].tolist()):
    table = {x[2 * i]: x[2 * i + 1] for i in range(pairs)}
    assert len(table) == pairs and all(k < vocab // 2 <= v for k, v in table.items())
    queries = [t for t in range(T) if w[t] == 1.0]
    assert len(queries) == pairs and min(queries) >= 2 * pairs
    assert sorted(x[t] for t in queries) == sorted(table)
    for t in queries:
      assert y[t] == table[x[t]]


def test_parity_targets_are_the_parity_of_each_string():
  b = tasks.parity(16, 12, seed=4)
  held_out = tasks.parity(16, 30, seed=4, min_len=13)
  for batch, shortest in ((b, 1), (held_out, 13)):
    for x, y, w, m in zip(batch["x"][..., 0].tolist(), batch["y"].tolist(),
                          batch["w"].tolist(), batch["mask"].tolist()):
      n = int(sum(m))
      assert shortest <= n and m == [1.0] * n + [0.0] * (len(m) - n)
      assert all(v == 0 for v in x[n:])
      assert w.index(1.0) == n - 1 and sum(w) == 1.0
      assert y[n - 1] == int(sum(x[:n])) % 2


def test_counting_targets_are_the_number_of_ones():
  b = tasks.counting(5, 9, seed=0)
  _check_last_only(b["w"], 9)
  for x, y in zip(b["x"][..., 0].tolist(), b["y"].tolist()):
    assert y[-1] == sum(x)


def test_batches_are_a_function_of_seed_and_index():
  for name, make in tasks.GENERATORS.items():
    T = 32
    a, again, other = make(4, T, 0, 5), make(4, T, 0, 5), make(4, T, 0, 6)
    assert all(np.array_equal(a[k], again[k]) for k in a), name
    assert not np.array_equal(a["x"], other["x"]), name


# task -> tiny overrides: a few steps on short sequences
SMOKE = {
    "adding": {"data.train_len": 12, "data.test_lens": (12, 24)},
    "copying": {"data.train_len": 12, "data.test_lens": (12,), "data.tokens": 3, "data.vocab": 4},
    "mqar": {"data.train_len": 16, "data.test_lens": (16,), "data.pairs": 2,
             "data.test_pairs": (2, 4), "data.mqar_vocab": 32},
    "parity": {"data.train_len": 6, "data.test_lens": (6, 12)},
    "counting": {"data.train_len": 5, "data.test_lens": (5, 20)},
}
EXPECTED = {"adding": {"mse@12", "mse@24"}, "copying": {"acc@12"}, "mqar": {"acc@16x2", "acc@16x4"},
            "parity": {"acc@6", "acc@12"}, "counting": {"mse@5", "mse@20"}}


@pytest.mark.parametrize("task", tasks.TASKS)
def test_every_task_trains_and_evaluates(task, tmp_path):
  variant = next(v for v, s in config_lib.SETTINGS.items() if s[0] == task)
  c = space.apply(config_lib.get_config(variant), {
      **SMOKE[task], **QUIET, "model.hidden": 8, "model.cell": "lru", "data.batch_size": 4,
      "data.test_size": 8, "trainer.num_steps": 4, "trainer.eval_every_steps": 2})
  s = experiment.run(c, str(tmp_path), verbose=False)
  assert s["status"] == "completed" and s["steps"] == 4
  evals = {k.split("/")[1]: v for k, v in s["final"].items() if k.startswith("eval/")}
  assert set(evals) == EXPECTED[task]
  assert all(math.isfinite(v) for v in evals.values())
  if task not in tasks.REGRESSION:
    assert all(0.0 <= v <= 1.0 for v in evals.values())


def test_a_state_readout_needs_a_value_task():
  c = space.apply(config_lib.get_config("parity"), {"model.readout": "state"})
  with pytest.raises(experiment.ConfigError, match="model.readout='state' reads a value"):
    experiment.build(c)


@pytest.mark.slow
def test_the_notes_linear_cell_counts_far_past_training_where_the_lstm_does_not(tmp_path):
  """Notes 003: trained on 10 steps, only the linear cell with both weights at 1 counts
  1,000 ones (MSE below 0.01); the LSTM fits the training lengths and saturates."""
  notes = experiment.run(space.apply(config_lib.get_config("counting_notes"), QUIET),
                         str(tmp_path / "linear"), verbose=False)["final"]
  assert notes["eval/mse@1000"] < 0.01 and notes["eval/mse@50"] < 0.01, notes
  lstm = experiment.run(space.apply(config_lib.get_config("counting"), {
      **QUIET, "model.cell": "lstm", "optimizer.lr": 0.01, "trainer.num_steps": 300,
      "data.test_size": 32, "trainer.eval_every_steps": 300}), str(tmp_path / "lstm"),
      verbose=False)["final"]
  assert lstm["train/mse"] < 1.0, lstm                 # it fits 10-step counts...
  assert lstm["eval/mse@1000"] > 1e4, lstm             # ...and is off by hundreds at 1,000
