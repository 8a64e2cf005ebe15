"""The pure step: plain SGD against an independent reference, one step per config family."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import setup
from experiments import step as step_lib
from tests.experiments.synthetic import initial_state
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


def test_train_step_is_plain_sgd_on_the_normalised_cross_entropy():
  """Against an independent reference: params - lr * lr_mult * grad of the mean cross-entropy of (x - mean) / std."""
  ds = synthetic_dataset()
  config = small_config("default", **{"model.name": "cifar10_quick", "optim.name": "sgd", "optim.momentum": 0.0,
                                "optim.weight_decay": 0.0, "data.normalization": "channel"})
  state = initial_state(config, ds)
  batch = {"image": jnp.asarray(ds.train_images[:8]), "label": jnp.asarray(ds.train_labels[:8])}
  lr = 0.05
  new_state, metrics = jax.jit(step_lib.train_step)(state, batch, lr)

  mean = ds.train_images.reshape(-1, 3).astype(np.float64).mean(0)
  std = ds.train_images.reshape(-1, 3).astype(np.float64).std(0)
  x = jnp.asarray((ds.train_images[:8] - mean) / std, jnp.float32)
  y = ds.train_labels[:8]

  def loss(params):
    logits = state.apply_fn({"params": params}, x, train=True)
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[jnp.arange(8), y])

  want_loss, grads = jax.value_and_grad(loss)(state.params)
  # Caffe's cifar10_quick prototxt gives every bias lr_mult 2 (weights 1); the trainer applies it to any optimizer.
  want = jax.tree_util.tree_map_with_path(
      lambda path, p, g: p - lr * (2.0 if path[-1].key == "bias" else 1.0) * g, state.params, grads)
  np.testing.assert_allclose(metrics["loss"], want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["lr"], lr)
  np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_state.params, want)
  assert int(new_state.step) == 1


FAST_FAMILIES = [
    ("table1_triangular2", {}),                       # cifar10_full, caffe_sgd with Caffe multipliers
    ("table3_adam:clr", {}),                          # an adaptive optimizer with Caffe multipliers
    ("fig6_bn_sigmoid:clr", {}),                      # Caffe BatchNorm
    ("table4_resnet:clr", {"model.name": "resnet20"}),  # BatchNorm ResNet, augmentation, per-channel stats
]
SLOW_FAMILIES = [(name, {}) for name in (
    "table3_nesterov:clr", "table3_rmsprop:clr", "table3_adagrad:clr", "table3_adadelta:clr",
    "table4_resnet:clr", "table4_sd_resnet:clr", "table4_densenet:clr", "one_cycle_resnet56")]


def _one_step_per_family(name, updates):
  ds = synthetic_dataset()
  config = small_config(name, **updates)
  state = initial_state(config, ds)
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=5, total_steps=100)
  batch = {"image": jnp.asarray(ds.train_images[:8]), "label": jnp.asarray(ds.train_labels[:8])}
  step = jax.jit(step_lib.train_step)
  s1, m1 = step(state, batch, schedule(state.step))
  s2, m2 = step(s1, batch, schedule(s1.step))
  for m in (m1, m2):
    assert all(np.isfinite(np.asarray(v)) for v in m.values()), m
  np.testing.assert_allclose(m2["lr"], schedule(1), rtol=1e-6)
  assert int(s2.step) == 2
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.params, s2.params)
  unmoved = [jax.tree_util.keystr(path) for path, moved in jax.tree_util.tree_flatten_with_path(changed)[0]
             if not moved]
  if config.model.name.startswith("sd_"):
    # Stochastic depth drops whole residual blocks: a block dropped in both steps gets no gradient, and
    # of its parameters only the weight-decayed ones move (its BatchNorm biases stay).
    assert all("_BasicBlock" in p and "BatchNorm" in p for p in unmoved), unmoved
    assert len(unmoved) < len(jax.tree.leaves(changed)) / 4, unmoved
  else:
    assert not unmoved, f"parameters that did not move: {unmoved}"
  if jax.tree.leaves(state.batch_stats):
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.batch_stats,
                         s2.batch_stats)
    assert any(jax.tree.leaves(moved)), "BatchNorm statistics were updated"


@pytest.mark.parametrize("name,updates", FAST_FAMILIES)
def test_one_step_per_config_family(name, updates):
  _one_step_per_family(name, updates)


@pytest.mark.slow
@pytest.mark.parametrize("name,updates", SLOW_FAMILIES)
def test_one_step_per_config_family_slow(name, updates):
  _one_step_per_family(name, updates)
