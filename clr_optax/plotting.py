"""Figures: schedule curves (and, from the range test, sweep plots). matplotlib is imported lazily."""

from collections.abc import Mapping
from typing import Any

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
  """Plots each schedule over steps ``0 .. num_steps - 1`` on one axes.

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
