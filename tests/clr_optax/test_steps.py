"""Defined behaviour for every schedule at bad and far-out steps, and non-numeric hyper-parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import clr_optax
from tests.clr_optax import references as ref

# Every schedule factory with valid arguments; each numeric argument is replaced by bad values below.
FACTORIES = {
    "cyclical": (clr_optax.cyclical, dict(base_lr=0.001, max_lr=0.006, step_size=10, step_size_down=5)),
    "triangular": (clr_optax.triangular, dict(base_lr=0.001, max_lr=0.006, step_size=10, step_size_down=5)),
    "triangular2": (clr_optax.triangular2, dict(base_lr=0.001, max_lr=0.006, step_size=10, step_size_down=5)),
    "exp_range": (clr_optax.exp_range, dict(base_lr=0.001, max_lr=0.006, step_size=10, gamma=0.99, step_size_down=5)),
    "exp_range_paper": (lambda **kw: clr_optax.exp_range(**kw, scale_bounds=True),
                        dict(base_lr=0.001, max_lr=0.006, step_size=10, gamma=0.99)),
    "decay": (clr_optax.decay, dict(base_lr=0.001, max_lr=0.006, step_size=10)),
    "exponential": (clr_optax.exponential, dict(base_lr=0.1, gamma=0.9)),
    "cyclical_momentum": (clr_optax.cyclical_momentum, dict(base_momentum=0.8, max_momentum=0.9, step_size=10,
                                                            step_size_down=5)),
    "one_cycle": (clr_optax.one_cycle, dict(max_lr=0.1, total_steps=100, pct_start=0.3, div_factor=25.0,
                                            final_div_factor=1e4)),
    "one_cycle_momentum": (clr_optax.one_cycle_momentum, dict(total_steps=100, base_momentum=0.85, max_momentum=0.95,
                                                              pct_start=0.3)),
    "sgdr": (clr_optax.sgdr, dict(max_lr=0.1, t_0=10, t_mult=2, min_lr=0.001, cycle_decay=0.9)),
    "wsd": (clr_optax.wsd, dict(peak_lr=0.01, total_steps=100, warmup=10, decay=20, init_lr=0.001, final_lr=0.0)),
    "cyclic_wsd": (clr_optax.cyclic_wsd, dict(peak_lr=0.01, cycle_steps=100, warmup=10, decay=20, init_lr=0.001,
                                              final_lr=0.0)),
    "shifted": (lambda **kw: clr_optax.shifted(clr_optax.triangular(0.001, 0.006, 10), **kw), dict(start_step=5)),
    "staircase": (lambda **kw: clr_optax.staircase(clr_optax.triangular(0.001, 0.006, 10), **kw),
                  dict(steps_per_stair=3)),
}


def _build(name):
  factory, kwargs = FACTORIES[name]
  return factory(**kwargs)


NON_NUMERIC = {"str": "0.1", "None": None, "bool": True, "mixed_list": [0.1, "x"]}
OPTIONAL = {"step_size_down", "init_lr"}  # None is their default


@pytest.mark.parametrize("name, argument, bad", [
    pytest.param(n, a, bad, id=f"{n}-{a}-{kind}")
    for n, (_, kw) in FACTORIES.items() for a in kw for kind, bad in NON_NUMERIC.items()
    if not (bad is None and a in OPTIONAL)])
def test_non_numeric_hyper_parameters_raise_naming_them(name, argument, bad):
  factory, kwargs = FACTORIES[name]
  with pytest.raises((TypeError, ValueError), match=argument):
    factory(**{**kwargs, argument: bad})


def test_a_string_bound_raises_a_type_error_naming_it():
  with pytest.raises(TypeError, match="base_lr must be a real number"):
    clr_optax.triangular("0.1", 1.0, 10)


BAD_STEPS = [
    (2.5, ValueError), (np.float64(7.25), ValueError), (-2.5, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), (np.array([0.0, 1.5]), ValueError), ("3", TypeError), (True, TypeError),
    (None, TypeError), (2**31, ValueError), (np.int64(2**31), ValueError), (np.int64(2**40), ValueError),
]


@pytest.mark.parametrize("step, error", BAD_STEPS, ids=[repr(s) for s, _ in BAD_STEPS])
@pytest.mark.parametrize("name", FACTORIES)
def test_bad_host_steps_raise(name, step, error):
  with pytest.raises(error, match="step"):
    _build(name)(step)


def test_a_negative_step_is_the_first_rate_and_an_int64_step_past_int32_raises():
  # Not a value of the previous cycle, nor one above max_lr with scaled bounds; no wrap to -2**31.
  assert float(clr_optax.triangular(0.001, 0.006, 20)(-10)) == np.float32(0.001)
  assert float(clr_optax.exp_range(0.001, 0.006, 20, 0.9, scale_bounds=True)(-10)) == np.float32(0.001)
  with pytest.raises(ValueError, match="fit in int32"):
    clr_optax.triangular(0.001, 0.006, 20)(np.int64(2**31))


@pytest.mark.parametrize("name", FACTORIES)
def test_negative_steps_count_as_step_0(name):
  schedule = _build(name)
  at_0 = float(schedule(0))
  for step in (-1, -10, np.int64(-2**40), np.array(-3), -7.0):  # host values
    assert float(schedule(step)) == at_0
  assert float(jax.jit(schedule)(-10)) == at_0  # traced
  assert float(schedule(jnp.int32(-10))) == at_0  # a concrete JAX array
  assert float(jax.jit(schedule)(jnp.float32(-2.5))) == at_0
  np.testing.assert_array_equal(np.asarray(jax.jit(jax.vmap(schedule))(jnp.array([-7, -1, 0]))), at_0)
  np.testing.assert_array_equal(np.asarray(schedule(np.array([-7, -1, 0]))), at_0)


def test_join_schedules_evaluated_on_the_host():
  # optax.join_schedules calls later schedules at step - boundary < 0 and discards those values: a host step
  # (eager, or a numpy array of steps as experiments/reproduce.py passes) must not raise there.
  stages = [(0.001, 0.005, 2000), (0.0001, 0.0005, 1000)]
  table2 = optax.join_schedules([clr_optax.triangular2(*s) for s in stages], boundaries=[16_000])
  steps = np.array([0, 1000, 15_999, 16_000, 17_000])
  later = [int(t >= 16_000) for t in steps]
  expected = [ref.caffe_rate(int(t), "triangular2", *stages[k], start_lr_policy=16_000 * k) for t, k in zip(steps, later)]
  np.testing.assert_allclose(np.asarray(table2(steps)), expected, rtol=1e-6)
  np.testing.assert_allclose([float(table2(int(t))) for t in steps], expected, rtol=1e-6)


@pytest.mark.parametrize("name", FACTORIES)
def test_whole_float_steps_equal_integer_ones(name):
  schedule = _build(name)
  for t in (0, 7, 33, 16_777_217):
    assert float(schedule(float(t))) == float(schedule(t)) == float(schedule(np.int64(t)))


def test_traced_negative_step_stays_within_the_bounds():
  paper = clr_optax.exp_range(0.001, 0.006, 20, 0.9, scale_bounds=True)
  assert float(jax.jit(paper)(-10)) == np.float32(0.001)


def test_traced_floating_steps_are_floored():
  schedule = clr_optax.triangular(0.0, 1.0, 10)
  np.testing.assert_allclose(float(jax.jit(schedule)(jnp.float32(5.7))), 0.5, rtol=1e-6)


def test_int64_steps_beyond_int32_under_x64():
  with jax.enable_x64(True):
    schedule = clr_optax.triangular(0.001, 0.006, 2000)
    for t in (2**31, np.int64(2**40 + 1), 2**62 + 2001):
      np.testing.assert_allclose(float(schedule(t)), ref.caffe_rate(int(t), "triangular", 0.001, 0.006, 2000),
                                 rtol=1e-12)
    with pytest.raises(ValueError, match="fit in int64"):
      schedule(2**63)


@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_holds_its_final_value_after_total_steps(anneal, three_phase):
  # PyTorch's OneCycleLR raises past total_steps; clr_optax documents that it holds the last value.
  total = 500
  lr = clr_optax.one_cycle(0.1, total, anneal=anneal, three_phase=three_phase, div_factor=25.0, final_div_factor=1e4)
  momentum = clr_optax.one_cycle_momentum(total, anneal=anneal, three_phase=three_phase)
  steps = jnp.array([total - 1, total, total + 1, 10 * total, 2**31 - 1])
  np.testing.assert_allclose(np.asarray(jax.vmap(lr)(steps)), 0.1 / 25 / 1e4, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(momentum)(steps)), 0.95, rtol=1e-6)


NARROW_STEPS = [(np.int8, 100), (np.int16, 30_000), (np.uint8, 200), (np.uint16, 60_000), (np.uint32, 70_000),
                (np.uint32, 50)]


@pytest.mark.parametrize("dtype, step", NARROW_STEPS, ids=[f"{d.__name__}-{s}" for d, s in NARROW_STEPS])
@pytest.mark.parametrize("name", FACTORIES)
def test_narrow_and_unsigned_integer_steps_equal_python_int_steps(name, dtype, step):
  # A step of any integer dtype is promoted before any arithmetic (int8 100 * 2 wraps, uint32 50 - 100 too).
  schedule = _build(name)
  expected = float(schedule(step))
  assert float(schedule(jnp.asarray(step, dtype))) == expected
  jitted = jax.jit(schedule)  # compiled arithmetic may differ from eager by an ulp: compare compiled with compiled
  assert float(jitted(jnp.asarray(step, dtype))) == float(jitted(jnp.asarray(step, jnp.int32)))
  assert float(schedule(dtype(step))) == expected  # a numpy scalar on the host


def test_int8_int16_and_uint32_steps_give_the_rate_of_the_step_without_overflow():
  # Each step is promoted to the default integer before any arithmetic, which would overflow in its dtype.
  triangular = clr_optax.triangular(0.1, 1.0, 1000)
  assert float(triangular(jnp.array(100, jnp.int8))) == pytest.approx(ref.caffe_rate(100, "triangular", 0.1, 1.0, 1000))
  assert float(clr_optax.wsd(0.1, 1000, warmup=10, decay=100)(jnp.array(2000, jnp.uint32))) == 0.0
  assert float(clr_optax.shifted(triangular, 100)(jnp.array(50, jnp.uint32))) == np.float32(0.1)
  cosine = lambda t, period: 0.1 * (1 + np.cos(np.pi * t / period)) / 2  # noqa: E731
  assert float(clr_optax.sgdr(0.1, 100_000)(jnp.array(30_000, jnp.int16))) == pytest.approx(cosine(30_000, 100_000))
  assert float(clr_optax.sgdr(0.1, 40_000, t_mult=2)(jnp.array(30_000, jnp.int16))) == pytest.approx(
      cosine(30_000, 40_000), rel=1e-6)


def test_uint32_steps_beyond_int32_hold_the_last_representable_step():
  # Without x64 the default integer is int32: a larger unsigned step saturates instead of wrapping to < 0.
  schedule = clr_optax.decay(0.001, 0.006, 10)
  assert float(schedule(jnp.array(2**32 - 1, jnp.uint32))) == np.float32(0.001)


@pytest.mark.parametrize("narrow", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name", FACTORIES)
def test_narrow_float_hyper_parameters_compute_in_float32(name, narrow):
  # bfloat16 or float16 bounds give the float32 schedule of the same (rounded) bounds, value for value.
  factory, kwargs = FACTORIES[name]
  narrowed = {k: narrow(v) if isinstance(v, float) else v for k, v in kwargs.items()}
  widened = {k: np.float32(v) if isinstance(v, float) else v for k, v in narrowed.items()}
  steps = jnp.arange(0, 120)
  got = jax.vmap(factory(**narrowed))(steps)
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.vmap(factory(**widened))(steps)))


def test_bfloat16_bounds_against_a_float64_reference():
  # bfloat16 bounds are widened to float32: every step of a 2,000-step half-cycle has its own rate.
  base, top = jnp.bfloat16(0.001), jnp.bfloat16(0.006)
  steps = np.arange(0, 2001)
  got = np.asarray(jax.vmap(clr_optax.triangular(base, top, 2000))(jnp.asarray(steps)), np.float64)
  expected = [ref.caffe_rate(int(t), "triangular", float(base), float(top), 2000) for t in steps]
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert len(np.unique(got)) == 2001
