"""Figure 11: the LR range test of GoogLeNet, validation accuracy while the rate rises linearly.

  python -m experiments.train --config fig11_googlenet_range --workdir /tmp/fig11_googlenet_range --data imagenet2012

Paper (§4.2.2, line 306 of the paper's text): the rate rises linearly from 0.001 to 0.065 over 4 epochs (40,036
iterations at batch 128); the curve suggested the bounds 0.01 - 0.026 of the triangular2 and exp_range rows. The
rate rises as a triangular half-cycle whose step size is the whole run (§3.3, line 118); the validation accuracy
is measured every 0.1 epoch (our choice: 40 points along the sweep). `SOURCES` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs.provenance import Paper

SOURCES = {
    **_imagenet.GOOGLENET_SOURCES,
    "schedule.name": Paper("triangular", "§3.3", 118, "*triangular* learning rate policy provides"),
    "schedule.base_lr": Paper(0.001, "§4.2.2", 306, "from 0.001 to 0.065"),
    "schedule.max_lr": Paper(0.065, "§4.2.2", 306, "from 0.001 to 0.065"),
    "schedule.step_size": Paper("4ep", "§3.3 (stepsize = max_iter)", 118, "Set both the $stepsize$ and max_iter"),
    "train.num_steps": Paper("4ep", "§4.2.2", 306, "run for 4 epochs"),
}


def get_config() -> config_lib.Config:
  return _imagenet.googlenet({
      "name": "fig11_googlenet_range",
      "paper": "Figure 11, GoogLeNet LR range test: suggests bounds 0.01 - 0.026 (line 306; no accuracy reported)",
      "schedule.name": "triangular",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.065,
      "schedule.step_size": "4ep",
      "train.num_steps": "4ep",
      "train.eval_every": "0.1ep",
  })
