"""Warmup-stable-decay and its cyclic variant against the float64 numpy references in references.py."""

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


class WsdTest(chex.TestCase):

  @parameterized.product(shape=clr_optax.WSD_SHAPES, phases=((100, 200), (0, 300), (7, 1), (0, 1000)),
                         levels=((0.0, 0.0), (0.001, 0.0001)))
  def test_every_step_matches_the_reference(self, shape, phases, levels):
    warmup, decay = phases
    init_lr, final_lr = levels
    schedule = clr_optax.wsd(0.01, 1000, warmup=warmup, decay=decay, shape=shape,
                             init_lr=init_lr if warmup else None, final_lr=final_lr)  # no init_lr without a warmup
    steps = np.arange(1100)
    expected = ref.wsd(steps, 0.01, 1000, warmup, decay, shape, init_lr, final_lr)
    # relative: the decays keep their precision as they approach final_lr = 0
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=RTOL, atol=0)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*clr_optax.WSD_SHAPES)
  def test_exact_at_the_phase_boundaries(self, shape):
    schedule = self.variant(
        clr_optax.wsd(0.03, 5000, warmup=500, decay=1000, shape=shape, init_lr=0.001, final_lr=0.0003))
    # step 0: init_lr; the peak from the end of the warmup to the start of the decay; final_lr at the end
    values = [float(schedule(t)) for t in (0, 500, 2000, 4000, 5000, 5001, 2**31 - 1)]
    assert values == [np.float32(v) for v in (0.001, 0.03, 0.03, 0.03, 0.0003, 0.0003, 0.0003)]
    assert float(schedule(499)) < np.float32(0.03) and float(schedule(4001)) < np.float32(0.03)
    assert float(schedule(4999)) > np.float32(0.0003)

  def test_the_decay_shapes_at_their_midpoint(self):
    # hand-computed: p = 1/2 is 1 - p = 0.5, (1 + cos(pi / 2)) / 2 = 0.5, 1 - sqrt(0.5) = 0.29289...
    for shape, weight in (("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - 0.5**0.5)):
      schedule = clr_optax.wsd(1.0, 100, warmup=0, decay=40, shape=shape)
      np.testing.assert_allclose(float(schedule(80)), weight, rtol=RTOL)

  def test_huge_run(self):
    total, decay = 2**31 - 1, 2**28
    schedule = clr_optax.wsd(0.01, total, warmup=10_000, decay=decay, shape="1-sqrt")
    steps = [0, 9_999, 10_000, total - decay, total - decay + 1, total - 2, total - 1, 2**31 - 1]
    np.testing.assert_allclose(_values(schedule, steps), ref.wsd(np.array(steps), 0.01, total, 10_000, decay, "1-sqrt"),
                               rtol=RTOL, atol=0)

  def test_arrays_and_vmap(self):
    peaks = jnp.array([0.01, 0.02, 0.05])
    decays = jnp.array([10, 50, 100], dtype=jnp.int32)
    curves = jax.jit(jax.vmap(lambda p, d: jax.vmap(clr_optax.wsd(p, 200, warmup=20, decay=d, shape="cosine"))(
        jnp.arange(220))))(peaks, decays)
    for i in range(3):
      expected = ref.wsd(np.arange(220), float(peaks[i]), 200, 20, int(decays[i]), "cosine")
      np.testing.assert_allclose(np.asarray(curves[i]), expected, rtol=RTOL)

  def test_dtype(self):
    assert clr_optax.wsd(0.01, 100, warmup=10, decay=10)(5).dtype == jnp.float32
    with jax.enable_x64(True):
      assert clr_optax.cyclic_wsd(0.01, 100, warmup=10, decay=10)(5).dtype == jnp.float64


class CyclicWsdTest(chex.TestCase):

  @parameterized.product(shape=clr_optax.WSD_SHAPES, phases=((100, 100), (0, 250), (300, 1)))
  def test_every_step_matches_the_reference(self, shape, phases):
    warmup, decay = phases
    schedule = clr_optax.cyclic_wsd(0.01, 1000, warmup=warmup, decay=decay, shape=shape,
                                    init_lr=0.0005 if warmup else None, final_lr=0.0001)
    steps = np.arange(3500)
    expected = ref.cyclic_wsd(steps, 0.01, 1000, warmup, decay, shape, 0.0005, 0.0001)
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=RTOL)

  @chex.variants(with_jit=True, without_jit=True)
  def test_every_cycle_restarts_at_the_peak_and_warms_up_once(self):
    schedule = self.variant(clr_optax.cyclic_wsd(0.01, 1000, warmup=100, decay=200, shape="1-sqrt"))
    assert float(schedule(0)) == 0.0 and float(schedule(50)) == np.float32(0.005)
    for k in (1, 2, 7, 2_147_482):  # the first steps of later cycles: the peak, not a warmup
      assert float(schedule(k * 1000)) == np.float32(0.01)
      assert float(schedule(k * 1000 + 50)) == np.float32(0.01)
      assert float(schedule(k * 1000 - 200)) == np.float32(0.01)  # the decay starts at the peak
      np.testing.assert_allclose(float(schedule(k * 1000 - 1)), 0.01 * (1 - (199 / 200) ** 0.5), rtol=RTOL)

  def test_huge_steps(self):
    schedule = clr_optax.cyclic_wsd(0.01, 3000, warmup=100, decay=700, shape="cosine", final_lr=0.001)
    steps = np.array([2**24 + 1, 10**8 + 1, 2**31 - 2648, 2**31 - 2, 2**31 - 1])
    np.testing.assert_allclose(_values(schedule, steps), ref.cyclic_wsd(steps, 0.01, 3000, 100, 700, "cosine",
                                                                         final_lr=0.001), rtol=RTOL)


class ValidationTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("zero_total", lambda: clr_optax.wsd(0.01, 0, warmup=0, decay=1), ValueError, "total_steps"),
      ("negative_warmup", lambda: clr_optax.wsd(0.01, 100, warmup=-1, decay=10), ValueError, "warmup"),
      ("zero_decay", lambda: clr_optax.wsd(0.01, 100, warmup=10, decay=0), ValueError, "decay"),
      ("fractional_decay", lambda: clr_optax.wsd(0.01, 100, warmup=10, decay=2.5), ValueError, "decay"),
      ("phases_too_long", lambda: clr_optax.wsd(0.01, 100, warmup=60, decay=50), ValueError, "warmup \\+ decay"),
      ("shape", lambda: clr_optax.wsd(0.01, 100, warmup=10, decay=10, shape="sqrt"), ValueError, "shape"),
      ("init_above_peak", lambda: clr_optax.wsd(0.01, 100, warmup=10, decay=10, init_lr=0.1), ValueError, "init_lr"),
      ("final_above_peak", lambda: clr_optax.wsd(0.01, 100, warmup=10, decay=10, final_lr=0.1), ValueError, "final_lr"),
      ("string_peak", lambda: clr_optax.wsd("0.01", 100, warmup=10, decay=10), TypeError, "peak_lr"),
      ("cyclic_too_long", lambda: clr_optax.cyclic_wsd(0.01, 100, warmup=60, decay=50), ValueError, "cycle_steps"),
      ("cyclic_zero_cycle", lambda: clr_optax.cyclic_wsd(0.01, 0, warmup=0, decay=1), ValueError, "cycle_steps"),
      # init_lr is where the warmup starts: without one it would be ignored
      ("init_without_warmup", lambda: clr_optax.wsd(1.0, 100, warmup=0, decay=10, init_lr=0.5), ValueError, "init_lr"),
      ("cyclic_init_without_warmup", lambda: clr_optax.cyclic_wsd(1.0, 100, warmup=0, decay=10, init_lr=0.0),
       ValueError, "init_lr.*warmup=0"),
  )
  def test_bad_arguments_raise_naming_them(self, build, error, pattern):
    with self.assertRaisesRegex(error, pattern):
      build()
