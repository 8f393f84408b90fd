"""Each experiment's CONFIG_RULES: every variant passes them, and a value that would
make a run meaningless stops ``build`` with one line naming the key."""
import importlib
import re

import pytest

from launch import registry
from lib.errors import ConfigError
from lib.runtime import configs

EXPERIMENTS = tuple(registry.EXPERIMENTS)


def _modules(name):
  return (importlib.import_module(f"experiments.{name}.config"),
          importlib.import_module(f"experiments.{name}.experiment"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_variant_passes_its_rules(name):
  config_lib, experiment = _modules(name)
  for variant in config_lib.VARIANTS:
    configs.check(config_lib.get_config(variant), **experiment.CONFIG_RULES)


@pytest.mark.parametrize("name, key, value, expected", [
    ("counting", "model.hidden", 0, "model.hidden=0: expected a positive number."),
    ("counting", "loss", "mae", "loss='mae': expected one of ('sse', 'mse')."),
    ("counting", "data.batch_size", 0, "data.batch_size=0: expected a positive number."),
    ("rnnlm", "data.batch_size", 0, "data.batch_size=0: expected a positive number."),
    ("rnnlm", "model.dropout", 1.0, "model.dropout=1.0: expected a fraction in [0, 1)."),
    ("seq2seq", "model.hidden", 0, "model.hidden=0: expected a positive number."),
    ("translation", "data.eval_batch_size", -1,
     "data.eval_batch_size=-1: expected a positive number."),
    ("varrnn", "vi.sampling", "exmaple", "vi.sampling='exmaple': expected one of ("),
    ("word2vec", "model.loss", "mae", "model.loss='mae': expected one of ('neg', 'nce', "),
    ("rnnlm", "model.cell", "transformer", "model.cell='transformer': expected one of ('elman',"),
    ("seq2seq", "model.scan", "fast", "model.scan='fast': expected one of ('auto',"),
    ("translation", "model.dtype", "int8", "model.dtype='int8': expected one of ('float32',"),
    ("varrnn", "model.cell", "rnn", "model.cell='rnn': expected one of ('elman',"),
    ("long_range", "task", "sorting", "task='sorting': expected one of ('adding', 'copying',"),
    ("long_range", "model.cell", "s4", "model.cell='s4': expected one of ('elman',"),
    ("long_range", "data.train_len", 0, "data.train_len=0: expected a positive number."),
])
def test_a_meaningless_value_stops_build_with_one_line(name, key, value, expected):
  config_lib, experiment = _modules(name)
  c = config_lib.get_config()
  *path, field = key.split(".")
  node = c
  for part in path:
    node = node[part]
  node[field] = value
  with pytest.raises(ConfigError, match="^" + re.escape(expected)):
    experiment.build(c)


@pytest.mark.parametrize("name, old", [("rnnlm", "model.kind"), ("varrnn", "model.encoder")])
def test_a_renamed_key_is_refused_naming_the_new_one(name, old):
  """``model.kind`` (rnnlm) and ``model.encoder`` (varrnn) are now ``model.cell``."""
  from lib.runtime import cli
  from lib.sweeps import space
  path = f"experiments/{name}/config.py"
  message = cli.unknown_override([f"--config={path}", f"--config.{old}=lstm"])
  assert message == (f"error: --config.{old}: config.model has no key {old.split('.')[1]!r} "
                     f"({old} is now model.cell: use model.cell)")
  with pytest.raises(KeyError, match=f"{old} is now model.cell"):
    space.apply(_modules(name)[0].get_config(), {old: "lstm"})
