"""Element-wise linear recurrences ``h_t = a_t * h_{t-1} + b_t``: any linear scan runs them.

Each cell computes ``a_t`` and ``b_t`` for every step from its projected inputs
(``coefficients``, outside the scan), and its output from the states
(``readout``, also outside): the notes' linear cell, a plain diagonal recurrence,
the LRU, minGRU, minLSTM and the RG-LRU, each with its paper's initialisation.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from lib.nn import initializers
from lib.nn.cells.base import LinearCell, acc_dtype, matmul, register


def _ring_log_radius(key, shape, r_min: float, r_max: float):
  """``log r`` with ``r^2`` uniform in ``[r_min^2, r_max^2]`` (uniform on the ring's area)."""
  u = jax.random.uniform(key, shape)
  return 0.5 * jnp.log(u * (r_max ** 2 - r_min ** 2) + r_min ** 2)


def _candidate(kind: str, x: jax.Array) -> jax.Array:
  """minGRU/minLSTM's candidate state: ``Linear(x)`` (``identity``) or the paper's
  positive ``g(x) = x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below (its log-space form)."""
  if kind == "identity":
    return x
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


@register("linear")
@dataclasses.dataclass(frozen=True)
class Linear(LinearCell):
  """Notes 003's linear cell, ``s_t = x_t w_x + s_{t-1} * w_rec`` with ``w_rec`` a
  vector (a scalar at ``hidden=1``, the notes' form), both weights from U(-0.1, 0.1).
  With ``w_x = w_rec = 1`` it counts the ones of its input."""
  use_bias: bool = False
  kernel_init: str = "uniform:0.1"
  recurrent_init: str = "uniform:0.1"

  @property
  def proj_width(self):
    return self.hidden

  def init_recurrent(self, key):
    init = initializers.get(self.recurrent_init)
    return {"w_rec": init(key, (self.hidden,), self.param_dtype)}

  def coefficients(self, params, xp):
    return jnp.broadcast_to(params["w_rec"].astype(xp.dtype), xp.shape), xp


@register("diagonal")
@dataclasses.dataclass(frozen=True)
class Diagonal(LinearCell):
  """A plain diagonal linear recurrence, ``h_t = a * h_{t-1} + x_t W + b``, with a
  learned decay ``a = sigmoid(a_logit)`` in (0, 1) (stable by construction), drawn
  uniformly from ``[min_rad, max_rad]``."""
  min_rad: float = 0.9
  max_rad: float = 0.999

  @property
  def proj_width(self):
    return self.hidden

  def init_recurrent(self, key):
    a = jax.random.uniform(key, (self.hidden,), minval=self.min_rad, maxval=self.max_rad)
    return {"a_logit": jnp.log(a / (1.0 - a)).astype(self.param_dtype)}

  def coefficients(self, params, xp):
    a = jax.nn.sigmoid(params["a_logit"].astype(xp.dtype))
    return jnp.broadcast_to(a, xp.shape), xp


@register("lru")
@dataclasses.dataclass(frozen=True)
class LRU(LinearCell):
  """The Linear Recurrent Unit (Orvieto et al. 2023; minimal-LRU's equations):

  ``lambda = exp(-exp(nu_log) + i exp(theta_log))``, ``h_t = lambda * h_{t-1} +
  gamma * (B x_t)`` (complex, ``state`` units), ``y_t = Re(C h_t) + D x_t``, with
  ``gamma = exp(gamma_log)`` initialised at ``sqrt(1 - |lambda|^2)``. ``lambda`` is
  drawn uniformly on the ring ``r_min <= |lambda| <= r_max`` with phase in
  ``[0, max_phase]``: the defaults are for long sequences (minimal-LRU's are
  ``r`` in [0, 1], phase up to 2 pi). ``w_x`` packs ``[B_re | B_im | D]``, with ``D``
  a ``D_in x hidden`` matrix (the paper's is diagonal, ``D_in = hidden``).
  """
  state: int = 0            # complex state units (0: hidden)
  r_min: float = 0.9
  r_max: float = 0.999
  max_phase: float = math.pi / 10
  use_bias: bool = False
  carries_output = True

  @property
  def state_width(self):
    return self.state or self.hidden

  @property
  def proj_width(self):
    return 2 * self.state_width + self.hidden

  def doubled(self):
    return dataclasses.replace(self, hidden=2 * self.hidden, state=2 * self.state_width)

  def init_input(self, key, in_dim):
    N, pd = self.state_width, self.param_dtype
    k_b, k_d = jax.random.split(key)
    B = jax.random.normal(k_b, (in_dim, 2 * N), pd) / math.sqrt(2 * in_dim)
    D = jax.random.normal(k_d, (in_dim, self.hidden), pd) / math.sqrt(in_dim)
    params = {"w_x": jnp.concatenate([B, D], -1)}
    if self.use_bias:
      params["b"] = jnp.zeros((self.proj_width,), pd)
    return params

  def init_recurrent(self, key):
    N, H, pd = self.state_width, self.hidden, self.param_dtype
    k_nu, k_th, k_c = jax.random.split(key, 3)
    nu_log = jnp.log(-_ring_log_radius(k_nu, (N,), self.r_min, self.r_max))
    theta_log = jnp.log(self.max_phase * jax.random.uniform(k_th, (N,)))
    gamma_log = 0.5 * jnp.log(1.0 - jnp.exp(-2.0 * jnp.exp(nu_log)))
    c = jax.random.normal(k_c, (2, N, H)) / math.sqrt(N)
    return {k: v.astype(pd) for k, v in dict(
        nu_log=nu_log, theta_log=theta_log, gamma_log=gamma_log, c_re=c[0], c_im=c[1]).items()}

  def zero_state(self, batch_shape, dtype=jnp.float32):
    return jnp.zeros((*batch_shape, self.state_width), jnp.promote_types(acc_dtype(dtype), jnp.complex64))

  def coefficients(self, params, xp):
    N = self.state_width
    p = {k: params[k].astype(xp.dtype) for k in ("nu_log", "theta_log", "gamma_log")}
    lam = jnp.exp(-jnp.exp(p["nu_log"]) + 1j * jnp.exp(p["theta_log"]))
    b = jnp.exp(p["gamma_log"]) * jax.lax.complex(xp[..., :N], xp[..., N:2 * N])
    return jnp.broadcast_to(lam, b.shape), b

  def readout(self, params, h, xp):
    cd = self.dtype or params["c_re"].dtype
    y = matmul(h.real, params["c_re"], cd) - matmul(h.imag, params["c_im"], cd)
    return y + xp[..., 2 * self.state_width:]


@register("mingru")
@dataclasses.dataclass(frozen=True)
class MinGRU(LinearCell):
  """minGRU (Feng et al. 2024): ``z_t = sigmoid(Linear_z(x_t))``,
  ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``, ``h~_t = g(Linear_h(x_t))`` (the positive
  candidate of the paper's log-space form; ``candidate='identity'`` for ``Linear_h(x_t)``).
  Blocks of ``w_x``: ``(z, h~)``; PyTorch's default Linear init."""
  candidate: str = "g"

  @property
  def proj_width(self):
    return 2 * self.hidden

  def coefficients(self, params, xp):
    k_z, k_h = jnp.split(xp, 2, axis=-1)
    return jax.nn.sigmoid(-k_z), jax.nn.sigmoid(k_z) * _candidate(self.candidate, k_h)


@register("minlstm")
@dataclasses.dataclass(frozen=True)
class MinLSTM(LinearCell):
  """minLSTM (Feng et al. 2024): ``f_t, i_t = sigmoid(Linear(x_t))`` normalised to
  ``f' = f / (f + i)``, ``i' = i / (f + i)`` (computed in log space),
  ``h_t = f' * h_{t-1} + i' * h~_t``, ``h~_t = g(Linear_h(x_t))`` as in :class:`MinGRU`.
  Blocks of ``w_x``: ``(f, i, h~)``."""
  candidate: str = "g"

  @property
  def proj_width(self):
    return 3 * self.hidden

  def coefficients(self, params, xp):
    k_f, k_i, k_h = jnp.split(xp, 3, axis=-1)
    log_f, log_i = jax.nn.log_sigmoid(k_f), jax.nn.log_sigmoid(k_i)
    log_norm = jnp.logaddexp(log_f, log_i)
    return jnp.exp(log_f - log_norm), jnp.exp(log_i - log_norm) * _candidate(self.candidate, k_h)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def sqrt_bound_derivative(x: jax.Array, max_gradient: float) -> jax.Array:
  """``sqrt(x)`` whose gradient is clipped at ``max_gradient`` (recurrentgemma: keeps
  ``sqrt(1 - a^2)`` finite as ``a -> 1``, which bfloat16 reaches)."""
  return jnp.sqrt(x)


def _sqrt_fwd(x, max_gradient):
  return jnp.sqrt(x), x


def _sqrt_bwd(max_gradient, x, g):
  return (g * 0.5 * jax.lax.rsqrt(jnp.maximum(x, 1.0 / (4.0 * max_gradient ** 2))),)


sqrt_bound_derivative.defvjp(_sqrt_fwd, _sqrt_bwd)


@register("rglru")
@dataclasses.dataclass(frozen=True)
class RGLRU(LinearCell):
  """The Real-Gated LRU of Griffin / RecurrentGemma (De et al. 2024), after an input
  projection ``u_t = x_t W_u + b_u`` (the block's linear layer before it):

  ``r_t = sigmoid(x_t W_a + b_a)``, ``i_t = sigmoid(x_t W_x + b_x)``,
  ``log a_t = -c r_t softplus(Lambda)``, ``h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * u_t)``,
  with ``c = 8`` and ``a = exp(-softplus(Lambda))`` drawn on the ring [0.9, 0.999]
  (recurrentgemma's initialisation); kernels N(0, 1/fan_in). Blocks of ``w_x``:
  ``(u, i, r)``.
  """
  c: float = 8.0
  min_rad: float = 0.9
  max_rad: float = 0.999
  kernel_init: str = "fan_in_normal"

  @property
  def proj_width(self):
    return 3 * self.hidden

  def init_recurrent(self, key):
    log_r = _ring_log_radius(key, (self.hidden,), self.min_rad, self.max_rad)
    return {"a_param": jnp.log(jnp.expm1(-log_r)).astype(self.param_dtype)}  # softplus^-1(-log r)

  def coefficients(self, params, xp):
    u, k_i, k_r = jnp.split(xp, 3, axis=-1)
    log_a = -self.c * jax.nn.sigmoid(k_r) * jax.nn.softplus(params["a_param"].astype(xp.dtype))
    scale = sqrt_bound_derivative(1.0 - jnp.exp(2.0 * log_a), 1000.0)
    return jnp.exp(log_a), scale * (jax.nn.sigmoid(k_i) * u)
