"""lib.runtime.hostmem: glibc's allocator set to reuse freed memory, in a fresh process each
(the settings must come before JAX starts its threads and last for the process)."""
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts processes: left out of `make test-fast`

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# A step whose temporaries (64 MB of logits) are over glibc's largest mmap threshold.
_SCRIPT = """
import json, resource
from lib.runtime import hostmem
applied = hostmem.reuse_freed_memory()
import jax, jax.numpy as jnp
h = jax.random.normal(jax.random.key(0), (1024, 64))
w = jax.random.normal(jax.random.key(1), (64, 16384)) * 0.1
f = jax.jit(lambda h, w: jax.nn.logsumexp(jnp.tanh(h @ w) * 3.0, axis=-1).sum())
value = float(f(h, w))
for _ in range(10):  # the heap settles: it grows a few times before every step fits
  f(h, w).block_until_ready()
faults = []
for _ in range(20):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(h, w).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "active": hostmem.active(), "value": value,
                  "faults": sorted(faults)[len(faults) // 2]}))
"""


def _run(**env):
  out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": "", **env},
                       timeout=300)  # XLA's default optimization: memory as in a real run
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_reuse_changes_where_memory_comes_from_not_results():
  reuse, system = _run(), _run(RNNLAB_HOST_MALLOC="system")
  assert reuse["applied"] and reuse["active"]
  assert not system["applied"] and not system["active"]
  assert reuse["value"] == system["value"]  # bit for bit
  # The point of it: the 64 MB of temporaries are fresh pages on every call under glibc's
  # defaults (about 16,000 faults of 4 KB per call here; fewer with transparent huge pages)
  # and the same pages again here (median call: none).
  assert reuse["faults"] < max(100, system["faults"] / 10), (reuse, system)


def test_is_a_no_op_when_opted_out(monkeypatch):
  from lib.runtime import hostmem
  monkeypatch.setenv("RNNLAB_HOST_MALLOC", "system")
  if not hostmem.active():  # the test process itself was not set
    assert hostmem.reuse_freed_memory() is False and not hostmem.active()


@pytest.mark.parametrize("mode, env, plugins, expected", [
    ("auto", {}, [], True),                                    # CPU-only JAX
    ("auto", {}, ["cuda"], False),                             # a GPU plugin, devices visible
    ("auto", {"CUDA_VISIBLE_DEVICES": ""}, ["cuda"], True),    # ... but none visible
    ("auto", {}, ["libtpu"], False),
    ("auto", {"JAX_PLATFORMS": "cpu"}, ["cuda"], True),        # JAX told to use the CPU
    ("auto", {"JAX_PLATFORMS": "cuda,cpu"}, [], False),
    ("reuse", {"JAX_PLATFORMS": "tpu"}, ["libtpu"], True),     # forced
    ("system", {}, [], False),
])
def test_auto_applies_only_where_jax_runs_on_the_cpu(mode, env, plugins, expected):
  from lib.runtime import hostmem
  assert hostmem.should_reuse(mode, env, plugins) is expected


def test_the_flag_is_read_before_jax_starts_and_a_bad_mode_is_one_line():
  from lib.runtime import cli
  assert cli.raw_flag("host_malloc", ["m", "--host_malloc=reuse"]) == "reuse"
  assert cli.raw_flag("host_malloc", ["m", "--x=1", "--host_malloc", "system"]) == "system"
  assert cli.raw_flag("host_malloc", ["m", "--host_mallocx=1"]) is None
  out = subprocess.run([sys.executable, "-m", "experiments.counting.main", "--workdir=/tmp/x",
                        "--host_malloc=fast"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
  assert out.returncode == 2
  assert out.stderr.strip() == ("error: RNNLAB_HOST_MALLOC/--host_malloc='fast': expected one "
                                "of ('auto', 'reuse', 'system').")


_ENTRY = """
import json, sys
from lib.runtime import cli, hostmem
cli.prepare_process(host_malloc="system")  # an entry point whose default is glibc's own
print(json.dumps(hostmem.active()))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
@pytest.mark.parametrize("flag, env, expected", [
    (None, None, False),          # the entry point's default
    (None, "reuse", True),        # the environment over the default
    ("reuse", None, True),        # the flag over the default
    ("reuse", "system", True),    # the flag over the environment
    ("system", "reuse", False),
])
def test_the_flag_then_the_environment_then_the_entry_points_default(flag, env, expected):
  environ = {k: v for k, v in os.environ.items() if k != "RNNLAB_HOST_MALLOC"}
  if env:
    environ["RNNLAB_HOST_MALLOC"] = env
  argv = [sys.executable, "-c", _ENTRY] + ([f"--host_malloc={flag}"] if flag else [])
  out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                       env={**environ, "PYTHONPATH": ROOT}, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert json.loads(out.stdout.strip().splitlines()[-1]) is expected
