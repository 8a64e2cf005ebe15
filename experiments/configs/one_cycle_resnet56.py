"""One-cycle ResNet-56 (super-convergence, Smith & Topin 2017; not a table of arXiv 1506.01186).

  python -m experiments.train --config one_cycle_resnet56 --workdir /tmp/one_cycle_resnet56 --data cifar10

Batch 512, 95 epochs: the rate rises linearly 0.08 -> 0.8 over 41 epochs, falls back to 0.08 over 41,
then anneals to 0.008 over the last 13 (clr_optax.one_cycle with pct_start=41/95, div_factor=10,
final_div_factor=10, three_phase=True). Momentum stays 0.9 (the super-convergence runs also cycled the
momentum; not done here). Expect about 92% test accuracy on CIFAR-10 (super-convergence paper's
ResNet-56 range; not verified here).
"""

from experiments.configs import config_lib
from experiments.configs import default


def get_config() -> config_lib.Config:
  return config_lib.override(default.get_config(), {
      "name": "one_cycle_resnet56",
      "paper": "Smith & Topin 2017 super-convergence, ResNet-56 one cycle (not a row of 1506.01186)",
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
