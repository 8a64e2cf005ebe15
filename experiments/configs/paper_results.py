"""The paper's reported results, keyed by config name: the one place the reports take them from.

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017 (arXiv 1506.01186, v6). Every
number of `PAPER_RESULTS` names the line of the paper's text (``../shared/paper/smith-clr-1506.01186.txt``) that
prints it, and the tests check that it does. Tables 1, 3 and 4 are quoted as printed; Figures 4 and 6 have no
table, their numbers are quoted from the text of Section 4.1.1. Where the paper gives no iteration count
(Table 4, Figure 6) ``iterations`` is None. ``best`` marks the numbers the paper calls a run's best accuracy
(exp's 79.1%, line 182), which the reports compare with our best rather than our final accuracy. The config
modules' ``SOURCES`` (`experiments.configs.provenance`) say where each setting comes from.

The CIFAR rows have a CIFAR-10 number (``accuracy``); only Table 4 also has a CIFAR-100 column
(``cifar100_accuracy``). Table 1's ImageNet rows (AlexNet and GoogLeNet, lines 126-134) have only an ImageNet
number (``imagenet_accuracy``, top-1 on the 50,000 validation images). A report picks the column of the data its
runs used with `PaperResult.accuracy_on`.

This module is not an experiment config (it has no ``get_config``) and is not listed by
`experiments.configs.list_configs`.

>>> from experiments.configs import paper_results
>>> r = paper_results.PAPER_RESULTS["table1_triangular2"]
>>> r.accuracy, r.iterations, r.source
(81.4, 25000, 'Table 1')
>>> r = paper_results.PAPER_RESULTS["table4_resnet:clr"]
>>> r.accuracy, r.cifar100_accuracy, r.iterations, r.verified
(93.6, 72.5, None, True)
>>> r.accuracy_on("cifar100"), paper_results.get("table1_fixed").accuracy_on("cifar100")
(72.5, None)
"""

from __future__ import annotations

import dataclasses

# The datasets the paper reports on (`experiments.data.load` / `experiments.imagenet` names), and their column
# names in the paper.
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet2012": "ImageNet"}
# Their training images and classes: what a run of a config costs before its data is at hand.
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "imagenet2012": 1_281_167}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet2012": 1000}


@dataclasses.dataclass(frozen=True)
class PaperResult:
  """One result as the paper reports it.

  Attributes:
    accuracy: CIFAR-10 accuracy in percent (test accuracy unless the note says otherwise), or None where the
      paper gives none.
    iterations: the training iterations at which the paper reports it (None: not given).
    source: where it is printed ("Table 1", "Table 3", "Figure 6", ...).
    verified: whether the number is the paper's, checked against its text (False: another document's).
    note: anything a reader should know (bounds, the setting of the row).
    cifar100_accuracy: CIFAR-100 accuracy in percent (Table 4 only; None where the paper gives none).
    imagenet_accuracy: ImageNet top-1 validation accuracy in percent (Table 1's AlexNet and GoogLeNet rows).
    line: the line of the paper's text (``../shared/paper/smith-clr-1506.01186.txt``) that prints the number
      (the tests check it is there).
    best: the paper calls the number the run's best accuracy, not its final one.
    training: the number is a training accuracy (Figure 6), which the reports compare with our training
      accuracy (runs with ``train.eval_train``).
  """
  accuracy: float | None
  iterations: int | None
  source: str
  verified: bool = True
  note: str = ""
  cifar100_accuracy: float | None = None
  imagenet_accuracy: float | None = None
  line: int | None = None
  best: bool = False
  training: bool = False

  def accuracy_on(self, dataset: str) -> float | None:
    """The paper's accuracy on `dataset` ("cifar10", "cifar100" or "imagenet2012"); None where it gives none.

    Raises:
      ValueError: `dataset` is not one of `DATASETS`.
    """
    if dataset == "cifar10":
      return self.accuracy
    if dataset == "cifar100":
      return self.cifar100_accuracy
    if dataset == "imagenet2012":
      return self.imagenet_accuracy
    raise ValueError(f"the paper reports on {', '.join(DATASETS)}, not {dataset!r}")


_T3 = "Table 3 of arXiv 1506.01186v6; bounds {} (the fixed row at the lower bound, as the paper says)"
_T4 = ("Table 4 of arXiv 1506.01186v6, CIFAR-10 and CIFAR-100 (--data cifar100) columns, mean of 5 runs; "
       "the paper gives no iteration count (the original implementation's schedule)")
_IMAGENET = "Table 1 of arXiv 1506.01186v6 (ImageNet rows), top-1 validation accuracy"
_F6 = ("Section 4.1.1 of arXiv 1506.01186v6 (text about Figure 6): final accuracy, which the text calls "
       "'training accuracy'; it gives no iteration count and no CLR bounds or policy")

PAPER_RESULTS: dict[str, PaperResult] = {
    # Table 1, CIFAR-10 rows (Caffe cifar10_full, batch 100), lines 121-125 of the paper's text.
    "table1_fixed": PaperResult(81.4, 70000, "Table 1", note="Caffe's solver: 0.001, x0.1 at 60k and 65k",
                                line=121),
    "table1_triangular2": PaperResult(81.4, 25000, "Table 1", line=122,
                                      note="the paper's number is Table 2's staged run (lines 164-173); this config "
                                           "is the ablation with the plain 0.001 - 0.006 bounds"),
    "table1_decay": PaperResult(78.5, 25000, "Table 1", note="max_lr 0.007, base_lr 0.001, stepsize 4000 (line 180)",
                                line=123),
    "table1_exp": PaperResult(79.1, 70000, "Table 1", note="gamma 0.99994; the best accuracy of the run (line 182)",
                              line=124, best=True),
    "table1_exp_range": PaperResult(82.2, 42000, "Table 1", line=125,
                                    note="gamma 0.99994 (line 182); the paper does not state this run's bounds"),
    "table1_exp_range:keras": PaperResult(82.2, 42000, "Table 1", line=125,
                                          note="the paper's number, made with its own formula (line 99)"),
    # Figure 4 runs exp_range on to 70,000; the paper says the 82.2% of 42,000 was not improved (line 182).
    "table1_exp_range:70k": PaperResult(82.2, 42000, "Figure 4 (text)", line=182, best=True,
                                        note="reached at 42,000; going on to 70,000 did not improve it"),
    # Table 2: the settings of the Figure 1 triangular2 run, which reaches Table 1's 81.4% at 25k (line 173).
    "table2_staged": PaperResult(81.4, 25000, "Table 2 / Figure 1", line=173,
                                 note="Table 2 lists settings only; the accuracy is Figure 1's / Table 1's"),
    # Table 3: adaptive optimizers with and without CLR (cifar10_full), lines 189-200.
    "table3_nesterov:fixed": PaperResult(82.1, 70000, "Table 3", note=_T3.format("0.001 - 0.006"), line=189),
    "table3_nesterov:clr": PaperResult(81.3, 25000, "Table 3", note=_T3.format("0.001 - 0.006"), line=190),
    "table3_adam:fixed": PaperResult(81.4, 70000, "Table 3", note=_T3.format("0.0005 - 0.002"), line=191),
    "table3_adam:clr": PaperResult(79.8, 25000, "Table 3", note=_T3.format("0.0005 - 0.002"), line=192),
    "table3_adam:clr70k": PaperResult(81.1, 70000, "Table 3", note=_T3.format("0.0005 - 0.002"), line=193),
    "table3_rmsprop:fixed": PaperResult(75.2, 70000, "Table 3", note=_T3.format("0.0001 - 0.0003"), line=194),
    "table3_rmsprop:clr": PaperResult(72.8, 25000, "Table 3", note=_T3.format("0.0001 - 0.0003"), line=195),
    "table3_rmsprop:clr70k": PaperResult(75.1, 70000, "Table 3", note=_T3.format("0.0001 - 0.0003"), line=196),
    "table3_adagrad:fixed": PaperResult(74.6, 70000, "Table 3", note=_T3.format("0.003 - 0.035"), line=197),
    "table3_adagrad:clr": PaperResult(76.0, 25000, "Table 3", note=_T3.format("0.003 - 0.035"), line=198),
    "table3_adadelta:fixed": PaperResult(67.3, 70000, "Table 3", note=_T3.format("0.01 - 0.1"), line=199),
    "table3_adadelta:clr": PaperResult(67.3, 25000, "Table 3", note=_T3.format("0.01 - 0.1"), line=200),
    # Figure 6: no table; the text of Section 4.1.1 gives the two final training accuracies (line 184).
    "fig6_bn_sigmoid:fixed": PaperResult(60.8, None, "Figure 6 (text)", note=_F6, line=184,
                                          training=True),
    "fig6_bn_sigmoid:clr": PaperResult(72.2, None, "Figure 6 (text)", note=_F6, line=184,
                                        training=True),
    # Table 4 (lines 219-230): ResNet, Stochastic Depth and DenseNet (the paper does not state the depths),
    # CIFAR-10 and CIFAR-100 columns.
    "table4_resnet:0.1": PaperResult(92.8, None, "Table 4", note=_T4, cifar100_accuracy=71.2, line=219),
    "table4_resnet:0.2": PaperResult(93.3, None, "Table 4", note=_T4, cifar100_accuracy=71.6, line=220),
    "table4_resnet:0.3": PaperResult(91.8, None, "Table 4", note=_T4, cifar100_accuracy=71.9, line=221),
    "table4_resnet:clr": PaperResult(93.6, None, "Table 4", note=_T4 + "; CLR 0.1 - 0.3", cifar100_accuracy=72.5,
                                     line=222),
    "table4_sd_resnet:0.1": PaperResult(94.6, None, "Table 4", note=_T4, cifar100_accuracy=75.2, line=223),
    "table4_sd_resnet:0.2": PaperResult(94.5, None, "Table 4", note=_T4, cifar100_accuracy=75.2, line=224),
    "table4_sd_resnet:0.3": PaperResult(94.2, None, "Table 4", note=_T4, cifar100_accuracy=74.6, line=225),
    "table4_sd_resnet:clr": PaperResult(94.5, None, "Table 4", note=_T4 + "; CLR 0.1 - 0.3", cifar100_accuracy=75.4,
                                        line=226),
    "table4_densenet:0.1": PaperResult(94.5, None, "Table 4", note=_T4, cifar100_accuracy=75.2, line=227),
    "table4_densenet:0.2": PaperResult(94.5, None, "Table 4", note=_T4, cifar100_accuracy=75.3, line=228),
    "table4_densenet:0.3": PaperResult(94.2, None, "Table 4", note=_T4, cifar100_accuracy=74.5, line=229),
    "table4_densenet:clr": PaperResult(94.9, None, "Table 4", note=_T4 + "; CLR 0.1 - 0.2", cifar100_accuracy=75.9,
                                       line=230),
    # Table 1, ImageNet rows (Caffe's bvlc_alexnet at batch 256, bvlc_googlenet at batch 128), lines 126-134:
    # top-1 validation accuracy.
    "table1_alexnet_fixed": PaperResult(None, 400000, "Table 1", note=_IMAGENET + "; Caffe's step solver",
                                        imagenet_accuracy=58.0, line=126),
    "table1_alexnet_triangular2": PaperResult(None, 400000, "Table 1", note=_IMAGENET + "; CLR 0.01 - 0.015",
                                              imagenet_accuracy=58.4, line=127),
    "table1_alexnet_exp:300k": PaperResult(None, 300000, "Table 1", note=_IMAGENET + "; gamma 0.999995",
                                           imagenet_accuracy=56.0, line=128),
    "table1_alexnet_exp:460k": PaperResult(None, 460000, "Table 1", note=_IMAGENET + "; gamma 0.999995",
                                           imagenet_accuracy=56.5, line=129),
    "table1_alexnet_exp_range": PaperResult(None, 300000, "Table 1", note=_IMAGENET + "; CLR 0.006 - 0.014, gamma "
                                            "0.999995", imagenet_accuracy=56.5, line=130),
    "table1_googlenet_fixed": PaperResult(None, 420000, "Table 1", note=_IMAGENET, imagenet_accuracy=63.0, line=131),
    "table1_googlenet_triangular2": PaperResult(None, 420000, "Table 1", note=_IMAGENET + "; CLR 0.01 - 0.026",
                                                imagenet_accuracy=64.4, line=132),
    "table1_googlenet_exp": PaperResult(None, 240000, "Table 1", note=_IMAGENET + "; gamma 0.99998",
                                        imagenet_accuracy=58.2, line=133),
    "table1_googlenet_exp_range": PaperResult(None, 240000, "Table 1", note=_IMAGENET + "; CLR 0.01 - 0.026, gamma "
                                              "0.99998", imagenet_accuracy=60.2, line=134),
    # Not a row of 1506.01186: the one-cycle blog summary in the paper folder (one-cycle-blog.txt, line 92).
    "one_cycle_resnet56": PaperResult(91.3, None, "one-cycle blog", False,
                                      "not a result of 1506.01186: the blog's ~91.3% in 95 epochs (line 92 of "
                                      "one-cycle-blog.txt), ResNet-56, batch 512", line=None),
}


# How a config's ``paper`` line quotes its row, by the row's source ({label}: the row's name in words).
_QUOTES = {
    "Table 1": "{source}, CIFAR-10 {label}: {accuracy}% at {iterations:,} iterations",
    "Table 2 / Figure 1": "{source}, CIFAR-10 {label}: {accuracy}% at {iterations:,} iterations",
    "Table 3": "{source}, {label}: {accuracy}% at {iterations:,}",
    "Table 4": "{source}, {label}: {accuracy}% (CIFAR-10; CIFAR-100 {cifar100_accuracy}%)",
    "Figure 4 (text)": "Figure 4 (text of Sec. 4.1.1), CIFAR-10 {label}: {accuracy}% at {iterations:,} iterations, "
                       "not improved by 70,000",
    "Figure 6 (text)": "Figure 6 (text of Sec. 4.1.1), {label}: {accuracy}% final training accuracy",
}


# How a config's ``paper`` line quotes an ImageNet row (Table 1's AlexNet and GoogLeNet rows).
_IMAGENET_QUOTE = "{source}, {label}: {imagenet_accuracy}% at {iterations:,} iterations"


def quote(config_name: str, label: str) -> str:
  """The config's ``paper`` line: its row's result as the paper reports it, from `PAPER_RESULTS`.

  Examples:
    >>> quote("table1_triangular2", "triangular2")
    'Table 1, CIFAR-10 triangular2: 81.4% at 25,000 iterations'
    >>> quote("table1_googlenet_triangular2", "GoogLeNet triangular2")
    'Table 1, GoogLeNet triangular2: 64.4% at 420,000 iterations'
  """
  r = PAPER_RESULTS[config_name]
  template = _IMAGENET_QUOTE if r.imagenet_accuracy is not None else _QUOTES[r.source]
  return template.format(label=label, **dataclasses.asdict(r))


def get(config_name: str) -> PaperResult | None:
  """The paper's result for `config_name` (None when the paper has no row for it)."""
  return PAPER_RESULTS.get(config_name)
