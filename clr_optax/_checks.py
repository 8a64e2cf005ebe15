"""Argument checks shared by the schedule factories.

Every check runs once, in Python, when a schedule is built. A value that is a JAX tracer (the factory was
called inside ``jit`` or ``vmap``) cannot be inspected and is let through unchecked: the schedules
document this. Concrete arrays are checked element by element.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def concrete(value: Any) -> np.ndarray | None:
  """Returns ``value`` as a numpy array, or None when it is traced and cannot be inspected."""
  if isinstance(value, jax.core.Tracer):
    return None
  return np.asarray(value)


def check_nonnegative(name: str, value: Any) -> None:
  v = concrete(value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v >= 0)):
    raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


def check_positive(name: str, value: Any) -> None:
  v = concrete(value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v > 0)):
    raise ValueError(f"{name} must be a finite number > 0, got {name}={value!r}")


def check_bounds(base_name: str, base: Any, max_name: str, top: Any) -> None:
  """Checks ``0 <= base <= top`` where both are concrete."""
  check_nonnegative(base_name, base)
  check_nonnegative(max_name, top)
  b, t = concrete(base), concrete(top)
  if b is not None and t is not None and np.any(t < b):
    raise ValueError(f"{max_name} must be >= {base_name}, got {base_name}={base!r}, {max_name}={top!r}")


def check_step_count(name: str, value: Any) -> Any:
  """Checks a positive whole number of steps; returns it as an integer (Python int or integer array)."""
  v = concrete(value)
  if v is None:
    if not jnp.issubdtype(jnp.result_type(value), jnp.integer):
      raise TypeError(f"a traced {name} must have an integer dtype, got {jnp.result_type(value)}")
    return value
  if v.dtype == bool or not np.issubdtype(v.dtype, np.number):
    raise TypeError(f"{name} must be a whole number of steps, got {name}={value!r}")
  if not (np.all(np.isfinite(v)) and np.all(v > 0) and np.all(v == np.round(v))):
    raise ValueError(f"{name} must be a whole number of steps > 0, got {name}={value!r}")
  if np.any(v >= 2**31):
    raise ValueError(f"{name} must be < 2**31 steps, got {name}={value!r}")
  if v.ndim == 0:
    return int(v)
  return jnp.asarray(v, dtype=jnp.int32)


def check_in_range(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
  v = concrete(value)
  if v is None:
    return
  above = v > low if low_open else v >= low
  below = v < high if high_open else v <= high
  if not (np.all(np.isfinite(v)) and np.all(above) and np.all(below)):
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    raise ValueError(f"{name} must lie in {interval}, got {name}={value!r}")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {name}={value!r}")


def float_dtype(*values: Any) -> jnp.dtype:
  """The floating dtype of a schedule's output: float32 by default, float64 under x64, or the inputs'."""
  return jnp.result_type(float, *values)


def lerp(start: Any, end: Any, fraction: jax.Array) -> jax.Array:
  """``start`` at fraction 0, ``end`` at fraction 1: exact at both ends and never outside them.

  ``start + (end - start) * f`` misses ``end`` by an ulp at ``f = 1``; the two-sided form hits both ends
  but may still round an ulp outside them when they are equal, hence the clip.
  """
  value = start * (1.0 - fraction) + end * fraction
  return jnp.clip(value, jnp.minimum(start, end), jnp.maximum(start, end))


def integer_step(count: Any) -> jax.Array:
  """The step as an integer array; a floating step (allowed by optax) is floored."""
  count = jnp.asarray(count)
  if not jnp.issubdtype(count.dtype, jnp.integer):
    count = jnp.floor(count).astype(jnp.int32)
  return count
