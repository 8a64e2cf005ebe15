"""Table 2: the staged triangular2 run of Figure 1 (bounds and step size change at 16,000 and 22,000).

  python -m experiments.train --config table2_staged --workdir /tmp/table2_staged --data cifar10

Paper: Table 2's settings are those of the Figure 1 triangular2 run, which reaches Table 1's 81.4% at
25,000 iterations. Table 2 of arXiv 1506.01186v6 (checked against its text):

  base_lr  max_lr   stepsize  start   max_iter
  0.001    0.005    2,000     0       16,000
  0.0001   0.0005   1,000     16,000  22,000
  0.00001  0.00005  500       22,000  25,000

(the max_lr column was earlier written here from memory as 0.009, 0.0003, 0.00002). Each stage restarts
its own triangular2 cycle count at its start (Caffe's start_lr_policy), joined with optax.join_schedules.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table2_staged",
      "paper": paper_results.quote("table2_staged", "staged triangular2"),
      "schedule.name": "staged",
      "schedule.stage_starts": ("0", "16000", "22000"),
      "schedule.stage_base_lrs": (0.001, 0.0001, 0.00001),
      "schedule.stage_max_lrs": (0.005, 0.0005, 0.00005),  # Table 2 of 1506.01186v6
      "schedule.stage_step_sizes": ("2000", "1000", "500"),
      "train.num_steps": "25000",
  })
