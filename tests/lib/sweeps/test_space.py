"""Sweep definitions: grids, zips, random draws; overrides checked against the config."""
import ml_collections
import pytest

from tests.lib import toy
from lib.sweeps import space


def test_blocks_multiply_in_order():
  add = space.Sweep()
  add.grid("optimizer.lr", [0.1, 0.2]).zip({"seed": [1, 2, 3], "data.seed": [4, 5, 6]})
  trials = add.trials()
  assert len(trials) == 6
  assert trials[0] == {"optimizer.lr": 0.1, "seed": 1, "data.seed": 4}
  assert trials[-1] == {"optimizer.lr": 0.2, "seed": 3, "data.seed": 6}


def test_random_draws_are_seeded_and_in_range():
  def draws(seed):
    add = space.Sweep()
    add.random(50, {"optimizer.lr": space.log_uniform(1e-4, 1e-1), "seed": space.integers(1, 3),
                    "optimizer.name": space.choice(["sgd", "adam"])}, seed=seed)
    return add.trials()
  a, b, c = draws(0), draws(0), draws(1)
  assert a == b and a != c
  assert all(1e-4 <= t["optimizer.lr"] <= 1e-1 and t["seed"] in (1, 2, 3) for t in a)
  assert {t["optimizer.name"] for t in a} == {"sgd", "adam"}
  assert {t["seed"] for t in a} == {1, 2, 3}


def test_bad_definitions_are_errors():
  with pytest.raises(ValueError, match="differ in length"):
    space.Sweep().zip({"a": [1], "b": [1, 2]})
  with pytest.raises(ValueError, match="two blocks"):
    space.Sweep().grid("seed", [1]).grid("seed", [2]).trials()
  with pytest.raises(ValueError, match="no values"):
    space.Sweep().grid("seed", [])
  assert space.Sweep().trials() == [{}]


def test_apply_checks_keys_and_types_and_keeps_the_config_locked():
  base = toy.get_config("rmsprop")
  c = space.apply(base, {"optimizer.lr": 1, "seed": 3})
  assert c.optimizer.lr == 1.0 and isinstance(c.optimizer.lr, float) and c.seed == 3
  assert base.optimizer.lr == 1e-3  # the base is not touched
  with pytest.raises(AttributeError):
    c.new_field = 1  # locked
  with pytest.raises(KeyError, match="no field 'lrr'"):
    space.apply(base, {"optimizer.lrr": 0.1})
  with pytest.raises(KeyError, match="no section 'optimiser'"):
    space.apply(base, {"optimiser.lr": 0.1})
  with pytest.raises(TypeError):
    space.apply(base, {"seed": "one"})
  assert space.apply(base, {"trainer.num_epochs": 7}).trainer.num_epochs == 7
  in_steps = space.apply(base, {"trainer.num_steps": 9}).trainer  # replaces the file's epochs
  assert (in_steps.num_steps, in_steps.num_epochs) == (9, None)
  derived = ml_collections.ConfigDict({"a": 1})
  derived.b = derived.get_ref("a") * 2
  assert space.apply(derived, {"a": 3}).b == 6  # references kept


def test_named_sweeps():
  assert len(space.build(toy.sweep, "seeds")) == 32
  assert space.build(toy.sweep, "")[1] == {"optimizer.lr": 1e-4, "seed": 2}
  with pytest.raises(ValueError, match="Unknown toy sweep"):
    space.build(toy.sweep, "nope")
  assert space.label({"optimizer.lr": 0.001, "seed": 2}) == "optimizer.lr=0.001,seed=2"
