"""Table 1, row "decay": the control that only decreases (max_lr -> base_lr over step_size, then flat).

  python -m experiments.train --config table1_decay --workdir /tmp/table1_decay --data cifar10

Paper: 78.5% after 25,000 iterations (Table 1, line 123 of the paper's text). §4.1.1 (line 180): the rate
starts at max_lr 0.007, falls linearly to base_lr 0.001 over stepsize 4,000 iterations and then stays there.
`SOURCES` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Paper

SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": Paper("decay", "§4.1.1", 180, "*decay* policy"),
    "schedule.base_lr": Paper(0.001, "§4.1.1", 180, "*base_lr* = 0.001"),
    "schedule.max_lr": Paper(0.007, "§4.1.1", 180, "*max_lr* = 0.007"),
    "schedule.step_size": Paper("4000", "§4.1.1", 180, "*stepsize* = 4000"),
    "train.num_steps": Paper("25000", "Table 1", 123, "25,000"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_decay",
      "paper": paper_results.quote("table1_decay", "decay"),
      "schedule.name": "decay",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.007,
      "schedule.step_size": "4000",
      "train.num_steps": "25000",
  })
