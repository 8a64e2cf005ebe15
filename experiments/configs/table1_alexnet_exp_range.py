"""Table 1, AlexNet "exp_range": a triangular cycle between 0.006 and 0.014 whose bounds shrink as
gamma**iteration.

  python -m experiments.train --config table1_alexnet_exp_range --workdir /tmp/t1_alexnet_exp_range --data imagenet2012

Paper (Table 1): 56.5% top-1 validation accuracy after 300,000 iterations. The paper's ImageNet section:
base_lr 0.006 and max_lr 0.014 (from the range test of Fig. 7), gamma 0.999995, stepsize 30,000 iterations.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "table1_alexnet_exp_range",
      "paper": paper_results.quote("table1_alexnet_exp_range", "AlexNet exp_range"),
      "schedule.name": "exp_range",
      "schedule.base_lr": 0.006,
      "schedule.max_lr": 0.014,
      "schedule.step_size": "30000",
      "schedule.gamma": 0.999995,
      "train.num_steps": "300000",
  })
