"""Figure 6: Caffe's batch-normalised sigmoid CIFAR-10 network, fixed rate vs CLR.

  python -m experiments.train --config fig6_bn_sigmoid:fixed --workdir /tmp/fig6_fixed --data cifar10
  python -m experiments.train --config fig6_bn_sigmoid:clr --workdir /tmp/fig6_clr --data cifar10

Caffe's cifar10_full_sigmoid_solver_bn: SGD momentum 0.9, rate 0.001 fixed, no weight decay, batch
100, 60,000 iterations. Paper (Section 4.1.1 of arXiv 1506.01186v6, the text about Figure 6, checked
against its text): run with "the downloaded hyper-parameters", "the final accuracy for the fixed learning
rate (60.8%) is substantially lower than the cyclical learning rate final accuracy (72.2%)"; the text
calls the plotted curves "training accuracy". It gives no iteration count and no CLR bounds, step size or
policy for this figure: the CLR settings here (0.001-0.006, stepsize 2,000, triangular2) are the paper's
cifar10_full ones, our choice, unverified for this figure.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = arg or "clr"
  if arg not in ARGS:
    raise ValueError(f"fig6_bn_sigmoid takes one of {ARGS}, got {arg=}")
  paper = paper_results.quote(f"fig6_bn_sigmoid:{arg}", {"fixed": "fixed LR", "clr": "CLR"}[arg])
  updates = {"name": f"fig6_bn_sigmoid:{arg}", "paper": paper,
             "model.name": "cifar10_bn_sigmoid", "optim.weight_decay": 0.0, "train.num_steps": "60000"}
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": 0.001})
  else:
    updates.update({"schedule.name": "triangular2", "schedule.base_lr": 0.001, "schedule.max_lr": 0.006,
                    "schedule.step_size": "2000"})
  return config_lib.override(default.get_config(), updates)
