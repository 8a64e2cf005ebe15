"""Independent references for the schedules, in plain Python float64.

These are transcriptions, not reimplementations of clr_optax: the paper's Torch-7 snippet (section 3.1),
its Caffe C++ appendix code, and the textbook formulas of the other policies.
"""

import math


def torch7_triangular(epoch_counter: int, base_lr: float, max_lr: float, stepsize: int) -> float:
  """The paper's Torch-7 code for the triangular policy (section 3.1), line for line."""
  cycle = math.floor(1 + epoch_counter / (2 * stepsize))
  x = abs(epoch_counter / stepsize - 2 * cycle + 1)
  return base_lr + (max_lr - base_lr) * max(0, (1 - x))


def caffe_rate(
    iter_: int, lr_policy: str, base_lr: float, max_lr: float, stepsize: int, start_lr_policy: int = 0
) -> float:
  """The paper's appendix: Caffe's SGDSolver::GetLearningRate for triangular and triangular2.

  Caffe computes x in float; float64 here, so that the comparison measures clr_optax, not Caffe's rounding.
  """
  itr = iter_ - start_lr_policy
  if itr > 0:
    cycle = itr // (2 * stepsize)
    x = float(itr - (2 * cycle + 1) * stepsize)
    x = x / stepsize
    if lr_policy == "triangular":
      return base_lr + (max_lr - base_lr) * max(0.0, 1.0 - abs(x))
    if lr_policy == "triangular2":
      return base_lr + (max_lr - base_lr) * min(1.0, max(0.0, (1.0 - abs(x)) / pow(2.0, cycle)))
    raise ValueError(lr_policy)
  return base_lr


def window_position(t: int, up: int, down: int) -> tuple[int, float]:
  """(cycle counted from 1, distance from the peak in half-cycle units) with exact integer arithmetic."""
  period = up + down
  cycle, pos = divmod(t, period)
  x = (up - pos) / up if pos < up else (pos - up) / down
  return cycle + 1, x


WINDOW_FORMULAS = {
    "triangular": lambda x: 1 - x,  # Bartlett
    "welch": lambda x: 1 - x**2,  # Welch
    "hann": lambda x: 0.5 * (1 + math.cos(math.pi * x)),  # Hann
}


def cyclical(t, base_lr, max_lr, up, down=None, window="triangular", scale=lambda cycle, t: 1.0):
  down = up if down is None else down
  cycle, x = window_position(t, up, down)
  return base_lr + (max_lr - base_lr) * WINDOW_FORMULAS[window](x) * scale(cycle, t)


def keras_exp_range(t, base_lr, max_lr, up, gamma, down=None):
  """Keras' CLR callback / PyTorch's exp_range: the amplitude shrinks by gamma**t."""
  return cyclical(t, base_lr, max_lr, up, down, scale=lambda cycle, t: gamma**t)


def paper_exp_range(t, base_lr, max_lr, up, gamma, down=None):
  """The paper's wording: both bounds decline by gamma**t."""
  return gamma**t * cyclical(t, base_lr, max_lr, up, down)


def caffe_exp(t, base_lr, gamma):
  return base_lr * gamma**t


def paper_decay(t, base_lr, max_lr, stepsize):
  return max_lr - (max_lr - base_lr) * min(t / stepsize, 1.0)
