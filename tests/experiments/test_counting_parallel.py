"""Data-parallel training on 8 simulated CPU devices matches one device."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # trains or starts processes: left out of `make test-fast`

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r'''
import json, os, sys, tempfile
import jax
assert jax.device_count() == 8, jax.devices()
import numpy as np
from experiments.counting import config as counting, experiment
from lib.runtime import parallel
from lib.sweeps import space

out = {}
base = space.apply(counting.get_config("rmsprop"),
                    {"trainer.num_epochs": 40, "data.num_samples": 32, "data.batch_size": 16})
for dp in (False, True):
  c = space.apply(base, {"trainer.data_parallel": dp})
  with tempfile.TemporaryDirectory() as d:
    s = experiment.run(c, d, verbose=False)
  out[str(dp)] = {k: s["final"][k] for k in ("train/cost", "eval/mse")} | s["extra"]
b = parallel.DataParallel().shard({"x": np.zeros((16, 3)), "odd": np.zeros((5,)), "s": np.float32(1)})
out["shards"] = [len(b["x"].addressable_shards), str(b["x"].sharding.spec), str(b["odd"].sharding.spec)]
out["shard_rows"] = b["x"].addressable_shards[0].data.shape[0]
print("RESULT " + json.dumps(out))
'''


def test_eight_devices_match_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.split("RESULT ", 1)[1])
  assert res["shards"] == [8, "P('data',)", "P()"]
  assert res["shard_rows"] == 2
  one, eight = res["False"], res["True"]
  for k in one:
    assert abs(one[k] - eight[k]) <= 1e-5 * max(1.0, abs(one[k])), (k, one[k], eight[k])
