"""Table 1, AlexNet "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_alexnet_exp:300k --workdir /tmp/t1_alexnet_exp300k --data imagenet2012
  python -m experiments.train --config table1_alexnet_exp:460k --workdir /tmp/t1_alexnet_exp460k --data imagenet2012

Paper (Table 1): two exp rows, 56.0% top-1 validation accuracy after 300,000 iterations and 56.5% after
460,000; gamma 0.999995 (the paper's ImageNet section). The paper does not restate base_lr for this run: 0.01,
Caffe's rate for this network, is our choice. The two rows differ only in their length.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results

ARGS = ("300k", "460k")


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = arg or "300k"
  if arg not in ARGS:
    raise ValueError(f"table1_alexnet_exp takes one of {ARGS}, got {arg=}")
  return _imagenet.alexnet({
      "name": f"table1_alexnet_exp:{arg}",
      "paper": paper_results.quote(f"table1_alexnet_exp:{arg}", "AlexNet exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.01,  # not stated for this run (ours: Caffe's base_lr)
      "schedule.gamma": 0.999995,
      "train.num_steps": "300000" if arg == "300k" else "460000",
  })
