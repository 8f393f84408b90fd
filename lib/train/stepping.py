"""How the training loop advances its trials: one step of every trial on a leading
trial axis, dispatched one step at a time or a chunk of steps at a time."""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _take(tree, idx):
  return jax.tree.map(lambda x: x[idx], tree)


def take(tree, rows):
  """The trials at positions ``rows`` (a list) of a stacked pytree (one dispatch)."""
  return _take(tree, np.asarray(rows, dtype=np.int32))


@jax.jit
def row(tree, i):
  """Trial ``i`` of a stacked pytree (one dispatch, one compilation for every ``i``)."""
  return jax.tree.map(lambda x: x[i], tree)


@jax.jit
def finite_rows(tree):
  """``(trials,)`` bools: whether each trial's floating-point leaves are all finite."""
  rows = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in jax.tree.leaves(tree)
          if jnp.issubdtype(x.dtype, jnp.inexact)]
  n = jax.tree.leaves(tree)[0].shape[0]
  return jnp.stack(rows).all(axis=0) if rows else jnp.ones((n,), bool)


def stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def every_trial(step, trials_per_block: Optional[int], hp=None):
  """``(state, batch, keys, hp) -> (state, metrics)``: one step of every trial on the
  leading axis: one ``vmap`` (``trials_per_block`` 0), a ``lax.map`` over blocks of
  that many, or (``None``) the one trial of a single run stepped without a trial axis
  inside, with ``hp`` as Python numbers (the loss may branch on them)."""
  def one(state, batch, key, hp_):
    return step(state, batch, jax.random.fold_in(key, state.step), hp_)

  def every(state, batch, keys, hp_):
    if trials_per_block is None:
      s, m = one(jax.tree.map(lambda x: x[0], state), batch, keys[0], hp)
      return jax.tree.map(lambda x: x[None], (s, m))
    if not trials_per_block:
      return jax.vmap(one, in_axes=(0, None, 0, 0))(state, batch, keys, hp_)
    return jax.lax.map(lambda a: one(a[0], batch, a[1], a[2]), (state, keys, hp_),
                       batch_size=trials_per_block)
  return every


def _stack_batches(batches: list, k: int):
  """Batches stacked on a leading axis, padded to ``k`` by repeating the last one
  (padding steps are skipped)."""
  batches = batches + [batches[-1]] * (k - len(batches))
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


def _shapes(batch) -> list:
  return [np.shape(x) for x in jax.tree.leaves(batch)]


class Steps:
  """Dispatches the loop's steps (:meth:`advance`).

  With ``scan``, a chunk of steps of every trial is one dispatch: a ``lax.scan`` over
  the chunk's batches stacked on the host; shorter chunks (the tail, an evaluation in
  between) pad their batches and skip the padding under ``lax.cond``, so one
  compilation serves all (one more per trial count after trials end). Small models
  leave the device idle between steps; this keeps it busy. Without ``scan``, and for
  a chunk whose batches differ in shape (sentences padded to their own length), one
  dispatch a step (no scan or cond around it: about 15% of the notes' LM step for 32
  trials); there the loop's ``interrupts()`` ends a chunk early (a stop request, a due
  progress line) and a failure leaves the state of the last step taken.
  ``shard`` places each batch (data parallelism)."""

  def __init__(self, step, *, trials_per_block: Optional[int] = 0, hp=None, scan: bool = True,
               compiler_options=None, shard: Optional[Callable] = None, max_chunk: int = 200):
    every = every_trial(step, trials_per_block, hp)
    self.scan, self.shard, self.max_chunk = scan, shard, max_chunk

    def chunk(state, batches, keys, hp_, n):
      first = jax.tree.map(lambda x: x[0], batches)
      zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),
                           jax.eval_shape(every, state, first, keys, hp_)[1])

      def body(s, i_b):
        i, b = i_b
        return jax.lax.cond(i < n, lambda: every(s, b, keys, hp_), lambda: (s, zeros))
      k = jax.tree.leaves(batches)[0].shape[0]
      return jax.lax.scan(body, state, (jnp.arange(k), batches))
    options = dict(compiler_options or {}) or None
    self.many = jax.jit(chunk, donate_argnums=0, compiler_options=options)
    self.one = jax.jit(every, donate_argnums=0, compiler_options=options)

  def advance(self, loop, end: int, k: int) -> None:
    """Steps ``loop`` (its ``state``, ``keys``, ``hp``, ``step``) towards ``end``,
    queueing each dispatch's metrics on ``loop.pending`` as ``(first step, metrics,
    steps in a scanned chunk or None for one step)``."""
    first = loop.step
    if self.scan:
      batches = [loop.task.train_batch(s) for s in range(first, end)]
      if all(_shapes(b) == _shapes(batches[0]) for b in batches):
        n = len(batches)
        loop.state, m = self.many(loop.state, _stack_batches(batches, k), loop.keys, loop.hp,
                                  np.int32(n))
        loop.step = end
        loop.pending.append((first, m, n))
        return
      source = lambda s: batches[s - first]  # noqa: E731
    else:
      source = loop.task.train_batch
    for s in range(first, end):
      batch = source(s)
      if self.shard is not None:
        batch = self.shard(batch)
      loop.state, m = self.one(loop.state, batch, loop.keys, loop.hp)
      loop.step = s + 1
      loop.pending.append((s, m, None))
      if not self.scan and loop.interrupts():
        return
