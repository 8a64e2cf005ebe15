"""Table 1, row "triangular2": the paper's headline CIFAR-10 result.

  python -m experiments.train --config table1_triangular2 --workdir /tmp/table1_triangular2 --data cifar10

Paper (Table 1): 81.4% after 25,000 iterations, the fixed policy's accuracy in about a third of the
iterations. Section 4.1.1 gives base_lr 0.001, max_lr 0.006 and stepsize 2,000 (4 epochs of 500
iterations); checked against the text of arXiv 1506.01186v6 (Sections 3.1 and 4.1.1). Note: the paper
says the Figure 1 run of triangular2 used the staged settings of Table 2; that run is the config
table2_staged.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results


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
