"""Quiet and side-effect free: importing lib changes no global state; a run prints
rnnlab's lines and no library INFO logs; JAX's absl flags work on entry points."""
import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
OWN_FILES = {os.path.basename(p) for d in ("lib", "experiments", "launch")
             for p in glob.glob(os.path.join(REPO, d, "**", "*.py"), recursive=True)}
INFO = re.compile(r"^I\d{4} [\d:.]+\s+\d+ ([^:\s]+):\d+\]")


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


def _counting(tmp_path, *extra):
  cmd = [sys.executable, "-m", "experiments.counting.main",
         "--config=experiments/counting/config.py:rmsprop", "--config.num_epochs=30",
         "--config.trainer.checkpoint_every=10", f"--workdir={tmp_path}", *extra]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_a_run_prints_no_library_info_lines(tmp_path):
  r = _counting(tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = (r.stdout + r.stderr).splitlines()
  foreign = [l for l in lines if (m := INFO.match(l)) and m.group(1) not in OWN_FILES]
  assert not foreign, foreign[:5]
  assert not [l for l in lines if "orbax" in l.lower()], "orbax lines in a normal run"
  assert any("step 30/30" in l for l in lines)  # rnnlab's own progress line still shows
  assert any(l.startswith("Final weights") for l in lines)


def test_jax_flags_work_on_entry_points(tmp_path):
  r = _counting(tmp_path, "--jax_debug_nans=True")
  assert r.returncode == 0, r.stderr[-2000:]
  r = _counting(tmp_path / "b", "--jax_no_such_flag=True")
  assert r.returncode != 0
