"""Table 4, ResNet on CIFAR-10: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.3.

  python -m experiments.train --config table4_resnet:0.1 --workdir /tmp/t4_resnet_0.1 --data cifar10
  python -m experiments.train --config table4_resnet:clr --workdir /tmp/t4_resnet_clr --data cifar10

He et al. (2016) CIFAR recipe: batch 128, 64,000 iterations, x0.1 at 32,000 and 48,000, SGD momentum
0.9, weight decay 1e-4. The paper's Table 4 numbers (CLR slightly above the fixed rates) could not be
re-checked here: take them from the paper. The depth is ResNet-56 (override model.name=resnet110 or
resnet20).
"""

from experiments.configs import _table4

ARGS = _table4.ARGS


def get_config(arg: str | None = None):
  return _table4.build("table4_resnet", arg, model="resnet56", batch_size=128, num_steps="64000",
                       drop_at=("32000", "48000"), optimizer="sgd", clr_bounds=(0.1, 0.3),
                       paper="Table 4, ResNet: see the paper (values not verified here)")
