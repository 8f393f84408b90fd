"""lib.train.records: log records as window means, wherever the chunks of steps end."""
import numpy as np
import pytest

from lib import metrics as metrics_lib
from lib.train import records


def test_chunk_ends_hit_every_evaluation_and_the_end():
  assert records.chunk_ends(2001, 1, 100, 100, 200) == list(range(100, 2001, 100)) + [2001]
  ends = records.chunk_ends(50, 3, 2, 20, 200)
  assert ends == sorted(set(range(6, 50, 6)) | {20, 40, 50})
  assert records.chunk_ends(10, 1, 1000, 0, 4) == [4, 8, 10]


@pytest.mark.parametrize("cuts", [[10], [3, 7], [1, 1, 1, 4, 3], [5, 5]])
def test_records_are_window_means_across_chunk_cuts(cuts):
  rng = np.random.default_rng(0)
  total, count = rng.normal(size=(10, 2)), rng.integers(1, 5, size=(10, 2)).astype(float)
  rec = records.Records(log_every=3, num_steps=10)
  steps, values, start = [], [], 0
  for k in cuts:
    m = {"loss": metrics_lib.Average(total[start:start + k], count[start:start + k])}
    s, names, v = rec.add(start, m)
    assert names == ["loss"]
    steps += s.tolist()
    values += list(v[..., 0])
    start += k
  assert steps == [3, 6, 9, 10]
  windows = [(0, 3), (3, 6), (6, 9), (9, 10)]
  want = [total[a:b].sum(0) / count[a:b].sum(0) for a, b in windows]
  np.testing.assert_allclose(np.array(values), np.array(want), rtol=1e-12)
