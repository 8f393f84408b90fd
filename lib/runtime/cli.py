"""Helpers that keep every absl entry point thin.

``cli.run(main)`` replaces ``app.run(main)``: :func:`prepare_process` first
(host memory, quiet library logs, JAX's absl flags such as
``--jax_debug_nans``), and a mistyped ``--config.a.b=v`` override stops with
one line naming the key and listing the valid ones (the config is locked); a
diverged run or bad input exits 1 with its message, no traceback.
"""
from __future__ import annotations

import ast
import ctypes
import importlib.util
import os
import re
import signal
import sys
from typing import Callable, Mapping, Optional, Sequence, TypeVar

from absl import app, flags, logging
import jax
import ml_collections
from ml_collections import config_flags

from lib.errors import ConfigChanged, ConfigError, DataError, NonFiniteError, Preempted, StorageError
from lib.runtime import configs, durations, files, hostmem, locate, logs, parallel, workdirs
from lib.runtime.process import EXIT_INTERRUPTED, EXIT_SIGTERM, STOP_WITH_PARENT  # noqa: F401

T = TypeVar("T")
_OVERRIDE = re.compile(r"^--?(\w+)\.([\w.]+)=")


def no_extra_args(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")


def known(what: str, names: Sequence[str], valid: Sequence[str]) -> list[str]:
  """``names`` if each is one of ``valid``, else a usage error listing them."""
  unknown = sorted(set(names) - set(valid))
  if unknown:
    raise app.UsageError(f"Unknown {what} {unknown}; expected some of {list(valid)}.")
  return list(names)


def parse_sets(items: Sequence[str]) -> dict:
  """``['trainer.num_epochs=200', 'optimizer.name=adam']`` -> overrides shared by every trial
  (values parsed as Python literals where they are, else kept as strings)."""
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"--set takes key=value, got {item!r}.")
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out


def config_module(path: str):
  """Executes a config file (``experiments/<name>/config.py``, or one anywhere) as a
  module, its folder's package importable (:mod:`lib.runtime.locate`)."""
  path = locate.config_path(path)
  locate.importable(path)
  module_spec = importlib.util.spec_from_file_location("_rnnlab_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def _load_config(spec: str) -> ml_collections.ConfigDict:
  path, _, arg = spec.partition(":")
  module = config_module(path)
  return module.get_config(arg) if arg else module.get_config()


def unknown_override(argv: Sequence[str], flag: str = "config") -> str | None:
  """The message for the first ``--<flag>.a.b=`` naming no key of the config, if any."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{flag}=")), None)
  if spec is None:
    return None
  config = _load_config(spec)
  for a in argv:
    m = _OVERRIDE.match(a)
    if not m or m.group(1) != flag:
      continue
    node, walked = config, flag
    for part in m.group(2).split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        hint = configs.renamed(f"{walked}.{part}")
        if hint:
          return f"error: {a.split('=')[0]}: {walked} has no key {part!r}{hint}"
        return (f"error: {a.split('=')[0]}: {walked} has no key {part!r} (the config is locked). "
                f"Valid keys of {walked}: {', '.join(valid)}")
      node, walked = node[part], f"{walked}.{part}"
  return None


def experiment_spec(config: Optional[str], experiment: Optional[str]) -> str:
  """``--config`` (a config file anywhere) or ``--experiment`` (an importable package),
  exactly one, as an absolute ``path[:variant]``."""
  if bool(config) == bool(experiment):
    raise ConfigError("give --config=<folder>/config.py[:variant] or "
                      "--experiment=<package>[:variant] (one of them).")
  return locate.config_spec(config) if config else locate.module_config(experiment)


def _config_arg(arg: str) -> str:
  """``--config=<relative path>[:variant]`` read from the checkout when the current
  directory has no such file (README commands work from anywhere)."""
  if not arg.startswith("--config="):
    return arg
  try:
    return "--config=" + locate.config_spec(arg.split("=", 1)[1])
  except ConfigError:
    return arg  # config_flags reports it


def _parse_flags(argv: list[str]) -> list[str]:
  argv = [_config_arg(a) for a in argv]
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, flags.Error, ConfigError, OSError) as e:
    message = None
    try:
      message = unknown_override(argv)
    except Exception:  # the config itself is broken: report the original error
      pass
    print(message or f"error: {_one_line(str(e))}", file=sys.stderr)
    sys.exit(2)


def _one_line(text: str) -> str:
  """A config file's error as config_flags reports it (a traceback inside its message):
  the flag it came from, if named, and the exception's own message."""
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  if len(lines) <= 1:
    return text.strip()
  last = lines[-1]
  name, sep, message = last.partition(": ")
  if sep and name.rsplit(".", 1)[-1].endswith("Error") and " " not in name:
    last = message  # "lib.errors.ConfigError: Unknown ..." -> "Unknown ..."
  head = lines[0].split(": ")[0] if lines[0].startswith("flag --") else ""
  return f"{head}: {last}" if head else last


def prepare_process(host_malloc: str = "auto") -> None:
  """What every entry point does before JAX starts: glibc keeps freed host memory
  (:func:`lib.runtime.hostmem.reuse_freed_memory`: XLA:CPU steps stop
  page-faulting), libraries' INFO logs are dropped (:mod:`lib.runtime.logs`),
  and JAX's config options become absl flags (``--jax_debug_nans=True``); a run
  started by a sweep stops with it (:func:`stop_with_parent`). ``--host_malloc``
  (``auto``: only where JAX runs on the CPU, ``reuse``, ``system``) is read from
  the raw command line here, before flags are parsed and JAX starts; then
  ``$RNNLAB_HOST_MALLOC``; then the entry point's ``host_malloc``."""
  stop_with_parent()
  if "host_malloc" not in flags.FLAGS:
    flags.DEFINE_enum("host_malloc", None, hostmem.MODES,
                      "Host allocator tuning (lib.runtime.hostmem); default "
                      "$RNNLAB_HOST_MALLOC or auto: only where JAX runs on the CPU.")
  try:
    hostmem.reuse_freed_memory(mode=raw_flag("host_malloc", sys.argv), default=host_malloc)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  logs.quiet_libraries()
  import jax
  if not getattr(jax.config, "use_absl", False):
    jax.config.config_with_absl()


def raw_flag(name: str, argv: list[str]) -> Optional[str]:
  """``--name=value`` or ``--name value`` from an unparsed command line, else None."""
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
    if arg == f"--{name}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def stop_with_parent() -> None:
  """A process started with ``RNNLAB_STOP_WITH_PARENT=<parent pid>`` (a sweep's trial)
  gets SIGTERM when that parent dies, even by ``kill -9``, and so saves and stops
  instead of running on unattended (Linux's ``PR_SET_PDEATHSIG``; elsewhere a no-op)."""
  pid = os.environ.pop(STOP_WITH_PARENT, "")
  if not pid or not sys.platform.startswith("linux"):
    return
  pr_set_pdeathsig = 1
  ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
  if os.getppid() != int(pid):  # the parent died before the request took hold
    os.kill(os.getpid(), signal.SIGTERM)


def run(main: Callable[[list[str]], None], host_malloc: str = "auto") -> None:
  """``app.run`` after :func:`prepare_process`, with clear errors for unknown config keys."""
  prepare_process(host_malloc)
  app.run(main, flags_parser=_parse_flags)


def run_reporting_errors(fn: Callable[[], T]) -> T:
  """Runs ``fn``; a diverged run or bad input exits with status 1 and a one-paragraph
  message; an interrupted one (saved) with :data:`EXIT_INTERRUPTED` or :data:`EXIT_SIGTERM`."""
  try:
    return fn()
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except (NonFiniteError, DataError, ConfigChanged, files.WorkdirBusy, StorageError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  except OSError as e:  # a data file that is a folder, a workdir under a regular file, ...
    print(f"error: {os_error_line(e)}", file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Preempted): the trainer has saved
    sigterm = isinstance(e, Preempted)
    print(f"interrupted ({'SIGTERM' if sigterm else 'Ctrl-C'}): the last checkpoint is kept "
          "and summary.json says 'interrupted'; re-run the same command to resume.",
          file=sys.stderr)
    sys.exit(EXIT_SIGTERM if sigterm else EXIT_INTERRUPTED)


def os_error_line(e: OSError) -> str:
  """``<path>: <what is wrong>`` for a file-system error."""
  if not e.filename:
    return str(e)
  what = {IsADirectoryError: "is a folder; expected a file",
          NotADirectoryError: "a part of this path is a regular file, not a folder",
          FileExistsError: "exists and is not a folder",
          FileNotFoundError: "no such file or folder"}.get(type(e), e.strerror or str(e))
  return f"{e.filename}: {what}"


def command_line_durations(config: ml_collections.ConfigDict,
                           given: Mapping[str, object]) -> None:
  """A duration set on the command line (``--config.trainer.num_steps=50``) replaces
  the file's, whatever unit the file wrote it in (:mod:`lib.runtime.durations`)."""
  found = {k: durations.duration_of(config, k) for k in given}
  named = [f[0] for f in found.values() if f]
  for key, value in given.items():
    if found[key] and named.count(found[key][0]) == 1:  # in two units: resolve says so
      durations.override(config, key, value)


def experiment_main(run_fn: Callable[[ml_collections.ConfigDict, str], object],
                    default_config: str, host_malloc: str = "auto") -> None:
  """The whole ``main.py`` of an experiment: ``--config`` (a locked config file,
  ``path:variant``) and ``--workdir`` flags, then ``run_fn(config, workdir)``.
  ``host_malloc``: the experiment's default allocator mode (see :func:`prepare_process`).
  A relative ``default_config`` is read from the checkout, wherever the command runs."""
  config = config_flags.DEFINE_config_file(
      "config", locate.config_spec(default_config), "Config file (``path:variant``).",
      lock_config=True)
  workdir = flags.DEFINE_string("workdir", None, "Run directory; re-running resumes.",
                                required=True)

  def main(argv):
    no_extra_args(argv)
    try:
      config.value.get("trainer")  # a config file that failed to load raises here
    except OSError as e:
      print(f"error: --config: {_one_line(str(e))}", file=sys.stderr)
      sys.exit(2)
    command_line_durations(config.value, config_flags.get_override_values(flags.FLAGS["config"]))
    if config.value.trainer.get("distributed"):  # before the experiment's first JAX call
      try:
        parallel.check_distributed(config.value.trainer)
      except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
      if workdirs.is_remote(workdir.value):  # each host would mirror its own staging folder
        print(f"error: --workdir={workdir.value}: several hosts need a workdir on a file "
              "system they all see (a URI workdir is staged per host).", file=sys.stderr)
        sys.exit(2)
      parallel.initialize_distributed(config.value.trainer)
      if jax.process_index():  # process 0 prints the progress and the results; the others, errors
        logging.set_verbosity(logging.WARNING)
        sys.stdout = open(os.devnull, "w")
    def staged_run():
      with workdirs.staged(workdir.value) as local:  # gs://...: a mirrored local folder
        return run_fn(config.value, local)
    run_reporting_errors(staged_run)

  run(main, host_malloc)
