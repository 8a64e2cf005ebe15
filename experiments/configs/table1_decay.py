"""Table 1, row "decay": the control that only decreases (max_lr -> base_lr over step_size, then flat).

  python -m experiments.train --config table1_decay --workdir /tmp/table1_decay --data cifar10

Paper (Table 1): 78.5% after 25,000 iterations. Bounds and step size as we read Section 4.1.1
(max_lr 0.007, base_lr 0.001, stepsize 4,000); we could not re-check them against a copy of the paper
here, so treat them as to be verified.
"""

from experiments.configs import config_lib
from experiments.configs import default


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_decay",
      "paper": "Table 1, CIFAR-10 decay: 78.5% at 25,000 iterations",
      "schedule.name": "decay",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.007,  # to be verified against the paper
      "schedule.step_size": "4000",  # to be verified against the paper
      "train.num_steps": "25000",
  })
