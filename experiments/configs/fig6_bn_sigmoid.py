"""Figure 6: Caffe's batch-normalised sigmoid CIFAR-10 network, fixed rate vs CLR.

  python -m experiments.train --config fig6_bn_sigmoid:fixed --workdir /tmp/fig6_fixed --data cifar10
  python -m experiments.train --config fig6_bn_sigmoid:clr --workdir /tmp/fig6_clr --data cifar10

Caffe's cifar10_full_sigmoid_solver_bn: SGD momentum 0.9, rate 0.001 fixed, no weight decay, batch
100, 60,000 iterations. The paper's Figure 6 curves (CLR above the fixed rate early on) are read from
a plot; we have no table value. The CLR bounds here (0.001-0.006, stepsize 2,000, triangular2) are the
paper's cifar10_full ones, not verified for this figure.
"""

from experiments.configs import config_lib
from experiments.configs import default

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = arg or "clr"
  if arg not in ARGS:
    raise ValueError(f"fig6_bn_sigmoid takes one of {ARGS}, got {arg=}")
  updates = {"name": f"fig6_bn_sigmoid:{arg}", "paper": "Figure 6 (curves only, no table value)",
             "model.name": "cifar10_bn_sigmoid", "optim.weight_decay": 0.0, "train.num_steps": "60000"}
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": 0.001})
  else:
    updates.update({"schedule.name": "triangular2", "schedule.base_lr": 0.001, "schedule.max_lr": 0.006,
                    "schedule.step_size": "2000"})
  return config_lib.override(default.get_config(), updates)
