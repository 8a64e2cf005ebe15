"""The schedules inside optax optimizers: the right value reaches the right step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import clr_optax
from tests.clr_optax import references as ref


def _quadratic_grad(params):
  return jax.grad(lambda p: 0.5 * jnp.sum(p["w"] ** 2))(params)


def _run(optimizer, steps, params):
  state = optimizer.init(params)

  @jax.jit
  def update(params, state):
    updates, state = optimizer.update(_quadratic_grad(params), state, params)
    return optax.apply_updates(params, updates), state

  history = []
  for _ in range(steps):
    params, state = update(params, state)
    history.append((params, state))
  return history


def test_sgd_applies_schedule_t_at_step_t():
  # Plain SGD on f(w) = w^2/2: w_{t+1} = w_t (1 - lr_t), so each step reveals the learning rate it used.
  schedule = clr_optax.triangular2(0.01, 0.06, step_size=5)
  w = np.float64(1.0)
  params = {"w": jnp.array(1.0)}
  for t, (new, _) in enumerate(_run(optax.sgd(learning_rate=schedule), 40, params)):
    w = w * (1 - ref.caffe_rate(t, "triangular2", 0.01, 0.06, 5))
    np.testing.assert_allclose(float(new["w"]), w, rtol=1e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("make", [lambda s: optax.sgd(s), lambda s: optax.inject_hyperparams(optax.sgd)(learning_rate=s)])
def test_both_paths_apply_schedule_zero_first(make):
  # optax issue #415: inject_hyperparams and scale_by_schedule once disagreed on the first count.
  schedule = lambda count: 0.1 + 0.01 * count  # a different value at every step
  history = _run(make(schedule), 3, {"w": jnp.array(1.0)})
  np.testing.assert_allclose([float(p["w"]) for p, _ in history], [0.9, 0.9 * 0.89, 0.9 * 0.89 * 0.88], rtol=1e-6)


def test_inject_hyperparams_exposes_the_current_lr_and_momentum():
  lr = clr_optax.triangular(0.1, 1.0, step_size=4)
  momentum = clr_optax.cyclical_momentum(0.8, 0.9, step_size=4)
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum)
  for t, (_, state) in enumerate(_run(optimizer, 12, {"w": jnp.array(1.0)})):
    # after update t the state holds the values that update used
    expected_lr = ref.caffe_rate(t, "triangular", 0.1, 1.0, 4)
    np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), expected_lr, rtol=1e-6)
    np.testing.assert_allclose(float(state.hyperparams["momentum"]), 0.9 - 0.1 * (expected_lr - 0.1) / 0.9, rtol=1e-6)


def test_adam_b1_follows_one_cycle_momentum():
  total = 50
  optimizer = optax.inject_hyperparams(optax.adam)(
      learning_rate=clr_optax.one_cycle(0.01, total), b1=clr_optax.one_cycle_momentum(total)
  )
  history = _run(optimizer, total, {"w": jnp.array(1.0)})
  b1 = [float(state.hyperparams["b1"]) for _, state in history]
  assert b1[0] == pytest.approx(0.95) and min(b1) == pytest.approx(0.85, abs=1e-3) and b1[-1] == pytest.approx(0.95)
  assert int(np.argmin(b1)) == int(np.argmax([float(s.hyperparams["learning_rate"]) for _, s in history]))


def test_constant_schedule_equals_constant_learning_rate():
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  flat = clr_optax.triangular(0.05, 0.05, step_size=3)  # max_lr == base_lr: a constant
  a = _run(optax.sgd(learning_rate=flat, momentum=0.9), 25, params)
  b = _run(optax.sgd(learning_rate=0.05, momentum=0.9), 25, params)
  for (pa, _), (pb, _) in zip(a, b):
    np.testing.assert_array_equal(np.asarray(pa["w"]), np.asarray(pb["w"]))
