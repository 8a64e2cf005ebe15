"""Warmup-stable-decay (WSD) learning rates and their cyclic variant.

WSD warms up linearly to a peak, holds it for most of the run, and decays only at the end, so the length of
a run need not be fixed in advance: a run can be extended, or branched into a decay at any checkpoint (Hu et
al. 2024, MiniCPM; Hägele et al. 2024, who find the ``1 - sqrt`` decay best). The cyclic variant has several
stable phases, each ending in a decay, training on from the decayed weights at the peak rate (the WSD-S of
Wen et al. 2024), so a checkpoint at the end of every cycle is a finished model.

Phase boundaries follow the reference code of Hägele et al.: the peak is reached at step ``warmup``; the
decay starts at the peak at step ``total_steps - decay`` and reaches ``final_lr`` at step ``total_steps``
(the first step after a run of ``total_steps`` steps). Positions are counted in integers, so the values at
the boundaries are exact, and stay so at any step up to ``2**31 - 1``.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks

WSD_SHAPES = ("linear", "cosine", "1-sqrt")


def _decay_weight(shape: str, remaining: jax.Array, decay: Any, dtype: Any) -> jax.Array:
  """The weight of the peak with ``remaining`` of ``decay`` steps left (1 before the decay, 0 after it).

  Both shares of the decay come from exact integers, and each shape is written so that it keeps its
  relative precision where it approaches 0 (``1 - sqrt(p)`` as ``q / (1 + sqrt(p))``, the cosine as a
  squared sine of the remaining share).
  """
  q = remaining.astype(dtype) / decay  # share of the decay still to come, from 1 down to 0
  p = (decay - remaining).astype(dtype) / decay  # share elapsed
  if shape == "linear":
    return q
  if shape == "cosine":
    return jnp.where(p <= q, 1.0 - jnp.sin(0.5 * jnp.pi * p) ** 2, jnp.sin(0.5 * jnp.pi * q) ** 2)
  return q / (1.0 + jnp.sqrt(p))  # 1 - sqrt(p)


def _check_phases(period_name: str, period: Any, warmup: Any, decay: Any, shape: str) -> tuple[Any, Any, Any]:
  period = _checks.check_step_count(period_name, period)
  warmup = _checks.check_step_count("warmup", warmup, minimum=0)
  decay = _checks.check_step_count("decay", decay)
  _checks.check_choice("shape", shape, WSD_SHAPES)
  concrete = [_checks.concrete(v) for v in (period, warmup, decay)]
  if all(c is not None for c in concrete) and np.any(concrete[1] + concrete[2] > concrete[0]):
    raise ValueError(f"warmup + decay must be <= {period_name}, got {warmup=}, {decay=}, {period_name}={period!r}")
  return period, warmup, decay


def _check_levels(peak_lr: Any, init_lr: Any, final_lr: Any, warmup: Any) -> tuple[Any, Any, Any]:
  """Checks the rates (``init_lr`` None: 0) and returns them, widened to float32 at least."""
  if init_lr is not None and _checks.concrete(warmup) is not None and np.any(_checks.concrete(warmup) == 0):
    raise ValueError(f"init_lr is the start of the warmup, and warmup=0 starts at peak_lr: leave init_lr out or "
                     f"give a warmup, got {init_lr=}, {warmup=}")
  init_lr = 0.0 if init_lr is None else init_lr
  _checks.check_bounds("init_lr", init_lr, "peak_lr", peak_lr)
  _checks.check_bounds("final_lr", final_lr, "peak_lr", peak_lr)
  return tuple(map(_checks.widened, (peak_lr, init_lr, final_lr)))


def _schedule(peak_lr, init_lr, final_lr, warmup, decay, shape, position) -> optax.Schedule:
  """The WSD curve at ``position(t)``, the step's place in its run: the warmup covers ``t < warmup`` only."""

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(peak_lr, init_lr, final_lr)
    t = _checks.integer_step(count)
    remaining = position(t)  # steps until the end of the decay, clipped to [0, decay]
    stable_or_decay = _checks.lerp(final_lr, peak_lr, _decay_weight(shape, remaining, decay, dtype).astype(dtype))
    warming = _checks.lerp(init_lr, peak_lr, (t.astype(dtype) / jnp.maximum(warmup, 1)).astype(dtype))
    return jnp.where(t < warmup, warming, stable_or_decay).astype(dtype)

  return schedule


def wsd(
    peak_lr: Any,
    total_steps: Any,
    *,
    warmup: Any,
    decay: Any,
    shape: str = "linear",
    init_lr: Any = None,
    final_lr: Any = 0.0,
) -> optax.Schedule:
  r"""Warmup-stable-decay: a linear warmup to ``peak_lr``, a long stable phase, a short decay at the end.

  With :math:`W` = ``warmup``, :math:`D` = ``decay``, :math:`T` = ``total_steps`` and
  :math:`p = (t - (T - D)) / D`, the share of the decay elapsed,

  .. math::

    \eta_t = \begin{cases}
      \eta_{init} + (\eta_{peak} - \eta_{init})\, t / W & t < W \\
      \eta_{peak} & W \le t \le T - D \\
      \eta_{final} + (\eta_{peak} - \eta_{final})\, f(p) & T - D < t < T \\
      \eta_{final} & t \ge T
    \end{cases}

  with the decay shape :math:`f(p) = 1 - p` (``"linear"``), :math:`\tfrac12 (1 + \cos \pi p)`
  (``"cosine"``) or :math:`1 - \sqrt{p}` (``"1-sqrt"``, Hägele et al.'s best). The last step of the run,
  :math:`t = T - 1`, is one decay step above ``final_lr``, which is held from :math:`t = T` on.

  Args:
    peak_lr: the learning rate of the stable phase.
    total_steps: the length of the run, :math:`T`.
    warmup: steps of the linear warmup (0 starts at the peak).
    decay: steps of the decay (``>= 1``; ``warmup + decay <= total_steps``). Hägele et al. and MiniCPM
      decay over 10-20% of the run.
    shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.
    init_lr: the learning rate at step 0, where the warmup starts, ``<= peak_lr`` (default 0). Only with a
      warmup: given with ``warmup=0`` it raises, since the schedule then starts at ``peak_lr``.
    final_lr: the learning rate the decay ends at, ``<= peak_lr``.

  Returns:
    An ``optax.Schedule``. Its dtype follows the three learning rates.

  Raises:
    ValueError: for concrete step counts that are not whole numbers in range, ``warmup + decay >
      total_steps``, negative or non-finite rates, ``init_lr`` or ``final_lr`` above ``peak_lr``, or an
      unknown ``shape``. Traced values are not checked.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.wsd(0.01, 1000, warmup=100, decay=200, shape="1-sqrt")
    >>> [round(float(schedule(t)), 6) for t in (0, 50, 100, 800, 850, 999, 1000)]
    [0.0, 0.005, 0.01, 0.01, 0.005, 2.5e-05, 0.0]

  References:
    Hu et al., `MiniCPM <https://arxiv.org/abs/2404.06395>`_, 2024; Hägele et al., `Scaling Laws and
    Compute-Optimal Training Beyond Fixed Training Durations <https://arxiv.org/abs/2405.18392>`_, 2024.
  """
  total, warmup, decay = _check_phases("total_steps", total_steps, warmup, decay, shape)
  peak_lr, init_lr, final_lr = _check_levels(peak_lr, init_lr, final_lr, warmup)
  return _schedule(peak_lr, init_lr, final_lr, warmup, decay, shape, lambda t: jnp.clip(total - t, 0, decay))


def cyclic_wsd(
    peak_lr: Any,
    cycle_steps: Any,
    *,
    warmup: Any,
    decay: Any,
    shape: str = "linear",
    init_lr: Any = None,
    final_lr: Any = 0.0,
) -> optax.Schedule:
  r"""WSD with several stable phases: every ``cycle_steps`` steps end in a decay, then the peak resumes.

  One warmup at the start; then cycle :math:`k = 0, 1, \dots` holds ``peak_lr`` and decays over its last
  ``decay`` steps, as :func:`wsd` does over a run of ``cycle_steps``: with :math:`C` = ``cycle_steps`` and
  :math:`r = (t \bmod C) - (C - D)`,

  .. math::

    \eta_t = \begin{cases}
      \eta_{init} + (\eta_{peak} - \eta_{init})\, t / W & t < W \\
      \eta_{peak} & r \le 0 \\
      \eta_{final} + (\eta_{peak} - \eta_{final})\, f(r / D) & r > 0
    \end{cases}

  with the shapes :math:`f` of :func:`wsd`. Training continues from the decayed weights at the peak rate
  (Wen et al.'s WSD-S), so the weights at the end of each cycle, steps :math:`kC - 1`, are as good as a
  finished run's and can be evaluated or released. Each cycle restarts at ``peak_lr`` on a multiple of
  ``cycle_steps``; for cycles of different lengths, join :func:`wsd` schedules with ``warmup=0`` by
  ``optax.join_schedules``.

  Args:
    peak_lr: the learning rate of the stable phases.
    cycle_steps: the length of each cycle, :math:`C`.
    warmup: steps of the linear warmup at the start of the first cycle (0 starts at the peak).
    decay: steps of the decay ending each cycle (``>= 1``; ``warmup + decay <= cycle_steps``).
    shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.
    init_lr: the learning rate at step 0, where the warmup starts, ``<= peak_lr`` (default 0). Only with a
      warmup: given with ``warmup=0`` it raises, since the schedule then starts at ``peak_lr``.
    final_lr: the learning rate each decay heads for, ``<= peak_lr`` (the step that would reach it is the
      next cycle's first, at the peak).

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.cyclic_wsd(0.01, 1000, warmup=100, decay=100)
    >>> [round(float(schedule(t)), 6) for t in (50, 900, 950, 999, 1000, 1950, 2000)]
    [0.005, 0.01, 0.005, 0.0001, 0.01, 0.005, 0.01]

  References:
    Wen et al., `Understanding Warmup-Stable-Decay Learning Rates: A River Valley Loss Landscape Perspective
    <https://arxiv.org/abs/2410.05192>`_, 2024; Hu et al., `MiniCPM <https://arxiv.org/abs/2404.06395>`_, 2024.
  """
  cycle, warmup, decay = _check_phases("cycle_steps", cycle_steps, warmup, decay, shape)
  peak_lr, init_lr, final_lr = _check_levels(peak_lr, init_lr, final_lr, warmup)
  return _schedule(peak_lr, init_lr, final_lr, warmup, decay, shape,
                   lambda t: jnp.minimum(cycle - t % cycle, decay))


__all__ = ["WSD_SHAPES", "wsd", "cyclic_wsd"]
