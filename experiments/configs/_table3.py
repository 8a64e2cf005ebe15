"""Shared builder of the Table 3 rows: adaptive optimizers with and without CLR on cifar10_full.

Caffe applies every solver after its Regularize step with the layers' lr_mult / decay_mult, which
experiments.train.build_optimizer reproduces for the Caffe networks. "fixed" rows use Caffe's
cifar10_full step-down (x0.1 at 60,000 and 65,000 iterations) from the fixed rate; "clr" rows a
triangular cycle of stepsize 2,000 for 25,000 iterations ("clr70k": 70,000).
"""

from experiments.configs import config_lib
from experiments.configs import default

ARGS = ("fixed", "clr")


def build(module: str, arg: str | None, *, optimizer: str, fixed_lr: float, base_lr: float, max_lr: float,
          paper: dict[str, str], extra: dict | None = None) -> config_lib.Config:
  """The Table 3 row `arg` ("fixed", "clr" or "clr70k") of `optimizer`; `paper` maps arg -> the paper's result."""
  arg = arg or "clr"
  if arg not in paper:
    raise ValueError(f"{module} takes one of {tuple(paper)}, got {arg=}")
  updates = {"name": f"{module}:{arg}", "paper": paper[arg], "optim.name": optimizer, **(extra or {})}
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": fixed_lr,
                    "schedule.drop_at": ("60000", "65000"), "train.num_steps": "70000"})
  else:
    updates.update({"schedule.name": "triangular", "schedule.base_lr": base_lr, "schedule.max_lr": max_lr,
                    "schedule.step_size": "2000", "train.num_steps": "70000" if arg == "clr70k" else "25000"})
  return config_lib.override(default.get_config(), updates)
