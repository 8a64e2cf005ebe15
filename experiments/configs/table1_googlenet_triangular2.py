"""Table 1, GoogLeNet "triangular2": CLR between 0.01 and 0.026.

  python -m experiments.train --config table1_googlenet_triangular2 --workdir /tmp/t1_googlenet_tri2 --data imagenet2012

Paper (Table 1): 64.4% top-1 validation accuracy after 420,000 iterations. The paper's ImageNet section:
base_lr 0.01 and max_lr 0.026 from the range test of Fig. 11, stepsize 30,000 iterations (about 3 epochs at
batch 128).
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_triangular2",
      "paper": paper_results.quote("table1_googlenet_triangular2", "GoogLeNet triangular2"),
      "schedule.name": "triangular2",
      "schedule.base_lr": 0.01,
      "schedule.max_lr": 0.026,
      "schedule.step_size": "30000",
      "train.num_steps": "420000",
  })
