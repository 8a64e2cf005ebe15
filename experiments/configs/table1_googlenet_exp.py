"""Table 1, GoogLeNet "exp": Caffe's exponential policy, lr = base_lr * gamma**iteration.

  python -m experiments.train --config table1_googlenet_exp --workdir /tmp/t1_googlenet_exp --data imagenet2012

Paper: 58.2% top-1 validation accuracy after 240,000 iterations (Table 1, line 133 of the paper's text); gamma
0.99998 (§4.2.2, line 310). The paper does not restate base_lr for this run: 0.01, the fixed row's best guess
(line 302), is our assumption. `SOURCES` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

SOURCES = {
    **_imagenet.GOOGLENET_SOURCES,
    "schedule.name": Paper("exp", "Table 1", 133, "exp"),
    "schedule.base_lr": Assumed("the paper gives none for this run; the fixed row's best guess 0.01 (line 302)"),
    "schedule.gamma": Paper(0.99998, "§4.2.2", 310, "0.99998"),
    "train.num_steps": Paper("240000", "Table 1", 133, "240,000"),
}


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_exp",
      "paper": paper_results.quote("table1_googlenet_exp", "GoogLeNet exp"),
      "schedule.name": "exp",
      "schedule.base_lr": 0.01,
      "schedule.gamma": 0.99998,
      "train.num_steps": "240000",
  })
