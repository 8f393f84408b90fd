"""Where an experiment lives: a config file anywhere, with ``experiment.py`` beside it,
or an importable module path (``myproj.experiments.mycount``).

An experiment is a folder holding ``config.py`` (``get_config``, optionally
``sweep``) and ``experiment.py`` (``build``, ``run``). The folder is imported as a
package: a regular one (``__init__.py``; its enclosing packages too) or a namespace
package (no ``__init__.py``) named after the folder, with the folder above it put on
``sys.path``, so its modules import each other as ``<folder>.tasks``. Relative config
paths are read from the current directory, else from the rnnlab checkout, so the
README's commands work from any directory. Every wrong path is one ``ConfigError`` line.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from lib.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_path(path: str) -> str:
  """The absolute path of a config file: as given, else under the checkout."""
  for candidate in (path, os.path.join(ROOT, path)):
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  raise ConfigError(f"--config={path}: no such file (here or in {ROOT}); expected "
                    "<folder>/config.py[:variant] beside its experiment.py.")


def config_spec(spec: str) -> str:
  """``path[:variant]`` with the path made absolute (:func:`config_path`)."""
  path, sep, variant = spec.partition(":")
  return config_path(path) + sep + variant


def package(folder: str) -> tuple[str, str]:
  """``(sys.path entry, dotted name)`` under which ``folder`` imports as a package."""
  folder = os.path.abspath(folder)
  parts = [os.path.basename(folder)]
  parent = os.path.dirname(folder)
  while os.path.isfile(os.path.join(folder, "__init__.py")) and os.path.isfile(
      os.path.join(parent, "__init__.py")):
    folder, parent = parent, os.path.dirname(parent)
    parts.insert(0, os.path.basename(folder))
  return parent, ".".join(parts)


def importable(config_file: str) -> str:
  """Puts the package of ``config_file``'s folder on ``sys.path``; returns its name."""
  root, name = package(os.path.dirname(os.path.abspath(config_file)))
  if root not in sys.path:
    sys.path.insert(0, root)
  return name


def experiment_module(spec: str):
  """The ``experiment`` module beside the config file of ``spec`` (``path[:variant]``)."""
  path = config_path(spec.partition(":")[0])
  folder = os.path.dirname(path)
  if not os.path.isfile(os.path.join(folder, "experiment.py")):
    raise ConfigError(f"--config={path}: no experiment.py beside it (an experiment's folder "
                      "holds config.py and experiment.py with build and run).")
  name = importable(path) + ".experiment"
  module = importlib.import_module(name)
  if os.path.dirname(os.path.abspath(module.__file__)) != folder:
    raise ConfigError(f"--config={path}: its folder imports as {name!r}, a name already taken "
                      f"by {module.__file__}; rename the folder.")
  return module


def module_config(module_path: str) -> str:
  """``myproj.experiments.mycount[:variant]`` -> its ``config.py`` path ``[:variant]``."""
  name, sep, variant = module_path.partition(":")
  try:
    found = importlib.util.find_spec(f"{name}.config")
  except ModuleNotFoundError:
    found = None
  if found is None or not found.origin:
    raise ConfigError(f"--experiment={module_path}: no module {name}.config on the Python path "
                      "(install the project, or give --config=<folder>/config.py).")
  return found.origin + sep + variant


def main_command(spec: str) -> list[str]:
  """``python`` arguments that run one trial of ``spec``'s experiment: its own
  ``main.py`` inside the checkout, else the generic entry point ``launch.run``."""
  path = config_path(spec.partition(":")[0])
  rel = os.path.relpath(path, ROOT).split(os.sep)
  if len(rel) == 3 and rel[0] == "experiments" and os.path.isfile(
      os.path.join(os.path.dirname(path), "main.py")):
    return ["-m", f"experiments.{rel[1]}.main"]
  return ["-m", "launch.run"]
