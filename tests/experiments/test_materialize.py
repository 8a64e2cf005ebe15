"""experiments.models.materialize: values XLA:CPU reads instead of recomputing.

`materialized` must be the identity in value and gradient, the convolution `lax.conv_general_dilated` (the
reference here), through the networks that use them too, and on the CPU they must actually put their
arrays behind a conditional (else they do nothing).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from experiments.models import materialize
from experiments.models import create_model

DN = ("NHWC", "HWIO", "NHWC")


def _loss(conv, x, w, stride):
  # An elementwise chain before the convolution: what XLA:CPU would fuse into the kernel gradient's copy.
  y = conv(jax.nn.relu(x * 1.5 + 0.25), w, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=DN)
  return jnp.sum(jnp.sin(y))


@pytest.mark.parametrize("stride", [1, 2])
def test_values_and_gradients_are_lax_conv_general_dilateds(stride):
  rng = np.random.default_rng(stride)
  x = jnp.asarray(rng.standard_normal((4, 9, 9, 3), dtype=np.float32))
  w = jnp.asarray(rng.standard_normal((3, 3, 3, 5), dtype=np.float32))
  got = jax.jit(jax.value_and_grad(functools.partial(_loss, materialize.conv_general_dilated, stride=stride),
                                   argnums=(0, 1)))(x, w)
  want = jax.jit(jax.value_and_grad(functools.partial(_loss, lax.conv_general_dilated, stride=stride),
                                    argnums=(0, 1)))(x, w)
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_the_identity_holds_for_nan_and_infinite_inputs_and_under_vmap():
  x = jnp.array([[jnp.nan, 1.0], [jnp.inf, -jnp.inf]])
  np.testing.assert_array_equal(jax.jit(materialize.materialized)(x), x)
  np.testing.assert_array_equal(jax.jit(jax.vmap(materialize.materialized))(x), x)
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(materialize.materialized(v) * 3.0))(jnp.ones(3)),
                                3.0 * np.ones(3))


def test_several_arrays_pass_together_integers_included():
  x, i = jnp.array([jnp.nan, 2.0]), jnp.array([[3, -1]], jnp.int8)
  got = jax.jit(materialize.materialized)(i, x)
  assert isinstance(got, tuple) and got[0].dtype == jnp.int8
  np.testing.assert_array_equal(got[0], i)
  np.testing.assert_array_equal(got[1], x)
  empty = jnp.zeros((0, 3))
  assert materialize.materialized(empty, x)[0] is empty  # nothing to probe in an empty array: left alone
  with pytest.raises(TypeError, match="floating-point"):
    materialize.materialized(i)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the conditional is only put in on the CPU")
def test_on_the_cpu_the_input_passes_through_a_conditional_and_the_gradient_does_not():
  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  forward = jax.jit(lambda x: materialize.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN))
  assert "conditional(" in forward.lower(x).compile().as_text()
  backward = jax.jit(lambda g: jax.vjp(lambda x: materialize.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=DN), x)[1](g))
  # one conditional (the forward pass, recomputed for the residual), none in the cotangent's path
  assert backward.lower(jnp.ones((2, 8, 8, 4))).compile().as_text().count("conditional(") <= 1


@pytest.mark.parametrize("name,min_conds", [("resnet20", 19), ("cifar10_full", 3 + 1 + 2 + 2),
                                            pytest.param("densenet40", 39, marks=pytest.mark.slow)])
def test_networks_train_as_without_materialized_values(name, min_conds, monkeypatch):
  """One training gradient of each network that uses it equals the same network's with `materialized` the
  identity (so `conv_general_dilated` is `lax.conv_general_dilated`)."""
  model = create_model(name, num_classes=10)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((4, 32, 32, 3), dtype=np.float32))
  labels = jnp.asarray(rng.integers(0, 10, 4))
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(x)

  def grads():  # a fresh function each time, so that no trace is reused
    def loss(params):
      logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

    conds = str(jax.make_jaxpr(jax.grad(loss))(variables["params"])).count(" cond[")
    return jax.jit(jax.value_and_grad(loss))(variables["params"]), conds

  got, conds = grads()
  monkeypatch.setattr(materialize, "materialized", lambda *arrays: arrays[0] if len(arrays) == 1 else arrays)
  want, plain_conds = grads()
  assert plain_conds == 0
  if jax.default_backend() == "cpu":
    # every convolution's input (ResNet-20 has 19, DenseNet-40 39, cifar10_full 3), and in cifar10_full
    # the max pool's output and gradient, the two average pools' outputs and gradients
    assert conds >= min_conds
  for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, r, rtol=2e-4, atol=1e-6)
