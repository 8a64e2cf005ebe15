"""Cosine annealing with warm restarts (SGDR; Loshchilov & Hutter, 2017), matching PyTorch's
``CosineAnnealingWarmRestarts``.

Cycle ``i`` (from 0) lasts ``t_0 * t_mult**i`` steps. The cycle of a step and the position in it are found
in integer arithmetic, so the schedule is exact at any step up to ``2**31 - 1`` (``2**63 - 1`` with int64
steps under x64) for any ``t_mult``: at most one integer comparison per cycle that can start below the
largest step, about 31 for ``t_mult = 2`` and fewer for longer cycles, with no float logarithm.
PyTorch's ``step(epoch)`` takes that logarithm in float64 and misses restarts: with ``T_0=10, T_mult=3``
it returns ``eta_min`` instead of the peak at epochs 1210, 295240 and 7971610.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks
from clr_optax.cyclical import _power


def _loop_length(limit: int, t_0: np.ndarray | None, t_mult: np.ndarray | None) -> int:
  """How many cycles with ``t_mult >= 2`` can end at or before step ``limit``: the iterations
  `_cycle_position` needs (for traced lengths, one per bit of ``limit``: ``t_0 >= 1``, ``t_mult >= 2``)."""
  if t_0 is None or t_mult is None:
    return limit.bit_length()
  most = 0
  for first, mult in np.broadcast(t_0, t_mult):
    start, length, cycles = 0, int(first), 0
    while mult > 1 and start + length <= limit:
      start, length, cycles = start + length, length * int(mult), cycles + 1
    most = max(most, cycles)
  return most


def _cycle_position(t: jax.Array, t_0: Any, t_mult: Any, iterations: int, all_one: bool, any_one: bool):
  """Returns ``(cycle, pos, prev, mult)``: step ``t`` is ``pos`` steps into cycle ``cycle`` (from 0), whose
  length is ``prev * mult`` (``t_0 * 1`` in cycle 0, ``T_{i-1} * t_mult`` after).

  The length is kept as a product because it may not fit the step's dtype (a last cycle reaching past
  ``2**31 - 1``); every integer formed here does. ``iterations`` bounds the number of restarts up to the
  largest step; ``all_one`` and ``any_one`` say whether ``t_mult`` is 1 everywhere, or may be somewhere.
  """
  t, t_0, t_mult = jnp.broadcast_arrays(t, jnp.asarray(t_0, t.dtype), jnp.asarray(t_mult, t.dtype))
  direct = t // t_0  # constant cycle lengths: plain division
  if all_one:
    return direct, t - direct * t_0, t_0, jnp.ones_like(t)
  cycle, pos, prev, mult = jnp.zeros_like(t), t, t_0, jnp.ones_like(t)
  for _ in range(iterations):
    done = pos // mult < prev  # pos < prev * mult, the current cycle's length, without forming the product
    pos = jnp.where(done, pos, pos - prev * mult)
    prev = jnp.where(done, prev, prev * mult)
    mult = jnp.where(done, mult, t_mult)
    cycle = jnp.where(done, cycle, cycle + 1)
  if any_one:
    ones = t_mult == 1
    cycle, pos = jnp.where(ones, direct, cycle), jnp.where(ones, t - direct * t_0, pos)
    prev, mult = jnp.where(ones, t_0, prev), jnp.where(ones, 1, mult)
  return cycle, pos, prev, mult


def sgdr(
    max_lr: Any,
    t_0: Any,
    *,
    t_mult: Any = 1,
    min_lr: Any = 0.0,
    cycle_decay: Any = 1.0,
) -> optax.Schedule:
  r"""SGDR: cosine annealing from ``max_lr`` to ``min_lr`` over cycles of growing length, each restarting at the peak.

  Cycle :math:`i = 0, 1, \dots` starts at step :math:`S_i = t_0 (1 + m + \dots + m^{i - 1})` and lasts
  :math:`T_i = t_0\, m^i` steps (:math:`m` is ``t_mult``); at step :math:`t = S_i + t_{cur}`

  .. math::

    \eta_t = \eta_{min} + (\eta_{max} - \eta_{min})\, d^{\,i}\,
    \tfrac12 \left(1 + \cos\left(\pi \tfrac{t_{cur}}{T_i}\right)\right)

  where :math:`d` is ``cycle_decay``. With ``cycle_decay=1`` this is PyTorch's
  ``CosineAnnealingWarmRestarts(T_0=t_0, T_mult=t_mult, eta_min=min_lr)`` with initial learning rate
  ``max_lr``, value for value (its explicitly stepped ``step(epoch)`` form excepted: see the module's note).
  ``cycle_decay < 1`` shrinks the amplitude at every restart, so cycle ``i`` peaks at
  ``min_lr + (max_lr - min_lr) * cycle_decay**i`` and never falls below ``min_lr`` (timm's ``cycle_decay``
  scales ``max_lr`` itself; the two agree for ``min_lr = 0``).

  The annealing approaches ``min_lr`` at the end of a cycle without reaching it: the next step is the
  restart. The weight of ``max_lr`` is evaluated as :math:`\sin^2(\tfrac\pi2 \cdot (T_i - t_{cur}) / T_i)`
  with the remaining steps counted in integers, so values keep their relative precision close to
  ``min_lr = 0`` (``1 + cos`` cancels there).

  Args:
    max_lr: the peak of the first cycle (PyTorch's initial learning rate).
    t_0: steps in the first cycle (PyTorch's ``T_0``), a whole number > 0.
    t_mult: the factor by which each cycle is longer than the previous one, a whole number >= 1 (PyTorch's
      ``T_mult``; the paper used 1 and 2).
    min_lr: the lower bound (PyTorch's ``eta_min``), ``<= max_lr``.
    cycle_decay: the factor, in ``(0, 1]``, by which the amplitude ``max_lr - min_lr`` shrinks at every
      restart.

  Returns:
    An ``optax.Schedule``. Its dtype follows ``max_lr`` and ``min_lr``.

  Raises:
    ValueError: for a concrete ``t_0`` or ``t_mult`` that is not a whole number in range, negative or
      non-finite bounds, ``min_lr > max_lr``, or ``cycle_decay`` outside ``(0, 1]``.
    TypeError: for a non-numeric argument. Traced values are not checked.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.sgdr(0.1, t_0=10, t_mult=2)  # restarts at steps 10, 30, 70, ...
    >>> [round(float(schedule(t)), 6) for t in (0, 5, 9, 10, 20, 30)]
    [0.1, 0.05, 0.002447, 0.1, 0.05, 0.1]
    >>> decayed = clr_optax.sgdr(0.1, t_0=10, min_lr=0.01, cycle_decay=0.5)
    >>> [round(float(decayed(t)), 6) for t in (0, 10, 20, 25)]
    [0.1, 0.055, 0.0325, 0.02125]

  References:
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, ICLR 2017.
  """
  _checks.check_bounds("min_lr", min_lr, "max_lr", max_lr)
  t_0 = _checks.check_step_count("t_0", t_0)
  t_mult = _checks.check_step_count("t_mult", t_mult, what="a whole number")
  power = _power("cycle_decay", cycle_decay)
  static_0, static_mult = _checks.concrete(t_0), _checks.concrete(t_mult)
  all_one = static_mult is not None and bool(np.all(static_mult == 1))
  any_one = static_mult is None or bool(np.any(static_mult == 1))

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(max_lr, min_lr)
    t = _checks.integer_step(count)
    iterations = 0 if all_one else _loop_length(int(jnp.iinfo(t.dtype).max), static_0, static_mult)
    cycle, pos, prev, mult = _cycle_position(t, t_0, t_mult, iterations, all_one, any_one)
    length = prev.astype(dtype) * mult.astype(dtype)
    # T_i - pos = (prev - pos // mult) * mult - pos % mult: integers that fit, then one rounding each.
    remaining = (prev - pos // mult).astype(dtype) * mult.astype(dtype) - (pos % mult).astype(dtype)
    p, q = pos.astype(dtype) / length, remaining / length  # elapsed and remaining shares of the cycle
    weight = jnp.where(p <= q, 1.0 - jnp.sin(0.5 * jnp.pi * p) ** 2, jnp.sin(0.5 * jnp.pi * q) ** 2)
    return _checks.lerp(min_lr, max_lr, (weight * power(cycle.astype(dtype))).astype(dtype)).astype(dtype)

  return schedule


__all__ = ["sgdr"]
