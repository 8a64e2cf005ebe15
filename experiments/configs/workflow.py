"""The paper's workflow in one command (`experiments.workflow`): an LR range test, the suggested bounds, then
a fixed learning rate against triangular2 between them, on the network and optimizer of another config.

  python -m experiments.workflow --workdir runs/workflow --data /path/to/cifar10-jpeg.tar.xz

``workflow:NAME`` takes the network, optimizer and preprocessing of config NAME (default ``default``:
Caffe's cifar10_full net and solver, the paper's Table 1 setting) and gives it the workflow's sizes: the whole
training set (500 images of it held out for the range test's accuracy), 2,000 test images, a one-epoch range
test (the paper's Fig. 3 ran 8 epochs: ``--range-steps 8ep``), and two runs of 2,000 steps (4 epochs) with no
step drops: the fixed rate 0.001 against triangular2 from 0.001 to the range test's max_lr over two cycles. That
is §3.3's advice (line 142 of the paper's text: compare a fixed rate with CLR over the range found) at a size
that takes minutes, with plain triangular2 bounds, not Table 2's stages: not the paper's Table 1 runs. Its
measured time is in experiments/benchmarks/README.md. `SOURCES` says where each setting comes from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from experiments.configs import config_lib
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

# Steps of each training run, and the data sizes (None: all images).
STEPS = 2000
TRAIN_SIZE = None
TEST_SIZE = 2000

SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": Assumed("set by the workflow for each run: the fixed rate, then triangular2 between the range "
                             "test's bounds, as §3.3 advises (line 142)"),
    "schedule.base_lr": Paper(0.001, "§3.1, Fig. 1", 81, "0.001 (as in the original parameter file)"),
    "train.num_steps": Assumed("2,000 steps (4 epochs) a run, so that the whole workflow takes under 10 minutes "
                               "on a 2-core CPU; Table 1's runs are 25,000 and 70,000 iterations (lines 121-122)"),
    "workflow.range_steps": Paper("8ep", "Fig. 3", 116, "for 8 epochs",
                                  departs="one epoch, for a workflow that takes minutes (--range-steps 8ep runs "
                                          "the paper's)"),
}


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
      "data.train_size": TRAIN_SIZE,
      "data.test_size": TEST_SIZE,
      "train.batch_size": 100,
      "schedule.drop_at": (),
      **intervals(STEPS),
  })
