"""Figures: schedule curves (and, from the range test, sweep plots). matplotlib is imported lazily."""

from collections.abc import Mapping
from typing import Any
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax


def _pyplot() -> Any:
  """Imports matplotlib.pyplot, or says how to install it."""
  try:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("plotting needs matplotlib: pip install 'clr_optax[plot]'") from e
  return plt


def plot_schedules(
    schedules: Mapping[str, optax.Schedule],
    num_steps: int,
    *,
    ax: Any = None,
    log_y: bool = False,
    title: str | None = None,
) -> Any:
  """Plots each schedule over the steps ``0`` to ``num_steps - 1`` on one axes.

  Args:
    schedules: labels to schedules.
    num_steps: how many steps to draw.
    ax: a matplotlib Axes to draw on; a new figure is made when None.
    log_y: a logarithmic y axis.
    title: the axes' title.

  Returns:
    The matplotlib Figure.
  """
  if num_steps <= 0:
    raise ValueError(f"num_steps must be > 0, got {num_steps=}")
  plt = _pyplot()
  if ax is None:
    _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
  steps = jnp.arange(num_steps)
  for label, schedule in schedules.items():
    ax.plot(np.asarray(steps), np.asarray(jax.jit(jax.vmap(schedule))(steps)), label=label)
  ax.set_xlabel("step")
  ax.set_ylabel("value")
  if log_y:
    ax.set_yscale("log")
  if title:
    ax.set_title(title)
  ax.legend(fontsize="small")
  ax.grid(alpha=0.3)
  return ax.figure


def plot_range_test(result: Any, *, suggestion: Any = True, title: str | None = None) -> Any:
  """Plots an LR range test: loss (and accuracy, when recorded) against the learning rate.

  The x axis is logarithmic for exponential sweeps. With several runs, the mean is drawn with a band of
  one standard deviation. The suggested bounds are marked (a shaded span from ``base_lr`` to ``max_lr``),
  and so is the learning rate where the first run diverged.

  Args:
    result: a `clr_optax.RangeTestResult`.
    suggestion: a `clr_optax.Suggestion` to mark, True to compute ``result.suggest()``, or None/False for
      none.
    title: the figure's title.

  Returns:
    The matplotlib Figure (one panel for the loss, a second for accuracies when there are any).

  Examples:
    >>> fig = result.plot()  # doctest: +SKIP
    >>> fig.savefig("range_test.png", dpi=150)  # doctest: +SKIP
  """
  plt = _pyplot()
  steps = np.shape(result.lr)[-1]
  lr = np.asarray(result.lr, np.float64).reshape(-1, steps)[0]
  runs = lambda x: np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])  # noqa: E731
  panels = [("loss", {"training loss": runs(result.loss)}, None)]
  accuracies = {}
  if "accuracy" in result.metrics:
    accuracies["training accuracy"] = runs(result.metrics["accuracy"])
  eval_panel = {name: runs(v) for name, v in result.eval_metrics.items()}
  eval_lr = lr[runs(result.eval_step)[0].astype(np.int64)] if eval_panel else None
  if accuracies or eval_panel:
    panels.append(("accuracy / held-out metric", accuracies, eval_panel))
  fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3.2 * len(panels)), sharex=True, layout="constrained",
                           squeeze=False)
  if suggestion is True:
    try:
      suggestion = result.suggest()
    except ValueError:
      suggestion = None

  def draw(ax, x, y, label, **kw):
    with warnings.catch_warnings():  # all-NaN columns (masked steps) are expected
      warnings.simplefilter("ignore", RuntimeWarning)
      mean = np.nanmean(y, axis=0)
      line, = ax.plot(x, mean, label=label + (f" (mean of {y.shape[0]})" if y.shape[0] > 1 else ""), **kw)
      if y.shape[0] > 1:
        with warnings.catch_warnings():
          warnings.simplefilter("ignore", RuntimeWarning)
          std = np.nanstd(y, axis=0)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)

  for ax, (ylabel, curves, evals) in zip(axes[:, 0], panels):
    for label, y in curves.items():
      if label == "training loss":
        draw(ax, lr, y, label, alpha=0.35, linewidth=0.8)
        draw(ax, lr, runs(result.smooth_loss), "smoothed loss")
      else:
        draw(ax, lr, y, label, alpha=0.8)
    for label, y in (evals or {}).items():
      draw(ax, eval_lr, y, f"held-out {label}", marker="o", markersize=3)
    diverged = np.asarray(result.diverged_lr).reshape(-1)
    if np.isfinite(diverged).any():
      ax.axvline(np.nanmin(diverged), color="tab:red", linestyle="--", linewidth=1,
                 label=f"diverged at lr={np.nanmin(diverged):.3g}")
    if suggestion:
      ax.axvspan(suggestion.base_lr, suggestion.max_lr, color="tab:green", alpha=0.12,
                 label=f"suggested bounds {suggestion.base_lr:.3g} - {suggestion.max_lr:.3g}")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  if result.mode == "exponential":
    axes[-1, 0].set_xscale("log")
  axes[-1, 0].set_xlabel("learning rate")
  if title:
    fig.suptitle(title)
  return fig
