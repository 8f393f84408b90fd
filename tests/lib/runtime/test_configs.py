import pytest

from lib.runtime import configs


def test_start_names_the_experiment_and_variant():
  c = configs.start("demo", "b", ("a", "b"))
  assert (c.experiment, c.variant) == ("demo", "b")
  c.extra = 1  # still open: the experiment adds its fields, then locks


def test_unknown_variant_lists_the_valid_ones():
  with pytest.raises(ValueError, match=r"Unknown demo variant 'z'; expected one of \('a', 'b'\)"):
    configs.start("demo", "z", ("a", "b"))
