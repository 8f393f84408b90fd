"""The linear-recurrence scans, and every cell's train step against the LSTM.

``run`` (``python -m launch.bench scans``): forward + backward of
``h_t = a_t * h_{t-1} + b_t`` (:func:`lib.nn.scans.linear_scan`, its own backward
pass) at batch 8, state 256, T = 256 ... 16,384, for each algorithm, timed in
alternation, and what ``auto`` picks (``AUTO_RULES``) with its ratio to the
fastest. ``run_unroll`` (``scans_unroll``): the sequential scan's ``lax.scan``
unroll; ``run_chunk`` (``scans_chunk``): the chunked scan's chunk length. ``run_mlstm`` (``scans_mlstm``): the mLSTM's forms (materialised against
chunkwise) at batch 8, hidden 256, 4 heads. ``run_cells`` (``cell_step``): each
registered cell's train step (forward + backward + SGD, MSE on every output) at
``rnn_step``'s shapes, against the LSTM's.
"""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch.benchmarks import rnn_step
from launch.benchtools import jitted_step
from lib.nn import cells, recurrence, scans

LENGTHS = (256, 1024, 4096, 16384)
KINDS = ("sequential", "associative", "chunked")
COLUMNS = ("T", "scan", "ms", "vs_sequential", "auto_picks", "auto_vs_fastest")


def _alternating(fns: dict, repeats: int, number: int) -> dict:
  """Median ms per call of each function, timed in turn within every repeat."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  samples = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      t0 = time.perf_counter()
      for _ in range(number):
        out = fn()
      jax.block_until_ready(out)
      samples[k].append((time.perf_counter() - t0) * 1e3 / number)
  return {k: statistics.median(v) for k, v in samples.items()}


def _scan_fn(T: int, scan: str, B: int = 8, S: int = 256, unroll=None, chunk: int = 0):
  k = jax.random.split(jax.random.key(T), 3)
  a = jax.nn.sigmoid(jax.random.normal(k[0], (T, B, S)) + 3.0)
  b = jax.random.normal(k[1], (T, B, S))
  r = jax.random.normal(k[2], (T, B, S))

  def loss(a, b):
    h = scans.linear_scan(a, b, jnp.zeros((B, S)), scan=scan, unroll=unroll, chunk=chunk)
    return jnp.sum(h * r)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return lambda: grad(a, b)


def run(peers=(), repeats: int = 7, lengths=LENGTHS) -> list[dict]:
  """Each algorithm at each length; ``auto`` runs the one it picks, so its row is
  that algorithm's time, and ``auto_vs_fastest`` is the fastest's time over it."""
  del peers
  rows = []
  for T in lengths:
    ms = _alternating({kind: _scan_fn(T, kind) for kind in KINDS}, repeats, max(1, 4096 // T))
    fastest = min(ms.values())
    picks = scans.resolve("auto", T).value
    for kind in KINDS:
      rows.append({"T": T, "scan": kind, "ms": ms[kind], "vs_sequential": ms["sequential"] / ms[kind]})
    rows.append({"T": T, "scan": "auto", "ms": ms[picks], "vs_sequential": ms["sequential"] / ms[picks],
                 "auto_picks": picks, "auto_vs_fastest": fastest / ms[picks]})
    print(rows[-4:], flush=True)
  return rows


def run_chunk(peers=(), repeats: int = 5, lengths=(1024, 16384), chunks=(16, 32, 64, 128, 256)):
  del peers
  rows = []
  for T in lengths:
    fns = {L: _scan_fn(T, "chunked", chunk=L) for L in chunks}
    ms = _alternating({"sequential": _scan_fn(T, "sequential"), **fns}, repeats, max(1, 4096 // T))
    rows += [{"T": T, "scan": f"chunked, {L} steps a chunk", "ms": ms[L],
              "vs_sequential": ms["sequential"] / ms[L]} for L in chunks]
    print(rows[-len(chunks):], flush=True)
  return rows


def run_unroll(peers=(), repeats: int = 7, lengths=(256, 4096), unrolls=(1, 2, 4, 8, 16, 32)) -> list[dict]:
  del peers
  rows = []
  for T in lengths:
    ms = _alternating({u: _scan_fn(T, "sequential", unroll=u) for u in unrolls}, repeats,
                      max(1, 4096 // T))
    rows += [{"T": T, "scan": f"sequential, unroll {u}", "ms": ms[u],
              "vs_sequential": ms[unrolls[0]] / ms[u]} for u in unrolls]
    print(rows[-len(unrolls):], flush=True)
  return rows


def _mlstm_fn(T: int, scan: str, B: int = 8, H: int = 256):
  cell = cells.make("mlstm", H, heads=4, scan=scan)
  p = cell.init(jax.random.key(0), H)
  x = jax.random.normal(jax.random.key(1), (B, T, H))

  def loss(p):
    return jnp.sum(recurrence.unroll(cell, p, x)[1] ** 2)

  grad = jax.jit(jax.grad(loss))
  return lambda: grad(p)


def run_mlstm(peers=(), repeats: int = 5, lengths=(16, 256, 1024, 4096)) -> list[dict]:
  del peers
  rows = []
  for T in lengths:
    kinds = ("sequential", "chunked") if T > 1024 else KINDS
    ms = _alternating({k: _mlstm_fn(T, k) for k in kinds}, repeats, 1)
    rows += [{"T": T, "scan": f"mlstm {k}", "ms": ms[k], "vs_sequential": ms["sequential"] / ms[k]}
             for k in kinds]
    print(rows[-len(kinds):], flush=True)
  return rows


def _cell_step(name: str, B: int, T: int, D: int, H: int):
  cell = cells.make(name, H)
  x, y = map(jnp.asarray, rnn_step._data(B, T, D, H))
  unroll = rnn_step.choose_unroll(T) if isinstance(cell, cells.DenseCell) else None

  def loss_fn(params, batch, rng):
    _, out = recurrence.unroll(cell, params, batch["x"], unroll=unroll)
    return jnp.mean((out - batch["y"]) ** 2), {}

  return jitted_step(loss_fn, optax.sgd(0.01), cell.init(jax.random.key(0), D), {"x": x, "y": y})


COLUMNS_BY_FUNCTION = {"run_cells": ("cell", "batch", "steps", "input", "hidden", "ms", "vs_lstm",
                                     "params")}


def run_cells(peers=(), repeats: int = 7, shapes=rnn_step.SHAPES) -> list[dict]:
  del peers
  rows = []
  for B, T, D, H in shapes:
    ms = _alternating({n: _cell_step(n, B, T, D, H) for n in cells.names()}, repeats, 10)
    for n in cells.names():
      size = sum(int(np.prod(v.shape)) for v in cells.make(n, H).init(jax.random.key(0), D).values())
      rows.append({"cell": n, "batch": B, "steps": T, "input": D, "hidden": H, "ms": ms[n],
                   "vs_lstm": ms["lstm"] / ms[n], "params": size})
    print(rows[-len(ms):], flush=True)
  return rows
