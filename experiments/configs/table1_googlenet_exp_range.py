"""Table 1, GoogLeNet "exp_range": a triangular cycle between 0.01 and 0.026 whose bounds shrink as
gamma**iteration.

  python -m experiments.train --config table1_googlenet_exp_range --workdir /tmp/t1_gnet_exp_range --data imagenet2012

Paper (Table 1): 60.2% top-1 validation accuracy after 240,000 iterations. The paper's ImageNet section:
base_lr 0.01, max_lr 0.026, gamma 0.99998, stepsize 30,000 iterations.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_exp_range",
      "paper": paper_results.quote("table1_googlenet_exp_range", "GoogLeNet exp_range"),
      "schedule.name": "exp_range",
      "schedule.base_lr": 0.01,
      "schedule.max_lr": 0.026,
      "schedule.step_size": "30000",
      "schedule.gamma": 0.99998,
      "train.num_steps": "240000",
  })
