"""Test set-up, before JAX is imported anywhere (the xdist workers inherit it).

- 8 simulated CPU devices, for the sharding tests.
- XLA's backend optimization level 0, and XLA:CPU's older loop emitters instead of its
  fusion emitters: the tests' programs are tiny, so compiling dominates their time;
  level 0 compiles about a third faster, and the older emitters about 40% faster again
  (the registry's per-cell test program: 3.8 s against 2.3 s; the mLSTM's 6.0 against
  3.9) while their code runs slower. Every process of the suite, and those the tests
  start, use the same flags, so they share one compilation cache. Speed figures come
  from ``launch.bench`` and the results scripts, which keep XLA's defaults.
- One Eigen thread per process: the two xdist workers (and the processes the
  tests start) already fill the two cores, and tiny programs gain nothing from
  intra-op threads (``tests/lib/nn`` under ``-n 2``: 88 s against 108 s).
- One persistent compilation cache for the session, shared by the workers and
  the subprocesses the tests start: a program compiled twice (a resumed run, the
  same config trained twice to compare) is compiled once.
"""
import os
import shutil
import tempfile

_FLAGS = ("--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
          " --xla_cpu_use_fusion_emitters=false --xla_cpu_multi_thread_eigen=false")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAGS}".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnlab-test-xla-")
  os.environ["RNNLAB_TEST_OWNS_CACHE"] = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_unconfigure(config):
  owned = os.environ.get("RNNLAB_TEST_OWNS_CACHE")
  if owned and not hasattr(config, "workerinput"):  # the controller, after its workers
    shutil.rmtree(owned, ignore_errors=True)


# The longest files first (measured: each takes 60-130 s of one worker), so that
# `--dist loadfile` hands them out early instead of ending the run on one of them.
LONGEST_FIRST = (
    "tests/experiments/test_varrnn.py", "tests/lib/sweeps/test_every_experiment.py",
    "tests/experiments/test_rnnlm.py", "tests/launch/test_faults.py",
    "tests/lib/nn/test_seq2seq.py", "tests/lib/nn/test_every_cell.py",
    "tests/experiments/test_seq2seq.py",
    "tests/experiments/test_counting.py", "tests/launch/test_ray_tune.py",
    "tests/launch/test_sweep.py")


def pytest_collection_modifyitems(config, items):
  rank = {f: i for i, f in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
