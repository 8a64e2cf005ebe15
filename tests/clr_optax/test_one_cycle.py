"""One-cycle beyond the PyTorch values (test_torch_reference.py): the recipe, the tail, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clr_optax


def test_published_resnet56_recipe():
  # 41 epochs 0.08 -> 0.8, 41 epochs back to 0.08, 13 epochs annihilating to 0.008, linear.
  per_epoch = 98  # ceil(50,000 / 512)
  total = 95 * per_epoch
  schedule = clr_optax.one_cycle(
      0.8, total, pct_start=41 / 95, div_factor=10, final_div_factor=10, anneal="linear", three_phase=True
  )
  values = np.asarray(jax.vmap(schedule)(jnp.arange(total + 10)), dtype=np.float64)
  e1, e2 = 41 * per_epoch - 1, 82 * per_epoch - 2  # PyTorch's phase ends
  np.testing.assert_allclose(values[[0, e1, e2, total - 1]], [0.08, 0.8, 0.08, 0.008], rtol=1e-6)
  np.testing.assert_allclose(values[e1 // 2], 0.08 + 0.72 * (e1 // 2) / e1, rtol=1e-6)
  np.testing.assert_allclose(values[total:], 0.008, rtol=1e-6)  # held after the cycle


def test_cosine_two_phase_formula():
  total, pct = 200, 0.25
  schedule = clr_optax.one_cycle(1.0, total, pct_start=pct)
  end1 = pct * total - 1
  for t in (0, 10, 49, 50, 120, 199):
    if t <= end1:
      a, b, p = 1 / 25, 1.0, t / end1
    else:
      a, b, p = 1.0, 1 / 25 / 1e4, (t - end1) / (total - 1 - end1)
    expected = b + (a - b) / 2 * (math.cos(math.pi * p) + 1)
    np.testing.assert_allclose(float(schedule(t)), expected, rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(max_lr=0.1, total_steps=100, pct_start=0.0), "pct_start"),
        (dict(max_lr=0.1, total_steps=100, pct_start=1.0), "pct_start"),
        (dict(max_lr=0.1, total_steps=0), "total_steps"),
        (dict(max_lr=0.1, total_steps=100, anneal="exp"), "anneal"),
        (dict(max_lr=0.1, total_steps=100, div_factor=0.0), "div_factor"),
        (dict(max_lr=0.1, total_steps=100, final_div_factor=-1.0), "final_div_factor"),
        (dict(max_lr=-0.1, total_steps=100), "max_lr"),
        (dict(max_lr=0.1, total_steps=3, pct_start=0.3), "at least one step"),
        (dict(max_lr=0.1, total_steps=100, pct_start=0.6, three_phase=True), "at least one step"),
        # a phase of half a step: max_lr would never be reached
        (dict(max_lr=1.0, total_steps=10, pct_start=0.95), "at least one step"),
        (dict(max_lr=1.0, total_steps=10, pct_start=0.15), "at least one step"),
        # starting or ending above max_lr
        (dict(max_lr=1.0, total_steps=100, div_factor=0.5), "div_factor must be a finite number >= 1"),
        (dict(max_lr=1.0, total_steps=100, div_factor=2.0, final_div_factor=0.25), "div_factor \\* final_div_factor"),
    ],
)
def test_bad_arguments(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    clr_optax.one_cycle(**kwargs)


def test_momentum_bad_order():
  with pytest.raises(ValueError, match="max_momentum"):
    clr_optax.one_cycle_momentum(100, base_momentum=0.95, max_momentum=0.85)


@pytest.mark.parametrize("build", [
    lambda: clr_optax.one_cycle_momentum(100, max_momentum=1.5),
    lambda: clr_optax.one_cycle_momentum(100, base_momentum=0.9, max_momentum=jnp.array([0.95, 1.01])),
    lambda: clr_optax.cyclical_momentum(0.85, 1.5, 10),
])
def test_momentum_above_1_raises(build):
  with pytest.raises(ValueError, match="max_momentum must be <= 1"):
    build()


def test_momentum_of_1_and_div_factor_of_1_are_accepted():
  assert float(clr_optax.cyclical_momentum(0.85, 1.0, 10)(0)) == 1.0
  assert float(clr_optax.one_cycle(1.0, 100, div_factor=1.0, final_div_factor=1.0)(99)) == 1.0


def test_momentum_phases_shorter_than_a_step_raise():
  with pytest.raises(ValueError, match="at least one step"):
    clr_optax.one_cycle_momentum(10, pct_start=0.95)
