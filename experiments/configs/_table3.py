"""Shared builder of the Table 3 rows: adaptive optimizers with and without CLR on cifar10_full.

Table 3 of arXiv 1506.01186v6 (checked against its text) gives, per method, the LR bounds found with
the range test, a "fixed" row at 70,000 iterations and "triangular" rows at 25,000 (and, for Adam and
RMSprop, 70,000); the text says "Just the lower bound was used for base_lr for the fixed policy" and
that every method was run "by invoking the respective option in Caffe".

Caffe applies every solver after its Regularize step with the layers' lr_mult / decay_mult, which
experiments.setup.build_optimizer reproduces for the Caffe networks. "fixed" rows start at the lower
bound and use Caffe's cifar10_full step-down (x0.1 at 60,000 and 65,000 iterations); "clr" rows a
triangular cycle between the bounds for 25,000 iterations ("clr70k": 70,000). The paper states neither
the step-down of the fixed rows nor the stepsize of the CLR rows: the step-down is Caffe's cifar10_full
solver (Table 1's fixed row) and stepsize 2,000 is the one Section 4.1.1 recommends for this network.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results

ARGS = ("fixed", "clr")


def build(module: str, arg: str | None, *, optimizer: str, fixed_lr: float, base_lr: float, max_lr: float,
          label: str, args: tuple[str, ...] = ARGS, extra: dict | None = None) -> config_lib.Config:
  """The Table 3 row `arg` (one of `args`: "fixed", "clr", "clr70k") of `optimizer`, which the paper calls `label`."""
  arg = arg or "clr"
  if arg not in args:
    raise ValueError(f"{module} takes one of {args}, got {arg=}")
  paper = paper_results.quote(f"{module}:{arg}", f"{label} fixed" if arg == "fixed" else f"{label} + CLR")
  updates = {"name": f"{module}:{arg}", "paper": paper, "optim.name": optimizer, **(extra or {})}
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": fixed_lr,
                    "schedule.drop_at": ("60000", "65000"), "train.num_steps": "70000"})
  else:
    updates.update({"schedule.name": "triangular", "schedule.base_lr": base_lr, "schedule.max_lr": max_lr,
                    "schedule.step_size": "2000", "train.num_steps": "70000" if arg == "clr70k" else "25000"})
  return config_lib.override(default.get_config(), updates)
