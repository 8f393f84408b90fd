"""The start every experiment's ``get_config`` shares."""
from __future__ import annotations

from typing import Sequence

import ml_collections


def start(experiment: str, variant: str, variants: Sequence[str]) -> ml_collections.ConfigDict:
  """An open config naming its experiment and variant; an unknown variant is a
  clear error listing the valid ones."""
  if variant not in variants:
    raise ValueError(f"Unknown {experiment} variant {variant!r}; expected one of {tuple(variants)}.")
  c = ml_collections.ConfigDict()
  c.experiment = experiment
  c.variant = variant
  return c
