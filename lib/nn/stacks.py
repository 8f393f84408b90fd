"""Layers of cells, each reading the outputs of the one below.

:func:`stack` runs ``L`` layers of any cells (one direction or two, dropout on the
connections between layers, every layer's final carry returned) in one of two orders
(:class:`Order`):

* ``layers``: layer by layer, each layer one :func:`lib.nn.recurrence.unroll`
  (its input product hoisted out of the scan, the dense cells' one-product
  ``w_rec`` gradient);
* ``wavefront``: step ``t`` of layer ``l`` and step ``t - 1`` of layer ``l + 1`` are
  independent, so one scan over ``T + L - 1`` wavefront steps runs the ``L``
  layers' steps as one batched step (layer ``l`` is at time ``s - l`` at wavefront
  step ``s``). Fewer, larger steps; the input product of layers above the first
  moves into the scan. Equal to ``layers`` in outputs, carries and gradients
  (tested); for one cell kind of one width, one direction, full BPTT;
* ``cudnn``: each LSTM layer one cuDNN call (:mod:`lib.nn.cudnn`; GPU, plain float32
  LSTMs, one set of weights, padding as ``seq_lengths``), chosen explicitly: a
  vmapped sweep cannot batch the cuDNN call, and ``auto`` cannot see a ``vmap``.

``auto`` picks by platform (:data:`AUTO_RULES`, measured by ``launch.bench ptb_orders``).
"""
from __future__ import annotations

import enum
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import cudnn, recurrence
from lib.nn.cells import Cell, Params, acc_dtype


class Order(enum.Enum):
  LAYERS = "layers"
  WAVEFRONT = "wavefront"
  CUDNN = "cudnn"
  AUTO = "auto"


NAMES = tuple(o.value for o in Order)
# The order `auto` runs on each backend (`layers` where none is listed). On XLA:CPU the
# wavefront is 0.66-0.80x the layer-by-layer PTB LM step: its upper layers' input products move
# into the scan and autodiff sums weight gradients step by step (launch/benchmarks/README.md).
AUTO_RULES = {"cpu": Order.LAYERS}


def parse(order: str | Order) -> Order:
  try:
    return Order(order)
  except ValueError:
    raise ConfigError(f"Unknown stack order {order!r}; expected one of {NAMES}.") from None


def resolve(order: str | Order, cells: Sequence[Cell], bidirectional: bool, truncate: int,
            params: Sequence[Params] = (), masked: bool = False, projected: bool = False
            ) -> Order:
  """The order that runs: ``auto`` by platform, where the wavefront applies; an order
  that cannot run these layers is a one-line error."""
  order = parse(order)
  if order is Order.CUDNN:
    why = (cudnn.unsupported(cells, params)
           or ("padding as seq_lengths, not a mask" if masked else "")
           or ("full BPTT (truncate=0)" if truncate else "")
           or ("inputs, not projections (projected=False)" if projected else ""))
    if why:
      raise ConfigError(f"stack: order='cudnn' needs {why}; use order='layers'.")
    return order
  why = _no_wavefront(cells, bidirectional, truncate)
  if order is Order.AUTO:
    return Order.LAYERS if why else AUTO_RULES.get(jax.default_backend(), Order.LAYERS)
  if order is Order.WAVEFRONT and why:
    raise ConfigError(f"stack: the wavefront order needs {why}; use order='layers'.")
  return order


def _no_wavefront(cells: Sequence[Cell], bidirectional: bool, truncate: int) -> str:
  if bidirectional:
    return "one direction (a bidirectional layer reads all of the layer below)"
  if truncate:
    return "full BPTT (truncate=0)"
  if any(c != cells[0] for c in cells):
    return "one cell kind and width for every layer"
  return ""


def bidirectional(fwd: Cell, bwd: Cell, params: dict[str, Params], x_BxTxD: jax.Array, *,
                  mask_BxT: Optional[jax.Array] = None,
                  unroll: int | bool | None = None, fast_grad: bool = True
                  ) -> tuple[tuple[Any, Any], jax.Array]:
  """A forward and a reverse pass (params ``{'fwd': ..., 'bwd': ...}``).

  Returns ``((fwd_carry, bwd_carry), y_BxTx(Hf+Hb))`` with the two outputs
  concatenated per step, as Keras' ``Bidirectional(merge_mode='concat')``.
  """
  kw = dict(mask_BxT=mask_BxT, unroll=unroll, fast_grad=fast_grad)
  cf, yf = recurrence.unroll(fwd, params["fwd"], x_BxTxD, **kw)
  cb, yb = recurrence.unroll(bwd, params["bwd"], x_BxTxD, reverse=True, **kw)
  return (cf, cb), jnp.concatenate([yf, yb], axis=-1)


def init_bidirectional(fwd: Cell, bwd: Cell, key: jax.Array, in_dim: int) -> dict[str, Params]:
  kf, kb = jax.random.split(key)
  return {"fwd": fwd.init(kf, in_dim), "bwd": bwd.init(kb, in_dim)}


def init_stack(cells: Sequence[Cell], key: jax.Array, in_dim: int, *,
               bidirectional: bool = False) -> list[Params]:
  """Parameters of :func:`stack`: layer ``l`` reads layer ``l-1``'s outputs (``hidden``
  units, twice that with ``bidirectional``, whose layers are ``{'fwd', 'bwd'}``)."""
  keys = jax.random.split(key, len(cells))
  width = 2 if bidirectional else 1
  dims = [in_dim] + [width * c.hidden for c in cells[:-1]]
  if bidirectional:
    return [init_bidirectional(c, c, k, d) for c, k, d in zip(cells, keys, dims)]
  return [c.init(k, d) for c, k, d in zip(cells, keys, dims)]


def _off(rate, key: Optional[jax.Array]) -> bool:
  """No dropout: no key, or a Python rate of 0 (a traced rate always draws)."""
  return key is None or (isinstance(rate, (int, float)) and rate <= 0.0)


def drop(x: jax.Array, rate, key: Optional[jax.Array]) -> jax.Array:
  """Inverted dropout of ``x``'s units; a Python rate of 0 (or no key) is the identity,
  a traced rate (trials vmapped over it) always draws."""
  if _off(rate, key):
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


def stack(cells: Sequence[Cell], params: Sequence[Params], x_BxTxD: Any, *,
          mask_BxT: Optional[jax.Array] = None, seq_lengths: Optional[jax.Array] = None,
          initial_carries: Optional[Sequence[Any]] = None,
          dropout: Any = 0.0, rng: Optional[jax.Array] = None, dropout_ends: bool = False,
          projected: bool = False, bidirectional: bool = False, truncate: int = 0,
          unroll: int | bool | None = None, fast_grad: bool = True,
          order: str | Order = Order.AUTO) -> tuple[tuple[Any, ...], jax.Array]:
  """Runs ``L = len(cells)`` layers: ``(carries, y_BxTxH)``.

  Args:
    cells, params: one cell and its parameters per layer (:func:`init_stack`).
    x_BxTxD: inputs ``(B, T, D)``. With ``projected``, layer 0's input projection
      instead (``D = proj_width``; an embedding row, notes 001's ``U x_t``); with
      ``bidirectional`` too, a pair ``(fwd, bwd)`` of them.
    mask_BxT, seq_lengths: padding, as for :func:`lib.nn.recurrence.unroll`.
    initial_carries: one carry per layer (``(fwd, bwd)`` pairs when bidirectional).
    dropout, rng: inverted dropout of the connections between layers (the
      non-recurrent ones); ``dropout_ends`` also drops the stack's input (unless
      projected) and output (Zaremba et al. 2014). ``split(rng, L + 1)``: key ``l``
      drops layer ``l``'s input, key ``L`` the output.
    bidirectional: every layer a forward and a reverse pass, outputs concatenated.
    truncate: notes 001's per-output truncated BPTT (one layer, no mask).
    unroll, fast_grad: as for :func:`lib.nn.recurrence.unroll` (``layers`` order).
    order: ``layers``, ``wavefront`` or ``auto`` (:class:`Order`).

  Returns:
    ``(carries, y_BxTxH)``: each layer's final carry (a ``(fwd, bwd)`` pair when
    bidirectional) and the top layer's outputs (``2H`` wide when bidirectional).
  """
  L = len(cells)
  if len(params) != L:
    raise ConfigError(f"stack: {L} cells but {len(params)} layers of parameters.")
  if truncate and (L != 1 or mask_BxT is not None or seq_lengths is not None):
    raise ConfigError("stack: truncate > 0 needs one layer and no padding mask.")
  keys = list(jax.random.split(rng, L + 1)) if rng is not None else [None] * (L + 1)
  if not dropout_ends:
    keys[0] = keys[L] = None
  if projected:
    keys[0] = None
  ordered = resolve(order, cells, bidirectional, truncate, params, mask_BxT is not None,
                    projected)
  run = {Order.WAVEFRONT: _wavefront, Order.CUDNN: _cudnn}.get(ordered, _layerwise)
  carries, h = run(cells, params, x_BxTxD, mask_BxT=mask_BxT, seq_lengths=seq_lengths,
                   initial_carries=initial_carries, rate=dropout, keys=keys, projected=projected,
                   bidirectional=bidirectional, truncate=truncate, unroll=unroll,
                   fast_grad=fast_grad)
  return carries, drop(h, dropout, keys[L])


def _layerwise(cells, params, x, *, mask_BxT, seq_lengths, initial_carries, rate, keys,
               projected, bidirectional, truncate, unroll, fast_grad):
  """The ``layers`` order: one unroll (two when bidirectional) per layer."""
  carries, h = [], x
  for l, (cell, p) in enumerate(zip(cells, params)):
    proj = projected and l == 0
    if not proj:
      h = drop(h, rate, keys[l])
    c0 = None if initial_carries is None else initial_carries[l]
    kw = dict(initial_carry=c0, projected=proj)
    if truncate:
      c, h = recurrence.unroll_truncated(cell, p, h, truncate, **kw)
      carries.append(c)
      continue
    kw.update(mask_BxT=mask_BxT, seq_lengths=seq_lengths, unroll=unroll, fast_grad=fast_grad)
    if not bidirectional:
      c, h = recurrence.unroll(cell, p, h, **kw)
      carries.append(c)
      continue
    xf, xb = h if proj else (h, h)
    c0f, c0b = (None, None) if c0 is None else c0
    cf, yf = recurrence.unroll(cell, p["fwd"], xf, **{**kw, "initial_carry": c0f})
    cb, yb = recurrence.unroll(cell, p["bwd"], xb, reverse=True, **{**kw, "initial_carry": c0b})
    carries.append((cf, cb))
    h = jnp.concatenate([yf, yb], axis=-1)
  return tuple(carries), h


def _cudnn(cells, params, x, *, mask_BxT, seq_lengths, initial_carries, rate, keys,
           projected, bidirectional, truncate, unroll, fast_grad):
  """The ``cudnn`` order: one cuDNN call per layer, rnnlab's dropout between them."""
  del mask_BxT, truncate, unroll, fast_grad, projected  # resolve() allowed none of them
  carries, h = [], x
  for l, (cell, p) in enumerate(zip(cells, params)):
    h = drop(h, rate, keys[l])
    c0 = None if initial_carries is None else initial_carries[l]
    c, h = cudnn.lstm_layer(cell, p, h, seq_lengths=seq_lengths, initial_carry=c0,
                            bidirectional=bidirectional)
    carries.append(c)
  return tuple(carries), h


def _wavefront(cells, params, x, *, mask_BxT, seq_lengths, initial_carries, rate, keys,
               projected, bidirectional, truncate, unroll, fast_grad):
  """The ``wavefront`` order: one scan over ``T + L - 1`` steps of all layers at once."""
  del bidirectional, truncate, fast_grad  # resolve() allowed neither; autodiff differentiates
  cell, L = cells[0], len(cells)
  x = jnp.asarray(x)
  B, T = x.shape[:2]
  mask = recurrence._mask(mask_BxT, seq_lengths, (B,), T)
  x = x if projected else drop(x, rate, keys[0])
  xp0 = x if projected else cell.project(params[0], x)
  acc = acc_dtype(xp0.dtype if cell.dtype is None else cell.dtype)
  S = T + L - 1
  xp0_SxBxG = jnp.pad(jnp.swapaxes(xp0.astype(acc), 0, 1), ((0, L - 1), (0, 0), (0, 0)))
  m_SxLxBx1 = _wave_mask(mask, B, T, L, acc)
  dropped = not all(_off(rate, k) for k in keys[1:L])
  keep_SxLxBxH = _wave_dropout(rate, keys, B, T, L, cell.hidden, acc) if dropped else None
  carry0 = tuple(recurrence._initial_carry(cell, (B,), acc, None if initial_carries is None
                                           else initial_carries[l]) for l in range(L))
  carry0_L = jax.tree.map(lambda *c: jnp.stack(c), *carry0)
  rec_L = jax.tree.map(lambda *p: jnp.stack(p),
                       *[{k: v for k, v in p.items() if k not in ("w_x", "b")} for p in params])
  upper = [{k: p[k] for k in ("w_x", "b") if k in p} for p in params[1:]]
  upper_L = jax.tree.map(lambda *p: jnp.stack(p), *upper) if upper else None
  step = jax.vmap(cell.step)

  def body(state, inputs):
    carry_L, below_LxBxH = state
    xp0_BxG, m_LxBx1, keep_LxBxH = inputs
    xp_LxBxG = xp0_BxG[None]
    if upper_L is not None:  # layers 1.. read the layer below's previous wavefront output
      xin = (below_LxBxH if keep_LxBxH is None else below_LxBxH * keep_LxBxH)[:-1]
      xp_up = jax.vmap(cell.project)(upper_L, xin).astype(acc)
      xp_LxBxG = jnp.concatenate([xp_LxBxG, xp_up], 0)
    new_L, y_LxBxH = step(rec_L, carry_L, xp_LxBxG)
    carry_L = jax.tree.map(lambda n, o: jnp.where(m_LxBx1 > 0, n.astype(o.dtype), o), new_L,
                           carry_L)
    y_LxBxH = jnp.where(m_LxBx1 > 0, y_LxBxH.astype(acc), 0.0)
    return (carry_L, y_LxBxH), y_LxBxH[-1]

  below0 = jnp.zeros((L, B, cell.hidden), acc)
  unroll = S if unroll is True else (unroll or 1)
  (carry_L, _), top_SxBxH = jax.lax.scan(body, (carry0_L, below0),
                                         (xp0_SxBxG, m_SxLxBx1, keep_SxLxBxH), unroll=unroll)
  out_dtype = cell.compute_dtype(x, params[0])
  carries = tuple(jax.tree.map(lambda c: c[l], carry_L) for l in range(L))
  return carries, jnp.swapaxes(top_SxBxH[L - 1:], 0, 1).astype(out_dtype)


def _wave_mask(mask_BxT, B: int, T: int, L: int, acc) -> jax.Array:
  """``(T+L-1) x L x B x 1``: layer ``l`` is real at wavefront step ``s`` when time
  ``s - l`` is a real step."""
  m_TxB = jnp.ones((T, B), acc) if mask_BxT is None else jnp.swapaxes(mask_BxT, 0, 1).astype(acc)
  padded = jnp.pad(m_TxB, ((L - 1, L - 1), (0, 0)))           # index t + L - 1 holds time t
  s = jnp.arange(T + L - 1)[:, None] - jnp.arange(L)[None, :]  # time of layer l at step s
  return padded[s + L - 1][..., None]


def _wave_dropout(rate, keys, B: int, T: int, L: int, H: int, acc) -> jax.Array:
  """``(T+L-1) x L x B x H`` keep-and-scale factors of each layer's output as the layer
  above reads it: the masks the ``layers`` order draws (key ``l + 1`` for layer ``l``'s
  output, ``B x T x H``), placed at the wavefront step after the one that made it."""
  ones = jnp.ones((B, T, H), acc)
  per_layer = [drop(ones, rate, keys[l + 1]) if l + 1 < L else ones for l in range(L)]
  f_LxTxBxH = jnp.swapaxes(jnp.stack(per_layer), 1, 2)
  # Layer l's output of time t is made at step t + l and read at step t + l + 1.
  s = jnp.arange(T + L - 1)[:, None] - 1 - jnp.arange(L)[None, :]  # its time, read at step s
  padded = jnp.pad(f_LxTxBxH, ((0, 0), (0, 1), (0, 0), (0, 0)), constant_values=1.0)
  idx = jnp.where((s >= 0) & (s < T), s, T)                          # T: the padding row
  return padded[jnp.arange(L)[None, :], idx]
