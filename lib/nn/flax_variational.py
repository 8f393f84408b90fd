"""The variational toolkit of :mod:`lib.nn.variational` over a Flax Linen model.

The posterior is over the model's ``params`` tree; :func:`lib.nn.variational.draw`
samples weights for a batch in any mode (``example``, ``minibatch``,
``flipout``, ``mean``) and :func:`apply` runs ``model.apply`` once per example
as one ``jax.vmap``::

    post = variational.init_posterior(variables["params"], mode="weight")
    weights, axes = variational.draw(post, key, batch_size, "flipout")
    y_B = flax_variational.apply(model, weights, axes, x_BxD)

An NNX model runs through :func:`apply_nnx` after ``graphdef, params, rest =
nnx.split(model, nnx.Param, ...)``, with the posterior over ``params``, in the
``example``, ``minibatch`` and ``mean`` modes (NNX layers read their kernels as
arrays, so flipout views cannot reach them: refused, naming the parameters).

Under ``flipout`` each 2-D parameter is a :class:`~lib.nn.variational.Flipout`
view, which a layer must know how to read:

* ``flax.linen.Dense``: the flipout product ``x M + ((x o s) (sigma E)) o r``
  (a method interceptor replaces its call; no per-example matrix is formed);
* rnnlab's :class:`lib.nn.linen.RNN` and :class:`~lib.nn.linen.Cell`: each
  example's flipout matrix ``M + sigma E o (s r^T)``, formed explicitly (the
  same distribution; the memory of per-example sampling);
* any other layer with a 2-D parameter (``nn.Embed``, ``nn.DenseGeneral``,
  ``nn.Einsum``, ...) is refused with a :class:`ConfigError` naming the layer
  and the parameter; use ``example`` or ``minibatch`` sampling for such models.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lib.errors import ConfigError
from lib.nn import linen, variational
from lib.nn.variational import Flipout


def _own_flipout_params(module: nn.Module) -> list[str]:
  params = module.variables.get("params", {}) if module.scope is not None else {}
  return [name for name, v in params.items() if isinstance(v, Flipout)]


def _dense_flipout(module: nn.Dense, x: jax.Array) -> jax.Array:
  params = module.variables["params"]
  y = variational.matmul(x, params["kernel"])
  return y + params["bias"] if module.use_bias else y


def _interceptor(next_fun, args, kwargs, context):
  module = context.module
  names = _own_flipout_params(module)
  if not names or isinstance(module, (linen.RNN, linen.Cell)):
    return next_fun(*args, **kwargs)
  if type(module) is nn.Dense and context.method_name == "__call__":
    return _dense_flipout(module, *args, **kwargs)
  layer = "/".join(module.path) or type(module).__name__
  raise ConfigError(
      f"flipout: layer {layer!r} ({type(module).__name__}) reads the 2-D parameter(s) "
      f"{names}, which flipout can perturb only in nn.Dense and rnnlab's linen.RNN/Cell; "
      "use sampling 'example' or 'minibatch' for this model.")


def apply(model: nn.Module, weights: Any, axes: Any, *batched: jax.Array, **kwargs) -> Any:
  """``model.apply({'params': weights_b}, *args_b, **kwargs)`` for every example ``b``.

  ``weights, axes`` come from :func:`lib.nn.variational.draw`; ``batched``
  carry the batch on axis 0 and each example is passed without it (a model
  written for batches sees a batch of one: add the axis in the model, or map
  a batched model with ``mode='minibatch'``).
  """
  def one(w, *args):
    with nn.intercept_methods(_interceptor):
      return model.apply({"params": w}, *args, **kwargs)
  return variational.per_example(one, weights, axes, *batched)


def _flipout_paths(weights: Any) -> list[str]:
  leaves = jax.tree_util.tree_flatten_with_path(weights, is_leaf=lambda x: isinstance(x, Flipout))[0]
  def name(path):
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
    return "/".join(p for p in parts if p != "value")  # an nnx.Variable's value is its leaf
  return [name(path) for path, leaf in leaves if isinstance(leaf, Flipout)]


def apply_nnx(graphdef: Any, weights: Any, axes: Any, *batched: jax.Array, rest: tuple = ()) -> Any:
  """``nnx.merge(graphdef, weights_b, *rest)(*args_b)`` for every example ``b`` (see
  :func:`apply`); ``rest`` holds the model's other state (``nnx.split``'s ``...``)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  flips = _flipout_paths(weights)
  if flips:
    raise ConfigError(f"flipout: the NNX parameters {flips} are read as arrays by their layers, "
                      "which flipout views cannot reach; use sampling 'example' or 'minibatch' "
                      "(or a Linen model, see lib.nn.flax_variational.apply).")

  def one(w, *args):
    return nnx.merge(graphdef, w, *rest)(*args)
  return variational.per_example(one, weights, axes, *batched)
