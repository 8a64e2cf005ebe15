"""Table 1, AlexNet "triangular2": CLR between 0.01 and 0.015.

  python -m experiments.train --config table1_alexnet_triangular2 --workdir /tmp/t1_alexnet_tri2 --data imagenet2012

Paper (Table 1): 58.4% top-1 validation accuracy after 400,000 iterations. The paper's ImageNet section:
base_lr 0.01 (Caffe's fixed rate) and max_lr 0.015, stepsize 30,000 iterations (about 6 epochs at batch 256).
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "table1_alexnet_triangular2",
      "paper": paper_results.quote("table1_alexnet_triangular2", "AlexNet triangular2"),
      "schedule.name": "triangular2",
      "schedule.base_lr": 0.01,
      "schedule.max_lr": 0.015,
      "schedule.step_size": "30000",
      "train.num_steps": "400000",
  })
