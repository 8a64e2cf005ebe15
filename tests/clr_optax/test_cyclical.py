"""The cyclical policies against the paper's own code and float64 formulas."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import parameterized

import clr_optax
from tests.clr_optax import references as ref

# float32 schedules against float64 references.
RTOL = 2e-6


def _values(schedule, steps):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps, dtype=jnp.int32)), dtype=np.float64)


class PaperCodeTest(chex.TestCase):
  """The paper's Torch-7 and Caffe snippets, transcribed in tests/clr_optax/references.py."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters((0.001, 0.006, 2000), (0.1, 0.3, 7), (1e-5, 2e-5, 1))
  def test_triangular_matches_torch7_and_caffe(self, base_lr, max_lr, step_size):
    schedule = self.variant(clr_optax.triangular(base_lr, max_lr, step_size))
    for t in list(range(0, 6 * step_size + 3)) + [123_457, 10**6 + 1]:
      expected = ref.torch7_triangular(t, base_lr, max_lr, step_size)
      np.testing.assert_allclose(float(schedule(t)), expected, rtol=RTOL, err_msg=f"{t=}")
      np.testing.assert_allclose(float(schedule(t)), ref.caffe_rate(t, "triangular", base_lr, max_lr, step_size), rtol=RTOL)

  @chex.variants(with_jit=True, without_jit=True)
  def test_triangular2_matches_caffe(self):
    schedule = self.variant(clr_optax.triangular2(0.001, 0.006, 2000))
    for t in list(range(0, 20_000, 97)) + [2000, 6000, 10000, 14000]:
      expected = ref.caffe_rate(t, "triangular2", 0.001, 0.006, 2000)
      np.testing.assert_allclose(float(schedule(t)), expected, rtol=RTOL, err_msg=f"{t=}")

  def test_shifted_is_caffes_start_lr_policy(self):
    for policy, factory in (("triangular", clr_optax.triangular), ("triangular2", clr_optax.triangular2)):
      schedule = clr_optax.shifted(factory(0.001, 0.006, 50), start_step=130)
      steps = np.arange(0, 700)
      expected = [ref.caffe_rate(int(t), policy, 0.001, 0.006, 50, start_lr_policy=130) for t in steps]
      np.testing.assert_allclose(_values(schedule, steps), expected, rtol=RTOL)

  def test_paper_table2_stages_in_one_line(self):
    # Table 2: triangular2 in three stages that start at 0, 16,000 and 22,000 iterations, each counting
    # its cycles from its own start (Caffe's start_lr_policy).
    stages = [(0, 0.001, 0.005, 2000), (16000, 0.0001, 0.0005, 1000), (22000, 0.00001, 0.00005, 500)]
    schedule = optax.join_schedules(
        [clr_optax.triangular2(b, m, s) for _, b, m, s in stages], boundaries=[16000, 22000]
    )
    steps = np.arange(0, 25000, 7)
    expected = []
    for t in steps:
      start, b, m, s = [stage for stage in stages if stage[0] <= t][-1]
      expected.append(ref.caffe_rate(int(t), "triangular2", b, m, s, start_lr_policy=start))
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=RTOL)


class FormulaTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(window=clr_optax.WINDOWS, down=(None, 3, 11))
  def test_windows(self, window, down):
    schedule = self.variant(clr_optax.cyclical(0.1, 0.5, 7, step_size_down=down, window=window))
    for t in range(0, 60):
      expected = ref.cyclical(t, 0.1, 0.5, 7, down, window)
      np.testing.assert_allclose(float(schedule(t)), expected, rtol=RTOL, atol=1e-7, err_msg=f"{t=}")

  def test_windows_differ_between_boundaries_and_agree_at_them(self):
    curves = {w: _values(clr_optax.cyclical(0.0, 1.0, 10, window=w), range(21)) for w in clr_optax.WINDOWS}
    for w in clr_optax.WINDOWS:
      np.testing.assert_allclose(curves[w][[0, 10, 20]], [0.0, 1.0, 0.0], atol=1e-7)
    # a quarter of the way up: Bartlett 0.5, Welch 0.75, Hann 0.5 (at x = 0.5)
    np.testing.assert_allclose([curves[w][5] for w in ("triangular", "welch", "hann")], [0.5, 0.75, 0.5], atol=1e-6)
    np.testing.assert_allclose(curves["hann"][2], 0.5 * (1 + math.cos(math.pi * 0.8)), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(None, 1500)
  def test_exp_range_keras_and_paper_forms(self, down):
    keras = self.variant(clr_optax.exp_range(0.001, 0.006, 2000, 0.99994, step_size_down=down))
    paper = self.variant(clr_optax.exp_range(0.001, 0.006, 2000, 0.99994, step_size_down=down, scale_bounds=True))
    for t in range(0, 42_000, 331):
      np.testing.assert_allclose(float(keras(t)), ref.keras_exp_range(t, 0.001, 0.006, 2000, 0.99994, down), rtol=RTOL)
      np.testing.assert_allclose(float(paper(t)), ref.paper_exp_range(t, 0.001, 0.006, 2000, 0.99994, down), rtol=RTOL)

  def test_paper_exp_range_oscillates_around_caffe_exp(self):
    # Fig. 10: exp_range's bounds follow base_lr * gamma**t from above: at every cycle boundary it equals exp.
    paper = clr_optax.exp_range(0.001, 0.002, 500, 0.9999, scale_bounds=True)
    exp = clr_optax.exponential(0.001, 0.9999)
    boundaries = np.arange(0, 20_000, 1000)
    np.testing.assert_allclose(_values(paper, boundaries), _values(exp, boundaries), rtol=RTOL)
    assert np.all(_values(paper, boundaries + 500) > _values(exp, boundaries + 500))

  def test_gamma_power_keeps_double_precision(self):
    # Rounding 0.99994 to float32 alone costs ~3e-4 of relative accuracy in gamma**24000.
    naive = np.float32(0.99994) ** np.float32(24000)
    exact = 0.99994**24000
    assert abs(naive / exact - 1) > 1e-4  # the hazard is real...
    got = float(clr_optax.exponential(1.0, 0.99994)(24000))
    np.testing.assert_allclose(got, exact, rtol=1e-6)  # ...and avoided
    got = float(clr_optax.exp_range(0.0, 1.0, 12000, 0.99994)(24000 + 12000))  # a peak: 1 * gamma**t
    np.testing.assert_allclose(got, 0.99994**36000, rtol=1e-6)

  def test_decay_and_exponential(self):
    steps = list(range(0, 5000, 37)) + [70_000]
    np.testing.assert_allclose(
        _values(clr_optax.decay(0.001, 0.007, 2000), steps), [ref.paper_decay(t, 0.001, 0.007, 2000) for t in steps], rtol=RTOL
    )
    np.testing.assert_allclose(
        _values(clr_optax.exponential(0.001, 0.99994), steps), [ref.caffe_exp(t, 0.001, 0.99994) for t in steps], rtol=RTOL
    )

  def test_custom_scale_fn_in_both_modes(self):
    fn = lambda x: 1.0 / (1.0 + 0.5 * (x - 1.0))
    by_cycle = clr_optax.cyclical(0.1, 0.5, 5, scale_fn=fn, scale_mode="cycle")
    by_step = clr_optax.cyclical(0.1, 0.5, 5, scale_fn=fn, scale_mode="iterations")
    for t in range(40):
      cycle_scale = lambda cycle, t: 1 / (1 + 0.5 * (cycle - 1))
      step_scale = lambda cycle, t: 1 / (1 + 0.5 * (t - 1))
      np.testing.assert_allclose(float(by_cycle(t)), ref.cyclical(t, 0.1, 0.5, 5, scale=cycle_scale), rtol=RTOL)
      np.testing.assert_allclose(float(by_step(t)), ref.cyclical(t, 0.1, 0.5, 5, scale=step_scale), rtol=RTOL)


class HugeStepTest(chex.TestCase):
  """Exact up to 2**31 - 1: the cycle position is found in integers before any float conversion."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(2**24 + 1, 10**8 + 1, 2**31 - 1, 2**31 - 2001, 1_999_999_999)
  def test_triangular_at_huge_steps(self, t):
    schedule = self.variant(clr_optax.triangular(0.001, 0.006, 2000))
    np.testing.assert_allclose(float(schedule(t)), ref.caffe_rate(t, "triangular", 0.001, 0.006, 2000), rtol=RTOL)

  def test_keras_float32_formula_would_fail_where_we_do_not(self):
    t = 10**8 + 1  # one step past a cycle boundary: expected base + amplitude / step_size
    t32, s32 = np.float32(t), np.float32(2000)
    cycle = np.floor(np.float32(1) + t32 / (np.float32(2) * s32))
    x = np.abs(t32 / s32 - np.float32(2) * cycle + np.float32(1))
    keras = np.float32(0.001) + np.float32(0.005) * np.maximum(np.float32(0), np.float32(1) - x)
    expected = ref.caffe_rate(t, "triangular", 0.001, 0.006, 2000)
    assert keras == np.float32(0.001) and expected > 0.001  # float32 loses the step entirely
    np.testing.assert_allclose(float(clr_optax.triangular(0.001, 0.006, 2000)(t)), expected, rtol=RTOL)

  def test_triangular2_far_beyond_cycle_1024_is_finite_and_tends_to_base(self):
    schedule = clr_optax.triangular2(0.001, 0.006, 100)
    for cycle in (1024, 1025, 1100, 10_000_000):
      peak = (cycle - 1) * 200 + 100
      value = float(schedule(peak))
      assert math.isfinite(value)
      np.testing.assert_allclose(value, 0.001 + 0.005 * 2.0 ** -(cycle - 1), rtol=RTOL)

  def test_float_steps_are_floored(self):
    schedule = clr_optax.triangular(0.0, 1.0, 10)
    np.testing.assert_allclose(float(schedule(jnp.float32(5.7))), 0.5, rtol=RTOL)


class ArrayArgumentsTest(chex.TestCase):

  def test_vmap_over_bounds_is_one_program(self):
    base = jnp.array([0.001, 0.01, 0.1])
    top = jnp.array([0.006, 0.03, 0.2])

    @jax.jit
    def sweep(b, m):
      return jax.vmap(lambda b, m: jax.vmap(clr_optax.triangular2(b, m, 20))(jnp.arange(200)))(b, m)

    got = np.asarray(sweep(base, top))
    for i in range(3):
      expected = [ref.caffe_rate(t, "triangular2", float(base[i]), float(top[i]), 20) for t in range(200)]
      np.testing.assert_allclose(got[i], expected, rtol=RTOL)

  def test_schedule_built_inside_jit_from_traced_bounds(self):
    @jax.jit
    def lr_at(b, m, gamma, t):
      return clr_optax.exp_range(b, m, 10, gamma)(t)

    np.testing.assert_allclose(float(lr_at(0.1, 0.5, 0.99, 27)), ref.keras_exp_range(27, 0.1, 0.5, 10, 0.99), rtol=RTOL)

  def test_step_size_as_array(self):
    schedule = clr_optax.triangular(0.0, 1.0, jnp.array(4, dtype=jnp.int32))
    np.testing.assert_allclose(_values(schedule, range(9)), [0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0], atol=1e-7)

  def test_concrete_gamma_array(self):
    schedule = jax.vmap(lambda g: clr_optax.exponential(1.0, g)(1000))
    gammas = jnp.array([0.999, 0.9999])
    # Inside vmap gamma is traced and already a float32: the reference raises the rounded value.
    expected = [float(np.float32(g)) ** 1000 for g in (0.999, 0.9999)]
    np.testing.assert_allclose(np.asarray(schedule(gammas)), expected, rtol=2e-6)
    # A concrete float64 array keeps its precision: the log is taken on the host.
    np.testing.assert_allclose(float(clr_optax.exponential(1.0, np.float64(0.9999))(1000)), 0.9999**1000, rtol=1e-6)


class DtypeTest(parameterized.TestCase):

  def test_float32_by_default(self):
    for schedule in (clr_optax.triangular2(0.001, 0.006, 10), clr_optax.one_cycle(0.1, 100), clr_optax.exponential(0.1, 0.9)):
      assert schedule(jnp.int32(3)).dtype == jnp.float32

  def test_float64_under_x64(self):
    with jax.enable_x64(True):
      schedules = (
          clr_optax.triangular2(0.001, 0.006, 10),
          clr_optax.exp_range(0.001, 0.006, 10, 0.999, scale_bounds=True),
          clr_optax.one_cycle(0.1, 100),
          clr_optax.cyclical_momentum(0.8, 0.9, 10, window="hann"),
          clr_optax.exponential(0.1, 0.9),
      )
      for schedule in schedules:
        assert schedule(jnp.int32(3)).dtype == jnp.float64
      # and bf16 bounds give float32 learning rates (bf16 arithmetic would round every value to 8 bits)
      assert clr_optax.triangular(jnp.bfloat16(0.001), jnp.bfloat16(0.006), 10)(3).dtype == jnp.float32


class ValidationTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("zero_step", lambda: clr_optax.triangular(0.1, 0.2, 0), ValueError, "step_size"),
      ("negative_step", lambda: clr_optax.triangular2(0.1, 0.2, -5), ValueError, "step_size"),
      ("fractional_step", lambda: clr_optax.triangular(0.1, 0.2, 2.5), ValueError, "step_size"),
      ("bad_step_down", lambda: clr_optax.triangular(0.1, 0.2, 5, step_size_down=0), ValueError, "step_size_down"),
      ("max_below_base", lambda: clr_optax.triangular(0.2, 0.1, 5), ValueError, "max_lr must be >= base_lr"),
      ("negative_lr", lambda: clr_optax.cyclical(-0.1, 0.2, 5), ValueError, "base_lr"),
      ("nan_lr", lambda: clr_optax.cyclical(0.1, float("nan"), 5), ValueError, "max_lr"),
      ("array_max_below_base", lambda: clr_optax.cyclical(jnp.array([0.1, 0.3]), jnp.array([0.2, 0.2]), 5), ValueError, "max_lr"),
      ("gamma_zero", lambda: clr_optax.exp_range(0.1, 0.2, 5, 0.0), ValueError, "gamma"),
      ("gamma_above_one", lambda: clr_optax.exp_range(0.1, 0.2, 5, 1.01), ValueError, "gamma"),
      ("exp_gamma", lambda: clr_optax.exponential(0.1, 2.0), ValueError, "gamma"),
      ("window", lambda: clr_optax.cyclical(0.1, 0.2, 5, window="cosine"), ValueError, "window"),
      ("scale_mode", lambda: clr_optax.cyclical(0.1, 0.2, 5, scale_mode="epoch"), ValueError, "scale_mode"),
      ("scale_fn", lambda: clr_optax.cyclical(0.1, 0.2, 5, scale_fn=0.5), TypeError, "scale_fn"),
      ("decay_order", lambda: clr_optax.decay(0.01, 0.001, 5), ValueError, "max_lr"),
      ("shifted_negative", lambda: clr_optax.shifted(clr_optax.triangular(0.1, 0.2, 5), -1), ValueError, "start_step"),
      ("momentum_order", lambda: clr_optax.cyclical_momentum(0.9, 0.8, 5), ValueError, "max_momentum"),
      ("bool_step", lambda: clr_optax.triangular(0.1, 0.2, True), TypeError, "step_size"),
      ("huge_period", lambda: clr_optax.triangular(0.1, 0.2, 2**30, step_size_down=2**30), ValueError, "2\\*\\*31"),
  )
  def test_bad_arguments_raise_naming_them(self, build, error, pattern):
    with self.assertRaisesRegex(error, pattern):
      build()

  def test_traced_values_are_not_checked(self):
    # documented: inside jit a bad bound cannot be seen, so it is let through
    out = jax.jit(lambda b: clr_optax.triangular(b, 0.1, 5)(0))(0.2)
    np.testing.assert_allclose(float(out), 0.2, rtol=RTOL)

  def test_integral_float_step_size_is_accepted(self):
    np.testing.assert_allclose(float(clr_optax.triangular(0.0, 1.0, 4.0)(2)), 0.5, rtol=RTOL)


class RulesTest(parameterized.TestCase):

  def test_step_size_from_epochs(self):
    assert clr_optax.step_size_from_epochs(4, 500) == 2000
    assert clr_optax.step_size_from_epochs(2.5, 391) == 978
    with self.assertRaisesRegex(ValueError, "epochs"):
      clr_optax.step_size_from_epochs(0, 500)
    with self.assertRaisesRegex(ValueError, "iterations_per_epoch"):
      clr_optax.step_size_from_epochs(4, 0)

  def test_base_lr_from_max(self):
    np.testing.assert_allclose(clr_optax.base_lr_from_max(0.006, factor=3), 0.002)
    np.testing.assert_allclose(clr_optax.base_lr_from_max(0.02), 0.005)
    with self.assertRaisesRegex(ValueError, "factor"):
      clr_optax.base_lr_from_max(0.02, factor=1)


class TransformsTest(parameterized.TestCase):
  """The schedules trace under lax.scan and pmap as well as jit and vmap."""

  SCHEDULES = {
      "triangular2": (clr_optax.triangular2(0.001, 0.006, 7), lambda t: ref.caffe_rate(t, "triangular2", 0.001, 0.006, 7)),
      "exp_range": (clr_optax.exp_range(0.001, 0.006, 7, 0.99), lambda t: ref.keras_exp_range(t, 0.001, 0.006, 7, 0.99)),
  }

  @parameterized.parameters("triangular2", "exp_range")
  def test_lax_scan(self, name):
    schedule, expected = self.SCHEDULES[name]
    _, lrs = jax.lax.scan(lambda t, _: (t + 1, schedule(t)), jnp.int32(0), None, length=50)
    np.testing.assert_allclose(np.asarray(lrs), [expected(t) for t in range(50)], rtol=RTOL)

  @parameterized.parameters("triangular2", "exp_range")
  def test_pmap(self, name):
    schedule, expected = self.SCHEDULES[name]
    n = jax.local_device_count()  # 4 fake CPU devices under tests/conftest.py
    steps = jnp.arange(n, dtype=jnp.int32) * 5
    np.testing.assert_allclose(np.asarray(jax.pmap(schedule)(steps)), [expected(5 * i) for i in range(n)], rtol=RTOL)
