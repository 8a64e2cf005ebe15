"""Discriminative learning rates: each parameter group moves by exactly its own rate."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import clr_optax
from tests.clr_optax import references as ref

RTOL = 1e-5


def _two_layer_model():
  key_1, key_2, key_x = jax.random.split(jax.random.key(0), 3)
  params = {"body": {"w": jax.random.normal(key_1, (3, 8)), "b": jnp.zeros(8)},
            "head": {"w": jax.random.normal(key_2, (8, 2)), "b": jnp.zeros(2)}}
  x = jax.random.normal(key_x, (16, 3))
  y = jnp.stack([jnp.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)

  def loss(p):
    hidden = jnp.tanh(x @ p["body"]["w"] + p["body"]["b"])
    return jnp.mean((hidden @ p["head"]["w"] + p["head"]["b"] - y) ** 2)

  return params, loss


def _by_layer(params):
  return {layer: jax.tree.map(lambda _, layer=layer: layer, sub) for layer, sub in params.items()}


def _train(optimizer, params, loss, steps):
  """Yields (params before, gradient, update, state after) for each update."""
  state = optimizer.init(params)
  update = jax.jit(optimizer.update)
  for _ in range(steps):
    grads = jax.grad(loss)(params)
    updates, state = update(grads, state, params)
    yield params, grads, updates, state
    params = optax.apply_updates(params, updates)


def _assert_moved_by(grads, updates, rates):
  """The move of every parameter (the update, added to it) is -rate * gradient for its group's rate."""
  for layer, rate in rates.items():
    for name in ("w", "b"):
      np.testing.assert_allclose(np.asarray(updates[layer][name]), -rate * np.asarray(grads[layer][name], np.float64),
                                 rtol=RTOL, atol=1e-12, err_msg=f"{layer}/{name}")


def test_multiples_of_one_schedule_move_each_group_by_its_rate():
  params, loss = _two_layer_model()
  multipliers = {"body": 0.01, "head": 1.0}
  optimizer = clr_optax.discriminative(optax.sgd, _by_layer, learning_rate=clr_optax.triangular(0.05, 0.5, 4),
                                       multipliers=multipliers)
  for t, (_, grads, updates, state) in enumerate(_train(optimizer, params, loss, 12)):
    lr = ref.caffe_rate(t, "triangular", 0.05, 0.5, 4)
    rates = {layer: m * lr for layer, m in multipliers.items()}
    _assert_moved_by(grads, updates, rates)
    for layer, rate in rates.items():  # the state holds the rates that update used
      np.testing.assert_allclose(float(state.learning_rates[layer]), rate, rtol=1e-6)
    assert int(state.count) == t + 1


def test_each_group_its_own_schedule():
  params, loss = _two_layer_model()
  labels = {"body": {"w": "body_w", "b": "body_b"}, "head": {"w": "head", "b": "head"}}
  optimizer = clr_optax.discriminative(optax.sgd, labels, {
      "body_w": clr_optax.exponential(0.1, 0.9), "body_b": 0.02, "head": clr_optax.triangular2(0.01, 0.2, 3)})
  for t, (_, grads, updates, state) in enumerate(_train(optimizer, params, loss, 10)):
    body_w, head = 0.1 * 0.9**t, ref.caffe_rate(t, "triangular2", 0.01, 0.2, 3)
    np.testing.assert_allclose(np.asarray(updates["body"]["w"]), -body_w * np.asarray(grads["body"]["w"]), rtol=RTOL)
    np.testing.assert_allclose(np.asarray(updates["body"]["b"]), -0.02 * np.asarray(grads["body"]["b"]), rtol=RTOL)
    _assert_moved_by(grads, updates, {"head": head})
    np.testing.assert_allclose([float(state.learning_rates[k]) for k in ("body_w", "body_b", "head")],
                               [body_w, 0.02, head], rtol=1e-6)


def test_groups_keep_separate_adam_states():
  # Each group is updated as optax.adam at its own rate on that group alone would update it.
  params, loss = _two_layer_model()
  lr = clr_optax.one_cycle(0.01, 20)
  optimizer = clr_optax.discriminative(optax.adam, _by_layer, learning_rate=lr, multipliers={"body": 0.1, "head": 1.0})
  references = {"body": optax.adam(lambda t: 0.1 * lr(t)), "head": optax.adam(lr)}
  ref_states = {k: opt.init(params[k]) for k, opt in references.items()}
  for before, grads, updates, _ in _train(optimizer, params, loss, 20):
    for k, opt in references.items():
      expected, ref_states[k] = opt.update(grads[k], ref_states[k], before[k])
      for name in ("w", "b"):
        np.testing.assert_allclose(np.asarray(updates[k][name]), np.asarray(expected[name]), rtol=1e-6, atol=1e-12)


def test_under_lax_scan_with_momentum():
  params, loss = _two_layer_model()
  optimizer = clr_optax.discriminative(functools.partial(optax.sgd, momentum=0.9), _by_layer,
                                       learning_rate=0.1, multipliers={"body": 0.5, "head": 1.0})

  def step(carry, _):
    p, s = carry
    updates, s = optimizer.update(jax.grad(loss)(p), s, p)
    return (optax.apply_updates(p, updates), s), (s.learning_rates["body"], s.learning_rates["head"])

  (_, state), (body, head) = jax.lax.scan(step, (params, optimizer.init(params)), None, length=5)
  np.testing.assert_allclose(np.asarray(body), 0.05, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(head), 0.1, rtol=1e-6)
  assert state.learning_rates["body"].dtype == jnp.float32 and int(state.count) == 5


def test_readable_inside_a_chain():
  params, loss = _two_layer_model()
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), clr_optax.discriminative(
      optax.sgd, _by_layer, learning_rate=clr_optax.triangular(0.1, 0.3, 2), multipliers={"body": 0.1, "head": 1.0}))
  *_, (_, _, _, state) = _train(optimizer, params, loss, 3)
  rates = optax.tree_utils.tree_get(state, "learning_rates")
  np.testing.assert_allclose([float(rates["body"]), float(rates["head"])], [0.03, 0.3], rtol=1e-6)  # step 2: the peak


def test_range_test_sweeps_the_common_factor_and_keeps_the_ratios():
  # A linear loss: the gradient is constant, so each step moves a group by exactly -rate * gradient; the
  # sweep's eval_fn reads both groups after every step.
  data = {"x": np.zeros((64, 1), np.float32)}
  loss_fn = lambda p, batch: 3.0 * p["body"] + 2.0 * p["head"] + jnp.mean(batch["x"])
  multipliers = {"body": 0.01, "head": 1.0}
  factory = lambda lr: clr_optax.discriminative(optax.sgd, {"body": "body", "head": "head"}, learning_rate=lr,
                                                multipliers=multipliers)
  num_steps = 30
  result = clr_optax.range_test(
      data, loss_fn=loss_fn, params={"body": jnp.float32(0.0), "head": jnp.float32(0.0)}, optimizer=factory,
      batch_size=8, num_steps=num_steps, min_lr=1e-3, max_lr=1.0, mode="exponential", divergence_factor=None,
      eval_fn=lambda p: {"body": p["body"], "head": p["head"]}, eval_every=1)
  sweep = clr_optax.learning_rates(1e-3, 1.0, num_steps, mode="exponential")
  np.testing.assert_allclose(result.lr[0], sweep, rtol=1e-6)
  assert np.all(np.diff(result.lr[0]) > 0)  # the common factor rises
  for group, gradient in (("body", 3.0), ("head", 2.0)):
    positions = np.concatenate([[0.0], np.asarray(result.eval_metrics[group][0], np.float64)])
    np.testing.assert_allclose(np.diff(positions), -multipliers[group] * sweep * gradient, rtol=1e-5)


@pytest.mark.parametrize("kwargs, error, pattern", [
    (dict(), ValueError, "either learning_rates"),
    (dict(learning_rates={"body": 0.1, "head": 0.1}, learning_rate=0.1), ValueError, "either learning_rates"),
    (dict(learning_rate=0.1), ValueError, "either learning_rates"),
    (dict(multipliers={"body": 1.0, "head": 1.0}), ValueError, "either learning_rates"),
    (dict(learning_rate=0.1, multipliers={"body": -1.0, "head": 1.0}), ValueError, "multipliers\\['body'\\]"),
    (dict(learning_rate="0.1", multipliers={"body": 1.0, "head": 1.0}), TypeError, "learning_rate"),
    (dict(learning_rates={"body": float("nan"), "head": 0.1}), ValueError, "learning_rates\\['body'\\]"),
])
def test_bad_arguments(kwargs, error, pattern):
  with pytest.raises(error, match=pattern):
    clr_optax.discriminative(optax.sgd, _by_layer, **kwargs)


def test_labels_and_rates_must_match():
  params, _ = _two_layer_model()
  with pytest.raises(ValueError, match="labels without a rate \\['head'\\]"):
    clr_optax.discriminative(optax.sgd, _by_layer, {"body": 0.1, "neck": 0.1}).init(params)
  with pytest.raises(TypeError, match="optimizer"):
    clr_optax.discriminative(0.1, _by_layer, {"body": 0.1})


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(learning_rates=[0.1, 0.1]), "learning_rates must be a mapping"),
    (dict(learning_rate=0.1, multipliers=[0.01, 1.0]), "multipliers must be a mapping"),
])
def test_lists_instead_of_mappings_raise_naming_the_argument(kwargs, pattern):
  with pytest.raises(TypeError, match=pattern):
    clr_optax.discriminative(optax.sgd, _by_layer, **kwargs)


def test_labels_of_another_structure_raise_naming_param_labels():
  params, _ = _two_layer_model()
  optimizer = clr_optax.discriminative(optax.sgd, {"body": "body", "head": "head", "neck": "head"},
                                       learning_rates={"body": 0.1, "head": 0.1})
  with pytest.raises(ValueError, match="param_labels"):
    optimizer.init(params)


def test_labels_may_be_a_prefix_of_the_params():
  params, _ = _two_layer_model()
  optimizer = clr_optax.discriminative(optax.sgd, {"body": "body", "head": "head"},
                                       learning_rates={"body": 0.1, "head": 0.2})
  updates, _ = optimizer.update(jax.tree.map(jnp.ones_like, params), optimizer.init(params), params)
  np.testing.assert_allclose(updates["head"]["w"], -0.2)


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(learning_rates={"body": lambda t: jnp.full((2,), 0.1), "head": 0.1}), "learning_rates\\['body'\\]"),
    (dict(learning_rate=lambda t: jnp.full((2,), 0.1), multipliers={"body": 1.0, "head": 1.0}), "learning_rate"),
    (dict(learning_rates={"body": jnp.array([0.1, 0.2]), "head": 0.1}), "learning_rates\\['body'\\]"),
])
def test_rates_that_are_not_scalars_raise_naming_them(kwargs, pattern):
  params, _ = _two_layer_model()
  optimizer = clr_optax.discriminative(optax.sgd, _by_layer, **kwargs)
  with pytest.raises(ValueError, match=pattern + ".*shape \\(2,\\)"):
    optimizer.init(params)


@pytest.mark.parametrize("factory", [
    optax.inject_hyperparams(optax.sgd),
    lambda lr: optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=0.9),
])
def test_an_optimizer_whose_state_keeps_the_rate_is_refused(factory):
  # Its state would keep the first rate while discriminative reports each update's (0.55 against 0.1).
  params, _ = _two_layer_model()
  optimizer = clr_optax.discriminative(factory, _by_layer, learning_rate=clr_optax.triangular(0.1, 1.0, 10),
                                       multipliers={"body": 0.01, "head": 1.0})
  with pytest.raises(ValueError, match="optimizer.*state holds the learning rate"):
    optimizer.init(params)
  with pytest.raises(ValueError, match="optimizer.*state holds the learning rate"):
    jax.jit(optimizer.init)(params)


def test_an_injected_hyper_parameter_other_than_the_rate_is_accepted():
  # The form the docstring recommends for a cyclical momentum: the state holds the momentum, not the rate.
  params, loss = _two_layer_model()
  momentum = clr_optax.cyclical_momentum(0.8, 0.9, 10)
  factory = lambda lr: optax.chain(optax.inject_hyperparams(optax.trace)(decay=momentum), optax.scale(-lr))
  optimizer = clr_optax.discriminative(factory, _by_layer, learning_rates={"body": 0.1, "head": 0.1})
  optimizer.update(jax.grad(loss)(params), optimizer.init(params), params)


def test_a_factory_that_builds_no_transformation_or_a_rate_that_is_no_number_raise_naming_them():
  params, _ = _two_layer_model()
  with pytest.raises(TypeError, match="optimizer must be a factory.*returned"):
    clr_optax.discriminative(lambda lr: lr, _by_layer, {"body": 0.1, "head": 0.1}).init(params)
  with pytest.raises(TypeError, match="learning_rate must be a real number"):
    clr_optax.discriminative(optax.sgd, _by_layer, learning_rate=lambda t: "0.1",
                             multipliers={"body": 1.0, "head": 1.0}).init(params)
