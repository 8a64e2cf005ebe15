"""Learning-rate bounds from a range test, each with the reason it was chosen.

The rules, all applied to the unmasked part of the sweep (before any run diverged) and, with several runs,
to the mean curve:

* the paper's accuracy rule (Smith 2015, section 3.3): ``base_lr`` where the accuracy starts to rise,
  ``max_lr`` where the rise slows (95% of the way up to its peak), turns ragged or the accuracy falls;
* the loss rules users know from fastai and pytorch-lr-finder: the steepest descent of the loss along the
  sweep (against log(lr) for an exponential sweep, against lr for a linear one), fastai's "valley" (a point
  two thirds along the longest descending stretch of the smoothed loss), and the minimum of the smoothed
  loss (an upper limit, never a suggestion by itself);
* the paper's rule of thumb: ``base_lr`` is a third to a quarter of ``max_lr``
  (`clr_optax.base_lr_from_max`).

Curves are smoothed with a centred moving average before any derivative or extremum is taken (noise is
the usual complaint against every finder); the causal moving average that the divergence test uses would
lag and push every estimate to higher learning rates.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from clr_optax import rules

RULES = ("auto", "accuracy", "valley", "steepest")


@dataclasses.dataclass(frozen=True)
class Suggestion:
  """Suggested bounds for a cyclical schedule, with the reason for each.

  Attributes:
    base_lr: the lower bound.
    max_lr: the upper bound.
    base_reason: why ``base_lr``, in words.
    max_reason: why ``max_lr``, in words.
    candidates: every rule that produced a value: name -> ``(lr, reason)``.
    notes: what the rules could not read in this sweep (a curve too noisy, a sweep that ended too early).
  """
  base_lr: float
  max_lr: float
  base_reason: str
  max_reason: str
  candidates: Mapping[str, tuple[float, str]]
  notes: tuple[str, ...] = ()

  @property
  def bounds(self) -> tuple[float, float]:
    """``(base_lr, max_lr)``, e.g. for ``clr_optax.triangular2(*s.bounds, step_size=...)``."""
    return self.base_lr, self.max_lr

  def __str__(self) -> str:
    lines = [f"base_lr = {self.base_lr:.4g}: {self.base_reason}", f"max_lr  = {self.max_lr:.4g}: {self.max_reason}",
             "all rules:"]
    lines += [f"  {name:>13}: {lr:.4g} ({reason})" for name, (lr, reason) in self.candidates.items()]
    lines += ["notes:"] * bool(self.notes) + [f"  {note}" for note in self.notes]
    return "\n".join(lines)


def smooth_curve(y: np.ndarray, window: int) -> np.ndarray:
  """A centred moving average of ``y`` (NaNs ignored); the window shrinks symmetrically at the ends."""
  y = np.asarray(y, np.float64)
  half = max(window // 2, 0)
  finite = np.isfinite(y)
  csum = np.concatenate([[0.0], np.cumsum(np.where(finite, y, 0.0))])
  ccnt = np.concatenate([[0], np.cumsum(finite)])
  i = np.arange(len(y))
  h = np.minimum(half, np.minimum(i, len(y) - 1 - i))
  lo, hi = i - h, i + h + 1
  count = ccnt[hi] - ccnt[lo]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, (csum[hi] - csum[lo]) / np.maximum(count, 1), np.nan)


def _longest_descent(y: np.ndarray) -> tuple[int, int]:
  """Start and end of the longest strictly decreasing subsequence of ``y`` (fastai's "valley")."""
  n = len(y)
  length = np.ones(n, np.int64)
  first = np.arange(n)
  for i in range(1, n):
    before = y[:i] > y[i]
    if before.any():
      cand = np.where(before, length[:i], 0)
      j = int(np.argmax(cand))
      length[i] = cand[j] + 1
      first[i] = first[j]
  end = int(np.argmax(length))
  return int(first[end]), end


def _levels(lr: np.ndarray, *curves: np.ndarray) -> tuple[np.ndarray, ...]:
  """Consecutive points of equal learning rate (a staircase sweep's levels) merged: their mean per level."""
  if lr.size < 2 or np.all(lr[1:] != lr[:-1]):
    return (lr, *curves)
  starts = np.flatnonzero(np.concatenate([[True], lr[1:] != lr[:-1]]))
  merged = []
  for y in curves:
    finite = np.isfinite(y)
    total = np.add.reduceat(np.where(finite, y, 0.0), starts)
    count = np.add.reduceat(finite.astype(np.float64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
      merged.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
  return (lr[starts], *merged)


def _curves(result: Any) -> dict[str, Any]:
  """The mean curves of the unmasked prefix shared by all runs, one point per learning rate (the steps of a
  staircase level averaged)."""
  lr = np.asarray(result.lr, np.float64).reshape(-1, np.shape(result.lr)[-1])[0]
  masked = np.asarray(result.masked).reshape(-1, lr.size)
  live = ~masked.any(axis=0)
  steps = int(np.argmin(live)) if not live.all() else lr.size
  loss = np.asarray(result.loss, np.float64).reshape(-1, lr.size)[:, :steps]
  out = {"steps": steps, "diverged": steps < lr.size, "first_lr": float(lr[0]) if lr.size else float("nan")}
  curves = [np.nanmean(loss, axis=0) if steps else loss[0]]
  acc = result.metrics.get("accuracy")
  if acc is not None:
    curves.append(np.nanmean(np.asarray(acc, np.float64).reshape(-1, lr.size)[:, :steps], axis=0))
  merged = _levels(lr[:steps], *curves)
  out.update(lr=merged[0], n=merged[0].size, loss=merged[1])
  if acc is not None:
    out["train_accuracy"] = merged[2]
  eval_acc = result.eval_metrics.get("accuracy")
  if eval_acc is not None:
    eval_steps = np.asarray(result.eval_step).reshape(-1, np.shape(result.eval_step)[-1])[0]
    keep = eval_steps < steps
    values = np.asarray(eval_acc, np.float64).reshape(-1, eval_steps.size)[:, keep]
    with warnings.catch_warnings():  # an evaluation that is NaN in every run stays NaN, and is said later
      warnings.simplefilter("ignore", RuntimeWarning)
      out["eval_accuracy"] = _levels(lr[eval_steps[keep]], np.nanmean(values, axis=0))
  return out


def _accuracy_rule(lr: np.ndarray, acc: np.ndarray, window: int, what: str, cure: str, log_x: bool,
                   notes: list[str]) -> dict[str, tuple[float, str]]:
  """The paper's rule on one accuracy curve (`what`); empty when the accuracy never rose clearly. ``log_x``:
  slopes against log(lr) (an exponential sweep), else against lr (a linear one, as the paper plots it: against
  log(lr) the late points of a linear sweep crowd together and their noise reads as steep slopes). What it
  cannot read is said in ``notes``, a curve too noisy with `cure`, what would make it readable."""
  n = len(acc)
  if np.isfinite(acc).sum() < 5:
    notes.append(f"the {what} is not finite at {n - np.isfinite(acc).sum()} of its {n} points: not read")
    return {}
  smooth = smooth_curve(acc, window)
  half = min(window // 2, (n - 1) // 4)
  inner = slice(half, n - half)  # the ends, where the moving average shrinks to a few points, are noisy
  start = float(np.nanmean(smooth[: max(half, 1)]))
  peak = half + int(np.nanargmax(smooth[inner]))
  rise = smooth[peak] - start
  residual = acc - smooth
  noise = float(np.nanstd(residual)) if np.isfinite(residual).any() else 0.0
  if not (rise > max(0.02, 2.0 * noise)) or peak < 2:
    return {}
  # A smoothed point scatters by noise / sqrt(window): where 10% of the rise is within twice that, noise
  # alone crosses it and shapes the slopes (the per-batch accuracy of small batches). Smooth more, up to an
  # eighth of the sweep, or give up.
  blur = noise / np.sqrt(window)
  if 0.1 * rise <= 2.0 * blur:
    wider = int(np.ceil((20.0 * noise / rise) ** 2)) | 1
    if window < wider <= n // 8:
      return _accuracy_rule(lr, acc, wider, what, cure, log_x, notes)
    notes.append(f"the {what} is too noisy to read: a smoothed point scatters by {blur:.2g} against a rise of "
                 f"{rise:.2g} (that needs a moving average over {wider} of the {n} points); {cure}")
    return {}
  base = half + int(np.argmax(smooth[half:] >= start + 0.1 * rise))  # the shorter averages follow single points
  out = {"accuracy_base": (float(lr[base]), f"{what} starts to rise here (smoothed, 10% of the way from {start:.3g} "
                           f"to its peak {smooth[peak]:.3g})")}
  x = np.log(lr) if log_x and lr[0] > 0 else lr
  # Differentiate a twice-smoothed curve: a derivative amplifies whatever noise is left.
  slope = np.gradient(smooth_curve(smooth, window), x)
  lo = max(base, 2 * half)  # the twice-smoothed slope is a full-width average from here on
  steep = lo + int(np.nanargmax(slope[lo:max(peak, lo) + 1]))
  reasons = []
  # Slows: the smoothed accuracy is 95% of the way up to its peak. A level, not a slope threshold: the slope
  # of a noisy shoulder dips under any fraction of its steepest long before the top (suggest_quality's MLP).
  slow = steep + int(np.argmax(smooth[steep:peak + 1] >= start + 0.95 * rise)) if steep < peak else peak
  if slow < peak:
    reasons.append((slow, f"the rise of the {what} slows (95% of the way up to its peak {smooth[peak]:.3g})"))
  # Ragged: the local scatter about the smoothed curve doubles compared with the rising part. The rise's
  # scatter is measured over a window's width at least, away from the start, where the moving average shrinks
  # to a few points and follows them (the scatter of 1 or 2 points would make the rule fire at any noise).
  scatter = np.sqrt(smooth_curve(residual ** 2, window))
  calm = float(np.nanmedian(scatter[lo:max(steep, lo) + window + 1]))
  ragged = np.nonzero(scatter[steep:] > 2.0 * calm)[0] if calm > 0 else np.array([], np.int64)
  if ragged.size:
    reasons.append((steep + int(ragged[0]), f"the {what} turns ragged (local scatter twice that of the rise)"))
  at_end = peak >= n - 1 - half
  reasons.append((peak, f"the {what} is highest ({smooth[peak]:.3g}) at the end of the unmasked sweep" if at_end
                  else f"the {what} peaks ({smooth[peak]:.3g}) and falls after it"))
  if at_end:
    notes.append(f"the {what} is highest at the end of the unmasked sweep: it may still be rising, sweep to a "
                 "higher max_lr")
  top, why = min(reasons, key=lambda r: r[0])
  top = max(top, base + 1)
  out["accuracy_max"] = (float(lr[top]), why)
  return out


def suggest_bounds(result: Any, *, rule: str = "auto", factor: float = 4.0, window: int | None = None) -> Suggestion:
  """Suggests ``base_lr`` and ``max_lr`` from a `clr_optax.RangeTestResult`.

  Args:
    result: the range test's result (several runs: their mean curve is used).
    rule: which rule sets ``max_lr``: ``"accuracy"`` (the paper's; it sets ``base_lr`` too), ``"valley"``,
      ``"steepest"``, or ``"auto"``: the paper's rule on held-out accuracy (``eval_fn`` returned an
      ``"accuracy"``), else on training accuracy, else the loss's steepest descent. With both accuracies,
      ``base_lr`` is the held-out reading and ``max_lr`` the geometric mean of the two readings (candidates
      ``held_out_max`` and ``train_accuracy_max``). Loss rules take ``base_lr`` from the rule of thumb.
    factor: the rule of thumb's divisor, ``base_lr = max_lr / factor`` (the paper: 3 or 4).
    window: width in steps of the centred moving average, an int >= 1 that leaves 3 full-width averages
      (default: about 5% of the unmasked steps, >= 3). A staircase sweep is read one point per level (its
      steps averaged), and the window counts levels.

  A sweep that cannot be read says so instead of returning confident bounds: a loss that barely moves over
  the whole sweep (a step that ignores ``lr``, a frozen model, a range far too low) or only rises raises; an
  accuracy too noisy to read (the per-batch accuracy of small batches) is smoothed more, up to an eighth of
  the sweep, or left out for the next reading (held-out, training, then the loss's steepest descent), with a
  note; an accuracy highest at the end of the sweep adds a note that it may still be rising; a sweep that
  neither diverged nor flattened (the range ended too early) adds the note "extend max_lr", which the loss
  rules, whose readings need the end of the descent, repeat in their reason.

  Returns:
    A `Suggestion`; ``suggestion.bounds`` is ``(base_lr, max_lr)``, ``suggestion.notes`` what could not be
    read.

  Raises:
    ValueError: a bad argument (named); a loss that is not finite from the first step; fewer than 8 steps
      (before the first divergence, or in all); a loss that barely moves or only rises; or the requested
      rule does not apply.

  Examples:
    >>> s = result.suggest()  # doctest: +SKIP
    >>> schedule = clr_optax.triangular2(*s.bounds, step_size=2000)  # doctest: +SKIP
  """
  if rule not in RULES:
    raise ValueError(f"rule must be one of {RULES}, got {rule=}")
  if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, (int, float, np.integer, np.floating)) \
      or not (np.isfinite(factor) and factor > 1):
    raise ValueError(f"factor must be a finite number > 1 (base_lr = max_lr / factor; the paper uses 3 or 4), "
                     f"got {factor=}")
  if window is not None and (isinstance(window, (bool, np.bool_)) or not isinstance(window, (int, np.integer))
                             or window < 1):
    raise ValueError(f"window must be an int >= 1 (steps of the centred moving average) or None, got {window=}")
  c = _curves(result)
  lr, n = c["lr"], c["n"]
  if c["steps"] == 0:
    raise ValueError(f"the loss is not finite at the smallest learning rate (lr={c['first_lr']:.4g}, the first "
                     "step): the model, the data or the loss produce NaN or inf before the learning rate matters; "
                     "lowering max_lr will not help")
  if n < 8:
    what = f"{n} staircase levels" if n < c["steps"] else f"{n} steps"
    if c["diverged"]:
      raise ValueError(f"the sweep diverged after {what}; at least 8 unmasked {what.split()[-1]} are needed: lower "
                       "max_lr or raise num_steps")
    raise ValueError(f"the sweep has {what} (it did not diverge); at least 8 are needed: raise num_steps"
                     + (" or lower staircase" if n < c["steps"] else ""))
  if window is None:
    window = _default_window(n)
  elif n - 2 * (window // 2) < 3:
    raise ValueError(f"window={window} is too wide for the {n} unmasked points of the sweep: at most "
                     f"{2 * ((n - 3) // 2) + 1} leaves the 3 full-width averages the rules need")
  candidates: dict[str, tuple[float, str]] = {}

  # The loss rules, with slopes along the sweep's own axis: log(lr) for an exponential sweep (fastai's and
  # pytorch-lr-finder's), lr for a linear one (against log(lr) its late points crowd together and their noise
  # reads as steep slopes).
  log_x = getattr(result, "mode", "exponential") == "exponential"
  positive = lr > 0
  loss = smooth_curve(c["loss"], window)
  x = np.log(np.where(positive, lr, np.nan)) if log_x else lr
  edge = window // 2
  inner = np.arange(n)[edge:n - edge]
  inner = inner[positive[inner] & np.isfinite(loss[inner])]
  notes: list[str] = []
  _check_loss_moves(lr, c["loss"])
  if inner.size >= 3:
    slope = np.gradient(loss[inner], x[inner])
    k = inner[int(np.nanargmin(slope))]
    candidates["steepest"] = (float(lr[k]), f"steepest descent of the smoothed loss against "
                              f"{'log(lr)' if log_x else 'lr'} ({np.nanmin(slope):.3g} per "
                              f"{'e-fold' if log_x else 'unit of lr'})")
    lo, hi = _longest_descent(loss[inner])
    v = inner[lo + (2 * (hi - lo)) // 3]
    candidates["valley"] = (float(lr[v]), f"2/3 along the longest descent of the smoothed loss (lr "
                            f"{lr[inner[lo]]:.3g} to {lr[inner[hi]]:.3g}, fastai's valley)")
  m = int(np.nanargmin(loss))
  candidates["min_loss"] = (float(lr[m]), "the smoothed loss is lowest here: the upper limit for max_lr")

  # The paper's accuracy rule: held-out accuracy first, then training accuracy.
  acc_rule: dict[str, tuple[float, str]] = {}
  if "eval_accuracy" in c:
    elr, eacc = c["eval_accuracy"]
    if elr.size >= 5:
      acc_rule = _accuracy_rule(elr, eacc, max(3, (elr.size // 10) | 1), "held-out accuracy",
                                "a larger held-out set or more evaluations (a smaller eval_every) read it", log_x,
                                notes)
  train_rule = _accuracy_rule(lr, c["train_accuracy"], window, "training accuracy",
                              "larger batches, more steps or a held-out eval_fn read it", log_x, notes) \
      if "train_accuracy" in c else {}
  if not acc_rule:
    acc_rule = train_rule
  elif "accuracy_max" in train_rule:
    # Both curves read: the held-out accuracy has one point per evaluation, the training accuracy one per
    # step, and where each rise slows scatters from seed to seed by itself; their geometric mean scatters
    # less (docs/guides/range_test.md: the robustness table). base_lr stays the held-out reading.
    held, held_why = acc_rule["accuracy_max"]
    trained, trained_why = train_rule["accuracy_max"]
    candidates["held_out_max"] = (held, held_why)
    candidates["train_accuracy_max"] = (trained, trained_why)
    acc_rule = {**acc_rule, "accuracy_max": (float(np.sqrt(held * trained)), (
        f"geometric mean of the held-out reading ({held:.3g}: {held_why}) and the training-accuracy reading "
        f"({trained:.3g}: {trained_why})"))}
  candidates.update(acc_rule)
  open_ended = not c["diverged"] and _still_falling(lr, c["loss"], log_x)
  if open_ended:
    notes.append(f"the sweep ended at lr={lr[-1]:.4g} without diverging while the loss was still falling: extend "
                 "max_lr (the loss rules and the loss minimum, the upper limit for max_lr, need the end of the "
                 "descent)")

  if rule == "auto":
    # The steepest descent, not the valley: on the sweeps of experiments/reports/suggest_quality.md whose
    # accuracy could not be read, the valley landed at 0.12-0.67x of the best rate on two of three convnets.
    rule = "accuracy" if acc_rule else "steepest"
  if rule == "accuracy":
    if not acc_rule:
      raise ValueError("rule='accuracy' needs an accuracy that rises clearly during the sweep (the step's "
                       "metrics or eval_fn must report 'accuracy')" + "".join(f"; {note}" for note in notes))
    base_lr, base_reason = acc_rule["accuracy_base"]
    max_lr, max_reason = acc_rule["accuracy_max"]
  else:
    if rule not in candidates:
      raise ValueError(f"rule={rule!r} found no value: too few steps with lr > 0")
    max_lr, max_reason = candidates[rule]
    cap, _ = candidates["min_loss"]
    if max_lr > cap:
      max_lr, max_reason = cap, f"{max_reason}; capped at the loss minimum"
    if open_ended:
      max_reason = f"{max_reason}; a lower bound only: the loss was still falling at the end, extend max_lr"
    base_lr = float(rules.base_lr_from_max(max_lr, factor))
    base_reason = f"max_lr / {factor:g}, the paper's rule of thumb (base_lr is 1/3 to 1/4 of max_lr)"
  thumb = float(rules.base_lr_from_max(max_lr, factor))
  candidates["rule_of_thumb"] = (thumb, f"max_lr / {factor:g}")
  if not base_lr < max_lr:
    base_lr, base_reason = thumb, f"max_lr / {factor:g} (the rule's own base_lr was not below max_lr)"
  return Suggestion(base_lr=float(base_lr), max_lr=float(max_lr), base_reason=base_reason, max_reason=max_reason,
                    candidates=candidates, notes=tuple(notes))


def _check_loss_moves(lr: np.ndarray, raw: np.ndarray) -> None:
  """Raises unless the loss descends clearly somewhere in the sweep (a step that ignores lr, a frozen model or
  a range far too low trains nothing, and the rules would read noise).

  Clearly, on the loss smoothed with the default window (whatever window the rules use): its first
  full-width average exceeds its lowest by 1% and by five times the scatter of a smoothed point (the lowest of
  a few dozen independent smoothed points of a flat curve lies about two scatters below their mean). The
  scatter comes from the median absolute residual, so that the jumps before a divergence do not inflate it.
  """
  window = _default_window(raw.size)
  loss = smooth_curve(raw, window)
  inner = loss[window // 2:raw.size - window // 2]
  if not np.isfinite(inner).any():
    return
  first, lowest, last = float(inner[0]), float(np.nanmin(inner)), float(inner[-1])
  blur = 1.4826 * float(np.nanmedian(np.abs(raw - loss))) / np.sqrt(window)
  clear = max(0.01 * abs(first), 5.0 * blur)
  if first - lowest > clear:
    return
  span = f"lr {lr[0]:.4g} to {lr[-1]:.4g}"
  if last - first > clear:
    # A sweep from lr 0 cannot start lower: its rates that train got too few steps to show a clear descent.
    advice = ("the range starts above the rates that train: lower min_lr" if lr[0] > 0 else
              f"the sweep starts at lr 0, and its few steps on the rates that train showed no clear descent: "
              f"lower max_lr (the smoothed loss is lowest at lr {lr[window // 2 + int(np.nanargmin(inner))]:.3g}) "
              "or raise num_steps")
    raise ValueError(f"the loss never descends clearly: it rises from the first steps ({span}: {first:.4g} at the "
                     f"start, lowest {lowest:.4g}, {last:.4g} at the end, smoothed; a clear descent is more than "
                     f"{clear:.2g}): {advice}")
  raise ValueError(f"the loss barely moves over the whole sweep ({span}: {first:.4g} at the start, lowest "
                   f"{lowest:.4g}, smoothed; a clear descent is more than {clear:.2g}): no rate here trains. Check "
                   "that the step uses its lr and that it updates the parameters the loss depends on, or raise max_lr")


def _default_window(n: int) -> int:
  """The default width of the centred moving average: about 5% of the points, odd, >= 3."""
  return max(3, (n // 20) | 1)


def _still_falling(lr: np.ndarray, raw: np.ndarray, log_x: bool) -> bool:
  """Whether the loss, smoothed with the default window, is lowest at the end of the sweep and falls there at
  more than 1/8 of its steepest rate against the sweep's axis (it has not flattened)."""
  window = _default_window(raw.size)
  keep = np.arange(raw.size)[window // 2:raw.size - window // 2]
  keep = keep[lr[keep] > 0] if log_x else keep
  loss = smooth_curve(raw, window)[keep]
  if keep.size < 3 or not np.isfinite(loss).all():
    return False
  slope = np.gradient(loss, np.log(lr[keep]) if log_x else lr[keep])
  tail = slope[-max(3, keep.size // 20):]
  return bool(int(np.argmin(loss)) >= keep.size - tail.size and slope.min() < 0 and tail.mean() < slope.min() / 8)
