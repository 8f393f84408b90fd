"""Language-model training speed, one table:

(a) notes 001's SGD step: one sentence of 45 words, vocabulary 8000, hidden
    100, BPTT truncated at 4 steps, milliseconds per step: rnnlab's jitted
    ``train_step`` (``lib.nn.lm.RecurrentLM(**NOTES_LM, truncate=4)``) against
    the notes' numpy ``RNNNumpy.sgd_step`` (experiments/rnnlm/numpy_reference.py).
(b) batched training tokens per second, rnnlab against PyTorch at the same
    sizes: the notes' Elman LM (V 8000, H 100, batch 32 x 32 steps, no biases)
    and the PTB small LSTM LM (V 10000, 2 x 200, batch 20 x 20 steps), SGD with
    the loss summed over time and averaged over the batch.

Each pair is timed in alternation (``benchtools.time_pair_ms``), so drift of
the machine's speed does not land in the ratio. Run through ``launch.bench``
the process uses ``lib.runtime.hostmem.reuse_freed_memory`` (rnnlab's default), and the
numpy and PyTorch peers, in the same process, get the same allocator.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from launch.benchtools import have_torch, jitted_step, time_alternating_ms, time_pair_ms
from experiments.rnnlm.config import NOTES_LM
from lib.nn import lm, seq2seq

COLUMNS = ("case", "rnnlab_ms", "peer", "peer_ms", "speedup", "rnnlab_tokens_per_s",
           "peer_tokens_per_s")

# (name, vocab, hidden, layers, kind, batch, steps)
BATCHED = (("elman LM (notes)", 8000, 100, 1, "elman", 32, 32),
           ("lstm LM (PTB small)", 10000, 200, 2, "lstm", 20, 20))


def _tokens(V, B, T, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, V, (B, T + 1)).astype(np.int32)


def rnnlab_step(model: lm.RecurrentLM, x, y, lr: float):
  """A closure running one jitted SGD step of ``model`` on the fixed batch."""
  def loss_fn(params, batch, rng):
    objective, (metrics, _) = lm.window_loss(model, params, batch, None, rng, True)
    return objective, metrics

  return jitted_step(loss_fn, optax.sgd(lr), model.init(jax.random.key(0)),
                     {"x": jnp.asarray(x), "y": jnp.asarray(y)})


def torch_step(V, H, layers, kind, x, y, lr, device: str = "cpu"):
  """PyTorch's step on ``device`` (``cuda``: cuDNN's LSTM)."""
  import torch
  torch.manual_seed(0)
  notes = kind == "elman"
  emb = torch.nn.Embedding(V, H)
  rnn = (torch.nn.RNN(H, H, num_layers=layers, nonlinearity="tanh", bias=False, batch_first=True)
         if notes else torch.nn.LSTM(H, H, num_layers=layers, batch_first=True))
  out = torch.nn.Linear(H, V, bias=not notes)
  emb, rnn, out = emb.to(device), rnn.to(device), out.to(device)
  params = [*emb.parameters(), *rnn.parameters(), *out.parameters()]
  opt = torch.optim.SGD(params, lr=lr)
  xt, yt = torch.from_numpy(x).long().to(device), torch.from_numpy(y).long().to(device)
  B = xt.shape[0]

  def run():
    opt.zero_grad(set_to_none=True)
    h, _ = rnn(emb(xt))
    loss = torch.nn.functional.cross_entropy(out(h).reshape(-1, V), yt.reshape(-1),
                                             reduction="sum") / B
    loss.backward()
    opt.step()
    return loss
  return run


def run(peers=("torch",), repeats: int = 7) -> list[dict]:
  rows = []
  # (a) the notes' single-sentence step.
  from experiments.rnnlm.numpy_reference import RNNNumpy
  V, H, T, k = 8000, 100, 45, 4
  ids = _tokens(V, 1, T)
  ref = RNNNumpy(V, H, bptt_truncate=k, seed=10)
  step = rnnlab_step(lm.RecurrentLM(V, H, **NOTES_LM, truncate=k), ids[:, :-1], ids[:, 1:], 0.005)
  ours, numpy_ms = time_pair_ms(step, lambda: ref.sgd_step(ids[0, :-1], ids[0, 1:], 0.005),
                                number=50, number_b=3, repeats=repeats, sync_a=jax.block_until_ready)
  rows.append({"case": "notes SGD step: 1 sentence x 45 words, V 8000, H 100, truncate 4",
               "rnnlab_ms": ours, "peer": "numpy (notes 001)", "peer_ms": numpy_ms,
               "speedup": numpy_ms / ours, "rnnlab_tokens_per_s": T / ours * 1e3,
               "peer_tokens_per_s": T / numpy_ms * 1e3})
  print(rows[-1], flush=True)

  # (b) batched tokens per second against PyTorch.
  with_torch = have_torch(peers)
  for name, V, H, L, kind, B, T in BATCHED:
    ids = _tokens(V, B, T, seed=1)
    x, y = ids[:, :-1], ids[:, 1:]
    model = lm.RecurrentLM(V, H, cell=kind, layers=L, **(NOTES_LM if kind == "elman" else {}))
    peer = torch_step(V, H, L, kind, x, y, 0.1) if with_torch else None
    ours, theirs = time_pair_ms(rnnlab_step(model, x, y, 0.1), peer, number=20, repeats=repeats,
                                sync_a=jax.block_until_ready)
    row = {"case": f"{name}: batch {B} x {T} steps, V {V}, {L}x{H}", "rnnlab_ms": ours,
           "rnnlab_tokens_per_s": B * T / ours * 1e3}
    if with_torch:
      row.update(peer="torch", peer_ms=theirs, speedup=theirs / ours,
                 peer_tokens_per_s=B * T / theirs * 1e3)
    rows.append(row)
    print(row, flush=True)
  return rows


COLUMNS_BY_FUNCTION = {"run_ptb_cells": ("cell", "hidden", "params", "ms", "tokens_per_s",
                                         "s_per_epoch", "vs_lstm")}
PTB_TRAIN_TOKENS = 929_589  # ptb.train.txt with an end-of-sentence token per line


def run_ptb_cells(peers=(), repeats: int = 5) -> list[dict]:
  """The PTB-small train step (batch 20 x 20, V 10000, 2 layers, SGD, no dropout) of
  the LSTM and of ptb_small's linear-recurrence variants at its parameter count
  (``experiments/rnnlm/config.py``: ``PTB_SMALL_LINEAR``), timed in alternation;
  ``s_per_epoch`` = ms x the 2,323 steps of an epoch."""
  del peers
  from experiments.rnnlm.config import PTB_SMALL_LINEAR
  V, B, T = 10_000, 20, 20
  ids = _tokens(V, B, T, seed=1)
  sizes = {"lstm": 200, **PTB_SMALL_LINEAR}
  steps, models = {}, {}
  for cell, hidden in sizes.items():
    models[cell] = lm.RecurrentLM(V, hidden, cell=cell, layers=2)
    steps[cell] = rnnlab_step(models[cell], ids[:, :-1], ids[:, 1:], 0.1)
  # Alternating: every cell sees the same machine state.
  times = time_alternating_ms(steps, number=10, repeats=repeats, warmup=1,
                              syncs={c: jax.block_until_ready for c in steps})
  per_epoch = PTB_TRAIN_TOKENS // (B * T)
  rows = []
  for cell, hidden in sizes.items():
    ms = times[cell]
    shapes = jax.eval_shape(models[cell].init, jax.random.key(0))
    rows.append({"cell": cell, "hidden": hidden,
                 "params": seq2seq.num_params(shapes), "ms": ms,
                 "tokens_per_s": B * T / ms * 1e3, "s_per_epoch": ms * per_epoch / 1e3,
                 "vs_lstm": times["lstm"] / ms})
    print(rows[-1], flush=True)
  return rows


COLUMNS_BY_FUNCTION["run_ptb_orders"] = ("case", "layers_ms", "wavefront_ms", "wavefront_speedup",
                                         "cudnn_ms", "cudnn_max_diff", "peer_ms", "vs_peer")
# (name, hidden, batch, steps): the Zaremba LSTM LMs (V 10000, 2 layers), no dropout.
PTB_SIZES = (("PTB small", 200, 20, 20), ("PTB medium", 650, 20, 35))


def run_ptb_orders(peers=("torch",), repeats: int = 3, sizes=PTB_SIZES, vocab: int = 10_000
                   ) -> list[dict]:
  """The PTB LSTM LM train step with its stack run layer by layer, as a wavefront and,
  on a GPU, through cuDNN (``lib.nn.stacks.Order``), and PyTorch's ``nn.LSTM`` where
  installed (on CUDA when JAX runs on a GPU), timed in alternation. ``vs_peer``:
  PyTorch's time over rnnlab's fastest order; ``cudnn_max_diff``: the largest difference
  of the cuDNN order's loss and gradients from the layer-by-layer order's."""
  rows = []
  gpu = jax.default_backend() == "gpu"
  orders = ("layers", "wavefront", "cudnn") if gpu else ("layers", "wavefront")
  with_torch = have_torch(peers)
  for name, H, B, T in sizes:
    ids = _tokens(vocab, B, T, seed=1)
    x, y = ids[:, :-1], ids[:, 1:]
    models = {o: lm.RecurrentLM(vocab, H, cell="lstm", layers=2, order=o) for o in orders}
    fns = {o: rnnlab_step(m, x, y, 0.1) for o, m in models.items()}
    if with_torch:
      fns["torch"] = torch_step(vocab, H, 2, "lstm", x, y, 0.1, "cuda" if gpu else "cpu")
    syncs = {o: jax.block_until_ready for o in orders}
    if with_torch and gpu:
      import torch
      syncs["torch"] = lambda v: torch.cuda.synchronize()
    ms = time_alternating_ms(fns, number=10, repeats=repeats, syncs=syncs)
    row = {"case": f"{name} LSTM LM: batch {B} x {T}, V {vocab}, 2x{H}", "layers_ms": ms["layers"],
           "wavefront_ms": ms["wavefront"], "wavefront_speedup": ms["layers"] / ms["wavefront"]}
    if gpu:
      row.update(cudnn_ms=ms["cudnn"], cudnn_max_diff=_max_diff(models, x, y))
    if with_torch:
      row.update(peer_ms=ms["torch"], vs_peer=ms["torch"] / min(ms[o] for o in orders))
    rows.append(row)
    print(row, flush=True)
  return rows


def _max_diff(models: dict, x, y) -> float:
  """The largest absolute difference of loss and gradients between the cuDNN and the
  layer-by-layer orders, at the layer-by-layer model's initial parameters."""
  params = models["layers"].init(jax.random.key(0))
  batch = {"x": jnp.asarray(x), "y": jnp.asarray(y)}

  def grads(model):
    def f(p):
      return lm.window_loss(model, p, batch, None, None, False)[0]
    return jax.value_and_grad(f)(params)
  a, b = grads(models["layers"]), grads(models["cudnn"])
  return float(max(jnp.max(jnp.abs(u - v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))))
