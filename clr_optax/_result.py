"""What a range test returns (`RangeTestResult`) and what it reports while it runs (`RangeTestProgress`, and
the progress bar that shows it)."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import numpy as np

from clr_optax import suggest as suggest_lib


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["lr", "loss", "smooth_loss", "masked", "diverged_step", "metrics", "eval_step",
                 "eval_metrics"],
    meta_fields=["mode"])
@dataclasses.dataclass(frozen=True)
class RangeTestResult:
  """The records of one or several sweeps: arrays whose last axis is the step (or the evaluation).

  Any leading axes index runs: ``range_test`` returns ``[num_runs, num_steps]`` arrays (``num_runs`` is 1
  for a single run); under your own ``vmap``/``pmap`` of `make_range_test` the mapped axes lead. Masked
  steps (at and after divergence) hold NaN in every float record.

  Attributes:
    lr: the learning rate of each step.
    loss: the training loss each step reported (on the batch, before that step's update).
    smooth_loss: the bias-corrected exponential moving average of the loss (the divergence test's input).
    masked: True from the step that diverged on: its update and all later steps count for nothing (the
      scan method stops there; the chunked method discards their updates).
    diverged_step: index of the step that diverged, -1 where the run did not diverge.
    metrics: every scalar the step reported (``loss``, ``accuracy`` where reported, ...), per step.
    eval_step: the step after which each held-out evaluation ran (``[..., 0]`` without ``eval_fn``).
    eval_metrics: the held-out metrics per evaluation (NaN where the run had already diverged).
    mode: ``"linear"`` or ``"exponential"``, how the learning rate rose.
  """
  lr: Any
  loss: Any
  smooth_loss: Any
  masked: Any
  diverged_step: Any
  metrics: dict[str, Any]
  eval_step: Any
  eval_metrics: dict[str, Any]
  mode: str = "linear"

  @property
  def accuracy(self) -> Any:
    """The training accuracy per step, or None when the step reported none."""
    return self.metrics.get("accuracy")

  @property
  def num_runs(self) -> int:
    """How many runs the leading axes hold."""
    return int(np.prod(np.shape(self.loss)[:-1], dtype=np.int64))

  @property
  def diverged_lr(self) -> np.ndarray:
    """The learning rate of the step that diverged, per run (NaN where a run did not diverge)."""
    lr = np.asarray(self.lr, np.float64)
    step = np.asarray(self.diverged_step)
    out = np.take_along_axis(lr, np.maximum(step, 0)[..., None], axis=-1)[..., 0]
    return np.where(step >= 0, out, np.nan)

  @property
  def onset_step(self) -> np.ndarray:
    """Per run, the step where the loss began the rise that ended in divergence (-1 without divergence).

    It is the step of the lowest loss before ``diverged_step``: the update made at this step, with
    ``lr[onset_step]``, is the first of the final rise. On a deterministic problem whose loss is
    dominated by its unstable direction this is the first learning rate past the stability limit (for SGD
    on a quadratic, ``2 / lambda_max``); the divergence rule itself fires a few steps later, once the
    smoothed loss has grown ``divergence_factor``-fold.
    """
    loss = np.asarray(self.loss, np.float64)
    step = np.asarray(self.diverged_step)
    before = np.where(np.arange(loss.shape[-1]) < step[..., None], loss, np.inf)
    before = np.where(np.isnan(before), np.inf, before)
    return np.where(step > 0, np.argmin(before, axis=-1), -1)

  def suggest(self, **kwargs: Any) -> suggest_lib.Suggestion:
    """Suggested ``base_lr`` and ``max_lr`` with their reasons; see `clr_optax.suggest_bounds`."""
    return suggest_lib.suggest_bounds(self, **kwargs)

  def plot(self, **kwargs: Any) -> Any:
    """A matplotlib Figure of the sweep; see `clr_optax.plot_range_test`."""
    from clr_optax import plotting  # pylint: disable=g-import-not-at-top
    return plotting.plot_range_test(self, **kwargs)


class RangeTestProgress(NamedTuple):
  """What a ``progress`` callback of `range_test` receives, each time a chunk of steps has finished (and
  once more, at ``step == num_steps``, when the sweep stopped early because every run had diverged).

  Attributes:
    step: steps done (the same for every run).
    num_steps: steps in the sweep.
    lr: the learning rate of the last step done.
    smooth_loss: float ``[num_runs]``, each run's smoothed loss after that step (NaN once it diverged).
    diverged: bool ``[num_runs]``, whether each run has diverged.
  """
  step: int
  num_steps: int
  lr: float
  smooth_loss: np.ndarray
  diverged: np.ndarray


class ProgressBar:
  """The default display of ``progress=True``: a tqdm bar with the learning rate and the smoothed loss (the
  mean over the runs that have not diverged)."""

  def __init__(self, num_steps: int, num_runs: int):
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    self.bar = tqdm(total=num_steps, desc="LR range test", unit="step", dynamic_ncols=True)
    self.num_runs = num_runs

  def __call__(self, p: RangeTestProgress) -> None:
    live = ~p.diverged
    loss = float(np.mean(p.smooth_loss[live])) if live.any() else math.nan
    postfix = {"lr": f"{p.lr:.4g}", "smooth loss": f"{loss:.4g}"}
    if p.diverged.any():
      postfix["diverged"] = f"{int(p.diverged.sum())}/{self.num_runs}"
    self.bar.set_postfix(postfix, refresh=False)
    self.bar.update(max(p.step - self.bar.n, 0))

  def close(self) -> None:
    self.bar.close()
