"""Table 1's triangular2 with the §4.1.1 bounds alone, without Table 2's stages: an ablation.

  python -m experiments.train --config table1_triangular2 --workdir /tmp/table1_triangular2 --data cifar10

The paper ties Table 1's CIFAR-10 triangular2 number (81.4% at 25,000 iterations, line 122 of its text) to
Table 2's staged settings (lines 164-173): that run is the config `table2_staged`. This config is the other
reading of the text: §4.1.1's bounds 0.001 - 0.006 and stepsize 2,000 (line 164; line 81 gives the same for
Figure 1's red curve) for all 25,000 iterations, so the rate never goes below 0.001. The reports keep it as
the ablation "the §4.1.1 bounds alone, without Table 2's stages". `SOURCES` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Paper

SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": Paper("triangular2", "Table 1", 122, "triangular2"),
    "schedule.base_lr": Paper(0.001, "§4.1.1", 164, "*base_lr* = 0.001"),
    "schedule.max_lr": Paper(0.006, "§4.1.1", 164, "*max_lr* = 0.006"),
    "schedule.step_size": Paper("2000", "§4.1.1", 164, "*stepsize* is 2,000"),
    "train.num_steps": Paper("25000", "Table 1", 122, "25,000"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_triangular2",
      "paper": paper_results.quote("table1_triangular2", "triangular2"),
      "schedule.name": "triangular2",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.006,
      "schedule.step_size": "2000",
      "train.num_steps": "25000",
  })
