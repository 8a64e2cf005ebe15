"""Shared builder of the Table 4 rows: ResNet, Stochastic Depth and DenseNet at fixed 0.1/0.2/0.3 vs CLR.

Every row keeps the original implementation's recipe (batch, duration, x0.1 step drops, weight decay
1e-4, momentum 0.9, pad-crop-flip augmentation, per-channel normalisation) and changes only the rate:
"0.1", "0.2", "0.3" start the step schedule at that rate; "clr" cycles triangularly between the
bounds with a cycle a tenth of the run (step_size 5%), under the same step drops (drop them with --set
schedule.drop_at=). CIFAR-100: add --data cifar100.

Section 4.1.2 of arXiv 1506.01186v6 (checked against its text): the rates and ranges in Table 4 "are
reduced (for both the fixed learning rate and the range) during the training according to the same
schedule used in the original implementation", "the cycle length was choosen as a tenth of the maximum
number of epochs that was specified in the original implementation", and every number is the average
final test accuracy of five runs. The paper names the original Torch code (fb.resnet.torch,
Stochastic_Depth, DenseNet) but not the depths, batch sizes or epochs: those are the originals' as we
read them, not checked here.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results

ARGS = ("0.1", "0.2", "0.3", "clr")


def build(module: str, arg: str | None, *, model: str, batch_size: int, num_steps: str, drop_at: tuple[str, ...],
          optimizer: str, clr_bounds: tuple[float, float], label: str) -> config_lib.Config:
  """The Table 4 row `arg` ("0.1", "0.2", "0.3" or "clr") for `model`, the network the paper calls `label`."""
  arg = arg or "clr"
  if arg not in ARGS:
    raise ValueError(f"{module} takes one of {ARGS}, got {arg=}")
  row = f"{label} + CLR {clr_bounds[0]:g}-{clr_bounds[1]:g}" if arg == "clr" else f"{label}, LR {arg}"
  updates = {
      "name": f"{module}:{arg}", "paper": paper_results.quote(f"{module}:{arg}", row), "model.name": model,
      "data.normalization": "channel", "data.augment": True,
      "optim.name": optimizer, "optim.momentum": 0.9, "optim.weight_decay": 1e-4,
      "train.batch_size": batch_size, "train.num_steps": num_steps, "train.eval_every": "1ep",
      "train.checkpoint_every": "5ep", "train.eval_batch_size": 1000,
      "schedule.drop_at": drop_at, "schedule.drop_factor": 0.1,
  }
  if arg == "clr":
    updates.update({"schedule.name": "triangular", "schedule.base_lr": clr_bounds[0],
                    "schedule.max_lr": clr_bounds[1], "schedule.step_size": "5%"})
  else:
    updates.update({"schedule.name": "fixed", "schedule.base_lr": float(arg)})
  return config_lib.override(default.get_config(), updates)
