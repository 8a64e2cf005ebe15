"""Figure 11: the LR range test of GoogLeNet, validation accuracy while the rate rises linearly.

  python -m experiments.train --config fig11_googlenet_range --workdir /tmp/fig11_googlenet_range --data imagenet2012

Paper (Fig. 11): the rate rises linearly from 0.001 to 0.065 over 4 epochs (40,036 iterations at batch 128);
the curve suggested the bounds 0.01 - 0.026 of the triangular2 and exp_range rows. The rate rises as a
triangular half-cycle whose step size is the whole run; the validation accuracy is measured every 0.1 epoch
(our choice: 40 points along the sweep).
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "fig11_googlenet_range",
      "paper": "Figure 11, GoogLeNet LR range test: suggests bounds 0.01 - 0.026 (no accuracy reported)",
      "schedule.name": "triangular",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.065,
      "schedule.step_size": "4ep",
      "train.num_steps": "4ep",
      "train.eval_every": "0.1ep",
  })
