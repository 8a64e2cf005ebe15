"""Cosine annealing with warm restarts (SGDR; Loshchilov & Hutter, 2017), matching PyTorch's
``CosineAnnealingWarmRestarts``.

Cycle ``i`` (from 0) lasts ``t_0 * t_mult**i`` steps. The cycle of a step and the position in it are found
in integer arithmetic, so the schedule is exact at any step up to ``2**31 - 1`` (``2**63 - 1`` with int64
steps under x64) for any ``t_mult``, without a float logarithm: the step is compared with the start of
every cycle that begins below the largest step (at most 31 for int32 steps, fewer for longer cycles), all
at once, and the cycle's start and length are looked up in a table computed on the host.
PyTorch's ``step(epoch)`` takes that logarithm in float64 and misses restarts: with ``T_0=10, T_mult=3``
it returns ``eta_min`` instead of the peak at epochs 1210, 295240 and 7971610.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks
from clr_optax.cyclical import _power


@functools.lru_cache(maxsize=256)
def _restart_table(t_0: int, t_mult: int, limit: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """For ``t_mult >= 2``: the start of every cycle that starts at or before step ``limit`` (0 first), and the
  length of the cycle before each (``t_0`` for the first): cycle ``i`` lasts ``before[i] * (t_mult if i
  else 1)`` steps, a product kept apart because the last one may not fit the step's dtype."""
  starts, before = [0], [t_0]
  start, length = 0, t_0
  while start + length <= limit:
    start, before_length, length = start + length, length, length * t_mult
    starts.append(start)
    before.append(before_length)
  return tuple(starts), tuple(before)


def _position_from_table(t: jax.Array, t_0: int, t_mult: int):
  """``(cycle, pos, prev, mult)`` for concrete scalar cycle lengths: step ``t`` is ``pos`` steps into cycle
  ``cycle`` (from 0), which lasts ``prev * mult`` steps. One comparison with each cycle's start, in
  parallel, and a lookup."""
  starts, before = _restart_table(t_0, t_mult, int(jnp.iinfo(t.dtype).max))
  cycle = jnp.sum(t[..., None] >= np.asarray(starts[1:], t.dtype), axis=-1, dtype=t.dtype)
  pos = t - jnp.take(np.asarray(starts, t.dtype), cycle, mode="clip")
  prev = jnp.take(np.asarray(before, t.dtype), cycle, mode="clip")
  return cycle, pos, prev, jnp.where(cycle == 0, 1, t_mult).astype(t.dtype)


def _position_from_loop(t: jax.Array, t_0: Any, t_mult: Any, iterations: int):
  """`_position_from_table` for traced or array cycle lengths: the cycles walked one by one in a
  ``fori_loop`` of ``iterations`` steps (enough for every restart up to the largest step), each restart
  found without forming a product that could overflow; ``t_mult == 1`` by division."""
  t, t_0, t_mult = jnp.broadcast_arrays(t, jnp.asarray(t_0, t.dtype), jnp.asarray(t_mult, t.dtype))

  def restart(_, carry):
    cycle, pos, prev, mult = carry
    done = pos // mult < prev  # pos < prev * mult, the current cycle's length
    return (jnp.where(done, cycle, cycle + 1), jnp.where(done, pos, pos - prev * mult),
            jnp.where(done, prev, prev * mult), jnp.where(done, mult, t_mult))

  ones = jnp.ones_like(t)
  cycle, pos, prev, mult = jax.lax.fori_loop(0, iterations, restart, (jnp.zeros_like(t), t, t_0, ones))
  constant = t_mult == 1
  direct = t // t_0
  return (jnp.where(constant, direct, cycle), jnp.where(constant, t - direct * t_0, pos),
          jnp.where(constant, t_0, prev), jnp.where(constant, ones, mult))


def _loop_length(limit: int, t_0: np.ndarray | None, t_mult: np.ndarray | None) -> int:
  """The restarts up to step ``limit`` for any of the given cycle lengths (ignoring ``t_mult == 1``); for
  traced lengths one per bit of ``limit``, since ``t_0 >= 1`` and ``t_mult >= 2``."""
  if t_0 is None or t_mult is None:
    return limit.bit_length()
  return max([len(_restart_table(int(a), int(b), limit)[0]) - 1 for a, b in np.broadcast(t_0, t_mult) if b > 1],
             default=0)


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
  min_lr, max_lr = _checks.widened(min_lr), _checks.widened(max_lr)
  t_0 = _checks.check_step_count("t_0", t_0)
  t_mult = _checks.check_step_count("t_mult", t_mult, what="a whole number")
  power = _power("cycle_decay", cycle_decay)
  static_0, static_mult = _checks.concrete(t_0), _checks.concrete(t_mult)
  scalars = static_0 is not None and static_mult is not None and static_0.ndim == static_mult.ndim == 0

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(max_lr, min_lr)
    t = _checks.integer_step(count)
    if scalars and t_mult == 1:
      cycle = t // t_0
      pos, prev, mult = t - cycle * t_0, jnp.full_like(t, t_0), jnp.ones_like(t)
    elif scalars:
      cycle, pos, prev, mult = _position_from_table(t, t_0, t_mult)
    else:
      iterations = _loop_length(int(jnp.iinfo(t.dtype).max), static_0, static_mult)
      cycle, pos, prev, mult = _position_from_loop(t, t_0, t_mult, iterations)
    length = prev.astype(dtype) * mult.astype(dtype)
    # T_i - pos = (prev - pos // mult) * mult - pos % mult: integers that fit, then one rounding each.
    remaining = (prev - pos // mult).astype(dtype) * mult.astype(dtype) - (pos % mult).astype(dtype)
    p, q = pos.astype(dtype) / length, remaining / length  # elapsed and remaining shares of the cycle
    weight = jnp.where(p <= q, 1.0 - jnp.sin(0.5 * jnp.pi * p) ** 2, jnp.sin(0.5 * jnp.pi * q) ** 2)
    return _checks.lerp(min_lr, max_lr, (weight * power(cycle.astype(dtype))).astype(dtype)).astype(dtype)

  return schedule


__all__ = ["sgdr"]
