"""Independent references for the schedules, in plain Python and numpy float64.

These are transcriptions, not reimplementations of clr_optax: the paper's Torch-7 snippet (section 3.1),
its Caffe C++ appendix code, and the textbook formulas of the other policies.
"""

import math

import numpy as np


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


def sgdr(t: int, max_lr: float, t_0: int, t_mult: int = 1, min_lr: float = 0.0, cycle_decay: float = 1.0) -> float:
  """Loshchilov & Hutter's SGDR (their eq. 5), the cycles walked one by one in Python integers; the peak
  of cycle i is min_lr + (max_lr - min_lr) * cycle_decay**i."""
  if t_mult == 1:
    cycle, t_cur = divmod(t, t_0)
    length = t_0
  else:
    start, length, cycle = 0, t_0, 0
    while t >= start + length:
      start, length, cycle = start + length, length * t_mult, cycle + 1
    t_cur = t - start
  return min_lr + 0.5 * (max_lr - min_lr) * cycle_decay**cycle * (1 + math.cos(math.pi * t_cur / length))


def wsd(t, peak_lr, total_steps, warmup, decay, shape, init_lr=0.0, final_lr=0.0):
  """Warmup-stable-decay in float64 numpy, after the reference code of Hägele et al. (2024): linear warmup
  to step ``warmup``, the peak while ``t < total_steps - decay``, the decay from there to ``total_steps``,
  ``final_lr`` after."""
  t = np.asarray(t, dtype=np.float64)
  hold_end = total_steps - decay
  p = np.clip((t - hold_end) / decay, 0.0, 1.0)
  f = {"linear": 1 - p, "cosine": 0.5 * (1 + np.cos(np.pi * p)), "1-sqrt": 1 - np.sqrt(p)}[shape]
  warming = init_lr + (peak_lr - init_lr) * t / max(warmup, 1)
  return np.select([t < warmup, t < hold_end, t < total_steps], [warming, peak_lr, final_lr + (peak_lr - final_lr) * f],
                   final_lr)


def cyclic_wsd(t, peak_lr, cycle_steps, warmup, decay, shape, init_lr=0.0, final_lr=0.0):
  """Wen et al.'s WSD-S with equal cycles: one warmup, then every cycle of ``cycle_steps`` a WSD run
  without warmup."""
  t = np.asarray(t, dtype=np.int64)
  in_cycle = wsd(t % cycle_steps, peak_lr, cycle_steps, 0, decay, shape, final_lr=final_lr)
  return np.where(t < warmup, wsd(t, peak_lr, cycle_steps, warmup, decay, shape, init_lr, final_lr), in_cycle)
