"""Argument checks shared by the schedule factories.

Every check of a hyper-parameter runs once, in Python, when a schedule is built. A value that is a JAX
tracer (the factory was called inside ``jit`` or ``vmap``) cannot be inspected and is let through
unchecked: the schedules document this. Concrete arrays are checked element by element. The step is
checked by `integer_step` at every call, where it is a host value.
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


def _is_real(dtype: Any) -> bool:
  """Integer or floating (bfloat16 included); not bool, complex, str or object."""
  return dtype != bool and (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))


def real(name: str, value: Any) -> np.ndarray | None:
  """``concrete(value)`` after checking that it holds real numbers: a TypeError naming ``name`` otherwise."""
  v = concrete(value)
  if v is not None and not _is_real(v.dtype):
    raise TypeError(f"{name} must be a real number or an array of real numbers, got {name}={value!r}")
  return v


def check_nonnegative(name: str, value: Any) -> None:
  v = real(name, value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v >= 0)):
    raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


def check_positive(name: str, value: Any) -> None:
  v = real(name, value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v > 0)):
    raise ValueError(f"{name} must be a finite number > 0, got {name}={value!r}")


def check_bounds(base_name: str, base: Any, max_name: str, top: Any) -> None:
  """Checks ``0 <= base <= top`` where both are concrete."""
  check_nonnegative(base_name, base)
  check_nonnegative(max_name, top)
  b, t = concrete(base), concrete(top)
  if b is not None and t is not None and np.any(t < b):
    raise ValueError(f"{max_name} must be >= {base_name}, got {base_name}={base!r}, {max_name}={top!r}")


def check_momenta(base_name: str, base: Any, max_name: str, top: Any) -> None:
  """Checks ``0 <= base <= top <= 1``: a momentum above 1 amplifies every past gradient without end."""
  check_bounds(base_name, base, max_name, top)
  t = concrete(top)
  if t is not None and np.any(t > 1):
    raise ValueError(f"{max_name} must be <= 1 (a momentum above 1 diverges), got {max_name}={top!r}")


def check_at_least(name: str, value: Any, minimum: float, why: str) -> None:
  """Checks a finite ``value >= minimum``; ``why`` says what a smaller one would do."""
  v = real(name, value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v >= minimum)):
    raise ValueError(f"{name} must be a finite number >= {minimum} ({why}), got {name}={value!r}")


def check_step_count(name: str, value: Any, *, minimum: int = 1, what: str = "a whole number of steps") -> Any:
  """Checks a whole number ``>= minimum`` (a number of steps by default) and ``< 2**31``; returns it as an
  integer (Python int or int32 array). A traced value must have an integer dtype."""
  v = concrete(value)
  if v is None:
    if not jnp.issubdtype(jnp.result_type(value), jnp.integer):
      raise TypeError(f"a traced {name} must have an integer dtype, got {jnp.result_type(value)}")
    return value
  if not _is_real(v.dtype):
    raise TypeError(f"{name} must be {what}, got {name}={value!r}")
  if not (np.all(np.isfinite(v)) and np.all(v >= minimum) and np.all(v == np.round(v))):
    raise ValueError(f"{name} must be {what} >= {minimum}, got {name}={value!r}")
  if np.any(v >= 2**31):
    raise ValueError(f"{name} must be < 2**31, got {name}={value!r}")
  if v.ndim == 0:
    return int(v)
  return jnp.asarray(v, dtype=jnp.int32)


def check_in_range(name: str, value: Any, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
  v = real(name, value)
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
  """The floating dtype of a schedule's output: float32 by default, float64 under x64 or for float64 inputs,
  never narrower than float32 (bfloat16 or float16 inputs give float32)."""
  return jnp.promote_types(jnp.result_type(float, *values), jnp.float32)


def widened(value: Any) -> Any:
  """``value``, in float32 if it is an array of a floating dtype narrower than float32 (bfloat16, float16).

  Every schedule computes in float32 at least: a bfloat16 bound would otherwise carry its 8-bit mantissa
  into every intermediate value (a 2,000-step half-cycle would take a few hundred distinct values).
  """
  dtype = getattr(value, "dtype", None)
  if dtype is not None and jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
    return jnp.asarray(value, jnp.float32)
  return value


def lerp(start: Any, end: Any, fraction: jax.Array) -> jax.Array:
  """``start`` at fraction 0, ``end`` at fraction 1: exact at both ends and never outside them.

  ``start + (end - start) * f`` misses ``end`` by an ulp at ``f = 1``; the two-sided form hits both ends
  but may still round an ulp outside them when they are equal, hence the clip.
  """
  value = start * (1.0 - fraction) + end * fraction
  return jnp.clip(value, jnp.minimum(start, end), jnp.maximum(start, end))


def integer_step(count: Any) -> jax.Array:
  """The step as an array of the default integer dtype, ``>= 0``: the one place a step enters the library.

  Every schedule computes in the default integer dtype (int32, or int64 under x64), whatever the step's
  dtype: an int8 or uint32 step would wrap or overflow in its own dtype (``100 * 2`` in int8, ``50 - 100``
  in uint32). Negative steps are not errors: ``optax.join_schedules`` evaluates every later schedule at
  ``step - boundary``, negative before its boundary, and discards the value. A Python number or numpy value
  costs nothing to inspect, so it is checked otherwise: a fractional, non-finite or non-numeric step raises,
  and so does one that does not fit the default integer dtype, which ``jnp.asarray`` would wrap or refuse.
  A JAX array is not inspected, traced or not (reading a concrete one would wait for the device, a host
  sync in every eager update): a floating one is floored, and an unsigned one beyond the default integer
  dtype (a uint32 step from ``2**31`` on without x64) counts as its largest value instead of wrapping to a
  negative step.
  """
  int_dtype = jax.dtypes.canonicalize_dtype(np.int64)
  top = np.iinfo(int_dtype).max
  if isinstance(count, jax.Array):  # tracers are jax.Arrays too
    if not jnp.issubdtype(count.dtype, jnp.integer):
      count = jnp.floor(count)
    elif jnp.issubdtype(count.dtype, jnp.unsignedinteger) and jnp.iinfo(count.dtype).max > top:
      count = jnp.minimum(count, top)
    return jnp.maximum(count.astype(int_dtype), 0)
  v = np.asarray(count)
  if not _is_real(v.dtype):
    raise TypeError(f"the step must be a whole number, got count={count!r}")
  if not (np.all(np.isfinite(v)) and np.all(v == np.floor(v))):
    raise ValueError(f"the step must be a whole number, got count={count!r}")
  if np.any(v > top):
    hint = " (enable jax_enable_x64 for steps >= 2**31)" if int_dtype == np.int32 else ""
    raise ValueError(f"the step must fit in {int_dtype}{hint}, got count={count!r}")
  # On the host, so that a whole float64 step keeps every digit (float32 would round 2**24 + 1).
  return jnp.asarray(np.maximum(v, 0).astype(int_dtype))
