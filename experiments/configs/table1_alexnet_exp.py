"""Table 1, AlexNet "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_alexnet_exp:300k --workdir /tmp/t1_alexnet_exp300k --data imagenet2012
  python -m experiments.train --config table1_alexnet_exp:460k --workdir /tmp/t1_alexnet_exp460k --data imagenet2012

Paper: two exp rows, 56.0% top-1 validation accuracy after 300,000 iterations and 56.5% after 460,000 (Table 1,
lines 128-129 of the paper's text); gamma 0.999995 (§4.2.1, line 275). The paper does not restate base_lr for
this run: 0.01, the baseline's, is our assumption. The two rows differ only in their length. `sources(arg)` says
where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

ARGS = ("300k", "460k")


def _check(arg: str | None) -> str:
  arg = arg or "300k"
  if arg not in ARGS:
    raise ValueError(f"table1_alexnet_exp takes one of {ARGS}, got {arg=}")
  return arg


def sources(arg: str | None = None) -> dict:
  arg = _check(arg)
  line, steps = {"300k": (128, "300,000"), "460k": (129, "460,000")}[arg]
  return {
      **_imagenet.ALEXNET_SOURCES,
      "schedule.name": Paper("exp", "Table 1", line, "exp"),
      "schedule.base_lr": Assumed("the paper gives none for this run; the baseline's 0.01 (line 271)"),
      "schedule.gamma": Paper(0.999995, "§4.2.1", 275, "*gamma* = 0.999995"),
      "train.num_steps": Paper(steps.replace(",", ""), "Table 1", line, steps),
  }


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = _check(arg)
  return _imagenet.alexnet({
      "name": f"table1_alexnet_exp:{arg}",
      "paper": paper_results.quote(f"table1_alexnet_exp:{arg}", "AlexNet exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.01,
      "schedule.gamma": 0.999995,
      "train.num_steps": "300000" if arg == "300k" else "460000",
  })
