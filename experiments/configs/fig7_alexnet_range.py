"""Figure 7: the LR range test of AlexNet, validation accuracy while the rate rises linearly.

  python -m experiments.train --config fig7_alexnet_range --workdir /tmp/fig7_alexnet_range --data imagenet2012

Paper (§4.2.1, line 271 of the paper's text): Fig. 7's curve starts converging at 0.006 and peaks and drops above
0.015, so base_lr 0.006 (0.01 for the triangular2 row, for a fair comparison with the baseline) and max_lr 0.015;
the exp_range row uses 0.006 - 0.014. The paper does not give this test's span or length: 0.001 to 0.02 over 4
epochs (20,016 iterations at batch 256), as long as GoogLeNet's test (line 306), is our assumption. The rate rises
as a triangular half-cycle whose step size is the whole run; the validation accuracy is measured every 0.1 epoch
(our choice: 40 points along the sweep). `SOURCES` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs import config_lib
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

_SPAN = Assumed("the paper gives no span or length for this test; GoogLeNet's 4 epochs (line 306), across the "
                "bounds it found (0.006 - 0.015, line 271)")
SOURCES = {
    **_imagenet.ALEXNET_SOURCES,
    "schedule.name": Paper("triangular", "§3.3", 118, "*triangular* learning rate policy provides"),
    "schedule.base_lr": _SPAN,
    "schedule.max_lr": _SPAN,
    "schedule.step_size": Paper("4ep", "§3.3 (stepsize = max_iter)", 118, "Set both the $stepsize$ and max_iter"),
    "train.num_steps": _SPAN,
}


def get_config() -> config_lib.Config:
  return _imagenet.alexnet({
      "name": "fig7_alexnet_range",
      "paper": "Figure 7, AlexNet LR range test: suggests bounds 0.006 - 0.015 (line 271; no accuracy reported)",
      "schedule.name": "triangular",
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.02,
      "schedule.step_size": "4ep",
      "train.num_steps": "4ep",
      "train.eval_every": "0.1ep",
  })
