"""Durations: lengths of training in steps, epochs or percent of the run, read by one grammar.

>>> from experiments.configs.duration import Duration, resolve_duration
>>> resolve_duration("8ep", steps_per_epoch=500), Duration("25000").shrink(80)
(4000, '312')
"""

from __future__ import annotations

import math

_DURATION_UNITS = {"%": "percent", "epochs": "epochs", "ep": "epochs", "steps": "steps", "": "steps"}


def _parse_duration(spec: str | int, name: str) -> tuple[float, str]:
  """``(number, unit)`` of a Duration, unit "steps", "epochs" or "percent": the one reading of the grammar.

  Raises:
    ValueError: `spec` is not a non-negative number of steps, epochs or percent, or a fraction of a step (the
      message names `name`).
  """
  text = str(spec).strip().lower().replace("_", "")
  for suffix, unit in _DURATION_UNITS.items():  # "" last: a bare number is steps
    if text.endswith(suffix):
      number = text.removesuffix(suffix) if suffix else text
      break
  try:
    value = float(number)
  except ValueError:
    raise ValueError(f"{name} must be steps ('2000'), epochs ('8ep') or a percentage ('5%'), got {spec=}") from None
  if not math.isfinite(value) or value < 0:
    raise ValueError(f"{name} must be a non-negative duration, got {spec=}")
  if unit == "steps" and not value.is_integer():  # a step is not divisible; epochs and percentages are rounded
    raise ValueError(f"{name} must be a whole number of steps (or epochs '2.5ep', or a percentage), got {spec=}")
  return value, unit


class Duration(str):
  """A length of training, kept as written: ``"2000"`` (steps), ``"8ep"`` (epochs) or ``"5%"`` (of the run).

  A `str`, so ``config.json`` records it as the string it was given; its own type, so the code that resolves
  or shrinks durations finds the fields declared with it (`duration_fields`) instead of a hand-made list.
  Constructing one checks the grammar.

  Examples:
    >>> Duration("8ep").steps(steps_per_epoch=500), Duration("70000").shrink(50), Duration("8ep").shrink(4)
    (4000, '1400', '2ep')
  """

  def __new__(cls, spec: str | int, name: str = "duration") -> Duration:
    if isinstance(spec, bool):
      raise TypeError(f"{name} takes a Duration, got {spec=}")
    _parse_duration(spec, name)
    return super().__new__(cls, str(spec))

  @property
  def amount(self) -> float:
    """The number, in `unit`s."""
    return _parse_duration(self, "duration")[0]

  @property
  def unit(self) -> str:
    """"steps", "epochs" or "percent"."""
    return _parse_duration(self, "duration")[1]

  def steps(self, *, steps_per_epoch: int, total_steps: int | None = None, name: str = "duration") -> int:
    """The number of steps (see `resolve_duration`)."""
    return resolve_duration(self, steps_per_epoch=steps_per_epoch, total_steps=total_steps, name=name)

  def shrink(self, factor: float) -> Duration:
    """This duration divided by `factor`: steps rounded to the nearest step (at least 1, 0 stays 0), epochs
    kept in epochs, percentages of the run unchanged (the run itself shrinks)."""
    value, unit = _parse_duration(self, "duration")
    if unit == "percent":
      return self
    if unit == "epochs":
      return Duration(f"{value / factor:g}ep")
    return Duration("0" if value == 0 else str(max(1, int(round(value / factor)))))


def resolve_duration(spec: str | int, *, steps_per_epoch: int, total_steps: int | None = None,
                     name: str = "duration") -> int:
  """Converts a Duration to a number of steps.

  Args:
    spec: ``2000`` or ``"2000"`` (steps), ``"8ep"`` (epochs; fractional allowed, rounded to the nearest
      step), ``"5%"`` (of `total_steps`).
    steps_per_epoch: optimizer steps in one epoch of the training set.
    total_steps: length of the run, for percentages.
    name: the config field, for error messages.

  Returns:
    A non-negative number of steps.

  Examples:
    >>> resolve_duration("8ep", steps_per_epoch=500)
    4000
    >>> resolve_duration("5%", steps_per_epoch=500, total_steps=64000)
    3200
  """
  value, unit = _parse_duration(spec, name)
  if unit == "percent":
    if total_steps is None:
      raise ValueError(f"{name} cannot be a percentage of the run, got {spec=}")
    value = value / 100 * total_steps
  elif unit == "epochs":
    value *= steps_per_epoch
  return int(round(value))
