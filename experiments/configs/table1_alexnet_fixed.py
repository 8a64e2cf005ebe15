"""Table 1, AlexNet "fixed": Caffe's bvlc_alexnet solver, the paper's ImageNet baseline.

  python -m experiments.train --config table1_alexnet_fixed --workdir /tmp/t1_alexnet_fixed --data imagenet2012

Paper: 58.0% top-1 validation accuracy after 400,000 iterations (Table 1, line 126 of the paper's text), with
Caffe's downloaded hyper-parameter files as the baseline (§4.2.1, line 260): base_lr 0.01 (line 271), multiplied
by 0.1 every 100,000 iterations (lr_policy "step", models/bvlc_alexnet/solver.prototxt). `SOURCES` says where
each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import ByReference
from experiments.configs.provenance import Paper

SOURCES = {
    **_imagenet.ALEXNET_SOURCES,
    "schedule.name": ByReference("fixed", "Caffe's models/bvlc_alexnet/solver.prototxt", 260, "used as a baseline"),
    "schedule.base_lr": Paper(0.01, "§4.2.1", 271, "baseline where *base_lr* = 0.01"),
    "schedule.drop_at": ByReference(("100000", "200000", "300000"), "Caffe's models/bvlc_alexnet/solver.prototxt "
                                    "(step policy: x0.1 every 100,000)", 260, "used as a baseline"),
    "train.num_steps": Paper("400000", "Table 1", 126, "400,000"),
}


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "table1_alexnet_fixed",
      "paper": paper_results.quote("table1_alexnet_fixed", "AlexNet fixed"),
      "schedule.name": "fixed",
      "schedule.base_lr": 0.01,
      "schedule.drop_at": ("100000", "200000", "300000"),  # Caffe's solver: stepsize 100,000, gamma 0.1
      "train.num_steps": "400000",
  })
