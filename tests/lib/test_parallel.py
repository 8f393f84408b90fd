"""Data-parallel training on 8 simulated CPU devices matches one device."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 8 simulated devices are 8 threads; on a busy 2-core CI machine one can reach a collective
# long after the others, past XLA:CPU's 40 s rendezvous limit (which aborts the process).
ENV = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=(
    "--xla_force_host_platform_device_count=8 "
    "--xla_cpu_collective_call_terminate_timeout_seconds=900"))

SCRIPT = r'''
import json, os, sys, tempfile
import jax
assert jax.device_count() == 8, jax.devices()
import numpy as np
from experiments.counting import config as counting, experiment
from lib import parallel, sweeps

out = {}
base = sweeps.apply(counting.get_config("rmsprop"),
                    {"num_epochs": 40, "data.num_samples": 32, "data.batch_size": 16})
for dp in (False, True):
  c = sweeps.apply(base, {"trainer.data_parallel": dp})
  with tempfile.TemporaryDirectory() as d:
    s = experiment.run(c, d, verbose=False)
  out[str(dp)] = {k: s["final"][k] for k in ("train/cost", "eval/mse")} | s["extra"]
b = parallel.DataParallel().shard({"x": np.zeros((16, 3)), "odd": np.zeros((5,)), "s": np.float32(1)})
out["shards"] = [len(b["x"].addressable_shards), str(b["x"].sharding.spec), str(b["odd"].sharding.spec)]
out["shard_rows"] = b["x"].addressable_shards[0].data.shape[0]
print("RESULT " + json.dumps(out))
'''


def test_eight_devices_match_one():
  r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=ENV, capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.split("RESULT ", 1)[1])
  assert res["shards"] == [8, "P('data',)", "P()"]
  assert res["shard_rows"] == 2
  one, eight = res["False"], res["True"]
  for k in one:
    assert abs(one[k] - eight[k]) <= 1e-5 * max(1.0, abs(one[k])), (k, one[k], eight[k])


# Every other experiment, small: its own run(), on 1 device and on 8 (batch split over them).
EXPERIMENTS = {
    "seq2seq": ('config.get_config("quick")',
                {"data.num": 1500, "num_epochs": 1, "model.hidden": 32}),
    "translation": ('config.get_config("lstm")',
                    {"data.num": 400, "data.batch_size": 32, "data.eval_batch_size": 40,
                     "model.hidden": 16, "num_epochs": 1, "num_samples": 2}),
    "varrnn": ('config.get_config("minibatch")',
               {"data.num": 400, "data.batch_size": 16, "num_epochs": 1, "eval_every_epochs": 1,
                "data.eval_batch_size": 64, "eval.num_samples": 2, "data.eval_draws": 3}),
    "rnnlm": ('config.get_config("notes")',
              {"data.mode": "stream", "data.batch_size": 8, "data.num_steps": 10,
               "data.vocab_size": 200, "model.hidden": 16, "num_epochs": 1}),
    "word2vec": ('config.get_config("embedded")', {"num_epochs": 1}),
}

RUN_SCRIPT = r'''
import json, sys, tempfile
import jax
assert jax.device_count() == 8, jax.devices()
import importlib
from lib import parallel, sweeps
split = []  # leaves of the batches that were split over the 8 devices
real_shard = parallel.DataParallel.shard
def shard(self, batch):
  out = real_shard(self, batch)
  split.extend(len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
               for x in jax.tree.leaves(out))
  return out
parallel.DataParallel.shard = shard
name, make, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = importlib.import_module(f"experiments.{name}.config")
experiment = importlib.import_module(f"experiments.{name}.experiment")
out = {}
for dp in (False, True):
  c = sweeps.apply(eval(make), {**overrides, "trainer.data_parallel": dp,
                                "trainer.tensorboard": False, "trainer.plot": False})
  with tempfile.TemporaryDirectory() as d:
    s = experiment.run(c, d, verbose=False)
  out[str(dp)] = {k: v for k, v in s["final"].items() if isinstance(v, float)}
out["split_leaves"] = sum(split)
print("RESULT " + json.dumps(out))
'''


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_on_eight_devices_matches_one(name):
  make, overrides = EXPERIMENTS[name]
  r = subprocess.run([sys.executable, "-c", RUN_SCRIPT, name, make, json.dumps(overrides)],
                     cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.split("RESULT ", 1)[1])
  assert res["split_leaves"] > 0  # batches really were split over the devices
  one, eight = res["False"], res["True"]
  assert one.keys() == eight.keys() and "train/loss" in one
  for k in one:
    assert abs(one[k] - eight[k]) <= 2e-4 * max(1.0, abs(one[k])), (name, k, one[k], eight[k])
