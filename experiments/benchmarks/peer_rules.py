"""Other LR finders' suggestion rules, written from their documented definitions, for one range-test sweep.

Each rule reads the records of a `clr_optax.RangeTestResult` as its library would have recorded them: the
same steps, the loss smoothed the way that library smooths it, the same points skipped at both ends. Only
the unmasked steps (before the sweep diverged) are read: every library stops its sweep at divergence too.

* fastai (``fastai.callback.schedule``, ``Learner.lr_find`` and its ``SuggestionMethod``s): the recorder's
  loss is the bias-corrected moving average with decay 0.98 (the sweep's own ``smooth_loss``); ``lr_find``
  drops the first ``num_it // 10`` and the last 5 points, then

  - ``valley``: the longest strictly decreasing subsequence of the loss (ESRI's rule); the point
    ``int(len / 3) + int(len / 6)`` past its start, the start counted as ``end - len``;
  - ``slide``: with ``g = np.gradient(loss)`` (per point), a window of 15 points slides left from the end
    while its ends' slopes differ by more than 0.005; the learning rate at the window's left end;
  - ``minimum``: a tenth of the learning rate of the lowest loss;
  - ``steep``: the left point of the steepest finite difference of the loss against log(lr).

* pytorch-lr-finder (``torch_lr_finder.LRFinder.range_test`` and ``plot(suggest_lr=True)``): the loss is
  smoothed as ``0.05 * loss + 0.95 * previous`` from the first raw loss on, the sweep stops once it exceeds
  5 times its best, and the suggestion is the point of the most negative ``np.gradient`` (per point) after
  skipping 10 points at the start and 5 at the end.
* Lightning (``lightning.pytorch.tuner.lr_finder._LRFinder.suggestion``): the bias-corrected moving average
  with decay 0.98 (the sweep's ``smooth_loss``), 10 points skipped at the start and 1 at the end, non-finite
  points dropped, then the point of the most negative ``np.gradient`` (per point).
* The paper's reading (Smith 2015, section 3.3: ``base_lr`` where the accuracy starts to rise, ``max_lr`` where
  its rise slows, turns ragged or falls), taken literally as a user reading the plot: ``max_lr`` where the
  accuracy (held-out where the sweep scored it, else training),
  under a centred moving average over 5% of its points, is highest.

A rule that cannot read a sweep (too few points) gives NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clr_optax import suggest as suggest_lib

RULES = ("fastai valley", "fastai slide", "fastai minimum/10", "fastai steep", "pytorch-lr-finder",
         "lightning", "paper: accuracy peak")


def fastai_valley(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's ``valley``: 2/3 of the way along the longest strictly decreasing subsequence of the loss."""
  n = len(losses)
  length = np.ones(n, np.int64)
  for i in range(1, n):
    before = losses[:i] > losses[i]
    if before.any():
      length[i] = length[:i][before].max() + 1
  end = int(np.argmax(length))  # the first point that ends a longest descent, as fastai's strict "<" keeps it
  start = end - int(length[end])
  third = (end - start) / 3
  return float(lrs[start + int(third) + int(third / 2)])


def fastai_slide(lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005) -> float:
  """fastai's ``slide``: slide a window of ``lr_diff`` points left from the end of the sweep while the slopes
  (per point) at its two ends differ by more than ``thresh``; the learning rate at its left end."""
  if len(losses) <= lr_diff:
    return float("nan")
  grad = np.gradient(np.asarray(losses, np.float64))
  right, left = -1, -1 - lr_diff
  found = lrs[left]
  while left >= -len(losses) and abs(grad[right] - grad[left]) > thresh:
    found = lrs[left]
    right -= 1
    left -= 1
  return float(found)


def fastai_minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's ``minimum``: a tenth of the learning rate of the lowest loss."""
  return float(lrs[int(np.argmin(losses))]) / 10


def fastai_steep(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's ``steep``: the left point of the steepest descent of the loss against log(lr)."""
  keep = lrs > 0
  lrs, losses = lrs[keep], losses[keep]
  if len(losses) < 2:
    return float("nan")
  slopes = np.diff(losses) / np.diff(np.log(lrs))
  return float(lrs[int(np.argmin(slopes))])


def steepest_per_point(lrs: np.ndarray, losses: np.ndarray, skip_start: int, skip_end: int) -> float:
  """pytorch-lr-finder's and Lightning's rule: the point of the most negative ``np.gradient`` of the loss (per
  point, not per unit of lr) after skipping ``skip_start`` points at the start and ``skip_end`` at the end."""
  lrs, losses = lrs[skip_start:len(lrs) - skip_end], losses[skip_start:len(losses) - skip_end]
  keep = np.isfinite(losses)
  lrs, losses = lrs[keep], losses[keep]
  if len(losses) < 2:
    return float("nan")
  return float(lrs[int(np.argmin(np.gradient(losses)))])


def torch_lr_finder_smoothing(raw: np.ndarray, smooth_f: float = 0.05, diverge_th: float = 5.0) -> np.ndarray:
  """pytorch-lr-finder's recorded loss: ``smooth_f * loss + (1 - smooth_f) * previous`` from the first loss
  on, cut after the first point above ``diverge_th`` times the best so far (where its sweep stops)."""
  out = []
  best = np.inf
  for i, loss in enumerate(np.asarray(raw, np.float64)):
    value = loss if i == 0 else smooth_f * loss + (1 - smooth_f) * out[-1]
    best = min(best, value)
    out.append(value)
    if value > diverge_th * best:
      break
  return np.asarray(out)


def paper_accuracy_peak(lrs: np.ndarray, acc: np.ndarray) -> float:
  """The learning rate of the highest accuracy, after a centred moving average over 5% of the points."""
  keep = np.isfinite(acc)
  lrs, acc = lrs[keep], acc[keep]
  if len(acc) < 5:
    return float("nan")
  smooth = suggest_lib.smooth_curve(acc, max(3, (len(acc) // 20) | 1))
  return float(lrs[int(np.argmax(smooth))])


def suggestions(result: Any) -> dict[str, float]:
  """Every peer rule's learning rate for one single-run sweep (NaN where a rule found none)."""
  lr = np.asarray(result.lr, np.float64).reshape(-1)
  steps = int(np.argmax(np.asarray(result.masked).reshape(-1))) if np.asarray(result.masked).any() else lr.size
  lr = lr[:steps]
  smooth = np.asarray(result.smooth_loss, np.float64).reshape(-1)[:steps]
  raw = np.asarray(result.loss, np.float64).reshape(-1)[:steps]
  num_it = np.shape(result.lr)[-1]
  out = {}
  lo, hi = num_it // 10, max(steps - 5, 0)
  fa_lr, fa_loss = lr[lo:hi], smooth[lo:hi]
  ok = len(fa_loss) >= 2
  out["fastai valley"] = fastai_valley(fa_lr, fa_loss) if ok else float("nan")
  out["fastai slide"] = fastai_slide(fa_lr, fa_loss) if ok else float("nan")
  out["fastai minimum/10"] = fastai_minimum(fa_lr, fa_loss) if ok else float("nan")
  out["fastai steep"] = fastai_steep(fa_lr, fa_loss) if ok else float("nan")
  tlf = torch_lr_finder_smoothing(raw)
  out["pytorch-lr-finder"] = steepest_per_point(lr[:len(tlf)], tlf, 10, 5)
  out["lightning"] = steepest_per_point(lr, smooth, 10, 1)
  evals = getattr(result, "eval_metrics", {}) or {}
  if "accuracy" in evals and np.size(evals["accuracy"]):
    eval_step = np.asarray(result.eval_step).reshape(-1)
    keep = eval_step < steps
    acc_lr = np.asarray(result.lr, np.float64).reshape(-1)[eval_step[keep]]
    acc = np.asarray(evals["accuracy"], np.float64).reshape(-1)[keep]
  elif "accuracy" in result.metrics:
    acc_lr, acc = lr, np.asarray(result.metrics["accuracy"], np.float64).reshape(-1)[:steps]
  else:
    acc_lr, acc = lr[:0], lr[:0]
  out["paper: accuracy peak"] = paper_accuracy_peak(acc_lr, acc)
  return out
