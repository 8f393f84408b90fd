import re

import jax
import jax.numpy as jnp
import optax
import pytest

from lib.errors import ConfigError
from lib.train import optim


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_minimises_a_quadratic(name):
  lr = {"sgd": 0.1, "rprop": 0.01, "adagrad": 0.5}.get(name, 0.05)
  tx, _ = optim.make_optimizer(optim.default_config(name, lr), total_steps=200)
  x = jnp.asarray([3.0, -2.0])
  state = tx.init(x)
  f = lambda x: jnp.sum((x - 1.0) ** 2)
  for _ in range(200):
    updates, state = tx.update(jax.grad(f)(x), state, x)
    x = optax.apply_updates(x, updates)
  assert float(f(x)) < 1e-2, (name, x)


def test_clip_norm_bounds_the_update():
  tx, _ = optim.make_optimizer(optim.default_config("sgd", 1.0, clip_norm=0.5), 10)
  g = jnp.asarray([30.0, 40.0])
  updates, _ = tx.update(g, tx.init(g), g)
  assert float(optax.tree.norm(updates)) == pytest.approx(0.5)


def test_step_schedule_halves():
  sched = optim.make_schedule(optim.default_config("sgd", 1.0, schedule="step",
                                                   decay_start_steps=4, decay_every_steps=2), 10)
  # lr * rate ** floor((step - decay_start) / decay_every) from decay_start on
  assert [float(sched(s)) for s in (0, 4, 5, 6, 7, 8)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_unknown_names_are_clear_errors():
  with pytest.raises(ValueError, match="expected one of"):
    optim.make_optimizer(optim.default_config("lbfgs"), 10)
  with pytest.raises(ValueError, match="optimizer.schedule=.wave.: expected one of"):
    optim.make_optimizer(optim.default_config("sgd", schedule="wave"), 10)


def test_reduce_on_plateau_halves_lr_when_loss_stops_falling():
  """Notes 001: halve the learning rate when the (epoch) loss increases."""
  import jax.numpy as jnp
  from lib.train import optim as optim_lib
  cfg = optim_lib.default_config("sgd", 1.0, plateau_factor=0.5, plateau_every_steps=2)
  tx, _ = optim_lib.make_optimizer(cfg, 100)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  scales = []
  for value in (3.0, 3.0, 2.0, 2.0, 4.0, 4.0, 1.0, 1.0):  # epochs of 2 steps: 3, 2, 4, 1
    _, state = tx.update(params, state, params, value=value)
    scales.append(float(optim_lib.lr_scale(state)))
  assert scales == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


def test_a_learning_rate_that_is_not_positive_is_refused():
  for lr in (0.0, -1e-3):
    with pytest.raises(ConfigError, match=f"optimizer.lr={lr}: expected a positive"):
      optim.make_optimizer(optim.default_config("sgd", lr), 10)


def test_clipping_and_decay_at_zero_are_off_with_the_same_state():
  params = {"w": jnp.asarray([3.0, -4.0])}
  g = {"w": jnp.asarray([30.0, 40.0])}
  cfg = optim.default_config("sgd", 1.0)
  plain, _ = optim.make_optimizer(cfg, 10)
  kept, _ = optim.make_optimizer(cfg, 10, keep=("clip_norm", "clip_value", "weight_decay"))
  # The same state structure, so a checkpoint of one restores into the other.
  assert jax.tree.structure(plain.init(params)) == jax.tree.structure(kept.init(params))
  # At 0 both are plain SGD, exactly.
  for tx in (plain, kept):
    updates, _ = tx.update(g, tx.init(params), params)
    assert jnp.array_equal(updates["w"], -g["w"])
  # Kept, the value held in the state governs: a vmapped trial's own clip_norm.
  state = kept.init(params)
  state.hyperparams["clip_norm"] = jnp.asarray(0.5)
  updates, _ = kept.update(g, state, params)
  assert float(optax.tree.norm(updates)) == pytest.approx(0.5)
  # Not kept, the chain holds no clipping for the state's value to reach.
  state = plain.init(params)
  state.hyperparams["clip_norm"] = jnp.asarray(0.5)
  updates, _ = plain.update(g, state, params)
  assert float(optax.tree.norm(updates)) == pytest.approx(50.0)


def test_each_optimizer_reads_its_own_section():
  cfg = optim.default_config("rmsprop", 1e-3, decay=0.95, eps=1e-7, clip_norm=5.0)
  assert (cfg.rmsprop.decay, cfg.rmsprop.eps, cfg.clip_norm) == (0.95, 1e-7, 5.0)
  assert cfg.adam.eps == 1e-8  # another optimizer's section keeps its defaults
  v = optim.values(cfg)
  assert (v["decay"], v["eps"], v["clip_norm"]) == (0.95, 1e-7, 5.0)
  with pytest.raises(Exception, match="b1"):  # not an argument of rmsprop, nor shared
    optim.default_config("rmsprop", 1e-3, b1=0.5)


def test_sgd_with_momentum_is_optax_sgd_with_momentum_and_the_state_keeps_its_names():
  params = {"w": jnp.asarray([3.0, -4.0])}
  g = {"w": jnp.asarray([1.0, 2.0])}
  cfg = optim.default_config("sgd", 0.1, momentum=0.9, nesterov=True)
  tx, _ = optim.make_optimizer(cfg, 10)
  ref = optax.sgd(0.1, momentum=0.9, nesterov=True)
  s, r = tx.init(params), ref.init(params)
  for _ in range(3):
    (u, s), (v, r) = tx.update(g, s, params), ref.update(g, r, params)
    assert jnp.allclose(u["w"], v["w"], rtol=1e-6)
  # The state holds the same hyperparameter names as the flat layout's checkpoints.
  assert sorted(s.hyperparams) == sorted([
      "lr", "momentum", "b1", "b2", "eps", "weight_decay", "decay", "initial_accumulator",
      "eta_minus", "eta_plus", "min_step", "max_step", "clip_norm", "clip_value",
      "decay_rate", "end_lr_fraction"])
  # Momentum 0 is plain SGD (no trace) unless vmapped trials vary it, then 0 is exact.
  plain = optim.default_config("sgd", 0.1)
  assert optim.scales_gradients(plain) and not optim.scales_gradients(cfg)
  kept, _ = optim.make_optimizer(plain, 10, keep=("sgd.momentum",))
  u, _ = kept.update(g, kept.init(params), params)
  assert jnp.array_equal(u["w"], -0.1 * g["w"])


@pytest.mark.parametrize("old, new", [("optimizer.b1", "optimizer.adam.b1 or optimizer.adamw.b1"),
                                      ("optimizer.decay", "optimizer.rmsprop.decay"),
                                      ("optimizer.momentum", "optimizer.sgd.momentum")])
def test_a_flat_optimizer_key_is_refused_naming_its_section(old, new):
  from lib.runtime import cli
  from lib.sweeps import space
  config = "experiments/counting/config.py:rmsprop"
  message = cli.unknown_override([f"--config={config}", f"--config.{old}=0.5"])
  assert message.endswith(f"({old} is now {new})" if " or " in new else
                          f"({old} is now {new}: use {new})"), message
  from experiments.counting import config as counting
  with pytest.raises(KeyError, match=re.escape(f"{old} is now {new}")):
    space.apply(counting.get_config("rmsprop"), {old: 0.5})
  with pytest.raises(ConfigError, match=r"'momentum'.*'sgd' with optimizer.sgd.momentum"):
    optim.make_optimizer(optim.default_config("momentum", 0.1), 10)
