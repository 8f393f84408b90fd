"""The benchmark harness on tiny shapes (timings are recorded by hand, never asserted)."""
import jax
import numpy as np

from launch import benchtools
from launch.benchmarks import rnn_step


def test_rnn_step_runs_and_reports_rows():
  rows = rnn_step.run(peers=(), repeats=1, shapes=((4, 3, 5, 6),))
  assert [r["cell"] for r in rows] == ["lstm", "gru", "elman"]
  assert all(r["rnnlab_ms"] > 0 and "torch_ms" not in r for r in rows)
  md = benchtools.table(rows, rnn_step.COLUMNS)
  assert md.count("\n") == 4 and "| lstm | 4 | 3 |" in md


def test_train_step_updates_parameters():
  step = rnn_step.rnnlab_step("lstm", 4, 3, 5, 6, unroll=3)
  first, second = float(step()), float(step())
  assert np.isfinite(first) and second < first  # SGD on a fixed batch lowers the loss


def test_time_ms_waits_for_results():
  calls = []
  ms = benchtools.time_ms(lambda: calls.append(1) or jax.numpy.ones(3), number=4, repeats=2,
                          warmup=1, sync=jax.block_until_ready)
  assert ms > 0 and len(calls) == 1 + 4 * 2


def test_time_pair_ms_alternates_the_two_systems():
  order = []
  a_ms, b_ms = benchtools.time_pair_ms(lambda: order.append("a"), lambda: order.append("b"),
                                       number=2, number_b=3, repeats=2, warmup=1)
  assert a_ms > 0 and b_ms > 0
  assert "".join(order) == "ab" + "aabbb" * 2  # warm-up pair, then a's block before b's, per repeat


def test_word2vec_train_loop_on_a_tiny_corpus(tmp_path, monkeypatch):
  from experiments.word2vec import experiment
  from launch.benchmarks import word2vec_gensim
  corpus = tmp_path / "c.txt"
  rng = np.random.default_rng(0)
  corpus.write_text("\n".join(" ".join(f"w{i}" for i in rng.integers(0, 50, 9)) for _ in range(300)))
  monkeypatch.setattr(word2vec_gensim, "DATA", str(tmp_path / "nowhere"))
  c = word2vec_gensim._config(str(corpus))
  c.data.update(dict(analogies="", min_count=1))
  c.train.minibatch, c.trainer.num_epochs = 256, 1
  seconds, vectors = word2vec_gensim.train_rnnlab(c, experiment.Data(c))
  assert seconds > 0 and vectors.shape == (50, 100) and np.isfinite(vectors).all()
  import pytest
  with pytest.raises(FileNotFoundError, match="RNNLAB_DATA"):
    word2vec_gensim.run(peers=(), repeats=1)


def test_flax_rnn_steps_train_and_report_rows():
  from launch.benchmarks import flax_rnn
  for kind in ("rnnlab", "lstm", "gru"):
    step = flax_rnn.train_step(kind, 4, 3, 5, 6, unroll=3)
    first, second = float(step()), float(step())
    assert np.isfinite(first) and second < first
  rows = flax_rnn.run(repeats=1, shapes=((4, 3, 5, 6),))
  assert len(rows) == 1 and rows[0]["rnnlab_ms"] > 0 and rows[0]["flax_ms"] > 0


def test_step_floor_chains_products_of_both_orientations():
  from launch.benchmarks import step_floor
  k = jax.random.key(0)
  h, d = jax.random.normal(k, (4, 6)), jax.random.normal(k, (4, 24))
  w, w_t = jax.random.normal(k, (6, 24)) / 6 ** 0.5, jax.random.normal(k, (24, 6)) / 24 ** 0.5
  fwd, bwd = step_floor._chain(h, w, 7, 6), step_floor._chain(d, w_t, 7, 6)
  assert fwd.shape == h.shape and bwd.shape == d.shape
  assert np.isfinite(fwd).all() and np.isfinite(bwd).all()
  # One step is the product itself, cut to (or tiled back from) the carry's width.
  np.testing.assert_allclose(step_floor._chain(h, w, 1, 6), (h @ w)[:, :6], rtol=1e-6)
  np.testing.assert_allclose(step_floor._chain(d, w_t, 1, 6), np.tile(d @ w_t, (1, 4)), rtol=1e-6)


def test_time_alternating_ms_times_each_system_in_turn():
  order = []
  ms = benchtools.time_alternating_ms({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                      number=2, repeats=2, warmup=1)
  assert set(ms) == {"a", "b"} and all(v >= 0 for v in ms.values())
  assert order == ["a", "b"] + ["a", "a", "b", "b"] * 2


def test_every_registered_experiment_has_a_sweep_benchmark():
  from launch import registry
  from launch.benchmarks import sweep_trials
  assert {sweep_trials.experiment_of(n) for n in sweep_trials.SWEEPS} == set(registry.EXPERIMENTS)
  assert all(hasattr(sweep_trials, f"run_{n}") for n in sweep_trials.SWEEPS)


def test_ptb_orders_runs_at_a_tiny_size_and_compares_orders():
  from launch.benchmarks import lm_step
  from lib.nn import lm
  rows = lm_step.run_ptb_orders(peers=(), repeats=1, sizes=(("tiny", 8, 2, 3),), vocab=20)
  assert len(rows) == 1 and rows[0]["layers_ms"] > 0 and rows[0]["wavefront_ms"] > 0
  models = {"layers": lm.RecurrentLM(20, 8, cell="lstm", layers=2, order="layers"),
            "cudnn": lm.RecurrentLM(20, 8, cell="lstm", layers=2, order="wavefront")}
  ids = np.arange(8).reshape(2, 4) % 20
  assert lm_step._max_diff(models, ids[:, :-1], ids[:, 1:]) < 1e-5


def test_input_product_and_encoder_orders_run_at_tiny_sizes():
  from launch.benchmarks import encoder_step, input_product
  rows = input_product.run(peers=(), repeats=1, shapes=((4, 3, 2, 6),), kinds=("lstm",))
  assert rows[0]["ratio"] == 12 and rows[0]["hoisted_ms"] > 0 and rows[0]["in_step_ms"] > 0
  rows = encoder_step.run(repeats=1, layers=(2,), hidden=8)
  assert rows[0]["layers_ms"] > 0 and rows[0]["wavefront_ms"] > 0
