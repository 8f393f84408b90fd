"""The cell contract and the registry of cells by name.

A cell is a frozen dataclass of hyperparameters; its parameters are a plain dict.
Every cell has

* ``init(key, in_dim) -> params``: ``w_x`` (``D x proj_width``) and ``b`` (the
  input's affine map, ``init_input``) and the recurrence's own (``init_recurrent``);
* ``project(params, x_...xD)``: ``x @ w_x + b`` for *all* steps in one product,
  hoisted out of the scan. It is affine in ``x`` for every cell, so an embedding
  row can be a layer's projection (notes 001's ``U[:, x_t]``) and one-hot inputs
  a row gather of ``w_x``;
* ``run(params, xp_TxBxG, m_TxBx1, carry0, ...) -> (carry, y_TxBxH)``: the
  recurrence over projected inputs (what :func:`lib.nn.recurrence.unroll` calls),
  and ``step(params, carry, xp_t)``, one step of it (generation);
* a carry that is the output ``h`` itself, or a tuple whose first element is
  ``h`` (LSTM ``(h, c)``; LRU and mLSTM ``(h, state...)``): ``output(carry)``.

Three families implement ``run``:

* :class:`DenseCell`: ``carry_t = combine(carry_{t-1}, xp_t, h_{t-1} @ w_rec)``
  (Elman, LSTM, GRU), by :func:`lib.nn.scans.dense_scan`;
* :class:`LinearCell`: ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` computed
  for every step outside the scan (``coefficients``), then
  :func:`lib.nn.scans.linear_scan` (sequential, associative or chunked: the
  cell's ``scan``), then ``readout`` over all steps;
* matrix memories (mLSTM, :mod:`lib.nn.cells.mlstm`): a ``LinearCell`` whose
  state is a matrix per head, with a chunkwise form of its own.

Precision: ``dtype`` is the compute type of the matrix products (``None``: the
promoted type of input and parameters), ``param_dtype`` that of ``init``. The
products accumulate in float32 (``preferred_element_type``), and the element-wise
step, the scans and the carries run in float32 (``acc_dtype``); outputs come back
in ``dtype``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Optional

import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import initializers, scans

Params = dict[str, jax.Array]
Carry = Any


def output_of(carry: Carry) -> jax.Array:
  """The output ``h`` a carry holds: the carry itself, or its first element."""
  return carry[0] if isinstance(carry, tuple) else carry


def acc_dtype(dtype) -> jnp.dtype:
  """The accumulation type under compute type ``dtype``: float32 at least."""
  return jnp.promote_types(dtype, jnp.float32)


def _as_dtype(value):
  return None if value is None or value == "" else jnp.dtype(value)


def matmul(x: jax.Array, w: jax.Array, dtype) -> jax.Array:
  """``x @ w`` with both operands in ``dtype``, accumulated in :func:`acc_dtype`; ``x``'s
  leading axes are flattened into one, so the weight's gradient is a 2-D product (XLA:CPU
  runs a contraction over two axes, ``(B, T)``, through a slower path)."""
  if w.ndim != 2 or x.ndim < 2:
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=acc_dtype(dtype))
  y = jnp.matmul(x.reshape(-1, x.shape[-1]).astype(dtype), w.astype(dtype),
                 preferred_element_type=acc_dtype(dtype))
  return y.reshape(*x.shape[:-1], w.shape[-1])


@dataclasses.dataclass(frozen=True)
class Cell:
  """What every cell is (see the module docstring). Subclasses set ``proj_width``,
  ``init_recurrent``, ``run`` and ``step`` (each family does)."""
  hidden: int
  use_bias: bool = True
  kernel_init: str = "inv_sqrt_fan_in"
  dtype: Any = None
  param_dtype: Any = "float32"

  def __post_init__(self):
    if not isinstance(self.hidden, int) or self.hidden <= 0:
      raise ConfigError(f"{type(self).__name__}: hidden={self.hidden!r}: expected a positive int.")
    object.__setattr__(self, "dtype", _as_dtype(self.dtype))
    object.__setattr__(self, "param_dtype", _as_dtype(self.param_dtype))

  # -- parameters ---------------------------------------------------------------------
  @property
  def proj_width(self) -> int:
    """The width ``G`` of ``project``'s output."""
    raise NotImplementedError

  def init(self, key: jax.Array, in_dim: int) -> Params:
    k_in, k_rec = jax.random.split(key)
    return {**self.init_input(k_in, in_dim), **self.init_recurrent(k_rec)}

  def init_input(self, key: jax.Array, in_dim: int) -> Params:
    """``w_x`` (and ``b``): the input's affine map."""
    G = self.proj_width
    params = {"w_x": initializers.get(self.kernel_init)(key, (in_dim, G), self.param_dtype)}
    if self.use_bias:
      params["b"] = jnp.zeros((G,), self.param_dtype)
    return params

  def init_recurrent(self, key: jax.Array) -> Params:
    """The recurrence's own parameters (everything but ``w_x`` and ``b``)."""
    return {}

  # -- precision ----------------------------------------------------------------------
  def compute_dtype(self, x: jax.Array, params: Params) -> jnp.dtype:
    if self.dtype is not None:
      return self.dtype
    return jnp.result_type(x.dtype, *[p.dtype for p in jax.tree.leaves(params)
                                      if jnp.issubdtype(p.dtype, jnp.floating)])

  # -- carries ------------------------------------------------------------------------
  def zero_carry(self, batch_shape: tuple[int, ...], dtype=jnp.float32) -> Carry:
    return jnp.zeros((*batch_shape, self.hidden), acc_dtype(dtype))

  def output(self, carry: Carry) -> jax.Array:
    """The hidden vector ``h`` a carry exposes."""
    return output_of(carry)

  def with_output(self, carry: Carry, h: jax.Array) -> Carry:
    """``carry`` with its output replaced by ``h`` (a learned initial state)."""
    return (h.astype(carry[0].dtype), *carry[1:]) if isinstance(carry, tuple) else h.astype(carry.dtype)

  def doubled(self) -> "Cell":
    """The cell whose carry is two of this cell's joined (:meth:`join`): a
    bidirectional encoder's final states feeding one decoder."""
    return dataclasses.replace(self, hidden=2 * self.hidden)

  def join(self, first: Carry, second: Carry) -> Carry:
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b], -1), first, second)

  # -- running ------------------------------------------------------------------------
  def project(self, params: Params, x_xD: jax.Array) -> jax.Array:
    """``x @ w_x + b`` over any leading axes, in :func:`acc_dtype`."""
    cd = self.compute_dtype(x_xD, params)
    xp = matmul(x_xD, params["w_x"], cd)
    return xp + params["b"].astype(xp.dtype) if "b" in params else xp

  def project_ids(self, params: Params, ids: jax.Array) -> jax.Array:
    """``project`` of one-hot inputs: rows of ``w_x`` (and ``b``)."""
    dtype = acc_dtype(self.dtype or params["w_x"].dtype)
    xp = params["w_x"][ids].astype(dtype)
    return xp + params["b"].astype(dtype) if "b" in params else xp

  def step(self, params: Params, carry: Carry, xp_t: jax.Array) -> tuple[Carry, jax.Array]:
    """One step over projected inputs ``xp_t`` (``B x G``): ``(carry, y_t)``."""
    raise NotImplementedError

  def run(self, params: Params, xp_TxBxG: jax.Array, m_TxBx1: Optional[jax.Array],
          carry0: Carry, *, reverse: bool = False, unroll: Optional[int] = None,
          fast_grad: bool = True) -> tuple[Carry, jax.Array]:
    """The recurrence over every step (time-major): ``(final_carry, y_TxBxH)``.
    Masked steps (``m = 0``) keep the carry and emit zeros."""
    raise NotImplementedError


# -- dense cells -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DenseCell(Cell):
  """``carry_t = combine(carry_{t-1}, xp_t, h_{t-1} @ w_rec)`` with ``w_rec``
  (``H x G``) and ``G = gates * H`` gate pre-activations."""
  recurrent_init: str = "inv_sqrt_fan_in"
  gates: ClassVar[int] = 1

  @property
  def proj_width(self) -> int:
    return self.gates * self.hidden

  def init_recurrent(self, key):
    shape = (self.hidden, self.proj_width)
    return {"w_rec": initializers.get(self.recurrent_init)(key, shape, self.param_dtype)}

  def combine(self, extra: Params, carry: Carry, xp_t: jax.Array, hw_t: jax.Array):
    """The step's element-wise part, given the input and recurrent products:
    ``(carry, y_t)``. Only ``extra_params`` may be read from ``extra``."""
    raise NotImplementedError

  def extra_params(self, params: Params) -> Params:
    """Parameters ``combine`` reads (beyond ``w_x``, ``w_rec``, ``b``)."""
    return {}

  def elementwise(self) -> tuple[Callable, bool]:
    """The function the scan and its gradient call, and whether it takes the sum
    ``xp + hw`` (one argument) rather than both products."""
    return self.combine, False

  def elementwise_in_step(self) -> tuple[Callable, bool]:
    """:meth:`elementwise` for :meth:`run_inputs`, whose gradient is autodiff's: a cell
    may give the same function in a form autodiff differentiates faster."""
    return self.elementwise()

  def fused_kernel(self) -> Optional[Callable]:
    """The fused layer of :mod:`lib.nn.kernels.rnn` equal to this cell's scan, called as
    ``fn(w_rec, extra, xp_TxBxG, m_TxBx1, carry0, reverse=)``; ``None``: no such kernel."""
    return None

  def step(self, params, carry, xp_t):
    cd = self.dtype or params["w_rec"].dtype
    hw = matmul(self.output(carry), params["w_rec"], cd)
    extra = {k: v.astype(hw.dtype) for k, v in self.extra_params(params).items()}
    return self.combine(extra, carry, xp_t.astype(hw.dtype), hw)

  def run(self, params, xp_TxBxG, m_TxBx1, carry0, *, reverse=False, unroll=None,
          fast_grad=True, kernel=scans.DenseKernel.AUTO):
    acc = xp_TxBxG.dtype
    w_rec = params["w_rec"].astype(self.dtype or params["w_rec"].dtype)
    extra = {k: v.astype(acc) for k, v in self.extra_params(params).items()}
    return scans.dense_scan(self, w_rec, extra, xp_TxBxG, m_TxBx1, carry0, reverse=reverse,
                            unroll=1 if unroll is None else unroll, fast_grad=fast_grad,
                            kernel=kernel)

  def run_inputs(self, params, x_TxBxD, m_TxBx1, carry0, *, acc, reverse=False, unroll=None):
    """:meth:`run` on the inputs themselves, their product with ``w_x`` taken inside each
    step (:func:`lib.nn.scans.dense_scan_inputs`), accumulated in ``acc``."""
    w_rec = params["w_rec"].astype(self.dtype or params["w_rec"].dtype)
    extra = {k: v.astype(acc) for k, v in self.extra_params(params).items()}
    return scans.dense_scan_inputs(
        self, lambda x_t: self.project(params, x_t).astype(acc), w_rec, extra, x_TxBxD,
        m_TxBx1, carry0, reverse=reverse, unroll=1 if unroll is None else unroll)


@dataclasses.dataclass(frozen=True)
class AdditiveCell(DenseCell):
  """A dense cell whose step reads the two products only through their sum
  ``z_t = xp_t + h_{t-1} @ w_rec``: it defines ``activate`` (not ``combine``),
  and its backward pass needs one cotangent for both products."""

  def activate(self, extra: Params, carry: Carry, z_t: jax.Array):
    raise NotImplementedError

  def combine(self, extra, carry, xp_t, hw_t):
    return self.activate(extra, carry, xp_t + hw_t)

  def elementwise(self):
    return self.activate, True


# -- element-wise linear recurrences -------------------------------------------------------
def _last_real(y_TxBxH, m_TxBx1, y0_BxH, reverse):
  """The output at the last step a scan processed for real (the carry's ``h``)."""
  if m_TxBx1 is None:
    return y_TxBxH[0 if reverse else -1]
  T = y_TxBxH.shape[0]
  real_TxB = m_TxBx1[..., 0] > 0
  t = jnp.arange(T)[:, None]
  idx_B = (jnp.min(jnp.where(real_TxB, t, T), 0) if reverse
           else jnp.max(jnp.where(real_TxB, t, -1), 0))
  picked = jnp.take_along_axis(y_TxBxH, jnp.clip(idx_B, 0, T - 1)[None, :, None], 0)[0]
  return jnp.where(real_TxB.any(0)[:, None], picked, y0_BxH)


@dataclasses.dataclass(frozen=True)
class LinearCell(Cell):
  """``h_t = a_t * h_{t-1} + b_t`` element-wise, ``y_t = readout(h_t, xp_t)``.

  Subclasses define ``coefficients`` (``a_t, b_t`` from the projected inputs, for
  every step at once) and, when the output is not the state itself, ``readout``
  with ``carries_output = True`` (the carry is then ``(y, state)``).
  """
  scan: str = "auto"     # a lib.nn.scans.ScanType name
  chunk: int = 0         # steps per chunk of the chunked scan (0: scans.DEFAULT_CHUNK)
  carries_output: ClassVar[bool] = False

  def __post_init__(self):
    super().__post_init__()
    scans.parse(self.scan)

  @property
  def state_width(self) -> int:
    return self.hidden

  def zero_state(self, batch_shape, dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.state_width), acc_dtype(dtype))

  def zero_carry(self, batch_shape, dtype=jnp.float32):
    state = self.zero_state(batch_shape, dtype)
    if self.carries_output:
      return (jnp.zeros((*batch_shape, self.hidden), acc_dtype(dtype)), state)
    return state

  def state_of(self, carry):
    return carry[1] if self.carries_output else carry

  def carry_of(self, state, y):
    return (y.astype(acc_dtype(y.dtype)), state) if self.carries_output else state

  def coefficients(self, params: Params, xp: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(a, b)`` for projected inputs ``xp`` (``... x G``), each ``... x S``."""
    raise NotImplementedError

  def readout(self, params: Params, h: jax.Array, xp: jax.Array) -> jax.Array:
    """The output at each step from the state (and the step's input)."""
    return h

  def step(self, params, carry, xp_t):
    a, b = self.coefficients(params, xp_t)
    state = a * self.state_of(carry) + b
    y = self.readout(params, state, xp_t)
    return self.carry_of(state, y), y

  def run(self, params, xp_TxBxG, m_TxBx1, carry0, *, reverse=False, unroll=None,
          fast_grad=True):
    a, b = self.coefficients(params, xp_TxBxG)
    if m_TxBx1 is not None:  # a masked step: a = 1, b = 0 keep the state
      a = jnp.where(m_TxBx1 > 0, a, jnp.ones((), a.dtype))
      b = jnp.where(m_TxBx1 > 0, b, jnp.zeros((), b.dtype))
    h = scans.linear_scan(a, b, self.state_of(carry0), reverse=reverse, scan=self.scan,
                          unroll=unroll, chunk=self.chunk, fast_grad=fast_grad)
    y = self.readout(params, h, xp_TxBxG)
    if m_TxBx1 is not None:
      y = jnp.where(m_TxBx1 > 0, y, 0.0)
    y_last = _last_real(y, m_TxBx1, self.output(carry0), reverse) if self.carries_output else None
    return self.carry_of(h[0 if reverse else -1], y_last), y


# -- the registry -------------------------------------------------------------------------
_REGISTRY: dict[str, tuple[type, dict[str, Any]]] = {}
ALIASES = {"simple": "elman"}


def register(name: str, **defaults: Any) -> Callable[[type], type]:
  """Class decorator: ``make(name, hidden, **kwargs)`` builds the cell (with
  ``defaults`` under ``kwargs``). Registering is all a new cell needs to be
  selectable by ``model.cell`` and covered by the generated tests."""
  def deco(cls: type) -> type:
    if name in _REGISTRY:
      raise ValueError(f"A cell named {name!r} is already registered.")
    _REGISTRY[name] = (cls, dict(defaults))
    return cls
  return deco


def names() -> tuple[str, ...]:
  """Every registered cell name, in registration order."""
  return tuple(_REGISTRY)


def choices() -> tuple[str, ...]:
  """Every name :func:`make` accepts (names and aliases): a config rule's choices."""
  return (*_REGISTRY, *ALIASES)


DTYPES = ("float32", "bfloat16", "float16", "float64")  # a config's model.dtype


def config_choices(*keys: str, section: str = "model") -> dict[str, tuple]:
  """The ``choices`` of an experiment's ``CONFIG_RULES`` for the cell keys it has
  (``'cell'``, ``'scan'``, ``'dtype'``): ``{'model.cell': (...), ...}``."""
  table = {"cell": choices(), "scan": scans.NAMES, "dtype": DTYPES}
  return {f"{section}.{k}": table[k] for k in keys}


def _lookup(name: str) -> tuple[type, dict[str, Any]]:
  name = ALIASES.get(name, name)
  if name not in _REGISTRY:
    raise ConfigError(f"Unknown cell {name!r}; expected one of {list(_REGISTRY)}.")
  return _REGISTRY[name]


def fields(name: str) -> frozenset[str]:
  """The keyword arguments ``make(name, ...)`` accepts."""
  return frozenset(f.name for f in dataclasses.fields(_lookup(name)[0])) - {"hidden"}


def make(name: str, hidden: int, **kwargs: Any) -> Cell:
  """Builds a registered cell by name; an unknown name or keyword is a one-line error."""
  cls, defaults = _lookup(name)
  unknown = sorted(set(kwargs) - fields(name))
  if unknown:
    raise ConfigError(f"Cell {name!r} has no option {unknown}; its options: {sorted(fields(name))}.")
  return cls(hidden=hidden, **{**defaults, **kwargs})


def make_supported(name: str, hidden: int, **kwargs: Any) -> Cell:
  """:func:`make` with only the options this cell has (a model's settings that
  apply to some cells: ``recurrent_init``, ``forget_bias``, ...)."""
  ok = fields(name)
  return make(name, hidden, **{k: v for k, v in kwargs.items() if k in ok})
