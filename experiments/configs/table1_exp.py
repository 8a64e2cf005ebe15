"""Table 1, row "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_exp --workdir /tmp/table1_exp --data cifar10

Paper: 79.1% at 70,000 iterations (Table 1, line 124 of the paper's text), which §4.1.1 calls the *best* test
accuracy of the exp policy (line 182): the reports compare it with our best as well as our final accuracy.
gamma 0.99994 (line 182). `SOURCES` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": Paper("exp", "§4.1.1", 182, "*exp learning* rate policy in Caffe"),
    "schedule.base_lr": Assumed("the paper gives none for this run; Caffe's cifar10_full rate, which line 81 "
                                "calls the original parameter file's"),
    "schedule.gamma": Paper(0.99994, "§4.1.1", 182, "*gamma* = 0.99994"),
    "train.num_steps": Paper("70000", "Table 1", 124, "70,000"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_exp",
      "paper": paper_results.quote("table1_exp", "exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.001,
      "schedule.gamma": 0.99994,
      "train.num_steps": "70000",
  })
