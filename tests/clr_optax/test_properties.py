"""Properties of the cyclical schedules over random arguments (hypothesis)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

import clr_optax
from tests.clr_optax import references as ref

lrs = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False)
steps = st.integers(min_value=1, max_value=100_000)
big_t = st.integers(min_value=0, max_value=2**31 - 1)
SETTINGS = settings(max_examples=60, deadline=None)

# One compiled function per policy, taking every argument as an array, so hypothesis does not recompile.
_EVAL = {
    name: jax.jit(lambda b, m, up, down, t, f=factory: f(b, m, up, step_size_down=down)(t))
    for name, factory in (("triangular", clr_optax.triangular), ("triangular2", clr_optax.triangular2))
}


def _lr(policy, b, m, up, down, t):
  return float(_EVAL[policy](jnp.float32(b), jnp.float32(m), jnp.int32(up), jnp.int32(down), jnp.int32(t)))


@SETTINGS
@given(policy=st.sampled_from(["triangular", "triangular2"]), a=lrs, b=lrs, up=steps, down=steps, t=big_t)
def test_within_bounds(policy, a, b, up, down, t):
  base, top = min(a, b), max(a, b)
  lr = _lr(policy, base, top, up, down, t)
  assert np.float32(base) <= lr <= np.float32(top)


@SETTINGS
@given(a=lrs, b=lrs, up=steps, down=steps, t=st.integers(0, 2**31 - 1 - 200_000))
def test_periodic(a, b, up, down, t):
  base, top = min(a, b), max(a, b)
  assert _lr("triangular", base, top, up, down, t) == _lr("triangular", base, top, up, down, t + up + down)


@SETTINGS
@given(a=lrs, b=lrs, up=steps, down=steps, k=st.integers(0, 10_000))
def test_peak_and_boundaries(a, b, up, down, k):
  base, top = min(a, b), max(a, b)
  start = k * (up + down)
  if start + up >= 2**31:
    return
  assert _lr("triangular", base, top, up, down, start) == np.float32(base)
  assert _lr("triangular", base, top, up, down, start + up) == np.float32(top)
  np.testing.assert_allclose(_lr("triangular2", base, top, up, down, start + up), base + (top - base) * 2.0**-k, rtol=1e-6)


@SETTINGS
@given(a=lrs, b=lrs, up=steps, t=big_t)
@example(a=8.0, b=0.0625, up=197, t=1)  # near a cycle's start, 1 - x cancelled: 2.1e-6 off before the fix
def test_agrees_with_float64_at_any_step(a, b, up, t):
  base, top = min(a, b), max(a, b)
  expected = ref.caffe_rate(t, "triangular", base, top, up)
  np.testing.assert_allclose(_lr("triangular", base, top, up, up, t), expected, rtol=2e-6)
  with jax.enable_x64(True):
    got = float(clr_optax.triangular(base, top, up)(jnp.int64(t)))
  np.testing.assert_allclose(got, expected, rtol=1e-13)


@SETTINGS
@given(t_0=st.integers(1, 100_000), t_mult=st.integers(1, 9), t=big_t, decay=st.sampled_from([1.0, 0.7]))
@example(t_0=1, t_mult=2, t=2**31 - 1, decay=1.0)  # a restart on the last int32 step
@example(t_0=10, t_mult=3, t=2**31 - 1, decay=1.0)  # inside a cycle longer than int32 holds
def test_sgdr_agrees_with_float64_at_any_step(t_0, t_mult, t, decay):
  # Eager calls: each (t_0, t_mult) builds its own table of restarts, with nothing to compile.
  expected = ref.sgdr(t, 0.1, t_0, t_mult, 0.001, decay)
  got = float(clr_optax.sgdr(0.1, t_0, t_mult=t_mult, min_lr=0.001, cycle_decay=decay)(t))
  np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-7)
  assert np.float32(0.001) <= got <= np.float32(0.1)
