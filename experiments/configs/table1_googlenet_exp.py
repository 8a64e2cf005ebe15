"""Table 1, GoogLeNet "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_googlenet_exp --workdir /tmp/t1_googlenet_exp --data imagenet2012

Paper (Table 1): 58.2% top-1 validation accuracy after 240,000 iterations; gamma 0.99998 (the paper's ImageNet
section). The paper does not restate base_lr for this run: 0.01, the fixed row's, is our choice.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_exp",
      "paper": paper_results.quote("table1_googlenet_exp", "GoogLeNet exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.01,  # not stated for this run (ours)
      "schedule.gamma": 0.99998,
      "train.num_steps": "240000",
  })
