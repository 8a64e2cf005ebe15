"""Table 1, AlexNet "fixed": Caffe's bvlc_alexnet solver, the paper's ImageNet baseline.

  python -m experiments.train --config table1_alexnet_fixed --workdir /tmp/t1_alexnet_fixed --data imagenet2012

Paper (Table 1): 58.0% top-1 validation accuracy after 400,000 iterations. The fixed policy is Caffe's solver
for this network: base_lr 0.01, multiplied by 0.1 every 100,000 iterations (lr_policy "step",
models/bvlc_alexnet/solver.prototxt); the run stops at the paper's 400,000.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "table1_alexnet_fixed",
      "paper": paper_results.quote("table1_alexnet_fixed", "AlexNet fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.01,
      "schedule.drop_at": ("100000", "200000", "300000"),  # Caffe's solver: stepsize 100,000, gamma 0.1
      "train.num_steps": "400000",
  })
