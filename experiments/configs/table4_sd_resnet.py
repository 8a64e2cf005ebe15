"""Table 4, Stochastic Depth ResNet-110 on CIFAR-10 / CIFAR-100: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.3.

  python -m experiments.train --config table4_sd_resnet:0.1 --workdir /tmp/t4_sd_0.1 --data cifar10
  python -m experiments.train --config table4_sd_resnet:clr --workdir /tmp/t4_sd_clr --data cifar10

Huang et al. (2016) recipe: linear survival 1 -> 0.5, batch 128, 500 epochs, x0.1 at epochs 250 and
375, Nesterov momentum 0.9, weight decay 1e-4. Paper (Table 4 of arXiv 1506.01186v6, checked against
its text; mean of 5 runs, test accuracy, the original code holding out 5,000 training images for
validation), CIFAR-10: 94.6 (0.1), 94.5 (0.2), 94.2 (0.3), CLR 0.1-0.3 94.5; CIFAR-100: 75.2, 75.2,
74.6, CLR 75.4. The paper does not state the depth: 110 is our reading of the original recipe.
"""

from experiments.configs import _table4

ARGS = _table4.ARGS


def get_config(arg: str | None = None):
  return _table4.build("table4_sd_resnet", arg, model="sd_resnet110", batch_size=128, num_steps="500ep",
                       drop_at=("250ep", "375ep"), optimizer="nesterov", clr_bounds=(0.1, 0.3), label="SD")
