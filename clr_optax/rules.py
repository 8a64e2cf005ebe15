"""The paper's rules of thumb, as small functions (section 3.2 and 3.3)."""

import math
from typing import Any

from clr_optax import _checks


def step_size_from_epochs(epochs: float, iterations_per_epoch: int) -> int:
  """Step size in iterations from a length in epochs (the paper advises 2-10 epochs per half-cycle).

  The paper (§3.2, line 105 of its text) finds a step size of 2 to 10 epochs often good; with
  50,000 CIFAR-10 images and batch 100 an epoch is 500 iterations, so 4 epochs is the paper's 2,000.

  Args:
    epochs: epochs per half-cycle (> 0; may be fractional).
    iterations_per_epoch: optimizer steps per epoch (a whole number > 0): the updates applied, which under
      gradient accumulation (``optax.MultiSteps`` over ``k`` micro-batches) is the batches divided by ``k``.

  Returns:
    The step size, rounded to the nearest whole step (at least 1).

  Examples:
    >>> import clr_optax
    >>> clr_optax.step_size_from_epochs(4, iterations_per_epoch=50_000 // 100)
    2000
  """
  _checks.check_positive("epochs", epochs)
  iterations = _checks.check_step_count("iterations_per_epoch", iterations_per_epoch)
  return max(1, int(round(epochs * iterations)))


def base_lr_from_max(max_lr: Any, factor: float = 4.0) -> Any:
  """The paper's rule of thumb: ``base_lr`` is a third to a quarter of ``max_lr``.

  "Set base_lr to 1/3 or 1/4 of max_lr" (section 3.3), where ``max_lr`` is the largest learning rate
  that still converges (the optimum is usually within a factor of two of it).

  Args:
    max_lr: the upper bound.
    factor: the divisor, normally 3 or 4; must be > 1.

  Returns:
    ``max_lr / factor``.

  Examples:
    >>> import clr_optax
    >>> clr_optax.base_lr_from_max(0.02)
    0.005
  """
  _checks.check_nonnegative("max_lr", max_lr)
  if not (math.isfinite(factor) and factor > 1):
    raise ValueError(f"factor must be a finite number > 1 (the paper uses 3 or 4), got {factor=}")
  return max_lr / factor


__all__ = ["step_size_from_epochs", "base_lr_from_max"]
