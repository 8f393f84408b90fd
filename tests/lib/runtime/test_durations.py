"""The one duration rule: steps, epochs or examples, resolved in one place."""
import ml_collections
import pytest

from lib.runtime import cli, configs, durations
from lib.train import optim, trainer


def config(**trainer_fields):
  c = ml_collections.ConfigDict()
  c.trainer = trainer.default_config(**trainer_fields)
  c.optimizer = optim.default_config("sgd", 1.0, schedule="step", decay_start_epochs=2,
                                     decay_every_epochs=0.5)
  return c


def test_every_unit_becomes_steps():
  c = config(num_epochs=2.5, eval_every_examples=300, log_every_steps=3,
             checkpoint_every_epochs=1)
  r = durations.resolve(c, 10, examples_per_step=32).trainer
  assert (r.num_steps, r.eval_every_steps, r.log_every_steps, r.checkpoint_every_steps) == (
      25, 10, 3, 10)  # 300 examples at 32 a step: 9.4 steps, rounded up
  assert (r.num_epochs, r.eval_every_examples) == (None, None)
  o = durations.resolve(c, 10, examples_per_step=32).optimizer
  assert (o.decay_start_steps, o.decay_every_steps, o.warmup_steps) == (20, 5, 0)


def test_an_override_replaces_a_duration_in_any_unit():
  c = config(num_epochs=4)
  durations.override(c, "trainer.num_steps", 7)
  assert (c.trainer.num_steps, c.trainer.num_epochs) == (7, None)
  assert durations.resolve(c, 10).trainer.num_steps == 7
  variants = {"short": {"trainer.num_examples": 64}}
  v = configs.finish(config(num_epochs=4), variants, "short")
  assert durations.resolve(v, 10, examples_per_step=16).trainer.num_steps == 4


def test_a_command_line_duration_replaces_the_files():
  c = config(num_epochs=4)
  cli.command_line_durations(c, {"trainer.num_steps": 50, "optimizer.lr": 0.1})
  assert (c.trainer.num_steps, c.trainer.num_epochs) == (50, None)
  c = config(num_epochs=4)
  c.trainer.num_steps = 50  # both given on the command line: the error names both
  cli.command_line_durations(c, {"trainer.num_steps": 50, "trainer.num_epochs": 4})
  with pytest.raises(ValueError, match="num_steps=50 and trainer.num_epochs=4.0 are both set"):
    durations.resolve(c, 10)


def test_meaningless_durations_are_clear_errors():
  with pytest.raises(ValueError, match="expected a positive number"):
    durations.resolve(config(num_epochs=0), 10)
  with pytest.raises(ValueError, match="expected a positive number"):
    durations.resolve(config(eval_every_steps=-1), 10)
  with pytest.raises(ValueError, match="does not count examples"):
    durations.resolve(config(num_examples=100), 10)
  with pytest.raises(ValueError, match="smaller than one batch"):
    durations.resolve(config(), 0)
  with pytest.raises(KeyError, match="no field 'eval_every'; valid: checkpoint_every_epochs"):
    trainer.default_config(eval_every=3)
  assert durations.resolve(config(eval_every_steps=0), 10).trainer.eval_every_steps == 0


def test_duration_of_names_only_durations():
  c = config()
  assert durations.duration_of(c, "trainer.eval_every_epochs") == ("trainer.eval_every", "epochs")
  assert durations.duration_of(c, "optimizer.warmup_steps") == ("optimizer.warmup", "steps")
  assert durations.duration_of(c, "trainer.flush_every") is None
  assert durations.duration_of(c, "optimizer.lr") is None
