"""Table 4, DenseNet-40 (k = 12) on CIFAR-10: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.2.

  python -m experiments.train --config table4_densenet:0.1 --workdir /tmp/t4_densenet_0.1 --data cifar10
  python -m experiments.train --config table4_densenet:clr --workdir /tmp/t4_densenet_clr --data cifar10

Huang et al. (2017) recipe: batch 64, 300 epochs, x0.1 at epochs 150 and 225, Nesterov momentum
0.9, weight decay 1e-4, augmentation (so no dropout). The CLR bounds are 0.1-0.2 for DenseNet, as in
the paper. Table 4's numbers: take them from the paper (not verified here).
"""

from experiments.configs import _table4

ARGS = _table4.ARGS


def get_config(arg: str | None = None):
  return _table4.build("table4_densenet", arg, model="densenet40", batch_size=64, num_steps="300ep",
                       drop_at=("150ep", "225ep"), optimizer="nesterov", clr_bounds=(0.1, 0.2),
                       paper="Table 4, DenseNet-40: see the paper (values not verified here)")
