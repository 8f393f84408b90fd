"""One run of any experiment, wherever it lives (a research project's own folder):

  python -m launch.run --config=<folder>/config.py[:variant] --workdir=runs/x [--config.a.b=v]
  python -m launch.run --experiment=myproj.experiments.mycount[:variant] --workdir=runs/x

The folder holds ``config.py`` and ``experiment.py`` (:mod:`lib.runtime.locate`); the
run is the experiment's ``run(config, workdir)`` with every flag of an experiment's own
``main.py`` (``lib.runtime.cli.experiment_main``). ``launch.sweep`` runs the trials of
such an experiment through this entry point.
"""
import sys

from lib.errors import ConfigError
from lib.runtime import cli, locate


def _spec(argv: list[str]) -> tuple[str, list[str]]:
  """The experiment's ``path[:variant]``, and ``argv`` with ``--experiment`` as ``--config``."""
  given = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv[1:]
           if a.startswith(("--config=", "--experiment="))}
  spec = cli.experiment_spec(given.get("--config"), given.get("--experiment"))
  rest = [a for a in argv if not a.startswith(("--config=", "--experiment="))]
  return spec, rest[:1] + [f"--config={spec}"] + rest[1:]


def main() -> None:
  try:
    spec, sys.argv = _spec(sys.argv)
    module = locate.experiment_module(spec)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  cli.experiment_main(module.run, spec)


if __name__ == "__main__":
  main()
