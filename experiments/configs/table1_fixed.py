"""Table 1, row "fixed": Caffe cifar10_full with its own solver schedule.

  python -m experiments.train --config table1_fixed --workdir /tmp/table1_fixed --data cifar10

Paper (Smith 2017, Table 1): 81.4% test accuracy after 70,000 iterations. Caffe's
cifar10_full_solver: LR 0.001 for 60,000 iterations, then 1e-4 and 1e-5 for 5,000 each.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_fixed",
      "paper": paper_results.quote("table1_fixed", "fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.001,
      "schedule.drop_at": ("60000", "65000"),  # Caffe's solver steps the rate down x0.1 twice
      "train.num_steps": "70000",
  })
