"""The named groups of configs the paper compares: one `Experiment` per table, figure or headline pair.

>>> from experiments.configs import tables
>>> tables.get_experiment("table1").reference
'table1_fixed'
>>> tables.get_experiment("table4_resnet:clr").configs
('table4_resnet:clr',)
"""

from __future__ import annotations

import dataclasses

from experiments.configs import config_lib


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A named reproduction: the configs it runs and the fixed-LR run the others are measured against.

  Attributes:
    name: the name on the command line and of the report (``experiments/reports/<name>.md``).
    title: what the paper calls it.
    configs: config names (`experiments.configs.get_config`) run for every seed.
    reference: the config whose final accuracy the "first reached" iteration refers to (the fixed-LR run),
      or None where the experiment has none.
  """
  name: str
  title: str
  configs: tuple[str, ...]
  reference: str | None


def _table3(opt: str, title: str, seventy: bool = False) -> Experiment:
  """A method's Table 3 rows: fixed, and each CLR row in both readings (experiments/configs/_table3.py)."""
  rows = ("fixed", "clr", "clr_staged") + (("clr70k", "clr70k_staged") if seventy else ())
  return Experiment(f"table3_{opt}", title, tuple(f"table3_{opt}:{r}" for r in rows), f"table3_{opt}:fixed")


def _table4(net: str, title: str) -> Experiment:
  return Experiment(f"table4_{net}", title, tuple(f"table4_{net}:{a}" for a in ("0.1", "0.2", "0.3", "clr")),
                    f"table4_{net}:0.1")


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    # Table 1's triangular2 row is Table 2's staged run (paper lines 164-173); table1_triangular2 (the plain
    # §4.1.1 bounds, without the stages) stays beside it as a labelled ablation, as does exp_range with the Keras
    # formula beside the paper's (line 99).
    Experiment("table1", "Table 1, CIFAR-10 with cifar10_full: five learning-rate policies",
               ("table1_fixed", "table2_staged", "table1_triangular2", "table1_decay", "table1_exp",
                "table1_exp_range", "table1_exp_range:keras"), "table1_fixed"),
    Experiment("table1_full", "Table 1's headline pair at full length: triangular2 (25,000 iterations, Table 2's "
               "stages) against fixed (70,000)", ("table2_staged", "table1_triangular2", "table1_fixed"),
               "table1_fixed"),
    Experiment("table2", "Table 2 / Figure 1, the staged triangular2 run against the fixed policy",
               ("table1_fixed", "table2_staged"), "table1_fixed"),
    Experiment("fig4", "Figure 4, exp against exp_range (the paper's formula) for 70,000 iterations",
               ("table1_exp", "table1_exp_range:70k"), "table1_exp"),
    _table3("nesterov", "Table 3, Nesterov momentum with and without CLR"),
    _table3("adam", "Table 3, Adam with and without CLR", seventy=True),
    _table3("rmsprop", "Table 3, RMSprop with and without CLR", seventy=True),
    _table3("adagrad", "Table 3, AdaGrad with and without CLR"),
    _table3("adadelta", "Table 3, AdaDelta with and without CLR"),
    Experiment("fig6", "Figure 6, batch-normalised sigmoid network: fixed LR vs CLR",
               ("fig6_bn_sigmoid:fixed", "fig6_bn_sigmoid:clr"), "fig6_bn_sigmoid:fixed"),
    _table4("resnet", "Table 4, ResNet-56: fixed 0.1/0.2/0.3 vs CLR 0.1-0.3"),
    _table4("sd_resnet", "Table 4, Stochastic Depth ResNet-110: fixed 0.1/0.2/0.3 vs CLR 0.1-0.3"),
    _table4("densenet", "Table 4, DenseNet-40: fixed 0.1/0.2/0.3 vs CLR 0.1-0.2"),
    Experiment("one_cycle_resnet56", "One-cycle ResNet-56 (super-convergence)", ("one_cycle_resnet56",), None),
    # ImageNet (the configs stream --data imagenet2012 or an ImageNet folder; see experiments/IMAGENET.md).
    Experiment("table1_alexnet", "Table 1, ImageNet with AlexNet (Caffe's bvlc_alexnet): fixed, triangular2, exp, "
               "exp_range", ("table1_alexnet_fixed", "table1_alexnet_triangular2", "table1_alexnet_exp:300k",
                             "table1_alexnet_exp:460k", "table1_alexnet_exp_range"), "table1_alexnet_fixed"),
    Experiment("table1_googlenet", "Table 1, ImageNet with GoogLeNet (Caffe's bvlc_googlenet): fixed, triangular2, "
               "exp, exp_range", ("table1_googlenet_fixed", "table1_googlenet_triangular2", "table1_googlenet_exp",
                                  "table1_googlenet_exp_range"), "table1_googlenet_fixed"),
    Experiment("fig7", "Figure 7, AlexNet's LR range test on ImageNet", ("fig7_alexnet_range",), None),
    Experiment("fig11", "Figure 11, GoogLeNet's LR range test on ImageNet", ("fig11_googlenet_range",), None),
)}


def get_experiment(name: str) -> Experiment:
  """The named experiment, or a single config (any `experiments.configs` name) run on its own.

  Raises:
    ValueError: `name` is neither (the message lists the experiments).
  """
  if name in EXPERIMENTS:
    return EXPERIMENTS[name]
  try:
    config = config_lib.get_config(name)
  except ValueError:
    raise ValueError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)} or a config name "
                     f"({', '.join(config_lib.list_configs())})") from None
  return Experiment(name.replace(":", "_"), config.paper or name, (name,), None)
