"""Table 1, row "decay": the control that only decreases (max_lr -> base_lr over step_size, then flat).

  python -m experiments.train --config table1_decay --workdir /tmp/table1_decay --data cifar10

Paper (Table 1): 78.5% after 25,000 iterations. Section 4.1.1: the rate starts at max_lr, falls linearly
to base_lr over stepsize iterations and then stays at base_lr; "max_lr = 0.007, base_lr = 0.001, and
stepsize = 4000" (checked against the text of arXiv 1506.01186v6).
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_decay",
      "paper": paper_results.quote("table1_decay", "decay"),
      "schedule.name": "decay",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.007,  # Sec. 4.1.1 of 1506.01186v6
      "schedule.step_size": "4000",  # Sec. 4.1.1 of 1506.01186v6
      "train.num_steps": "25000",
  })
