"""One-cycle ResNet-56 (super-convergence; not a table of arXiv 1506.01186): the one-cycle blog's run.

  python -m experiments.train --config one_cycle_resnet56 --workdir /tmp/one_cycle_resnet56 --data cifar10

The blog summary in the paper folder (``one-cycle-blog.txt``, lines 90-92): batch 512, 95 epochs, momentum 0.9,
ResNet-56; the rate rises 0.08 -> 0.8 over 41 epochs, falls back to 0.08 over 41, then falls to a tenth of 0.08
over the last 13 (clr_optax.one_cycle with pct_start=41/95, div_factor=10, final_div_factor=10,
three_phase=True), about 91.3% on CIFAR-10 (line 92). Momentum stays 0.9 (the super-convergence runs also
cycled it; not done here). `SOURCES` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

_BLOG = "one-cycle-blog.txt"
SOURCES = {
    "model.name": Paper("resnet56", "one-cycle blog", 92, "Resnet-56", doc=_BLOG),
    "optim.name": Assumed("the blog gives momentum 0.9 (line 92), not the optimizer: SGD with momentum"),
    "train.batch_size": Paper(512, "one-cycle blog", 92, "batch size 512", doc=_BLOG),
    "train.num_steps": Paper("95ep", "one-cycle blog", 92, "95 epochs", doc=_BLOG),
    "schedule.name": Paper("one_cycle", "one-cycle blog", 71, "1 Cycle policy", doc=_BLOG),
    "schedule.max_lr": Paper(0.8, "one-cycle blog", 92, "CLR 0.08-0.8", doc=_BLOG),
    "schedule.div_factor": Paper(10.0, "one-cycle blog", 92, "CLR 0.08-0.8", doc=_BLOG),
    "schedule.pct_start": Paper(41 / 95, "one-cycle blog", 90, "step of 41 epochs", doc=_BLOG),
    "schedule.final_div_factor": Paper(10.0, "one-cycle blog", 90, "1/10th of lower learning rate bound", doc=_BLOG),
    "schedule.three_phase": Paper(True, "one-cycle blog", 90, "another 13 epochs", doc=_BLOG),
    "schedule.anneal": Assumed("the blog's figure is lost in the text; straight lines, as CLR's triangle"),
}


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "one_cycle_resnet56",
      "paper": "One-cycle blog (super-convergence), ResNet-56: about 91.3% in 95 epochs (not a row of 1506.01186)",
      "model.name": "resnet56",
      "data.normalization": "channel",
      "data.augment": True,
      "optim.name": "sgd",
      "optim.momentum": 0.9,
      "optim.weight_decay": 1e-4,
      "schedule.name": "one_cycle",
      "schedule.max_lr": 0.8,
      "schedule.pct_start": 41 / 95,
      "schedule.div_factor": 10.0,
      "schedule.final_div_factor": 10.0,
      "schedule.anneal": "linear",
      "schedule.three_phase": True,
      "train.batch_size": 512,
      "train.num_steps": "95ep",
      "train.eval_every": "1ep",
      "train.checkpoint_every": "5ep",
  })
