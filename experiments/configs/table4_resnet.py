"""Table 4, ResNet on CIFAR-10 / CIFAR-100: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.3.

  python -m experiments.train --config table4_resnet:0.1 --workdir /tmp/t4_resnet_0.1 --data cifar10
  python -m experiments.train --config table4_resnet:clr --workdir /tmp/t4_resnet_clr --data cifar10

He et al. (2016) CIFAR recipe: batch 128, 64,000 iterations, x0.1 at 32,000 and 48,000, SGD momentum
0.9, weight decay 1e-4. Paper (Table 4 of arXiv 1506.01186v6, checked against its text; mean of 5
runs), CIFAR-10: 92.8 (0.1), 93.3 (0.2), 91.8 (0.3), CLR 0.1-0.3 93.6; CIFAR-100: 71.2, 71.6, 71.9,
CLR 72.5. The paper says "the original ResNet" (fb.resnet.torch) without a depth: ResNet-56 is our
choice (override model.name=resnet110 or resnet20).
"""

from experiments.configs import _table4

ARGS = _table4.ARGS
_ROW = dict(model="resnet56", batch_size=128, num_steps="64000", drop_at=("32000", "48000"),
            optimizer="sgd", clr_bounds=(0.1, 0.3), label="ResNet")


def sources(arg: str | None = None) -> dict:
  return _table4.sources("table4_resnet", arg, **_ROW, lines={"0.1": 219, "0.2": 220, "0.3": 221, "clr": 222},
                         clr_range="0.1 – 0.3")


def get_config(arg: str | None = None):
  return _table4.build("table4_resnet", arg, **_ROW)
