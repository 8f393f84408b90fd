"""Parameters between rnnlab's cells and flax.linen's: the same outputs both ways."""
import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lib.errors import ConfigError
from lib.nn import cells, flax_convert as fc, linen, recurrence

B, T, D, H = 3, 7, 4, 6
LENGTHS = jnp.array([7, 4, 2])
CASES = {
    "LSTMCell": (fnn.LSTMCell, cells.LSTM, fc.lstm_from_flax, fc.lstm_to_flax),
    "OptimizedLSTMCell": (fnn.OptimizedLSTMCell, cells.LSTM, fc.lstm_from_flax, fc.lstm_to_flax),
    "GRUCell": (fnn.GRUCell, cells.GRU, fc.gru_from_flax, fc.gru_to_flax),
    "SimpleCell": (fnn.SimpleCell, cells.Elman, fc.elman_from_flax, fc.elman_to_flax),
}


def _x(seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal((B, T, D)), jnp.float32)


def _carry_to_flax(name, carry):
  return fc.lstm_carry_to_flax(carry) if "LSTM" in name else carry


@pytest.mark.parametrize("name", list(CASES))
def test_flax_rnn_to_rnnlab_and_back(name):
  flax_cell, ours, from_flax, to_flax = CASES[name]
  x, real = _x(), linen.lengths_to_mask(LENGTHS, T)[..., None]
  flax_rnn = fnn.RNN(flax_cell(H), return_carry=True)
  fv = flax_rnn.init(jax.random.key(0), x)
  # Random biases, so that a bias in the wrong place cannot go unnoticed.
  fv = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(a.size), a.shape)
                    if a.ndim == 1 else a, fv)
  carry_f, y_f = flax_rnn.apply(fv, x, seq_lengths=LENGTHS)
  params = from_flax(fv["params"]["cell"])
  cell = ours(hidden=H)
  carry, y = recurrence.unroll(cell, params, x, mask_BxT=real[..., 0])
  np.testing.assert_allclose(y * real, y_f * real, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               _carry_to_flax(name, carry), carry_f)
  back = to_flax(params)
  jax.tree.map(np.testing.assert_array_equal, back, fv["params"]["cell"])


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "SimpleCell"])
def test_rnnlab_to_flax_runs_in_flax(name):
  flax_cell, ours, _, to_flax = CASES[name]
  x = _x(1)
  cell = ours(hidden=H)
  params = cell.init(jax.random.key(3), D)
  params = {k: v + 0.2 * jax.random.normal(jax.random.key(7), v.shape) if v.ndim == 1 else v
            for k, v in params.items()}  # GRU: a nonzero recurrent bias on r and z too
  _, y = recurrence.unroll(cell, params, x)
  y_f = fnn.RNN(flax_cell(H)).apply({"params": {"cell": to_flax(params)}}, x)
  np.testing.assert_allclose(y_f, y, atol=1e-6)


def test_wrong_tree_is_named():
  with pytest.raises(ConfigError, match=r"LSTMCell: missing .*'ii'.*under 'cell'"):
    fc.lstm_from_flax({"cell": {}})
