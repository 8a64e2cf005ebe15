"""Finished runs read back from their directories and summarised: curves, "first reached", mean ± std.

Everything here reads what a run wrote (`experiments.rundir`): the test accuracies (and training accuracies,
where a run evaluated on its training set) and the logged learning rate of ``metrics.jsonl`` and the summary
of ``summary.json``; nothing is recomputed from a config.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import numpy as np

from experiments import rundir
from experiments.configs.tables import Experiment


def first_reached(steps: Sequence[int], accuracies: Sequence[float], target: float) -> int | None:
  """The first step whose accuracy is at least `target` (None if none is).

  Accuracies are compared after rounding both sides to 1e-9, so a run reaches its own final accuracy at the
  latest at its last evaluation.

  Examples:
    >>> first_reached([100, 200, 300], [0.5, 0.62, 0.61], 0.6)
    200
  """
  for step, acc in zip(steps, accuracies):
    if round(acc, 9) >= round(target, 9):
      return int(step)
  return None


@dataclasses.dataclass(frozen=True)
class RunResult:
  """The outcome of one run (one config, one seed), read from its metrics.

  Attributes:
    config: the config name.
    seed: the seed.
    steps: evaluation steps (the test-accuracy curve's x).
    accuracies: test accuracy at those steps (fractions in [0, 1]).
    total_steps: the run's length.
    wall_time: seconds of the run's last (or only) segment, compilation and evaluation included.
    images_per_sec: training throughput, the first (compiling) step and evaluation excluded.
    devices: the devices the run trained on, all hosts' (None: not recorded, runs made before it was).
    device_kind: their kind (``jax.Device.device_kind``: "cpu", "NVIDIA H100 80GB HBM3", "TPU v5 lite", ...).
    train_images: the images it trained on (None: not recorded, runs made before it was).
    train_accuracies: accuracy on the whole training set at the same steps, where the run evaluated on it
      (``train.eval_train``; empty otherwise).
  """
  config: str
  seed: int
  steps: tuple[int, ...]
  accuracies: tuple[float, ...]
  total_steps: int
  wall_time: float | None = None
  images_per_sec: float | None = None
  devices: int | None = None
  device_kind: str | None = None
  train_images: int | None = None
  train_accuracies: tuple[float, ...] = ()

  @property
  def train_accuracy(self) -> float | None:
    """The final training accuracy (None: not evaluated)."""
    return self.train_accuracies[-1] if self.train_accuracies else None

  @property
  def final(self) -> float:
    return self.accuracies[-1]

  @property
  def best(self) -> float:
    return max(self.accuracies)

  @property
  def best_step(self) -> int:
    return self.steps[self.accuracies.index(self.best)]


def load_run(directory: str | os.PathLike, config: str, seed: int) -> RunResult:
  """A finished run's `RunResult` (its ``metrics.jsonl``, and ``summary.json`` when there is one)."""
  directory = pathlib.Path(directory)
  metrics = rundir.read_metrics(directory)
  test, train_eval = metrics["test"], metrics.get("train_eval", [])
  if not test:
    raise ValueError(f"{directory} has no test evaluation yet")
  summary = rundir.read_json(directory / rundir.SUMMARY) if (directory / rundir.SUMMARY).exists() else {}
  return RunResult(config=config, seed=seed, steps=tuple(int(r["step"]) for r in test),
                   accuracies=tuple(float(r["accuracy"]) for r in test),
                   total_steps=int(summary.get("steps", test[-1]["step"])),
                   wall_time=summary.get("wall_time"), images_per_sec=summary.get("train_images_per_sec"),
                   devices=summary.get("devices"), device_kind=summary.get("device_kind"),
                   train_images=summary.get("train_images"),
                   train_accuracies=tuple(float(r["accuracy"]) for r in train_eval))


def lr_curve(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """The learning rate a run trained with, as it logged it: ``(steps, rates)``, step ``t`` (from 0) trained at
  ``rates[t]`` (empty when the run logged no rates)."""
  rows = [r for r in rundir.read_metrics(directory)["train"] if "lr" in r]
  return np.asarray([r["step"] - 1 for r in rows], np.int64), np.asarray([r["lr"] for r in rows], np.float64)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (NaN for one value, which has no spread to estimate)."""
  a = np.asarray(values, np.float64)
  return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan")


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
  """One config's results over its seeds.

  Attributes:
    config: the config name.
    runs: its runs, by seed.
    reached: per run, the first step at which it reached the reference (fixed-LR) run of the same seed's
      final accuracy (None: never), or an empty tuple when the experiment has no reference.
    reference_at_end: per run, the reference run's (same seed) accuracy at its last evaluation not after
      this run's last step: the fixed policy at the same iteration (empty without a reference).
  """
  config: str
  runs: tuple[RunResult, ...]
  reached: tuple[int | None, ...]
  reference_at_end: tuple[float | None, ...] = ()

  @property
  def final(self) -> tuple[float, float]:
    """Mean and sample std over seeds of the final accuracy."""
    return mean_std([r.final for r in self.runs])

  @property
  def best(self) -> tuple[float, float]:
    return mean_std([r.best for r in self.runs])

  @property
  def final_train(self) -> tuple[float, float] | None:
    """Mean and sample std over seeds of the final training accuracy (None unless every run recorded it)."""
    values = [r.train_accuracy for r in self.runs]
    return None if None in values else mean_std(values)


def accuracy_at(run: RunResult, step: int) -> float | None:
  """`run`'s test accuracy at its last evaluation at or before `step` (None if it has none so early).

  Examples:
    >>> accuracy_at(RunResult("c", 0, (10, 20, 30), (0.1, 0.2, 0.3), 30), 25)
    0.2
  """
  before = [a for s, a in zip(run.steps, run.accuracies) if s <= step]
  return before[-1] if before else None


def summarize(experiment: Experiment, runs: Sequence[RunResult]) -> list[ConfigSummary]:
  """Groups runs by config (in the experiment's order) and computes the "first reached" iterations.

  The reference of a run is the reference config's run with the same seed; a run reaches it at the first
  evaluation whose accuracy is at least that run's final accuracy.
  """
  by_config: dict[str, list[RunResult]] = {}
  for r in runs:
    by_config.setdefault(r.config, []).append(r)
  ref = {r.seed: r for r in by_config.get(experiment.reference, [])} if experiment.reference else {}
  out = []
  for name in experiment.configs:
    mine = sorted(by_config.get(name, []), key=lambda r: r.seed)
    if not mine:
      continue
    reached = tuple(first_reached(r.steps, r.accuracies, ref[r.seed].final) if r.seed in ref else None
                    for r in mine) if ref else ()
    at_end = tuple(accuracy_at(ref[r.seed], r.steps[-1]) if r.seed in ref else None for r in mine) if ref else ()
    out.append(ConfigSummary(name, tuple(mine), reached, at_end))
  return out
