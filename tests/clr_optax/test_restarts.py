"""SGDR beyond the PyTorch values (test_torch_reference.py): huge steps, the decay per restart, arrays."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

import clr_optax
from tests.clr_optax import references as ref

RTOL = 2e-6


def _values(schedule, steps):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, dtype=jnp.int32)), dtype=np.float64)


def _close(got, expected, peak, rtol=RTOL):
  # Relative, or relative to the peak where the float64 reference's own 1 + cos cancels near the minimum.
  np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * peak)


class FormulaTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((10, 1, 0.0), (10, 2, 0.0), (3, 3, 0.001), (1, 2, 0.0), (7, 5, 0.01), (4, 1, 0.02))
  def test_every_step_of_the_first_cycles(self, t_0, t_mult, min_lr):
    schedule = self.variant(clr_optax.sgdr(0.1, t_0, t_mult=t_mult, min_lr=min_lr))
    for t in range(300):
      _close(float(schedule(t)), ref.sgdr(t, 0.1, t_0, t_mult, min_lr), 0.1)

  def test_restarts_land_on_the_peak_exactly(self):
    # cycle i starts at t_0 (m**i - 1) / (m - 1): max_lr there, bit for bit
    for t_0, m in ((10, 2), (3, 3), (2000, 2), (1, 2), (10, 3)):
      starts = [t_0 * (m**i - 1) // (m - 1) for i in range(40)]
      starts = [s for s in starts if s < 2**31]
      got = _values(clr_optax.sgdr(0.1, t_0, t_mult=m, min_lr=0.001), starts)
      np.testing.assert_array_equal(got, np.float32(0.1))

  @parameterized.parameters(0.5, 0.9)
  def test_cycle_decay_shrinks_the_amplitude(self, decay):
    schedule = clr_optax.sgdr(0.1, 5, t_mult=2, min_lr=0.01, cycle_decay=decay)
    steps = np.arange(400)
    expected = [ref.sgdr(int(t), 0.1, 5, 2, 0.01, decay) for t in steps]
    _close(_values(schedule, steps), expected, 0.1)
    peaks = _values(schedule, [0, 5, 15, 35, 75])
    np.testing.assert_allclose(peaks, 0.01 + 0.09 * decay ** np.arange(5), rtol=RTOL)
    assert np.all(_values(schedule, steps) >= np.float32(0.01))

  def test_timm_cycle_decay_agrees_for_min_lr_zero(self):
    # timm: lr_max = max_lr * cycle_decay**i, annealed down to lr_min (here 0)
    schedule = clr_optax.sgdr(0.1, 10, cycle_decay=0.8)
    for t in range(0, 100, 7):
      i, t_cur = divmod(t, 10)
      timm = 0.5 * 0.1 * 0.8**i * (1 + math.cos(math.pi * t_cur / 10))
      _close(float(schedule(t)), timm, 0.1)


class HugeStepTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((2000, 2), (10, 3), (1, 2), (3000, 1), (2**30, 2), (1, 1000), (12345, 7))
  def test_any_step_up_to_int32_max(self, t_0, t_mult):
    schedule = self.variant(clr_optax.sgdr(0.006, t_0, t_mult=t_mult, min_lr=0.001))
    for t in (2**24 + 1, 10**8 + 1, 1_999_999_999, 2**31 - 2, 2**31 - 1):
      _close(float(schedule(t)), ref.sgdr(t, 0.006, t_0, t_mult, 0.001), 0.006, rtol=RTOL)

  def test_relative_precision_next_to_a_restart_with_min_lr_zero(self):
    # t = 2**31 - 2 is the last step of a cycle of 2**30 steps (t_0 = 1, t_mult = 2): the learning rate is
    # max_lr * sin(x)**2 with x = pi / 2**31; by Taylor, x**2 (1 - x**2 / 3) to ~x**4. PyTorch's float64
    # 1 + cos(pi * t_cur / T_i) returns exactly 0 there.
    x = math.pi / 2**31
    expected = 0.1 * x**2 * (1 - x**2 / 3)
    for schedule in (clr_optax.sgdr(0.1, 1, t_mult=2), jax.jit(clr_optax.sgdr(0.1, 1, t_mult=2))):
      np.testing.assert_allclose(float(schedule(2**31 - 2)), expected, rtol=RTOL)
    with jax.enable_x64(True):
      np.testing.assert_allclose(float(clr_optax.sgdr(0.1, 1, t_mult=2)(2**31 - 2)), expected, rtol=1e-13)

  def test_int64_steps_beyond_int32_under_x64(self):
    with jax.enable_x64(True):
      for t_0, m in ((1, 2), (2000, 2), (10, 3), (3000, 1)):
        schedule = jax.jit(clr_optax.sgdr(0.1, t_0, t_mult=m, min_lr=0.001))
        for t in (2**31, 2**40 + 12345, 2**62 + 1, 2**63 - 1):
          _close(float(schedule(jnp.int64(t))), ref.sgdr(t, 0.1, t_0, m, 0.001), 0.1, rtol=1e-12)

  def test_last_cycle_longer_than_int32_holds(self):
    # t_0 = 10, t_mult = 3: from 1,937,102,440 on the cycle is 3,874,204,890 steps, more than int32 holds
    schedule = clr_optax.sgdr(0.1, 10, t_mult=3)
    steps = [1_937_102_439, 1_937_102_440, 1_937_102_441, 2_000_000_000, 2**31 - 1]
    _close(_values(schedule, steps), [ref.sgdr(t, 0.1, 10, 3) for t in steps], 0.1)


class ArrayArgumentsTest(parameterized.TestCase):

  def test_vmap_over_bounds_and_cycle_lengths(self):
    max_lr = jnp.array([0.1, 0.2, 0.3, 0.4])
    t_0 = jnp.array([5, 7, 3, 10], dtype=jnp.int32)
    t_mult = jnp.array([1, 2, 3, 1], dtype=jnp.int32)

    @jax.jit
    def curves(m, a, b):
      return jax.vmap(lambda m, a, b: jax.vmap(clr_optax.sgdr(m, a, t_mult=b, min_lr=0.01))(jnp.arange(300)))(m, a, b)

    got = np.asarray(curves(max_lr, t_0, t_mult))
    for i in range(4):
      expected = [ref.sgdr(t, float(max_lr[i]), int(t_0[i]), int(t_mult[i]), 0.01) for t in range(300)]
      _close(got[i], expected, float(max_lr[i]))

  def test_concrete_array_of_t_mult(self):
    schedule = clr_optax.sgdr(0.1, 4, t_mult=np.array([1, 2, 4]))
    for t in (0, 3, 4, 11, 12, 20, 2**31 - 1):
      got = np.asarray(schedule(t))
      _close(got, [ref.sgdr(t, 0.1, 4, m) for m in (1, 2, 4)], 0.1)

  def test_lax_scan(self):
    schedule = clr_optax.sgdr(0.1, 6, t_mult=2, min_lr=0.001, cycle_decay=0.7)
    _, lrs = jax.lax.scan(lambda t, _: (t + 1, schedule(t)), jnp.int32(0), None, length=100)
    _close(np.asarray(lrs), [ref.sgdr(t, 0.1, 6, 2, 0.001, 0.7) for t in range(100)], 0.1)

  def test_dtype_follows_the_bounds(self):
    assert clr_optax.sgdr(0.1, 10, t_mult=2)(3).dtype == jnp.float32
    assert clr_optax.sgdr(jnp.bfloat16(0.1), 10)(3).dtype == jnp.float32  # never narrower than float32
    with jax.enable_x64(True):
      assert clr_optax.sgdr(0.1, 10, t_mult=2)(3).dtype == jnp.float64


class ValidationTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("zero_t_0", dict(max_lr=0.1, t_0=0), ValueError, "t_0"),
      ("fractional_t_0", dict(max_lr=0.1, t_0=2.5), ValueError, "t_0"),
      ("huge_t_0", dict(max_lr=0.1, t_0=2**31), ValueError, "t_0"),
      ("zero_t_mult", dict(max_lr=0.1, t_0=10, t_mult=0), ValueError, "t_mult"),
      ("fractional_t_mult", dict(max_lr=0.1, t_0=10, t_mult=1.5), ValueError, "t_mult"),
      ("min_above_max", dict(max_lr=0.1, t_0=10, min_lr=0.2), ValueError, "max_lr must be >= min_lr"),
      ("negative_max", dict(max_lr=-0.1, t_0=10), ValueError, "max_lr"),
      ("decay_zero", dict(max_lr=0.1, t_0=10, cycle_decay=0.0), ValueError, "cycle_decay"),
      ("decay_above_one", dict(max_lr=0.1, t_0=10, cycle_decay=1.5), ValueError, "cycle_decay"),
      ("string_max", dict(max_lr="0.1", t_0=10), TypeError, "max_lr"),
      ("string_t_mult", dict(max_lr=0.1, t_0=10, t_mult="2"), TypeError, "t_mult"),
  )
  def test_bad_arguments_raise_naming_them(self, kwargs, error, pattern):
    with self.assertRaisesRegex(error, pattern):
      clr_optax.sgdr(**kwargs)

  def test_traced_t_0_and_t_mult(self):
    @jax.jit
    def lr(t_0, t_mult, t):
      return clr_optax.sgdr(0.1, t_0, t_mult=t_mult)(t)

    for t_0, m, t in ((10, 2, 35), (10, 1, 35), (3, 3, 2**31 - 1), (1, 2, 2**31 - 2)):
      _close(float(lr(jnp.int32(t_0), jnp.int32(m), jnp.int32(t))), ref.sgdr(t, 0.1, t_0, m), 0.1)
