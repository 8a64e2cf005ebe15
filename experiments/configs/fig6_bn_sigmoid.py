"""Figure 6: Caffe's batch-normalised sigmoid CIFAR-10 network, fixed rate vs CLR, in training accuracy.

  python -m experiments.train --config fig6_bn_sigmoid:fixed --workdir /tmp/fig6_fixed --data cifar10
  python -m experiments.train --config fig6_bn_sigmoid:clr --workdir /tmp/fig6_clr --data cifar10

Paper (§4.1.1, line 184 of the paper's text): with the downloaded hyper-parameters (Caffe's
cifar10_full_sigmoid_solver_bn: SGD momentum 0.9, rate 0.001, no weight decay, batch 100, 60,000 iterations),
the final *training* accuracy of the fixed rate was 60.8% and of the cyclical rate 72.2%. So these runs also
evaluate on the whole training set at every evaluation (``train.eval_train``, rows of split "train_eval"),
beside the test set. The paper gives no iteration count, bounds, step size or policy for the CLR run: the
settings here (triangular2, 0.001 - 0.006, step size 2,000, so that 60,000 ends the 15th cycle) are its
cifar10_full ones (line 164), our assumption. `sources(arg)` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import ByReference
from experiments.configs.provenance import Paper

ARGS = ("fixed", "clr")
_SOLVER = "Caffe's cifar10_full_sigmoid_solver_bn.prototxt"
_CLR = Assumed("the paper gives no CLR settings for Fig. 6; its cifar10_full ones (§4.1.1, line 164)")


def _check(arg: str | None) -> str:
  arg = arg or "clr"
  if arg not in ARGS:
    raise ValueError(f"fig6_bn_sigmoid takes one of {ARGS}, got {arg=}")
  return arg


def sources(arg: str | None = None) -> dict:
  arg = _check(arg)
  out = {
      "model.name": ByReference("cifar10_bn_sigmoid", "Caffe's cifar10_full_sigmoid_train_test_bn.prototxt", 184,
                                "sigmoid non-linearities and batch normalization"),
      "optim.name": ByReference("caffe_sgd", _SOLVER, 184, "downloaded hyper-parameters"),
      "optim.weight_decay": ByReference(0.0, _SOLVER, 184, "downloaded hyper-parameters"),
      "train.batch_size": ByReference(100, _SOLVER, 184, "downloaded hyper-parameters"),
      "train.num_steps": ByReference("60000", _SOLVER + " (max_iter)", 184, "downloaded hyper-parameters"),
      "train.eval_train": Paper(True, "§4.1.1 (Fig. 6)", 184, "compares the training accuracy"),
  }
  if arg == "fixed":
    out.update({"schedule.name": ByReference("fixed", _SOLVER, 184, "downloaded hyper-parameters"),
                "schedule.base_lr": ByReference(0.001, _SOLVER, 184, "downloaded hyper-parameters")})
  else:
    out.update({"schedule.name": _CLR, "schedule.base_lr": _CLR, "schedule.max_lr": _CLR, "schedule.step_size": _CLR})
  return out


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = _check(arg)
  paper = paper_results.quote(f"fig6_bn_sigmoid:{arg}", {"fixed": "fixed LR", "clr": "CLR"}[arg])
  updates = {"name": f"fig6_bn_sigmoid:{arg}", "paper": paper, "model.name": "cifar10_bn_sigmoid",
             "optim.weight_decay": 0.0, "train.num_steps": "60000", "train.eval_train": True}
  if arg == "fixed":
    updates.update({"schedule.name": "fixed", "schedule.base_lr": 0.001})
  else:
    updates.update({"schedule.name": "triangular2", "schedule.base_lr": 0.001, "schedule.max_lr": 0.006,
                    "schedule.step_size": "2000"})
  return config_lib.override(default.get_config(), updates)
