"""The paper's workflow in one command (`experiments.workflow`): an LR range test, the suggested bounds, then
a fixed learning rate against triangular2 between them, on the network and optimizer of another config.

  python -m experiments.workflow --workdir runs/workflow --data /path/to/cifar10-jpeg.tar.xz

``workflow:NAME`` takes the network, optimizer and preprocessing of config NAME (default ``default``:
Caffe's cifar10_full solver) and gives it the workflow's sizes: Caffe's cifar10_quick on a stratified
5,000-image subset (500 more held out for the range test), 2,000 test images, 1,600 steps per run, no step
drops: minutes on a laptop CPU. Expect the range test to suggest bounds around 0.001-0.005 and triangular2
to reach the fixed run's final accuracy in fewer steps (the paper's Figures 1 and 3; Section 3.3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from experiments.configs import config_lib

# Steps of each training run.
STEPS = 1600


def intervals(steps: int) -> dict[str, Any]:
  """The run length `steps` and the intervals the workflow derives from it: 32 evaluations per run, a
  checkpoint halfway and at the end, training metrics to the host about 50 times a run (at most every 100)."""
  return {"train.num_steps": str(steps), "train.eval_every": str(max(1, steps // 32)),
          "train.checkpoint_every": str(max(1, steps // 2)), "train.log_every": max(1, min(100, steps // 50))}


def get_config(arg: str | None = None) -> config_lib.Config:
  base = config_lib.get_config(arg or "default")
  config = dataclasses.replace(base, name="workflow", workflow=config_lib.WorkflowConfig())
  return config_lib.override(config, {
      "paper": "Section 3.3 and Figures 1 and 3: the LR range test's bounds, triangular2 against a fixed rate",
      "model.name": "cifar10_quick",
      "data.train_size": 5000,
      "data.test_size": 2000,
      "train.batch_size": 100,
      "schedule.drop_at": (),
      **intervals(STEPS),
  })
