"""Table 1, row "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_exp --workdir /tmp/table1_exp --data cifar10

Paper (Table 1): 79.1% after 70,000 iterations (the best the exp policy reached); Section 4.1.1 gives
gamma = 0.99994 for both exp and exp_range (checked against the text of arXiv 1506.01186v6). The paper
does not restate base_lr for this run: 0.001 is Caffe's cifar10_full rate.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_exp",
      "paper": paper_results.quote("table1_exp", "exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.001,
      "schedule.gamma": 0.99994,
      "train.num_steps": "70000",
  })
