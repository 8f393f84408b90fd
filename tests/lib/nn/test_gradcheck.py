import jax
import jax.numpy as jnp

from lib.nn import gradcheck


def test_passes_a_correct_gradient():
  with jax.enable_x64(True):
    p = {"a": jnp.arange(6.0).reshape(2, 3) / 7, "b": jnp.asarray(0.3)}
    report = gradcheck.check_grads(lambda q: jnp.sum(jnp.sin(q["a"]) * q["b"] ** 2), p,
                                   eps=1e-6, threshold=1e-6)
  assert report.ok, str(report)
  assert [c.checked for c in report.params] == [6, 1]


def test_catches_a_wrong_gradient():
  @jax.custom_vjp
  def f(x):
    return jnp.sum(x ** 2)

  f.defvjp(lambda x: (f(x), x), lambda x, g: (g * 3.0 * x,))  # wrong: should be 2x
  with jax.enable_x64(True):
    report = gradcheck.check_grads(f, jnp.linspace(0.1, 1.0, 5), eps=1e-6)
  assert not report.ok
  assert report.params[0].max_rel_error > 0.1
  assert "FAILED" in str(report)


def test_samples_large_parameters():
  report = gradcheck.check_grads(lambda w: jnp.sum(w ** 2), jnp.ones((50, 50)), max_elements=10)
  assert report.params[0].checked == 10
