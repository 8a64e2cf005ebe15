"""Table 4, Stochastic Depth ResNet-110 on CIFAR-10 / CIFAR-100: initial rate 0.1 / 0.2 / 0.3 vs CLR 0.1-0.3.

  python -m experiments.train --config table4_sd_resnet:0.1 --workdir /tmp/t4_sd_0.1 --data cifar10
  python -m experiments.train --config table4_sd_resnet:clr --workdir /tmp/t4_sd_clr --data cifar10

Huang et al. (2016) recipe: linear survival 1 -> 0.5, batch 128, 500 epochs, x0.1 at epochs 250 and 375,
Nesterov momentum 0.9, weight decay 1e-4, trained on 45,000 of the 50,000 training images: the original holds
5,000 out for validation (§4.1.2, line 236 of the paper's text; here a random subset, `data.train_size`). Paper
(Table 4, lines 223-226; mean of 5 runs, test accuracy), CIFAR-10: 94.6 (0.1), 94.5 (0.2), 94.2 (0.3), CLR
0.1-0.3 94.5; CIFAR-100: 75.2, 75.2, 74.6, CLR 75.4. The paper does not state the depth: 110 is our reading of
the original recipe. `sources(arg)` says where each setting comes from.
"""

from experiments.configs import _table4
from experiments.configs.provenance import Paper

ARGS = _table4.ARGS
_ROW = dict(model="sd_resnet110", batch_size=128, num_steps="500ep", drop_at=("250ep", "375ep"),
            optimizer="nesterov", clr_bounds=(0.1, 0.3), label="SD",
            extra={"data.train_size": 45000})  # 5,000 of the 50,000 held out, as the original (line 236)


def sources(arg: str | None = None) -> dict:
  return {**_table4.sources("table4_sd_resnet", arg, **_ROW, lines={"0.1": 223, "0.2": 224, "0.3": 225, "clr": 226},
                            clr_range="0.1 – 0.3"),
          "data.train_size": Paper(45000, "§4.1.2", 236, "45,000 training images")}


def get_config(arg: str | None = None):
  return _table4.build("table4_sd_resnet", arg, **_ROW)
