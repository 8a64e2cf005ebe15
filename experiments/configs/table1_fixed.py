"""Table 1, row "fixed": Caffe cifar10_full with its own solver schedule.

  python -m experiments.train --config table1_fixed --workdir /tmp/table1_fixed --data cifar10

Paper: 81.4% test accuracy after 70,000 iterations (Table 1, line 121 of the paper's text), with "the standard
hyper-parameter settings" (line 173): Caffe's cifar10_full solver, which runs at 0.001 (line 81) for 60,000
iterations, then at 1e-4 and 1e-5 for 5,000 each. `SOURCES` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import ByReference
from experiments.configs.provenance import Paper

_SOLVER = "Caffe's cifar10_full_solver.prototxt and its _lr1 / _lr2 continuations"
SOURCES = {
    **CAFFE_CIFAR10_FULL,
    "schedule.name": ByReference("fixed", _SOLVER, 173, "standard hyper-parameter settings"),
    "schedule.base_lr": Paper(0.001, "§3.1, Fig. 1", 81, "0.001 (as in the original parameter file)"),
    "schedule.drop_at": ByReference(("60000", "65000"), _SOLVER + " (x0.1 at 60,000 and 65,000)", 173,
                                    "standard hyper-parameter settings"),
    "train.num_steps": Paper("70000", "Table 1", 121, "70,000"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "table1_fixed",
      "paper": paper_results.quote("table1_fixed", "fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.001,
      "schedule.drop_at": ("60000", "65000"),  # Caffe's solver steps the rate down x0.1 twice
      "train.num_steps": "70000",
  })
