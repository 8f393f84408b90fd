"""Side-effect free: importing any lib module changes no global state."""
import glob
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _python(code: str) -> str:
  r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                     check=True, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  return r.stdout


def test_importing_every_lib_module_changes_no_global_state():
  modules = sorted(os.path.relpath(p, REPO)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                   for p in glob.glob(os.path.join(REPO, "lib", "**", "*.py"), recursive=True))
  out = _python(f"""
import logging, sys, matplotlib
from absl import logging as absl_logging
# Third-party imports first: orbax adds a root log handler when imported (its own doing).
import jax, flax, optax, orbax.checkpoint, tensorboardX, ml_collections, sacrebleu
def snapshot():
  return (matplotlib.rcParams['backend'], 'matplotlib.pyplot' in sys.modules,
          len(absl_logging.get_absl_handler().filters),
          [len(h.filters) for h in logging.getLogger().handlers])
before = snapshot()
import importlib
for m in {modules!r}:
  importlib.import_module(m)
print(before == snapshot(), before, snapshot())
""")
  assert out.startswith("True"), out


def test_filter_keeps_warnings_and_rnnlab_info_and_drops_library_info():
  import logging
  from lib.runtime import logs
  f = logs.LibraryInfoFilter()
  rec = lambda level, path: logging.LogRecord("absl", level, path, 1, "m", None, None)  # noqa: E731
  orbax = os.path.join(REPO, ".venv", "lib", "site-packages", "orbax", "checkpoint", "manager.py")
  assert f.filter(rec(logging.INFO, logs.__file__))
  assert not f.filter(rec(logging.INFO, orbax))
  assert not f.filter(rec(logging.INFO, "/usr/lib/python3/site-packages/orbax/x.py"))
  assert f.filter(rec(logging.WARNING, orbax)) and f.filter(rec(logging.ERROR, orbax))
