"""Training-step throughput (forward + backward + SGD update) of one recurrent layer:
rnnlab's ``lib`` (jitted ``make_train_step`` over ``recurrence.unroll``) against
PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` and Flax (``nnx.RNN`` over
``OptimizedLSTMCell`` / ``GRUCell``, one jitted step) on the same shapes, batch-first,
MSE on every step's output; the three timed in alternation in one process. Where rnnlab's
default runs the fused CPU kernels (``lib.nn.kernels``), ``scan_ms`` times its
``lax.scan`` path beside them.

Shapes (batch, steps, input, hidden): the PTB small config (20, 20, 200, 200),
an MNIST-rows classifier (64, 28, 70, 256), a short-sequence case (128, 7, 16, 128).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch.benchtools import have_torch, jitted_step, time_alternating_ms
from lib.nn import cells, recurrence, scans

SHAPES = ((20, 20, 200, 200), (64, 28, 70, 256), (128, 7, 16, 128))
KINDS = ("lstm", "gru", "elman")
COLUMNS = ("cell", "batch", "steps", "input", "hidden", "unroll", "rnnlab_ms", "torch_ms",
           "speedup_vs_torch", "flax_ms", "speedup_vs_flax", "scan_ms", "rnnlab_examples_per_s")
NUMBER = 20  # steps per timed repeat


def _data(B, T, D, H, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((B, T, D), np.float32), rng.standard_normal((B, T, H), np.float32))


def choose_unroll(T: int) -> int:
  """Short sequences unroll fully; XLA then fuses across steps. Longer ones
  keep a rolled loop (a full unroll only grows compile time)."""
  return T if T <= 8 else 1


def rnnlab_step(kind: str, B: int, T: int, D: int, H: int, unroll: int,
                input_product: str = "auto", kernel: str = "auto"):
  cell = cells.make(kind, H)
  x, y = map(jnp.asarray, _data(B, T, D, H))

  def loss_fn(params, batch, rng):
    _, out = recurrence.unroll(cell, params, batch["x"], unroll=unroll,
                               input_product=input_product, kernel=kernel)
    return jnp.mean((out - batch["y"]) ** 2), {}

  return jitted_step(loss_fn, optax.sgd(0.01), cell.init(jax.random.key(0), D), {"x": x, "y": y})


def torch_step(kind: str, B: int, T: int, D: int, H: int):
  import torch
  x, y = map(torch.from_numpy, _data(B, T, D, H))
  torch.manual_seed(0)
  net = {"lstm": lambda: torch.nn.LSTM(D, H, batch_first=True),
         "gru": lambda: torch.nn.GRU(D, H, batch_first=True),
         "elman": lambda: torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True)}[kind]()
  opt = torch.optim.SGD(net.parameters(), lr=0.01)

  def run():
    opt.zero_grad(set_to_none=True)
    out, _ = net(x)
    loss = ((out - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss

  return run


def run(peers=("torch", "flax"), repeats: int = 7, shapes=SHAPES, kinds=KINDS) -> list[dict]:
  from launch.benchmarks import flax_rnn
  with_torch = have_torch(peers)
  rows = []
  for kind in kinds:
    for B, T, D, H in shapes:
      unroll = choose_unroll(T)
      fns = {"rnnlab": rnnlab_step(kind, B, T, D, H, unroll)}
      if scans.resolve_kernel("auto", cells.make(kind, H), jnp.zeros((H, H)), jnp.zeros((1, 1, H)),
                              cells.make(kind, H).zero_carry((1,))) is scans.DenseKernel.FUSED:
        fns["scan"] = rnnlab_step(kind, B, T, D, H, unroll, kernel="scan")  # the lax.scan path
      if with_torch:
        fns["torch"] = torch_step(kind, B, T, D, H)
      if "flax" in peers and kind in flax_rnn.FLAX_CELLS:
        fns["flax"] = flax_rnn.train_step(kind, B, T, D, H, unroll)
      # In alternation, so the machine's drift stays out of the ratios.
      ms = time_alternating_ms(fns, number=NUMBER, repeats=repeats,
                               syncs={k: jax.block_until_ready for k in ("rnnlab", "scan", "flax")})
      row = {"cell": kind, "batch": B, "steps": T, "input": D, "hidden": H, "unroll": unroll,
             "rnnlab_ms": ms["rnnlab"], "rnnlab_examples_per_s": B / ms["rnnlab"] * 1e3}
      if "scan" in ms:
        row["scan_ms"] = ms["scan"]
      for peer in ("torch", "flax"):
        if peer in ms:
          row.update({f"{peer}_ms": ms[peer], f"speedup_vs_{peer}": ms[peer] / ms["rnnlab"]})
      rows.append(row)
      print(functools.reduce(lambda s, kv: s + f" {kv[0]}={kv[1]:.3g}" if isinstance(kv[1], float)
                             else s + f" {kv[0]}={kv[1]}", row.items(), ""), flush=True)
  return rows
