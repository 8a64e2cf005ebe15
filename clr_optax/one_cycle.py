"""The one-cycle policy (Smith, 2018; Smith & Topin, 2017) and its momentum, matching PyTorch's OneCycleLR.

Phase boundaries follow ``torch.optim.lr_scheduler.OneCycleLR`` exactly: the first phase ends at step
``pct_start * total_steps - 1``, the second (three-phase form) at ``2 * pct_start * total_steps - 2``, the
last at ``total_steps - 1``; each phase interpolates from where the previous one ended. Past
``total_steps - 1`` the schedules hold their final value (PyTorch raises instead).
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks

ANNEALS = ("cos", "linear")


def _anneal(kind: str, start: Any, end: Any, t: jax.Array, first: Any, last: Any) -> jax.Array:
  """From ``start`` at step ``first`` to ``end`` at step ``last``; clipped outside.

  The cosine weight of ``end``, ``(1 - cos(pi p)) / 2``, is written ``sin(pi p / 2)**2`` near the start and
  ``1 - sin(pi q / 2)**2`` with ``q = 1 - p`` measured from the end, so that values keep their relative
  precision where the curve flattens out near ``start`` and near ``end`` (``1 + cos`` cancels there).
  """
  length = last - first
  p = jnp.clip((t - first) / length, 0.0, 1.0)
  q = jnp.clip((last - t) / length, 0.0, 1.0)
  if kind == "linear":
    weight_start, weight_end = q, p
  else:
    near_start = p <= 0.5
    s_p = jnp.sin(0.5 * jnp.pi * p) ** 2  # (1 - cos(pi p)) / 2: weight of end, accurate for small p
    s_q = jnp.sin(0.5 * jnp.pi * q) ** 2  # (1 + cos(pi p)) / 2: weight of start, accurate for small q
    weight_end = jnp.where(near_start, s_p, 1.0 - s_q)
    weight_start = jnp.where(near_start, 1.0 - s_p, s_q)
  return start * weight_start + end * weight_end


def _phase_ends(total_steps: Any, pct_start: Any, three_phase: bool) -> tuple[Any, ...]:
  """Checks the phase arguments and returns PyTorch's phase end steps (floats, possibly fractional)."""
  total = _checks.check_step_count("total_steps", total_steps)
  _checks.check_in_range("pct_start", pct_start, 0.0, 1.0, low_open=True, high_open=True)
  if three_phase:
    ends = (pct_start * total - 1, 2 * pct_start * total - 2, total - 1)
  else:
    ends = (pct_start * total - 1, total - 1)
  concrete = [_checks.concrete(e) for e in ends]
  if all(c is not None for c in concrete):
    starts = [np.zeros_like(concrete[0])] + concrete[:-1]
    if any(np.any(e - s < 1) for s, e in zip(starts, concrete)):
      raise ValueError(
          "every phase of the one-cycle schedule must last at least one step; got phase ends "
          f"{[c.tolist() for c in concrete]} from {total_steps=}, {pct_start=}, {three_phase=} "
          "(PyTorch's OneCycleLR divides by zero or runs backwards here)"
      )
  return ends


def _piecewise(ends: Sequence[Any], values: Sequence[Any], anneal: str) -> optax.Schedule:
  """Interpolates ``values[i] -> values[i + 1]`` over phase i, which ends at ``ends[i]``."""

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(*values)
    t = _checks.integer_step(count).astype(dtype)
    out = None
    for i in reversed(range(len(ends))):
      first = 0.0 if i == 0 else ends[i - 1]
      value = _anneal(anneal, values[i], values[i + 1], t, first, ends[i])
      out = value if out is None else jnp.where(t <= ends[i], value, out)
    return out.astype(dtype)

  return schedule


def one_cycle(
    max_lr: Any,
    total_steps: Any,
    *,
    pct_start: Any = 0.3,
    div_factor: Any = 25.0,
    final_div_factor: Any = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> optax.Schedule:
  r"""The one-cycle policy: warm up to ``max_lr``, then anneal far below the start, in a single cycle.

  With :math:`\eta_0 = \eta_{max} / \mathrm{div\_factor}` and
  :math:`\eta_{min} = \eta_0 / \mathrm{final\_div\_factor}`, the two-phase form goes
  :math:`\eta_0 \to \eta_{max} \to \eta_{min}`; the three-phase form (Smith's original, with a final
  "annihilation" phase) goes :math:`\eta_0 \to \eta_{max} \to \eta_0 \to \eta_{min}`. Each phase anneals
  by cosine, :math:`\eta = b + \tfrac{a - b}{2}(1 + \cos \pi p)`, or linearly, :math:`\eta = a + (b - a) p`,
  from :math:`a` to :math:`b` as :math:`p` goes from 0 to 1. Values equal PyTorch's ``OneCycleLR`` at
  every step ``0 .. total_steps - 1``. From step ``total_steps - 1`` on the schedule holds its final value,
  :math:`\eta_{min}`, at any later step (PyTorch's ``OneCycleLR`` raises a ``ValueError`` when stepped past
  ``total_steps``); a run that goes on at a constant rate after the cycle needs nothing else.

  The published recipe for ResNet-56 on CIFAR-10 (batch 512, momentum 0.9; 41 epochs 0.08 -> 0.8,
  41 epochs back to 0.08, 13 epochs annihilating to 0.008; 91.3% reported) is::

    clr_optax.one_cycle(0.8, 95 * steps_per_epoch, pct_start=41 / 95, div_factor=10,
                        final_div_factor=10, anneal="linear", three_phase=True)

  Args:
    max_lr: the peak learning rate.
    total_steps: the number of steps in the cycle.
    pct_start: the share of ``total_steps`` spent rising (and, in the three-phase form, falling back).
    div_factor: ``max_lr / div_factor`` is the starting learning rate (``>= 1``: never above ``max_lr``).
    final_div_factor: the final learning rate is the starting one divided by this (``div_factor *
      final_div_factor >= 1``).
    anneal: ``"cos"`` or ``"linear"``.
    three_phase: the three-phase form above instead of the two-phase one.

  Returns:
    An ``optax.Schedule``.

  Raises:
    ValueError: for ``pct_start`` outside ``(0, 1)``, a phase shorter than one step, ``div_factor < 1``
      or a final rate above ``max_lr``, non-positive factors, a negative ``max_lr``, or an unknown
      ``anneal``.

  Examples:
    >>> import clr_optax
    >>> schedule = clr_optax.one_cycle(0.8, 950, pct_start=41 / 95, div_factor=10,
    ...                                final_div_factor=10, anneal="linear", three_phase=True)
    >>> [round(float(schedule(t)), 4) for t in (0, 409, 818, 949)]
    [0.08, 0.8, 0.08, 0.008]

  References:
    Smith & Topin, `Super-Convergence <https://arxiv.org/abs/1708.07120>`_, 2017;
    Smith, `A disciplined approach to neural network hyper-parameters <https://arxiv.org/abs/1803.09820>`_,
    2018.
  """
  _checks.check_nonnegative("max_lr", max_lr)
  _checks.check_at_least("div_factor", div_factor, 1.0, "the schedule starts at max_lr / div_factor")
  _checks.check_positive("final_div_factor", final_div_factor)
  d, f = _checks.concrete(div_factor), _checks.concrete(final_div_factor)
  if d is not None and f is not None and np.any(d.astype(np.float64) * f.astype(np.float64) < 1):
    raise ValueError("div_factor * final_div_factor must be >= 1 (the schedule ends at max_lr / their product), "
                     f"got {div_factor=}, {final_div_factor=}")
  _checks.check_choice("anneal", anneal, ANNEALS)
  ends = _phase_ends(total_steps, pct_start, three_phase)
  max_lr, div_factor, final_div_factor = map(_checks.widened, (max_lr, div_factor, final_div_factor))
  initial = max_lr / div_factor
  final = initial / final_div_factor
  values = (initial, max_lr, initial, final) if three_phase else (initial, max_lr, final)
  return _piecewise(ends, values, anneal)


def one_cycle_momentum(
    total_steps: Any,
    *,
    base_momentum: Any = 0.85,
    max_momentum: Any = 0.95,
    pct_start: Any = 0.3,
    anneal: str = "cos",
    three_phase: bool = False,
) -> optax.Schedule:
  r"""The momentum that goes with :func:`one_cycle`: down while the learning rate rises, then back up.

  Two-phase: ``max_momentum -> base_momentum -> max_momentum``; three-phase:
  ``max_momentum -> base_momentum -> max_momentum``, then held. The phases, the annealing and the values
  are PyTorch's ``OneCycleLR(cycle_momentum=True)``; use the same ``total_steps``, ``pct_start``,
  ``anneal`` and ``three_phase`` as the learning rate; like it, it holds its final value after the cycle.
  Feed both to an optimizer with ``optax.inject_hyperparams`` (see :mod:`clr_optax.momentum`).

  Args:
    total_steps: the number of steps in the cycle.
    base_momentum: the momentum at the learning rate's peak.
    max_momentum: the momentum at the start and at the end, in ``[base_momentum, 1]``.
    pct_start: as in :func:`one_cycle`.
    anneal: ``"cos"`` or ``"linear"``.
    three_phase: as in :func:`one_cycle`.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> momentum = clr_optax.one_cycle_momentum(100, pct_start=0.3)
    >>> [round(float(momentum(t)), 4) for t in (0, 29, 99)]
    [0.95, 0.85, 0.95]
  """
  _checks.check_momenta("base_momentum", base_momentum, "max_momentum", max_momentum)
  _checks.check_choice("anneal", anneal, ANNEALS)
  ends = _phase_ends(total_steps, pct_start, three_phase)
  base_momentum, max_momentum = _checks.widened(base_momentum), _checks.widened(max_momentum)
  if three_phase:
    values = (max_momentum, base_momentum, max_momentum, max_momentum)
  else:
    values = (max_momentum, base_momentum, max_momentum)
  return _piecewise(ends, values, anneal)


__all__ = ["ANNEALS", "one_cycle", "one_cycle_momentum"]
