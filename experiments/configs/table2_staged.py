"""Table 2: the staged triangular2 run of Figure 1, which is Table 1's CIFAR-10 triangular2 row.

  python -m experiments.train --config table2_staged --workdir /tmp/table2_staged --data cifar10

Paper: §4.1.1 says the Figure 1 triangular2 run used Table 2's step sizes and bounds (lines 164-169 of the
paper's text) and reached Table 1's 81.4% at 25,000 iterations (line 173):

  base_lr  max_lr   stepsize  start   max_iter
  0.001    0.005    2,000     0       16,000
  0.0001   0.0005   1,000     16,000  22,000
  0.00001  0.00005  500       22,000  25,000

Each stage restarts its own triangular2 cycle count at its start (the paper's Caffe code subtracts
start_lr_policy from the iteration, Appendix A), joined with optax.join_schedules. `SOURCES` says where each
setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Paper

SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": Paper("staged", "§4.1.1", 164, "shown in Table 2"),
    "schedule.stage_starts": Paper(("0", "16000", "22000"), "Table 2 (start)", 167, "16,000\t22,000",
                                   last_line=169),
    "schedule.stage_base_lrs": Paper((0.001, 0.0001, 0.00001), "Table 2 (base_lr)", 167, "0.00001", last_line=169),
    "schedule.stage_max_lrs": Paper((0.005, 0.0005, 0.00005), "Table 2 (max_lr)", 167, "0.00005", last_line=169),
    "schedule.stage_step_sizes": Paper(("2000", "1000", "500"), "Table 2 (stepsize)", 167, "500", last_line=169),
    "train.num_steps": Paper("25000", "Table 2 (max_iter); Table 1", 169, "25,000"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table2_staged",
      "paper": paper_results.quote("table2_staged", "staged triangular2"),
      "schedule.name": "staged",
      "schedule.stage_starts": ("0", "16000", "22000"),
      "schedule.stage_base_lrs": (0.001, 0.0001, 0.00001),
      "schedule.stage_max_lrs": (0.005, 0.0005, 0.00005),
      "schedule.stage_step_sizes": ("2000", "1000", "500"),
      "train.num_steps": "25000",
  })
