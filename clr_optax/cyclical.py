"""Cyclical learning rates (Smith, 2015) as Optax schedules.

Every factory here checks its arguments once, in Python, and returns an ``optax.Schedule``: a function of
the step count made only of ``jnp`` operations, so it traces into a jitted train step and works under
``jit``, ``vmap``, ``lax.scan`` and ``pmap``. Hyper-parameters may be Python numbers or JAX arrays (vmap a
sweep of bounds in one compiled program); traced values cannot be checked, concrete ones always are.

The step is reduced modulo the cycle length in integer arithmetic before any conversion to float, so the
schedules are exact at any step up to ``2**31 - 1`` (a float32 formula such as Keras' loses 1e-4 of relative
accuracy by step ``2**24 + 1`` and returns ``base_lr`` outright by step ``1e8 + 1``).

The step, in every schedule of the package: a negative step counts as step 0 (``optax.join_schedules``
evaluates each later schedule at ``step - boundary``, negative before its boundary, and discards the value),
so no schedule extends backwards into a previous cycle or above its bounds. A Python number or numpy value
is checked when the schedule is called, at no cost to a compiled step: a fractional, non-finite or
non-numeric step raises a ``ValueError`` or ``TypeError``, and so does one beyond the default integer dtype
(``2**31 - 1`` unless ``jax_enable_x64`` is on), which ``jnp.asarray`` would wrap. A JAX array step (traced
inside ``jit``, or an optimizer's ``count``) is not inspected, since reading it would wait for the device:
a floating one is floored. A step of any integer dtype (int8, uint32, ...) is first converted to the
default integer dtype, so no schedule computes in a narrow or unsigned one; an unsigned step beyond it
counts as its largest value.

The dtype, in every schedule of the package: float32, or float64 under x64 (or for float64 arguments), never
narrower. Bounds in bfloat16 or float16 are converted to float32 before any arithmetic, so the schedule
equals the float32 schedule of the same bounds; those bounds are already rounded (bfloat16 holds 0.006 as
0.006012), so give them as Python floats. For bfloat16 parameters nothing else is needed: the learning rate
stays a float32 scalar, optax rounds it to the updates' dtype where it scales them
(``optax.scale_by_learning_rate``), and ``optax.apply_updates`` keeps each parameter's dtype. Where
bfloat16's 8-bit mantissa swallows the small updates of a cycle's low phase, keep float32 parameters and
cast them to bfloat16 in the forward pass.

The step a schedule sees is the count of the optimizer that holds it, one per update it makes. Under
gradient accumulation, ``optax.MultiSteps(optax.sgd(schedule), k)``, that is one per *applied* update
(every ``k`` micro-batches): the ``n``-th applied update uses ``schedule(n)``, so ``step_size`` counts
applied updates. ``nnx.Optimizer.step`` counts calls to ``update``, i.e. micro-batches: at micro-batch
``t`` the rate is ``schedule(t // k)``. A schedule written in micro-batches and held for each accumulation
window (`staircase` with ``steps_per_stair=k``) gives the same rates when its optimizer counts micro-batches,
as ``optax.inject_hyperparams`` around ``optax.MultiSteps`` does: ``staircase(triangular(b, m, k * s), k)(t)
== triangular(b, m, s)(t // k)``.

References:
  Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_, 2015
  (WACV 2017).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks

WINDOWS = ("triangular", "welch", "hann")
SCALE_MODES = ("cycle", "iterations")

# Each window maps the distance from the peak, x in [0, 1] in units of the half-cycle (0 at the peak, 1 at
# a cycle boundary), to a height in [0, 1]: the three functional forms of the paper's section 3.1. It also
# receives y = 1 - x, computed exactly from the integer step: near a boundary the height is small and
# 1 - x would cancel, losing up to max_lr / lr ulps of the learning rate.
_WINDOW_FNS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "triangular": lambda x, y: y,  # Bartlett (linear): 1 - x
    "welch": lambda x, y: y * (1.0 + x),  # Welch (parabolic): 1 - x**2
    "hann": lambda x, y: jnp.sin(0.5 * jnp.pi * y) ** 2,  # Hann (sinusoidal): (1 + cos(pi x)) / 2
}

ScaleFn = Callable[[jax.Array], jax.Array]


def _cyclic_fraction(
    step_size: Any,
    step_size_down: Any,
    window: str,
    scale_fn: ScaleFn | None,
    scale_mode: str,
) -> Callable[[Any, Any], jax.Array]:
  """Checks the cycle's shape and returns ``fraction(count, dtype)``, the share of the amplitude at a step.

  The fraction is ``window(x) * scale`` with ``scale = scale_fn(cycle)`` (cycle counted from 1) or
  ``scale_fn(step)``: learning rates add it to ``base_lr``, momenta subtract it from ``max_momentum``.
  """
  up = _checks.check_step_count("step_size", step_size)
  down = up if step_size_down is None else _checks.check_step_count("step_size_down", step_size_down)
  _checks.check_choice("window", window, WINDOWS)
  _checks.check_choice("scale_mode", scale_mode, SCALE_MODES)
  if scale_fn is not None and not callable(scale_fn):
    raise TypeError(f"scale_fn must be a callable of the cycle or step, got {scale_fn=}")
  period = _checks.concrete(up + down)
  if period is not None and np.any(period >= 2**31):
    raise ValueError(f"step_size + step_size_down must be < 2**31, got {step_size=}, {step_size_down=}")
  shape = _WINDOW_FNS[window]

  def fraction(count: Any, dtype: Any) -> jax.Array:
    t = _checks.integer_step(count)
    cycle = t // (up + down)  # integer arithmetic: exact at any step
    pos = t - cycle * (up + down)  # position in the cycle, in [0, up + down)
    rising = pos < up
    x = jnp.where(rising, (up - pos).astype(dtype) / up, (pos - up).astype(dtype) / down)
    y = jnp.where(rising, pos.astype(dtype) / up, (up + down - pos).astype(dtype) / down)
    height = shape(x, y)
    if scale_fn is None:
      return height.astype(dtype)
    # The scale function receives a float, as in PyTorch's CyclicLR (cycles count from 1).
    arg = (cycle + 1) if scale_mode == "cycle" else t
    return (height * scale_fn(arg.astype(dtype))).astype(dtype)

  return fraction


def cyclical(
    base_lr: Any,
    max_lr: Any,
    step_size: Any,
    *,
    step_size_down: Any = None,
    window: str = "triangular",
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
) -> optax.Schedule:
  r"""The general cyclical learning rate: a window between two bounds, repeated, optionally scaled.

  .. math::

    \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, w(x_t)\, s

  where :math:`x_t \in [0, 1]` is the distance of step :math:`t` from the peak of its cycle, in units of
  the rising (``step_size``) or falling (``step_size_down``) half-cycle, :math:`w` is the window
  (triangular :math:`1 - x`, Welch :math:`1 - x^2`, Hann :math:`\tfrac12(1 + \cos\pi x)`: the three forms of
  the paper's section 3.1) and :math:`s` is ``scale_fn(cycle)`` (cycles counted from 1) when
  ``scale_mode="cycle"``, ``scale_fn(t)`` when ``scale_mode="iterations"``, and 1 without ``scale_fn``: the
  meaning PyTorch's ``CyclicLR`` gives them. Each cycle starts at ``base_lr`` on a step that is a multiple
  of ``step_size + step_size_down`` and peaks at ``max_lr`` ``step_size`` steps later.

  Args:
    base_lr: the lower bound (the paper's ``base_lr``).
    max_lr: the upper bound, ``>= base_lr``.
    step_size: steps in the rising half of a cycle (the paper's ``stepsize``; it advises 2-10 epochs).
    step_size_down: steps in the falling half; defaults to ``step_size``.
    window: ``"triangular"``, ``"welch"`` or ``"hann"``.
    scale_fn: a ``jnp`` function of the cycle number or step (given as a float), normally in ``[0, 1]``,
      that scales the amplitude; ``None`` keeps it constant.
    scale_mode: ``"cycle"`` or ``"iterations"``: what ``scale_fn`` receives.

  Returns:
    An ``optax.Schedule``. Its dtype follows ``base_lr`` and ``max_lr``: float32 (for bfloat16 bounds too;
    see the module's note on bfloat16 parameters), or float64 under x64.

  Raises:
    ValueError: for a concrete step size that is not a whole number > 0, negative or non-finite bounds,
      ``max_lr < base_lr``, or an unknown ``window`` or ``scale_mode``. Traced values are not checked.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.cyclical(0.001, 0.006, step_size=2000, window="hann")
    >>> [round(float(schedule(t)), 6) for t in (0, 1000, 2000, 4000)]
    [0.001, 0.0035, 0.006, 0.001]

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_, 2015.
  """
  _checks.check_bounds("base_lr", base_lr, "max_lr", max_lr)
  base_lr, max_lr = _checks.widened(base_lr), _checks.widened(max_lr)
  fraction = _cyclic_fraction(step_size, step_size_down, window, scale_fn, scale_mode)

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(base_lr, max_lr)
    return _checks.lerp(base_lr, max_lr, fraction(count, dtype)).astype(dtype)

  return schedule


def triangular(base_lr: Any, max_lr: Any, step_size: Any, *, step_size_down: Any = None) -> optax.Schedule:
  r"""The paper's ``triangular`` policy: linear from ``base_lr`` up to ``max_lr`` and back, repeated.

  .. math::

    \mathrm{cycle} = \lfloor 1 + \tfrac{t}{2\,\mathrm{stepsize}} \rfloor,\quad
    x = \left|\tfrac{t}{\mathrm{stepsize}} - 2\,\mathrm{cycle} + 1\right|,\quad
    \eta_t = \eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)

  (the paper's section 3.1, for ``step_size_down = step_size``).

  Args:
    base_lr: the lower bound.
    max_lr: the upper bound, ``>= base_lr``.
    step_size: steps from ``base_lr`` up to ``max_lr`` (half a cycle).
    step_size_down: steps from ``max_lr`` back down; defaults to ``step_size``.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import optax, clr_optax
    >>> schedule = clr_optax.triangular(0.001, 0.006, step_size=2000)
    >>> [round(float(schedule(t)), 6) for t in (0, 1000, 2000, 3000, 4000)]
    [0.001, 0.0035, 0.006, 0.0035, 0.001]
    >>> optimizer = optax.sgd(learning_rate=schedule, momentum=0.9)

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_, 2015.
  """
  return cyclical(base_lr, max_lr, step_size, step_size_down=step_size_down)


def _halving(cycle: jax.Array) -> jax.Array:
  # 2**-(cycle - 1): underflows gracefully to 0 far out (Python's 2.0 ** 1024 would overflow instead).
  return jnp.exp2(1.0 - cycle)


def triangular2(base_lr: Any, max_lr: Any, step_size: Any, *, step_size_down: Any = None) -> optax.Schedule:
  r"""The paper's ``triangular2`` policy: ``triangular`` with the amplitude halved at every cycle.

  .. math::

    \eta_t = \eta_{base} + (\eta_{max} - \eta_{base}) \frac{\max(0, 1 - x)}{2^{\mathrm{cycle} - 1}}

  with ``cycle`` counted from 1 and ``x`` as in :func:`triangular`.

  Args:
    base_lr: the lower bound.
    max_lr: the first cycle's peak, ``>= base_lr``.
    step_size: steps in the rising half of a cycle.
    step_size_down: steps in the falling half; defaults to ``step_size``.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import optax, clr_optax
    >>> schedule = clr_optax.triangular2(0.001, 0.006, step_size=2000)
    >>> [round(float(schedule(t)), 6) for t in (2000, 6000, 10000)]
    [0.006, 0.0035, 0.00225]
    >>> optimizer = optax.sgd(learning_rate=schedule, momentum=0.9)

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_, 2015.
  """
  return cyclical(base_lr, max_lr, step_size, step_size_down=step_size_down, scale_fn=_halving)


def _power(name: str, gamma: Any) -> Callable[[jax.Array], jax.Array]:
  """Returns ``t -> gamma**t`` with ``log(gamma)`` taken in double precision when ``gamma`` is concrete.

  Rounding ``gamma = 0.99994`` to float32 before raising it to the power 24,000 alone costs 3e-4 of
  relative accuracy; rounding ``log(gamma)`` instead costs about 1e-7.
  """
  _checks.check_in_range(name, gamma, 0.0, 1.0, low_open=True, high_open=False)
  g = _checks.concrete(gamma)
  if g is None:
    log_gamma = jnp.log(_checks.widened(gamma))
    return lambda t: jnp.exp(t * log_gamma)
  log_gamma = np.log(g.astype(np.float64))
  log_gamma = float(log_gamma) if log_gamma.ndim == 0 else jnp.asarray(log_gamma)
  return lambda t: jnp.exp(t * log_gamma)


def exp_range(
    base_lr: Any,
    max_lr: Any,
    step_size: Any,
    gamma: Any,
    *,
    step_size_down: Any = None,
    scale_bounds: bool = False,
) -> optax.Schedule:
  r"""The ``exp_range`` policy: a triangular cycle that shrinks by ``gamma**t``.

  By default this is the reading of Keras' CLR callback and PyTorch's ``CyclicLR``: the amplitude shrinks
  and the lower bound stays,

  .. math:: \eta_t = \eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)\, \gamma^t.

  With ``scale_bounds=True`` it follows the paper's own definition (section 3.1, line 99 of its text: both
  boundary values decline by the factor ``gamma**iteration``): both bounds shrink, so the curve oscillates
  around Caffe's ``exp`` policy ``base_lr * gamma**t`` (the paper's section 4.1.1 and Fig. 10),

  .. math:: \eta_t = \gamma^t \left(\eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)\right).

  Args:
    base_lr: the lower bound (at step 0).
    max_lr: the first peak, ``>= base_lr``.
    step_size: steps in the rising half of a cycle.
    gamma: the decay factor per step, in ``(0, 1]`` (the paper used 0.99994 for CIFAR-10). A Python
      number keeps its double precision: ``log(gamma)`` is taken on the host.
    step_size_down: steps in the falling half; defaults to ``step_size``.
    scale_bounds: False for the Keras/PyTorch form, True for the paper's wording.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> keras_form = clr_optax.exp_range(0.001, 0.006, 2000, gamma=0.9999)
    >>> paper_form = clr_optax.exp_range(0.001, 0.006, 2000, gamma=0.9999, scale_bounds=True)
    >>> round(float(keras_form(4000)), 6), round(float(paper_form(4000)), 6)  # start of the 2nd cycle
    (0.001, 0.00067)

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks <https://arxiv.org/abs/1506.01186>`_, 2015.
  """
  power = _power("gamma", gamma)
  if not scale_bounds:
    return cyclical(
        base_lr, max_lr, step_size, step_size_down=step_size_down, scale_fn=power, scale_mode="iterations"
    )
  cycle = triangular(base_lr, max_lr, step_size, step_size_down=step_size_down)

  def schedule(count: Any) -> jax.Array:
    lr = cycle(count)
    return (lr * power(_checks.integer_step(count).astype(lr.dtype))).astype(lr.dtype)

  return schedule


def decay(base_lr: Any, max_lr: Any, step_size: Any) -> optax.Schedule:
  r"""The paper's ``decay`` control policy: linear from ``max_lr`` down to ``base_lr``, then flat.

  .. math:: \eta_t = \eta_{max} - (\eta_{max} - \eta_{base}) \min(t / \mathrm{stepsize}, 1)

  Section 4.1.1 uses it to show that the benefit of ``triangular`` does not come from decreasing the
  learning rate alone. It is optax's ``linear_schedule`` with the paper's argument names and checks.

  Args:
    base_lr: the final learning rate.
    max_lr: the initial learning rate, ``>= base_lr``.
    step_size: steps of the linear decrease.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.decay(0.001, 0.007, step_size=2000)
    >>> [round(float(schedule(t)), 6) for t in (0, 1000, 2000, 50000)]
    [0.007, 0.004, 0.001, 0.001]
  """
  _checks.check_bounds("base_lr", base_lr, "max_lr", max_lr)
  steps = _checks.check_step_count("step_size", step_size)
  dtype = _checks.float_dtype(base_lr, max_lr)
  linear = optax.linear_schedule(init_value=_checks.widened(max_lr), end_value=_checks.widened(base_lr),
                                 transition_steps=steps)
  return lambda count: linear(_checks.integer_step(count)).astype(dtype)


def exponential(base_lr: Any, gamma: Any) -> optax.Schedule:
  r"""Caffe's ``exp`` policy, ``base_lr * gamma**t``, computed without float32 loss in ``gamma``.

  .. math:: \eta_t = \eta_{base}\, \gamma^t

  ``optax.exponential_decay(base_lr, 1, gamma)`` is the same curve, but rounds ``gamma`` to float32 first:
  with the paper's ``gamma = 0.99994`` that is 4e-3 of relative error by step 70,000.

  Args:
    base_lr: the learning rate at step 0 (``>= 0``).
    gamma: the factor per step, in ``(0, 1]``.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.exponential(0.001, gamma=0.99994)
    >>> round(float(schedule(70000)) / 0.001, 5)  # 0.99994 ** 70000
    0.01499
  """
  _checks.check_nonnegative("base_lr", base_lr)
  base_lr = _checks.widened(base_lr)
  power = _power("gamma", gamma)

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(base_lr)
    return (base_lr * power(_checks.integer_step(count).astype(dtype))).astype(dtype)

  return schedule


def shifted(schedule: optax.Schedule, start_step: int) -> optax.Schedule:
  """Starts ``schedule`` at ``start_step``, holding its step-0 value before: Caffe's ``start_lr_policy``.

  For the cyclical policies the held value is ``base_lr``, as in the paper's Caffe code. To run several
  schedules one after the other, each counting from its own start (the paper's Table 2), use
  ``optax.join_schedules``.

  Args:
    schedule: any ``optax.Schedule``.
    start_step: the step at which ``schedule`` sees its step 0 (a whole number ``>= 0``).

  Returns:
    An ``optax.Schedule``: ``t -> schedule(max(t - start_step, 0))``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.shifted(clr_optax.triangular(0.001, 0.006, 2000), start_step=500)
    >>> [round(float(schedule(t)), 6) for t in (0, 500, 2500)]
    [0.001, 0.001, 0.006]
  """
  if start_step != 0:
    start_step = _checks.check_step_count("start_step", start_step)
  if not callable(schedule):
    raise TypeError(f"schedule must be an optax.Schedule (a callable of the step), got {schedule=}")
  return lambda count: schedule(jnp.maximum(_checks.integer_step(count) - start_step, 0))


def staircase(schedule: optax.Schedule, steps_per_stair: Any) -> optax.Schedule:
  r"""Holds ``schedule`` constant over blocks of ``steps_per_stair`` steps: the staircase form of any policy.

  .. math:: \eta_t = \mathrm{schedule}\left(k \lfloor t / k \rfloor\right)

  Each block of :math:`k` steps takes the value of its first step, as DeepSpeed's ``staircase`` options
  do. With :math:`k` dividing a cyclical policy's ``step_size`` (or a one-cycle phase), the stairs start on
  its boundaries: a half-cycle of ``step_size`` steps climbs ``step_size / k`` stairs from ``base_lr``.
  The block start is computed in integers, so the result stays exact at any step. With :math:`k` micro-batches
  per applied update (gradient accumulation) and an optimizer that counts micro-batches, each accumulation
  window then has one rate (see the module's notes on the step).

  Args:
    schedule: any ``optax.Schedule``.
    steps_per_stair: :math:`k`, the length of each block (a whole number > 0; 1 returns the schedule's own
      values).

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.staircase(clr_optax.triangular(0.001, 0.006, 2000), steps_per_stair=500)
    >>> [round(float(schedule(t)), 6) for t in (0, 499, 500, 1999, 2000, 2600)]
    [0.001, 0.001, 0.00225, 0.00475, 0.006, 0.00475]
  """
  k = _checks.check_step_count("steps_per_stair", steps_per_stair)
  if not callable(schedule):
    raise TypeError(f"schedule must be an optax.Schedule (a callable of the step), got {schedule=}")

  def stairs(count: Any) -> jax.Array:
    t = _checks.integer_step(count)
    return schedule(t // k * k)

  return stairs


__all__ = [
    "WINDOWS",
    "SCALE_MODES",
    "cyclical",
    "triangular",
    "triangular2",
    "exp_range",
    "decay",
    "exponential",
    "shifted",
    "staircase",
]
