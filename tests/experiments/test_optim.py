"""Tests for experiments.optim.caffe_sgd against a float64 transcription of Caffe's SGDSolver."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.models import caffe_multipliers
from experiments.optim import caffe_sgd, path_names


def caffe_solver_reference(params, grads_per_step, rates, momentum, weight_decay, lr_mult, decay_mult):
  """SGDSolver::ApplyUpdate per blob, float64: Regularize (L2), ComputeUpdateValue, Net::Update."""
  params = {k: np.asarray(v, np.float64) for k, v in params.items()}
  history = {k: np.zeros_like(v) for k, v in params.items()}
  trajectory = []
  for grads, rate in zip(grads_per_step, rates):
    for k in params:
      diff = np.asarray(grads[k], np.float64).copy()
      local_decay = weight_decay * decay_mult[k]
      if local_decay:
        diff += local_decay * params[k]  # caffe_axpy(local_decay, data, diff)
      local_rate = rate * lr_mult[k]
      history[k] = local_rate * diff + momentum * history[k]  # caffe_cpu_axpby(local_rate, diff, momentum, history)
      params[k] = params[k] - history[k]  # diff = history; Update(): data -= diff
    trajectory.append({k: v.copy() for k, v in params.items()})
  return trajectory


def _problem(steps, seed=0):
  rng = np.random.default_rng(seed)
  params = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=(4,))}
  grads = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(steps)]
  return params, grads


def _run(opt, params, grads_per_step):
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
  state = opt.init(params)
  update = jax.jit(opt.update)
  trajectory = []
  for grads in grads_per_step:
    updates, state = update(jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), grads), state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append(params)
  return trajectory, state


def _assert_trajectories_close(got, want, rtol=2e-5, atol=1e-6):
  assert len(got) == len(want)
  for got_step, want_step in zip(got, want):
    for k in want_step:
      np.testing.assert_allclose(np.asarray(got_step[k]), want_step[k], rtol=rtol, atol=atol)


def _varying_schedule(count):
  # A triangle-ish schedule with distinct values at every step (counted from 0 like Caffe's iter_).
  return 0.01 + 0.02 * jnp.abs(jnp.mod(count, 4) - 2) + 0.001 * count


RATES = [0.01 + 0.02 * abs(t % 4 - 2) + 0.001 * t for t in range(7)]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.004])
def test_matches_caffe_solver_with_varying_rate_and_multipliers(momentum, weight_decay):
  params, grads = _problem(len(RATES))
  lr_mult, decay_mult = {"w": 1.0, "b": 2.0}, {"w": 250.0, "b": 0.0}
  opt = caffe_sgd(_varying_schedule, momentum, lr_mult=lr_mult, decay_mult=decay_mult, weight_decay=weight_decay)
  got, state = _run(opt, params, grads)
  want = caffe_solver_reference(params, grads, RATES, momentum, weight_decay, lr_mult, decay_mult)
  _assert_trajectories_close(got, want)
  assert int(state.count) == len(RATES)


def test_multiplier_functions_receive_parameter_paths():
  params = {"params": {"conv1": {"kernel": np.ones((2, 2)), "bias": np.ones(2)}, "ip1": {"kernel": np.ones((2, 3)), "bias": np.ones(3)}}}
  grads = [jax.tree.map(lambda v: 0.5 * v, params)] * 3
  lr_fn, decay_fn = caffe_multipliers("cifar10_full")
  got, _ = _run(caffe_sgd(0.1, 0.9, lr_mult=lr_fn, decay_mult=decay_fn, weight_decay=0.004), params, grads)
  flat = {"/".join(path_names(p)): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(params)}
  mults = {"params/conv1/kernel": (1, 1), "params/conv1/bias": (2, 1), "params/ip1/kernel": (1, 250), "params/ip1/bias": (2, 0)}
  want = caffe_solver_reference(
    flat, [{k: 0.5 * v for k, v in flat.items()}] * 3, [0.1] * 3, 0.9, 0.004,
    {k: m[0] for k, m in mults.items()}, {k: m[1] for k, m in mults.items()})
  got_flat = [{"/".join(path_names(p)): v for p, v in jax.tree_util.tree_leaves_with_path(step)} for step in got]
  _assert_trajectories_close(got_flat, want)


def test_inject_hyperparams_exposes_current_rate():
  params, grads = _problem(len(RATES))
  lr_fn = lambda path, p: 2.0 if path[-1] == "b" else 1.0  # noqa: E731
  opt = optax.inject_hyperparams(caffe_sgd, static_args=("lr_mult", "decay_mult"))(
    learning_rate=_varying_schedule, momentum=0.9, lr_mult=lr_fn, weight_decay=0.004)
  p = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
  state = opt.init(p)
  seen, trajectory = [], []
  for g in grads:
    updates, state = jax.jit(opt.update)(jax.tree.map(jnp.asarray, g), state, p)
    seen.append(float(state.hyperparams["learning_rate"]))  # the rate this update used
    p = optax.apply_updates(p, updates)
    trajectory.append(p)
  np.testing.assert_allclose(seen, RATES, rtol=1e-6)
  want = caffe_solver_reference(params, grads, RATES, 0.9, 0.004, {"w": 1.0, "b": 2.0}, {"w": 1.0, "b": 1.0})
  _assert_trajectories_close(trajectory, want)


def test_equals_optax_sgd_at_constant_rate_differs_when_rate_changes():
  params, grads = _problem(6, seed=1)

  def optax_sgd(learning_rate):
    # Same L2 term as Caffe's Regularize, then optax's momentum (rate applied after accumulation).
    return optax.chain(optax.add_decayed_weights(0.004), optax.sgd(learning_rate, momentum=0.9))

  constant_caffe, _ = _run(caffe_sgd(0.05, 0.9, weight_decay=0.004), params, grads)
  constant_optax, _ = _run(optax_sgd(0.05), params, grads)
  _assert_trajectories_close(constant_caffe, [{k: np.asarray(v) for k, v in s.items()} for s in constant_optax], rtol=1e-5)

  # Without momentum the order cannot matter, whatever the schedule.
  no_momentum_caffe, _ = _run(caffe_sgd(_varying_schedule, 0.0, weight_decay=0.004), params, grads)
  no_momentum_optax, _ = _run(
    optax.chain(optax.add_decayed_weights(0.004), optax.sgd(_varying_schedule)), params, grads)
  _assert_trajectories_close(no_momentum_caffe, [{k: np.asarray(v) for k, v in s.items()} for s in no_momentum_optax], rtol=1e-5)

  # With momentum and a changing rate, Optax rescales all past gradients by today's rate; Caffe does not.
  varying_caffe, _ = _run(caffe_sgd(_varying_schedule, 0.9, weight_decay=0.004), params, grads)
  varying_optax, _ = _run(optax_sgd(_varying_schedule), params, grads)
  np.testing.assert_allclose(np.asarray(varying_caffe[0]["w"]), np.asarray(varying_optax[0]["w"]), rtol=1e-6)
  gap = max(float(jnp.max(jnp.abs(c["w"] - o["w"]))) for c, o in zip(varying_caffe, varying_optax))
  assert gap > 1e-2
  # The closed form of the difference after two steps: optax's velocity is eta_1 (mu g_0 + g_1),
  # Caffe's mu eta_0 g_0 + eta_1 g_1, so w_optax - w_caffe = mu (eta_0 - eta_1) g'_0 with g' = g + lambda w.
  g0 = np.asarray(grads[0]["w"], np.float64) + 0.004 * params["w"]
  np.testing.assert_allclose(
    np.asarray(varying_optax[1]["w"]) - np.asarray(varying_caffe[1]["w"]),
    0.9 * (RATES[0] - RATES[1]) * g0, rtol=1e-3, atol=1e-6)


def test_bad_arguments():
  with pytest.raises(ValueError, match="momentum"):
    caffe_sgd(0.1, momentum=1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    caffe_sgd(-0.1)
  with pytest.raises(ValueError, match="weight_decay"):
    caffe_sgd(0.1, weight_decay=-1.0)
  params = {"w": jnp.ones(2)}
  opt = caffe_sgd(0.1, weight_decay=0.1)
  with pytest.raises(ValueError, match="params"):
    opt.update(params, opt.init(params))
  opt = caffe_sgd(0.1, lr_mult={"v": 1.0})
  with pytest.raises(ValueError, match="lr_mult"):
    opt.update(params, opt.init(params), params)
