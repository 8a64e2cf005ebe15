"""Shrinking a config by a factor F: the same learning-rate curve, compressed F times along the iterations.

`shrink_config` divides every iteration count of the config by F and keeps everything else:

* every `Duration` field (``train.num_steps``, ``schedule.step_size``, ``schedule.drop_at``,
  ``schedule.stage_starts``, ``schedule.stage_step_sizes``, ``train.eval_every``, ``train.checkpoint_every``,
  found by their type): in steps or epochs divided by F and rounded to the nearest step, at least 1;
  percentages of the run are unchanged;
* ``train.log_every`` (how often training metrics reach the host) is capped at a fiftieth of a run in steps;
* ``schedule.gamma`` of the ``exp`` and ``exp_range`` policies becomes ``gamma**F``, so the decay over the
  (shorter) run is the same as over the full run;
* unchanged: the batch size, the learning-rate bounds, the network, the optimizer, the data.

So a shrunk run follows the same learning-rate curve as the full run, compressed F times along the
iteration axis, and sees F times fewer examples. The reports restate the paper's iterations as ours x F.

>>> from experiments import configs
>>> small = shrink_config(configs.get_config("table1_exp_range"), 50)
>>> small.train.num_steps, small.schedule.step_size
('840', '35')
"""

from __future__ import annotations

import math
from typing import Any

from experiments.configs import config_lib
from experiments.configs.duration import Duration

# The policies whose per-iteration decay factor `gamma` is raised to the shrink factor.
GAMMA_POLICIES = ("exp", "exp_range")


def shrink_config(config: config_lib.Config, factor: float) -> config_lib.Config:
  """`config` with its iteration counts divided by `factor` (see the module docstring for exactly what).

  Args:
    config: an experiment config.
    factor: the shrink factor F >= 1 (1 returns `config` unchanged).

  Returns:
    The shrunk config; its name is unchanged.

  Raises:
    ValueError: `factor` is below 1 or not finite.
  """
  if not (math.isfinite(factor) and factor >= 1):
    raise ValueError(f"the shrink factor must be a finite number >= 1, got {factor=}")
  if factor == 1:
    return config
  updates: dict[str, Any] = {
      k: tuple(d.shrink(factor) for d in v) if isinstance(v, tuple) else v.shrink(factor)
      for k, v in config_lib.duration_fields(config).items()}
  steps = Duration(updates["train.num_steps"])
  if steps.unit == "steps":  # a run in epochs keeps its log interval
    updates["train.log_every"] = max(1, min(config.train.log_every, steps.steps(steps_per_epoch=1) // 50))
  if config.schedule.name in GAMMA_POLICIES:
    updates["schedule.gamma"] = float(config.schedule.gamma) ** factor
  return config_lib.override(config, updates)
