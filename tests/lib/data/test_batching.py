import numpy as np
import pytest

from lib.data import batching as data


def test_epoch_batches_are_a_function_of_step():
  arrays = {"x": np.arange(10), "y": np.arange(10) * 2}
  a, b = data.EpochBatches(arrays, 3, seed=5), data.EpochBatches(arrays, 3, seed=5)
  assert a.steps_per_epoch == 3
  seen = np.concatenate([a(s)["x"] for s in range(3)])
  assert len(set(seen)) == 9  # one epoch: no repeats, last partial batch dropped
  for s in (7, 2, 7, 0):      # any order, as after a resume
    np.testing.assert_array_equal(a(s)["x"], b(s)["x"])
    np.testing.assert_array_equal(a(s)["y"], 2 * a(s)["x"])
  assert not np.array_equal(a(0)["x"], a(3)["x"])  # reshuffled per epoch


def test_full_batch_and_errors():
  full = data.batches({"x": np.arange(4)}, 0, seed=0)
  assert isinstance(full, data.FullBatch) and full(99)["x"].shape == (4,)
  with pytest.raises(ValueError, match="differ in length"):
    data.EpochBatches({"x": np.arange(4), "y": np.arange(5)}, 2, 0)


def test_prefetch_returns_what_the_source_returns_in_any_order():
  calls = []

  def source(step):
    calls.append(step)
    return {"x": np.full(3, step)}

  pre = data.Prefetch(source, num_steps=10, depth=2)
  for step in [0, 1, 2, 5, 6, 3, 9]:
    np.testing.assert_array_equal(pre(step)["x"], np.full(3, step))
  assert 7 in calls  # requested ahead of use
