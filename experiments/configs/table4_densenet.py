"""Table 4, DenseNet-40 (k = 12) on CIFAR-10 / CIFAR-100: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.2.

  python -m experiments.train --config table4_densenet:0.1 --workdir /tmp/t4_densenet_0.1 --data cifar10
  python -m experiments.train --config table4_densenet:clr --workdir /tmp/t4_densenet_clr --data cifar10

Huang et al. (2017) recipe: batch 64, 300 epochs, x0.1 at epochs 150 and 225, Nesterov momentum
0.9, weight decay 1e-4, augmentation (so no dropout). Paper (Table 4 of arXiv 1506.01186v6, checked
against its text; mean of 5 runs), CIFAR-10: 94.5 (0.1), 94.5 (0.2), 94.2 (0.3), CLR 0.1-0.2 94.9;
CIFAR-100: 75.2, 75.3, 74.5, CLR 75.9. The paper does not state the depth or growth rate: DenseNet-40,
k = 12 is our reading of the original recipe.
"""

from experiments.configs import _table4

ARGS = _table4.ARGS
_ROW = dict(model="densenet40", batch_size=64, num_steps="300ep", drop_at=("150ep", "225ep"),
            optimizer="nesterov", clr_bounds=(0.1, 0.2), label="DenseNet")


def sources(arg: str | None = None) -> dict:
  return _table4.sources("table4_densenet", arg, **_ROW, lines={"0.1": 227, "0.2": 228, "0.3": 229, "clr": 230},
                         clr_range="0.1 – 0.2")


def get_config(arg: str | None = None):
  return _table4.build("table4_densenet", arg, **_ROW)
