"""Default: Caffe's cifar10_full network and solver, the baseline of the paper's Table 1.

  python -m experiments.train --config default --workdir /tmp/default --data <cifar10 spec or path>

Every other config in this package starts from this one and overrides what differs. The Caffe solver
(cifar10_full_solver.prototxt): SGD, momentum 0.9, weight decay 0.004 (x250 on the last layer's weights,
none on its bias: in experiments.optim.caffe_sgd), batch 100, mean-image subtraction, no augmentation.
"""

from experiments.configs import config_lib


def get_config() -> config_lib.Config:
  """The field defaults of config_lib are the Caffe cifar10_full baseline."""
  return config_lib.Config(
      name="default",
      paper="Caffe cifar10_full at a fixed LR 0.001 (no step-down): not a row of the paper",
      data=config_lib.DataConfig(normalization="mean_image", augment=False),
  )
