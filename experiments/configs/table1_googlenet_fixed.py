"""Table 1, GoogLeNet "fixed": the paper's GoogLeNet baseline.

  python -m experiments.train --config table1_googlenet_fixed --workdir /tmp/t1_googlenet_fixed --data imagenet2012

Paper (Table 1): 63.0% top-1 validation accuracy after 420,000 iterations (batch 128). The paper does not give
this run's schedule beyond base_lr 0.01. Our choice is the step policy of Caffe's
models/bvlc_googlenet/solver.prototxt (x0.96 every 320,000 iterations at batch 32, i.e. every 8 epochs), kept
in epochs at batch 128: x0.96 at 8, 16, 24, 32 and 40 epochs, about 0.82x the base rate at the end.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "table1_googlenet_fixed",
      "paper": paper_results.quote("table1_googlenet_fixed", "GoogLeNet fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.01,
      "schedule.drop_at": ("8ep", "16ep", "24ep", "32ep", "40ep"),  # not stated by the paper (ours)
      "schedule.drop_factor": 0.96,
      "train.num_steps": "420000",
  })
