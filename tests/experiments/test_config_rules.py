"""Each experiment's CONFIG_RULES: every variant passes them, and a value that would
make a run meaningless stops ``build`` with one line naming the key."""
import importlib
import re

import pytest

from lib.data.errors import ConfigError
from lib.runtime import configs

EXPERIMENTS = ("counting", "rnnlm", "seq2seq", "translation", "varrnn", "word2vec")


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
