"""Shared builder of the Table 4 rows: ResNet, Stochastic Depth and DenseNet at fixed 0.1/0.2/0.3 vs CLR.

Every row keeps the original implementation's recipe (batch, duration, x0.1 step drops, weight decay
1e-4, momentum 0.9, pad-crop-flip augmentation, per-channel normalisation) and changes only the rate:
"0.1", "0.2", "0.3" start the step schedule at that rate; "clr" cycles triangularly between the
bounds with a cycle a tenth of the run (step_size 5%), under the same step drops (drop them with --set
schedule.drop_at=). CIFAR-100: add --data cifar100.

Section 4.1.2 of arXiv 1506.01186v6 (line 236 of the paper's text): Table 4's rates and ranges, the fixed
ones and the cyclical ones alike, are lowered during training by the original implementation's own
schedule; a cycle is a tenth of the original's maximum number of epochs; and every number is the average
final test accuracy of five runs. The paper names the original Torch code (fb.resnet.torch,
Stochastic_Depth, DenseNet) but not the depths, batch sizes or epochs: those are the originals' as we
read them, not checked here.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import ByReference
from experiments.configs.provenance import Paper

ARGS = ("0.1", "0.2", "0.3", "clr")


def _check(module: str, arg: str | None) -> str:
  arg = arg or "clr"
  if arg not in ARGS:
    raise ValueError(f"{module} takes one of {ARGS}, got {arg=}")
  return arg


def build(module: str, arg: str | None, *, model: str, batch_size: int, num_steps: str, drop_at: tuple[str, ...],
          optimizer: str, clr_bounds: tuple[float, float], label: str, extra: dict | None = None) -> config_lib.Config:
  """The Table 4 row `arg` ("0.1", "0.2", "0.3" or "clr") for `model`, the network the paper calls `label`."""
  arg = _check(module, arg)
  row = f"{label} + CLR {clr_bounds[0]:g}-{clr_bounds[1]:g}" if arg == "clr" else f"{label}, LR {arg}"
  updates = {
      "name": f"{module}:{arg}", "paper": paper_results.quote(f"{module}:{arg}", row), "model.name": model,
      "data.normalization": "channel", "data.augment": True,
      "optim.name": optimizer, "optim.momentum": 0.9, "optim.weight_decay": 1e-4,
      "train.batch_size": batch_size, "train.num_steps": num_steps, "train.eval_every": "1ep",
      "train.checkpoint_every": "5ep", "train.eval_batch_size": 1000,
      "schedule.drop_at": drop_at, "schedule.drop_factor": 0.1, **(extra or {}),
  }
  if arg == "clr":
    updates.update({"schedule.name": "triangular", "schedule.base_lr": clr_bounds[0],
                    "schedule.max_lr": clr_bounds[1], "schedule.step_size": "5%"})
  else:
    updates.update({"schedule.name": "fixed", "schedule.base_lr": float(arg)})
  return config_lib.override(default.get_config(), updates)


# The original Torch code the paper names (line 208, footnote at lines 212-214), as we read its recipes.
_ORIGINAL = "the original implementation's recipe, as we read it (the paper names the code, lines 212-214)"


def sources(module: str, arg: str | None, *, model: str, batch_size: int, num_steps: str, drop_at: tuple[str, ...],
            optimizer: str, clr_bounds: tuple[float, float], label: str, lines: dict[str, int], clr_range: str,
            extra: dict | None = None) -> dict:
  """Where each setting of the Table 4 row `arg` (built by `build` from the same arguments) comes from: `lines`
  maps a row ("0.1", ..., "clr") to its line of the paper's text, on which the CLR range is printed as
  `clr_range`."""
  arg = _check(module, arg)
  out = {
      "model.name": Assumed(f"the paper names the {label} code but no depth: {model} is our reading of it"),
      "optim.name": ByReference(optimizer, _ORIGINAL, 208, "make their Torch code available"),
      "train.batch_size": ByReference(batch_size, _ORIGINAL, 208, "make their Torch code available"),
      "train.num_steps": ByReference(num_steps, _ORIGINAL, 208, "make their Torch code available"),
      "schedule.drop_at": ByReference(drop_at, _ORIGINAL, 234, "same schedule used in the original implementation"),
  }
  if arg == "clr":
    out.update({
        "schedule.name": Assumed("the paper says CLR, not which policy: triangular, the policy of §3.1"),
        "schedule.base_lr": Paper(clr_bounds[0], "Table 4", lines["clr"], clr_range),
        "schedule.max_lr": Paper(clr_bounds[1], "Table 4", lines["clr"], clr_range),
        "schedule.step_size": Paper("5%", "§4.1.2 (a cycle a tenth of the run)", 236,
                                    "a tenth of the maximum number of epochs"),
    })
  else:
    out.update({"schedule.name": Paper("fixed", "Table 4 (an initial rate, then the original's drops)", 234,
                                       "initial learning rate"),
                "schedule.base_lr": Paper(float(arg), "Table 4", lines[arg], f"({arg})")})
  return out
