"""lib.runtime.cli: the small argument checks the study scripts share."""
from absl import app
import pytest

from lib.runtime import cli


def test_known_names_pass_and_unknown_ones_are_listed():
  assert cli.known("settings", ["a", "c"], ["a", "b", "c"]) == ["a", "c"]
  with pytest.raises(app.UsageError, match=r"Unknown settings \['x', 'y'\]; expected some of "
                                           r"\['a', 'b'\]"):
    cli.known("settings", ["y", "a", "x"], ["a", "b"])


def test_extra_arguments_are_a_usage_error():
  cli.no_extra_args(["prog"])
  with pytest.raises(app.UsageError, match="Unexpected arguments: one two"):
    cli.no_extra_args(["prog", "one", "two"])
