"""Argument checks shared by the schedule factories and the range test.

Every check of a hyper-parameter runs once, in Python, when a schedule is built. A value that is a JAX
tracer (the factory was called inside ``jit`` or ``vmap``) cannot be inspected and is let through
unchecked: the schedules document this. Concrete arrays are checked element by element. The step is
checked by `integer_step` at every call, where it is a host value. The range test checks its settings
before it compiles anything, and what its callables return while it traces them, before any step runs.
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from clr_optax import _nnx


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


# ----------------------------------------------------------------------------------------------------------
# The range test's checks: its settings, its key, its callables and what they return.

SWEEP_MODES = ("linear", "exponential")


def is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real_scalar(value: Any) -> bool:
  """A concrete real scalar: a Python or numpy number, or a 0-d numeric array (never a bool)."""
  if isinstance(value, (bool, np.bool_, jax.core.Tracer)) or np.ndim(value) != 0:
    return False
  if isinstance(value, (int, float, np.integer, np.floating)):
    return True
  return isinstance(value, (np.ndarray, jax.Array)) and np.issubdtype(value.dtype, np.number) \
      and not np.issubdtype(value.dtype, np.complexfloating)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
  if not (is_int(value) and value >= low and (high is None or value <= high)):
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be an int {span}, got {name}={value!r}")


def check_sweep(min_lr, max_lr, num_steps, mode, staircase=None):
  if mode not in SWEEP_MODES:
    raise ValueError(f"mode must be one of {SWEEP_MODES}, got {mode=}")
  check_int("num_steps", num_steps, 2)
  if not (is_real_scalar(min_lr) and math.isfinite(min_lr) and min_lr >= 0):
    raise ValueError(f"min_lr must be a finite number >= 0, got {min_lr=}")
  if mode == "exponential" and min_lr <= 0:
    raise ValueError(f"an exponential sweep needs min_lr > 0, got {min_lr=}")
  if not (is_real_scalar(max_lr) and math.isfinite(max_lr) and max_lr > min_lr):
    raise ValueError(f"max_lr must be a finite number > min_lr, got {min_lr=}, {max_lr=}")
  if staircase is not None:
    check_int("staircase", staircase, 1, num_steps - 1)


def check_settings(*, batch_size, num_steps, min_lr, max_lr, mode, staircase, smoothing, divergence_factor,
                   eval_fn, eval_every) -> None:
  """The checks of the numeric settings shared by `range_test` and `make_range_test` (``batch_size`` may
  be None: a stream's batches say it)."""
  check_sweep(min_lr, max_lr, num_steps, mode, staircase)
  if batch_size is not None:
    check_int("batch_size", batch_size, 1)
  if not (is_real_scalar(smoothing) and 0.0 <= smoothing < 1.0):
    raise ValueError(f"smoothing must be a number in [0, 1) (0: no smoothing), got {smoothing=}")
  if divergence_factor is not None and not (is_real_scalar(divergence_factor) and math.isfinite(divergence_factor)
                                            and divergence_factor > 1):
    raise ValueError(f"divergence_factor must be a finite number > 1 or None, got {divergence_factor=}")
  if (eval_fn is None) != (eval_every is None):
    raise ValueError(f"eval_fn and eval_every go together, got {eval_fn=}, {eval_every=}")
  if eval_fn is not None and not callable(eval_fn):
    raise TypeError(f"eval_fn must be a function of the state (or params) -> metrics, got {eval_fn=}")
  if eval_every is not None and not (is_int(eval_every) and 1 <= eval_every <= num_steps):
    raise ValueError(f"eval_every must be an int in [1, num_steps], got {eval_every=}, {num_steps=}")


def check_init_fn(name: str, value: Any) -> None:
  """A callable ``params`` or ``state`` is called with a PRNG key: refuse the callables that are models."""
  if not callable(value):
    return
  if _nnx.is_linen_module(value):
    raise ValueError(f"{name} is a Flax Linen module ({type(value).__name__}), which holds no parameters: pass "
                     f"its variables (model.init(key, x)) or a function key -> variables, and call model.apply "
                     "in your loss_fn or train_step")
  if not isinstance(value, jax.tree_util.Partial) and any(isinstance(leaf, (jax.Array, np.ndarray))
                                                          for leaf in jax.tree.leaves(value)):
    raise ValueError(f"{name} is a callable that holds arrays ({type(value).__name__}), so not a function key -> "
                     f"{name}: pass the arrays themselves, or that function")


def run_keys(key: Any, num_runs: int) -> tuple[jax.Array, int]:
  """The runs' keys and their number from `range_test`'s ``key``: an int seed, a key, or a batch of keys
  (typed, or raw ``uint32`` key data as ``jax.random.PRNGKey`` makes)."""
  if isinstance(key, (np.ndarray, jax.Array)) and not isinstance(key, jax.core.Tracer) and key.ndim == 0 \
      and jnp.issubdtype(key.dtype, jnp.integer):
    key = key.item()  # a 0-d integer array is a seed
  if is_int(key):
    # jax.random.key keeps 32 bits of a seed without x64: a larger seed would silently repeat a smaller one.
    if not 0 <= key < 2**32:
      raise ValueError(f"an int key is a seed in [0, 2**32), got key={key!r}")
    key = jax.random.key(int(key))
  if not isinstance(key, (jax.Array, np.ndarray)) or isinstance(key, jax.core.Tracer):
    raise TypeError(f"key must be an int seed, a key (jax.random.key(seed)) or a batch of keys, got key={key!r}")
  typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  raw_shape = jax.random.key_data(jax.random.key(0)).shape
  if not (typed and key.ndim <= 1 or key.dtype == np.uint32 and key.ndim in (1, 2) and key.shape[-1:] == raw_shape):
    raise TypeError(f"key must be an int seed, a key (jax.random.key(seed)) or a batch of keys, got key={key!r}")
  key = jnp.asarray(key)
  if key.ndim == (1 if typed else 2):  # a batch of keys
    if num_runs not in (1, key.shape[0]):
      raise ValueError(f"a batch of keys sets the number of runs, got {key.shape[0]} keys and {num_runs=}")
    return key, key.shape[0]
  return jax.random.split(key, num_runs), num_runs


def as_metrics(out: Any, what: str) -> dict[str, jax.Array]:
  if isinstance(out, Mapping):
    items = dict(out)
  else:
    items = {"value": out}
  metrics = {}
  for k, v in items.items():
    try:
      v = jnp.asarray(v)
    except (TypeError, ValueError):  # a string, None, an object
      v = None
    if v is None or not (jnp.issubdtype(v.dtype, jnp.number) or v.dtype == bool):
      raise TypeError(f"{what} must be a number or a dict of numbers, got {out!r}"
                      + ("" if not isinstance(out, Mapping) else f" (its {k!r} is not a number)"))
    if v.shape != ():
      raise ValueError(f"{what} must be scalars, got shape {v.shape} for {k!r}")
    metrics[k] = v.astype(jnp.float32)
  return metrics


def form(fn: Callable[..., Any], *args: Any) -> Any:
  """What ``fn(*args)`` returns, each array as a ``ShapeDtypeStruct`` and anything else as it is (a string, a
  float), traced abstractly: nothing runs, so effects such as debug callbacks do not fire."""
  form = []

  def probe(*a):
    out = fn(*a)
    form.append(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x,
                             out))
    return ()

  jax.eval_shape(probe, *args)
  return form[0]


def describe(value: Any) -> str:
  """A short description of a traced value: its pytree with each array as dtype[shape]."""
  return str(jax.tree.map(lambda x: f"{jnp.dtype(x.dtype).name}{list(x.shape)}" if hasattr(x, "dtype") else repr(x),
                          value))


def check_same_state(old: Any, new: Any) -> None:
  """The state ``train_step`` returns must be a pytree of the structure, shapes and dtypes it received: the
  sweep carries it from step to step in one compiled loop."""
  if jax.tree.structure(old) != jax.tree.structure(new):
    raise ValueError(f"train_step must return a state of the structure it receives, got {describe(new)} for "
                     f"{describe(old)}")
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(old), jax.tree.leaves(new)):
    a, b = jax.typeof(a), jax.typeof(jnp.asarray(b))
    if a.shape != b.shape or a.dtype != b.dtype:
      raise ValueError(f"train_step must return a state of the shapes and dtypes it receives, got "
                       f"{b.str_short()} for {a.str_short()} at state{jax.tree_util.keystr(path)}")
