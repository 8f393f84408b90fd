"""Scan algorithms, apart from the cells that use them (recurrentgemma's layout).

Two recurrences cover every cell of :mod:`lib.nn.cells`:

* **dense**: ``carry_t = f(carry_{t-1}, xp_t, h_{t-1} @ w_rec)`` (Elman, LSTM, GRU).
  Only a sequential loop can run it. :func:`dense_scan` keeps the input
  product out of the loop and, under ``fast_grad``, forms the recurrent weight's
  gradient as one product over all steps, ``dW_rec = sum_t h_{t-1}^T dz_t`` (as
  cuDNN and PyTorch do), instead of the per-step product autodiff of ``scan`` makes.
  The loop is a ``lax.scan``, or for an LSTM or GRU in float32 on the CPU one call of
  the fused kernels of :mod:`lib.nn.kernels` each way (:class:`DenseKernel`).
* **linear**: ``h_t = a_t * h_{t-1} + b_t`` element-wise (the notes' linear cell,
  LRU, minGRU, minLSTM, RG-LRU; mLSTM's matrix memory with ``a_t`` broadcast over
  it). :func:`linear_scan` runs it as a sequential ``lax.scan``, an associative
  scan (``jax.lax.associative_scan``: log depth, more work), or chunked (a
  sequential scan over chunks, an associative scan inside each).
  The gradient of all three is the same linear recurrence run backwards
  (``lambda_t = g_t + a_{t+1} lambda_{t+1}``) through the same algorithm, so the
  backward pass costs what the forward does; ``fast_grad=False`` differentiates
  the algorithm itself instead (forward-mode autodiff needs that).

No log-space form is needed for stability here: the associative and chunked scans
multiply and add coefficients in linear space and never divide, so products of
``a`` that underflow are zero, as they should be (minGRU's log-space scan exists to
avoid the division of a cumulative-product formulation). Where a gate is exponential
and can overflow (mLSTM's input gate), the cell keeps its state stabilized by a
running maximum, :func:`max_plus_scan`.

``ScanType.AUTO`` picks the algorithm per platform and sequence length from
:data:`AUTO_RULES`, a table of measurements (``launch/benchmarks/README.md``,
``python -m launch.bench scans``).
"""
from __future__ import annotations

import enum
import functools
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import kernels


class ScanType(str, enum.Enum):
  AUTO = "auto"
  SEQUENTIAL = "sequential"
  ASSOCIATIVE = "associative"
  CHUNKED = "chunked"


NAMES = tuple(s.value for s in ScanType)  # a config's model.scan


# platform -> ((longest T, scan), ...): the fastest scan, forward + backward of a linear
# recurrence at batch 8, state 256 (``python -m launch.bench scans``).
# cpu: measured, x86_64 2 cores, jax 0.10.2, 2026-12-06: the sequential scan at every
#   T from 256 to 16,384 (the associative 0.35-0.53x of it, the chunked 0.4-0.7x).
# gpu, tpu: not measured here; the associative scan, as reported elsewhere (4-1,500x
#   the sequential scan on GPU). A measured row replaces it.
AUTO_RULES: dict[str, tuple[tuple[float, ScanType], ...]] = {
    "cpu": ((math.inf, ScanType.SEQUENTIAL),),
    "gpu": ((math.inf, ScanType.ASSOCIATIVE),),
    "tpu": ((math.inf, ScanType.ASSOCIATIVE),),
}
SEQUENTIAL_UNROLL = 1   # lax.scan unroll of the sequential linear scan: 1 was fastest (launch.bench scans_unroll)
DEFAULT_CHUNK = 16      # steps per chunk of the chunked scan: fastest on CPU (launch.bench scans_chunk)


def parse(scan: str | ScanType) -> ScanType:
  """A :class:`ScanType` from its name; an unknown name is a one-line error."""
  try:
    return ScanType(scan)
  except ValueError:
    raise ConfigError(f"Unknown scan {scan!r}; expected one of "
                      f"{[s.value for s in ScanType]}.") from None


def resolve(scan: str | ScanType, steps: int, platform: Optional[str] = None,
            rules: Optional[dict] = None) -> ScanType:
  """The scan that runs: ``scan`` itself, or the choice of ``rules`` (default
  :data:`AUTO_RULES`) for ``AUTO`` on this platform at ``steps`` steps."""
  scan = parse(scan)
  if scan is not ScanType.AUTO:
    return scan
  rules = rules or AUTO_RULES
  table = rules.get(platform or jax.default_backend(), rules["gpu"])
  return next(kind for longest, kind in table if steps <= longest)


# -- linear recurrences -----------------------------------------------------------------
def _sequential(a, b, h0, reverse, unroll, chunk):
  del chunk

  def body(h, ab):
    h = ab[0] * h + ab[1]
    return h, h

  return jax.lax.scan(body, h0, (a, b), reverse=reverse, unroll=unroll)[1]


def _compose(first, second):
  """``h -> a2 (a1 h + b1) + b2``: the first map, then the second."""
  a1, b1 = first
  a2, b2 = second
  return a1 * a2, a2 * b1 + b2


def _associative(a, b, h0, reverse, unroll, chunk):
  del unroll, chunk
  first = -1 if reverse else 0
  b = b.at[first].add(a[first] * h0)  # the initial state enters through the first step
  return jax.lax.associative_scan(_compose, (a, b), reverse=reverse, axis=0)[1]


def _chunked(a, b, h0, reverse, unroll, chunk):
  """A sequential scan over chunks of ``L`` steps; inside each chunk, an associative
  scan from the state the chunk starts in (the chunk's arrays stay in cache)."""
  del unroll
  if reverse:
    return jnp.flip(_chunked(jnp.flip(a, 0), jnp.flip(b, 0), h0, False, None, chunk), 0)
  T = b.shape[0]
  L = chunk or DEFAULT_CHUNK
  C = -(-T // L)
  pad = C * L - T
  a = jnp.broadcast_to(a, (T, *a.shape[1:]))
  if pad:  # steps past the end: a = 1, b = 0 keep the state
    a = jnp.concatenate([a, jnp.ones((pad, *a.shape[1:]), a.dtype)])
    b = jnp.concatenate([b, jnp.zeros((pad, *b.shape[1:]), b.dtype)])

  def body(h, ab):
    a_L, b_L = ab
    h_L = _associative(a_L, b_L, h, False, None, None)
    return h_L[-1], h_L

  _, h_CxL = jax.lax.scan(body, h0, (a.reshape(C, L, *a.shape[1:]), b.reshape(C, L, *b.shape[1:])))
  return h_CxL.reshape(C * L, *b.shape[1:])[:T]


_LINEAR: dict[ScanType, Callable] = {ScanType.SEQUENTIAL: _sequential,
                                     ScanType.ASSOCIATIVE: _associative,
                                     ScanType.CHUNKED: _chunked}


def _sum_to(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """``x`` summed over the axes along which an array of ``shape`` was broadcast."""
  lead = x.ndim - len(shape)
  axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and
                                    x.shape[lead + i] != 1)
  return jnp.sum(x, axis=axes).reshape(shape) if axes else x


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _linear_fast(a, b, h0, kind, reverse, unroll, chunk):
  return _LINEAR[kind](a, b, h0, reverse, unroll, chunk)


def _linear_fast_fwd(a, b, h0, kind, reverse, unroll, chunk):
  h = _LINEAR[kind](a, b, h0, reverse, unroll, chunk)
  return h, (a, h, h0)


def _linear_fast_bwd(kind, reverse, unroll, chunk, res, g):
  """``lambda_t = g_t + a_{t+1} lambda_{t+1}`` (the recurrence backwards, by the same
  algorithm); ``da_t = lambda_t h_{t-1}``, ``db_t = lambda_t``, ``dh0 = a_1 lambda_1``
  (JAX's transpose convention: no conjugates, also for a complex recurrence)."""
  a, h, h0 = res
  a = jnp.broadcast_to(a, (h.shape[0], *a.shape[1:]))
  zero = jnp.zeros_like(a[:1])
  if reverse:  # processing order is T-1, ..., 0
    a_next, h_prev, first = jnp.concatenate([zero, a[:-1]]), jnp.concatenate([h[1:], h0[None]]), -1
  else:
    a_next, h_prev, first = jnp.concatenate([a[1:], zero]), jnp.concatenate([h0[None], h[:-1]]), 0
  lam = _LINEAR[kind](a_next, g, jnp.zeros_like(h0), not reverse, unroll, chunk)
  d_a = _sum_to(lam * h_prev, res[0].shape)
  d_h0 = _sum_to(a[first] * lam[first], h0.shape)
  return d_a, lam, d_h0


_linear_fast.defvjp(_linear_fast_fwd, _linear_fast_bwd)


def linear_scan(a: jax.Array, b_TxS: jax.Array, h0_S: jax.Array, *, reverse: bool = False,
                scan: str | ScanType = ScanType.AUTO, unroll: Optional[int] = None,
                chunk: int = 0, fast_grad: bool = True) -> jax.Array:
  """Every state of ``h_t = a_t * h_{t-1} + b_t`` (time-major), ``h_{-1} = h0``.

  Args:
    a: the coefficients, ``b_TxS``'s shape or broadcastable to it (mLSTM: one per
      head, ``T x B x NH x 1 x 1``); real or complex.
    b_TxS: the inputs; the state is ``b_TxS.shape[1:]``.
    h0_S: the initial state.
    reverse: process time from last to first (``h_t = a_t h_{t+1} + b_t``).
    scan: a :class:`ScanType` or its name; ``auto`` picks by platform and ``T``.
    unroll: ``lax.scan``'s unroll in the sequential scans (default
      :data:`SEQUENTIAL_UNROLL`).
    chunk: steps per chunk of the chunked scan (0: :data:`DEFAULT_CHUNK`).
    fast_grad: the backward pass as the reversed recurrence (see the module
      docstring); ``False`` lets autodiff differentiate the algorithm.

  Returns:
    ``h_TxS``; the final state is ``h[-1]`` (``h[0]`` when ``reverse``).
  """
  kind = resolve(scan, b_TxS.shape[0])
  unroll = SEQUENTIAL_UNROLL if unroll is None else max(1, min(int(unroll), b_TxS.shape[0]))
  fn = _linear_fast if fast_grad else lambda *args: _LINEAR[args[3]](*args[:3], *args[4:])
  return fn(a, b_TxS, h0_S, kind, reverse, unroll, int(chunk))


def max_plus_scan(log_f: jax.Array, log_i: jax.Array, m0: jax.Array) -> jax.Array:
  """Every ``m_t = max(m_{t-1} + log_f_t, log_i_t)`` (time-major), ``m_{-1} = m0``:
  the running stabilizer of an exponential gate (xLSTM), as one associative scan."""
  log_i = log_i.at[0].set(jnp.maximum(log_i[0], m0 + log_f[0]))

  def compose(first, second):
    f1, i1 = first
    f2, i2 = second
    return f1 + f2, jnp.maximum(i1 + f2, i2)

  return jax.lax.associative_scan(compose, (log_f, log_i), axis=0)[1]


# -- dense recurrences ------------------------------------------------------------------
def _masked(fn, additive, extra, carry, xp_t, hw_t, m_t):
  """The cell's element-wise step; a masked step keeps the carry and emits zeros."""
  new_c, y_t = fn(extra, carry, xp_t + hw_t) if additive else fn(extra, carry, xp_t, hw_t)
  if m_t is None:
    return new_c, y_t
  new_c = jax.tree.map(lambda n, o: jnp.where(m_t, n, o), new_c, carry)
  return new_c, jnp.where(m_t, y_t, 0.0)


def _recurrent_product(cell, carry, w_rec):
  acc = jax.tree.leaves(carry)[0].dtype
  return jnp.matmul(cell.output(carry).astype(w_rec.dtype), w_rec, preferred_element_type=acc)


def _dense_plain(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  fn, additive = cell.elementwise()

  def body(c, inputs):
    xp_t, m_t = inputs
    return _masked(fn, additive, extra, c, xp_t, _recurrent_product(cell, c, w_rec), m_t)
  return jax.lax.scan(body, carry0, (xp_TxBxG, m_TxBx1), reverse=reverse, unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _dense_fast(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  return _dense_plain(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0)


def _dense_fast_fwd(cell, reverse, unroll, w_rec, extra, xp_TxBxG, m_TxBx1, carry0):
  fn, additive = cell.elementwise()

  def body(c, inputs):
    xp_t, m_t = inputs
    hw_t = _recurrent_product(cell, c, w_rec)
    new_c, y_t = _masked(fn, additive, extra, c, xp_t, hw_t, m_t)
    return new_c, (y_t, c, hw_t)  # keep the previous carry and h@W for the backward pass
  carry, (y, prev_carries, hw) = jax.lax.scan(body, carry0, (xp_TxBxG, m_TxBx1),
                                              reverse=reverse, unroll=unroll)
  return (carry, y), (w_rec, extra, xp_TxBxG, m_TxBx1, prev_carries, hw)


def _dense_fast_bwd(cell, reverse, unroll, res, cts):
  w_rec, extra, xp, m, prev_carries, hw = res
  ct_carry, ct_y = cts
  fn, additive = cell.elementwise()
  # A product with the transposed matrix inside the loop becomes XLA:CPU's slower
  # transposed-operand kernel (about 4x the forward product's time for the variational
  # RNN's per-example 50 x 50 weights); the copy made once outside keeps it plain.
  w_rec_T = jnp.transpose(w_rec)

  def body(ct_c, inputs):
    c_prev, xp_t, hw_t, m_t, ct_y_t = inputs
    if additive:  # the step reads only xp + hw: one cotangent serves both (half the stacking)
      _, vjp = jax.vjp(lambda c, z, e: _masked(fn, True, e, c, z, jnp.zeros_like(z), m_t),
                       c_prev, xp_t + hw_t, extra)
      d_c, d_hw, d_extra = vjp((ct_c, ct_y_t))
      d_xp = None
    else:
      _, vjp = jax.vjp(lambda c, x_, h_, e: _masked(fn, False, e, c, x_, h_, m_t),
                       c_prev, xp_t, hw_t, extra)
      d_c, d_xp, d_hw, d_extra = vjp((ct_c, ct_y_t))
    _, out_vjp = jax.vjp(cell.output, c_prev)
    d_h = jnp.matmul(d_hw.astype(w_rec_T.dtype), w_rec_T, preferred_element_type=d_hw.dtype)
    d_c = jax.tree.map(jnp.add, d_c, out_vjp(d_h.astype(d_hw.dtype))[0])
    return d_c, (d_xp, d_hw, d_extra)

  ct_carry0, (d_xp, d_hw, d_extra) = jax.lax.scan(
      body, ct_carry, (prev_carries, xp, hw, m, ct_y), reverse=not reverse, unroll=unroll)
  d_xp = d_hw if d_xp is None else d_xp
  h_prev = cell.output(prev_carries)
  d_w_rec = jnp.einsum("tbh,tbg->hg", h_prev, d_hw)  # one product over all steps
  d_extra = jax.tree.map(lambda g: g.sum(axis=0), d_extra)
  d_m = None if m is None else jnp.zeros_like(m)
  return d_w_rec.astype(w_rec.dtype), d_extra, d_xp, d_m, ct_carry0


_dense_fast.defvjp(_dense_fast_fwd, _dense_fast_bwd)


def dense_scan_inputs(cell: Any, project: Callable, w_rec: jax.Array, extra: dict,
                      x_TxBxD: jax.Array, m_TxBx1: Optional[jax.Array], carry0: Any, *,
                      reverse: bool = False, unroll: int = 1) -> tuple[Any, jax.Array]:
  """:func:`dense_scan` with the input product inside each step (``project(x_t)``, as
  Flax's cells compute it), differentiated by autodiff: the weights' gradients add up in
  the backward loop's carry and no ``T x B x G`` array of products or their cotangents
  is stored. Where the input is much narrower than the projection that storage costs
  XLA:CPU more than one large input product saves (``launch.bench input_product``)."""
  fn, additive = cell.elementwise_in_step()

  def body(c, inputs):
    x_t, m_t = inputs
    return _masked(fn, additive, extra, c, project(x_t), _recurrent_product(cell, c, w_rec), m_t)
  return jax.lax.scan(body, carry0, (x_TxBxD, m_TxBx1), reverse=reverse, unroll=unroll)


class DenseKernel(str, enum.Enum):
  """What runs a dense cell's recurrence. ``SCAN``: ``lax.scan`` (any cell, dtype and
  transformation); ``FUSED``: one call of :mod:`lib.nn.kernels` each way (LSTM and GRU in
  float32 on CPU, reverse-mode gradients); ``AUTO``: ``FUSED`` where it can run, on one
  device (:func:`lib.nn.kernels.choose`) and where :data:`DENSE_AUTO_RULES` names it for
  the backend, else ``SCAN``."""
  AUTO = "auto"
  SCAN = "scan"
  FUSED = "fused"


DENSE_KERNELS = tuple(k.value for k in DenseKernel)
# backend -> the kernel AUTO runs where the fused one can (set "cpu" to SCAN to turn the
# kernels off for a process). cpu: measured, x86_64 2 cores, jax 0.10.2
# (``python -m launch.bench rnn_step``): the fused LSTM and GRU train steps are 1.2-1.9x
# the scan at every shape timed (launch/benchmarks/README.md).
DENSE_AUTO_RULES: dict[str, DenseKernel] = {"cpu": DenseKernel.FUSED}


def fused_unsupported(cell: Any, w_rec: jax.Array, xp_TxBxG: jax.Array, carry0: Any,
                      fast_grad: bool = True) -> str:
  """Why this recurrence cannot run through :mod:`lib.nn.kernels` ('' when it can)."""
  if cell.fused_kernel() is None:
    return "an LSTM or GRU cell"
  if not fast_grad:
    return "fast_grad=True (the kernels have reverse-mode gradients only)"
  return kernels.why_not(w_rec, xp_TxBxG, *jax.tree.leaves(carry0))


def resolve_kernel(kernel: str | DenseKernel, cell: Any, w_rec: jax.Array, xp_TxBxG: jax.Array,
                   carry0: Any, fast_grad: bool = True) -> DenseKernel:
  """The kernel that runs: ``kernel`` itself (``FUSED`` where it cannot run is a one-line
  error saying why), or ``AUTO``'s choice (:func:`lib.nn.kernels.choose`, then
  :data:`DENSE_AUTO_RULES`)."""
  try:
    kernel = DenseKernel(kernel)
  except ValueError:
    raise ConfigError(f"Unknown dense kernel {kernel!r}; expected one of "
                      f"{list(DENSE_KERNELS)}.") from None
  if kernel is DenseKernel.SCAN:
    return kernel
  why = fused_unsupported(cell, w_rec, xp_TxBxG, carry0, fast_grad)
  if not kernels.choose(kernel.value, why, "dense_scan", DenseKernel.SCAN.value):
    return DenseKernel.SCAN
  if kernel is DenseKernel.AUTO:
    return DENSE_AUTO_RULES.get(jax.default_backend(), DenseKernel.SCAN)
  return kernel


def dense_scan(cell: Any, w_rec: jax.Array, extra: dict, xp_TxBxG: jax.Array,
               m_TxBx1: Optional[jax.Array], carry0: Any, *, reverse: bool = False,
               unroll: int = 1, fast_grad: bool = True,
               kernel: str | DenseKernel = DenseKernel.AUTO) -> tuple[Any, jax.Array]:
  """``(final_carry, y_TxBxH)`` of a dense cell (:class:`lib.nn.cells.DenseCell`).

  The scan and its gradient both call the one element-wise function the cell
  names in ``elementwise()``: a cell whose step reads the input and recurrent
  products only through their sum (``AdditiveCell.activate``) gets the cheaper
  backward pass, and any other reads both (``DenseCell.combine``), so no flag can
  make the gradient disagree with the forward pass. ``kernel`` (:class:`DenseKernel`)
  runs an LSTM or GRU through the fused kernels instead, equal up to rounding.
  """
  if resolve_kernel(kernel, cell, w_rec, xp_TxBxG, carry0, fast_grad) is DenseKernel.FUSED:
    return cell.fused_kernel()(w_rec, extra, xp_TxBxG, m_TxBx1, carry0, reverse=reverse)
  scan = _dense_fast if fast_grad else _dense_plain
  return scan(cell, reverse, int(unroll), w_rec, extra, xp_TxBxG, m_TxBx1, carry0)
