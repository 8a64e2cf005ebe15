"""Figure 7: the LR range test of AlexNet, validation accuracy while the rate rises linearly.

  python -m experiments.train --config fig7_alexnet_range --workdir /tmp/fig7_alexnet_range --data imagenet2012

Paper (Fig. 7): the accuracy curve of this test suggested the AlexNet bounds base_lr 0.006 and max_lr 0.014
used by the exp_range row. The paper does not give this test's span or length: 0.001 to 0.02 over 4 epochs
(20,016 iterations at batch 256), as long as GoogLeNet's test, is our choice. The rate rises as a triangular
half-cycle whose step size is the whole run; the validation accuracy is measured every 0.1 epoch (our choice:
40 points along the sweep; Caffe's test_interval is 1,000 iterations).
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "fig7_alexnet_range",
      "paper": "Figure 7, AlexNet LR range test: suggests bounds 0.006 - 0.014 (no accuracy reported)",
      "schedule.name": "triangular",
      "schedule.base_lr": 0.001,  # span not stated by the paper (ours)
      "schedule.max_lr": 0.02,
      "schedule.step_size": "4ep",
      "train.num_steps": "4ep",
      "train.eval_every": "0.1ep",
  })
