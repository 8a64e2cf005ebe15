"""Shared builder of the Table 3 rows: adaptive optimizers with and without CLR on cifar10_full.

Table 3 (lines 186-204 of the paper's text) gives, per method, the LR bounds found with the range test, a
"fixed" row at 70,000 iterations at the lower bound (line 186) and "triangular" rows at 25,000 (and, for Adam
and RMSprop, 70,000); every method ran "by invoking the respective option in Caffe" (line 186). Caffe applies
every solver after its Regularize step with the layers' lr_mult / decay_mult, which
experiments.setup.build_optimizer reproduces for the Caffe networks.

The paper states neither the fixed rows' schedule nor the CLR rows' step size or stopping point. Our readings,
all assumptions:

* ``fixed``: the lower bound with Caffe's cifar10_full step-down (x0.1 at 60,000 and 65,000), as Table 1's fixed
  row: the fixed rows get the same 100x annealing as the baseline they stand for.
* ``clr`` / ``clr70k``: a plain triangular cycle between the bounds, step size 2,500 (5 epochs): the one nearest
  §4.1.1's 2,000 (line 164) for which both 25,000 and 70,000 end a cycle, as §3.2 advises (line 107).
* ``clr_staged`` / ``clr70k_staged``: the paper's own practice for a 25,000-iteration CLR run, Table 2's stages
  (lines 164-173), with this method's bounds: triangular cycles (Table 3's policy) between the bounds with step
  size 2,000 up to 16,000, between a tenth of them (step 1,000) up to 22,000 and a hundredth (step 500) up to
  25,000. The 70,000 rows put the same two 10x drops where the fixed rows drop, at 60,000 and 65,000, with step
  sizes 2,000 and 1,250 so that every stage ends a cycle.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

ARGS = ("fixed", "clr", "clr_staged")
ARGS_70K = ARGS + ("clr70k", "clr70k_staged")

_PLAIN_STEP = "2500"
# Stage starts and step sizes of the staged readings, by run length.
_STAGES = {"25000": (("0", "16000", "22000"), ("2000", "1000", "500")),
           "70000": (("0", "60000", "65000"), ("2000", "1250", "1250"))}


def _tenths(lr: float) -> tuple[float, float, float]:
  """`lr`, a tenth and a hundredth of it (Table 2's stages), rounded off float noise."""
  return tuple(float(f"{lr * f:.6g}") for f in (1, 0.1, 0.01))


def _check(module: str, arg: str | None, args: tuple[str, ...]) -> str:
  arg = arg or "clr"
  if arg not in args:
    raise ValueError(f"{module} takes one of {args}, got {arg=}")
  return arg


def build(module: str, arg: str | None, *, optimizer: str, base_lr: float, max_lr: float, label: str,
          args: tuple[str, ...] = ARGS, extra: dict | None = None) -> config_lib.Config:
  """The Table 3 row `arg` (one of `args`) of `optimizer`, which the paper calls `label`, bounds `base_lr` -
  `max_lr` (the fixed row runs at `base_lr`)."""
  arg = _check(module, arg, args)
  row = arg.removesuffix("_staged")
  name = f"{module}:{arg}"
  paper = paper_results.quote(f"{module}:{row}", f"{label} fixed" if arg == "fixed" else
                              f"{label} + CLR" + (" (Table 2's stages)" if arg.endswith("_staged") else ""))
  updates = {"name": name, "paper": paper, "optim.name": optimizer, **(extra or {})}
  steps = "70000" if arg == "fixed" or arg.startswith("clr70k") else "25000"
  updates["train.num_steps"] = steps
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": base_lr, "schedule.drop_at": ("60000", "65000")})
  elif arg.endswith("_staged"):
    starts, step_sizes = _STAGES[steps]
    updates.update({"schedule.name": "staged", "schedule.stage_policy": "triangular",
                    "schedule.stage_starts": starts, "schedule.stage_step_sizes": step_sizes,
                    "schedule.stage_base_lrs": _tenths(base_lr), "schedule.stage_max_lrs": _tenths(max_lr)})
  else:
    updates.update({"schedule.name": "triangular", "schedule.base_lr": base_lr, "schedule.max_lr": max_lr,
                    "schedule.step_size": _PLAIN_STEP})
  return config_lib.override(default.get_config(), updates)


def sources(module: str, arg: str | None, *, optimizer: str, label: str, base_lr: float, max_lr: float,
            lines: dict[str, int], bounds: str, args: tuple[str, ...] = ARGS) -> dict:
  """Where each setting of the Table 3 row `arg` comes from: `lines` maps a row ("fixed", "clr", "clr70k") to
  its line of the paper's text; the bounds, printed as `bounds`, stand on the "clr" row's line."""
  arg = _check(module, arg, args)
  row = arg.removesuffix("_staged")
  out = {**CAFFE_CIFAR10_FULL, "optim.name": Paper(optimizer, "Table 3", lines["fixed"], label),
         "train.num_steps": Paper("70000" if row != "clr" else "25000", "Table 3", lines[row],
                                  "70,000" if row != "clr" else "25,000")}
  bounds_line = lines["clr"]
  if arg == "fixed":
    out.update({
        "schedule.name": Paper("fixed", "Table 3", lines["fixed"], "fixed"),
        "schedule.base_lr": Paper(base_lr, "Table 3 (its lower bound, line 186)", bounds_line, bounds),
        "schedule.drop_at": Assumed("not stated; Caffe's cifar10_full step-down, as Table 1's fixed row"),
    })
  elif arg.endswith("_staged"):
    staged = Assumed("reading 2 of the CLR rows (Table 3 gives no step size or stopping point): Table 2's stages "
                     "(lines 164-173) with this method's bounds")
    out.update({f"schedule.{f}": staged for f in ("name", "stage_starts", "stage_step_sizes")})
    out.update({
        "schedule.stage_base_lrs": Paper(_tenths(base_lr), "Table 3 (lower bound), "
                                         "then a tenth and a hundredth as in Table 2", bounds_line, bounds),
        "schedule.stage_max_lrs": Paper(_tenths(max_lr), "Table 3 (upper bound), "
                                        "then a tenth and a hundredth as in Table 2", bounds_line, bounds),
    })
  else:
    out.update({
        "schedule.name": Paper("triangular", "Table 3", lines[row], "triangular"),
        "schedule.base_lr": Paper(base_lr, "Table 3", bounds_line, bounds),
        "schedule.max_lr": Paper(max_lr, "Table 3", bounds_line, bounds),
        "schedule.step_size": Assumed("not stated; reading 1: the nearest to §4.1.1's 2,000 (line 164) for which "
                                      "25,000 and 70,000 both end a cycle (§3.2, line 107)"),
    })
  return out
