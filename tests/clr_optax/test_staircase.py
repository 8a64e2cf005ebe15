"""The staircase combinator: every block of k steps takes the value of its first step."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import parameterized

import clr_optax
from tests.clr_optax import references as ref

RTOL = 2e-6


def _values(schedule, steps):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, dtype=jnp.int32)), dtype=np.float64)


class StaircaseTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((2000, 500), (2000, 300), (7, 1), (7, 3))
  def test_triangular_in_stairs(self, step_size, k):
    schedule = self.variant(clr_optax.staircase(clr_optax.triangular(0.001, 0.006, step_size), k))
    for t in list(range(0, 4 * step_size + 5, max(1, step_size // 50))) + [2**31 - 1, 2**31 - 2001]:
      expected = ref.caffe_rate(t // k * k, "triangular", 0.001, 0.006, step_size)
      np.testing.assert_allclose(float(schedule(t)), expected, rtol=RTOL, err_msg=f"{t=}")

  def test_stairs_of_a_half_cycle(self):
    # k divides step_size: a half-cycle climbs step_size / k equal stairs from base_lr, held k steps each
    values = _values(clr_optax.staircase(clr_optax.triangular(0.0, 1.0, 10), 2), range(20))
    np.testing.assert_allclose(values, np.repeat([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6, 0.4, 0.2], 2), atol=1e-7)

  def test_one_cycle_in_stairs(self):
    total, pct, k = 200, 0.25, 7
    schedule = clr_optax.staircase(clr_optax.one_cycle(1.0, total, pct_start=pct), k)
    end1 = pct * total - 1

    def one_cycle(t):  # PyTorch's cosine one-cycle, as in test_one_cycle.py
      if t <= end1:
        a, b, p = 1 / 25, 1.0, t / end1
      else:
        a, b, p = 1.0, 1 / 25 / 1e4, min((t - end1) / (total - 1 - end1), 1.0)
      return b + (a - b) / 2 * (math.cos(math.pi * p) + 1)

    steps = np.arange(total + 20)
    np.testing.assert_allclose(_values(schedule, steps), [one_cycle(t // k * k) for t in steps], rtol=RTOL, atol=1e-9)

  def test_deepspeed_lr_range_test_staircase(self):
    # DeepSpeed's LRRangeTest(lr_range_test_staircase=True): lr = min_lr * (1 + rate * floor(t / step_size))
    min_lr, rate, step_size = 1e-4, 0.5, 25
    linear = lambda t: min_lr * (1.0 + rate * t / step_size)
    steps = np.arange(500)
    expected = min_lr * (1 + rate * np.floor(steps / step_size))
    np.testing.assert_allclose(_values(clr_optax.staircase(linear, step_size), steps), expected, rtol=RTOL)

  def test_one_step_stairs_change_nothing(self):
    schedule = clr_optax.sgdr(0.1, 10, t_mult=2)
    steps = np.arange(200)
    np.testing.assert_array_equal(_values(clr_optax.staircase(schedule, 1), steps), _values(schedule, steps))

  def test_in_an_optimizer_and_under_scan(self):
    schedule = clr_optax.staircase(clr_optax.triangular2(0.01, 0.06, 5), 3)
    _, lrs = jax.lax.scan(lambda t, _: (t + 1, schedule(t)), jnp.int32(0), None, length=40)
    expected = [ref.caffe_rate(t // 3 * 3, "triangular2", 0.01, 0.06, 5) for t in range(40)]
    np.testing.assert_allclose(np.asarray(lrs), expected, rtol=RTOL)
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    state = optimizer.init(jnp.zeros(2))
    for t in range(8):
      _, state = optimizer.update(jnp.ones(2), state)
      np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), expected[t], rtol=RTOL)

  @parameterized.named_parameters(
      ("zero", lambda: clr_optax.staircase(clr_optax.triangular(0.1, 0.2, 5), 0), ValueError, "steps_per_stair"),
      ("fractional", lambda: clr_optax.staircase(clr_optax.triangular(0.1, 0.2, 5), 1.5), ValueError,
       "steps_per_stair"),
      ("not_callable", lambda: clr_optax.staircase(0.1, 5), TypeError, "schedule"),
  )
  def test_bad_arguments(self, build, error, pattern):
    with self.assertRaisesRegex(error, pattern):
      build()
