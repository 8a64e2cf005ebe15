"""Shared settings of the ImageNet rows of Table 1 and of the range tests of Figs. 7 and 11.

The paper (arXiv 1506.01186v6, its ImageNet section) trained Caffe's reference AlexNet and GoogLeNet on ILSVRC
2012 with Caffe's solvers and data layers; it reports top-1 accuracy on the 50,000 validation images. These
builders hold what the rows share and the configs only what differs:

* AlexNet (``bvlc_alexnet``; ``--set model.name=caffenet`` for ``bvlc_reference_caffenet``): batch 256,
  crop 227 of the 256x256 resized image, mirror, Caffe's mean image (``mean_file``); Caffe's SGD with
  momentum 0.9 and weight decay 0.0005, the prototxt's lr/decay multipliers
  (``models/bvlc_alexnet/solver.prototxt``, ``train_val.prototxt``).
* GoogLeNet (``bvlc_googlenet``): batch 128 (the paper's; the prototxt's is 32), crop 224, mirror, Caffe's
  ``mean_value`` (B, G, R) = (104, 117, 123); momentum 0.9, weight decay 0.0002
  (``models/bvlc_googlenet/solver.prototxt``), the auxiliary classifiers weighted 0.3 in training.

One epoch of the 1,281,167 training images is 5,004 iterations at batch 256 and 10,009 at batch 128, so the
paper's step size of 30,000 iterations is about 6 and 3 epochs. Evaluating and checkpointing every 10,000
iterations (Caffe's test_interval is 1,000 for AlexNet, 4,000 for GoogLeNet: a full validation pass is
expensive) is our choice; it changes nothing that is trained.

  --data imagenet2012        tensorflow-datasets (a manual download; see experiments/IMAGENET.md)
  --data /data/imagenet      a folder of train/<wnid>/*.JPEG and val/<wnid>/*.JPEG
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import ByReference
from experiments.configs.provenance import Paper

_COMMON = {
    "data.dataset": "imagenet2012",
    "data.augment": False,  # the stream crops and mirrors on the host, as Caffe's data layer
    "optim.name": "caffe_sgd",
    "optim.momentum": 0.9,
    "train.eval_every": "10000",
    "train.checkpoint_every": "10000",
    "train.eval_batch_size": 500,
}


def alexnet(updates: dict) -> config_lib.Config:
  """An AlexNet row: Caffe's bvlc_alexnet network, data layer and solver, with `updates` on top."""
  return config_lib.override(default.get_config(), {
      **_COMMON,
      "model.name": "alexnet",
      "data.crop_size": 227,
      "data.normalization": "mean_image",
      "optim.weight_decay": 0.0005,
      "train.batch_size": 256,
      **updates,
  })


def googlenet(updates: dict) -> config_lib.Config:
  """A GoogLeNet row: Caffe's bvlc_googlenet network, data layer and solver at batch 128, `updates` on top."""
  return config_lib.override(default.get_config(), {
      **_COMMON,
      "model.name": "googlenet",
      "data.crop_size": 224,
      "data.normalization": "mean_value",
      "data.mean_value": (123.0, 117.0, 104.0),  # RGB order of the prototxt's B, G, R mean_value
      "optim.weight_decay": 0.0002,
      "train.batch_size": 128,
      **updates,
  })


# Where the settings the AlexNet rows share come from: Caffe's bvlc_alexnet files, which §4.2.1 says it downloaded
# and used as the baseline (line 260), and the batch it restates (line 269).
_ALEXNET_FILES = "Caffe's models/bvlc_alexnet (train_val.prototxt, solver.prototxt)"
ALEXNET_SOURCES = {
    "model.name": ByReference("alexnet", _ALEXNET_FILES, 260, "hyper-parameter files for a slightly modified AlexNet"),
    "optim.name": ByReference("caffe_sgd", _ALEXNET_FILES, 260, "used as a baseline"),
    "train.batch_size": Paper(256, "§4.2.1", 269, "architecture file is 256"),
}
# GoogLeNet: the Princeton architecture file (line 293); no solver file was available (lines 293-302).
GOOGLENET_SOURCES = {
    "model.name": ByReference("googlenet", "the Princeton GoogLeNet architecture file (Caffe's bvlc_googlenet here)",
                              293, "architecture file publicly available from Princeton"),
    "optim.name": Assumed("the paper had no solver file for GoogLeNet (line 293): Caffe's SGD with momentum, as its "
                          "other runs"),
    "train.batch_size": Paper(128, "§4.2.2", 304, "batchsize of 128"),
}


# The exp_range rows: the paper's formula (both bounds decline, §3.1, line 99), or with the argument "keras" the
# Keras callback's (Appendix B, line 401: only the amplitude declines), a labelled alternative.
EXP_RANGE_ARGS = ("paper", "keras")


def _is_keras(module: str, arg: str | None) -> bool:
  arg = arg or "paper"
  if arg not in EXP_RANGE_ARGS:
    raise ValueError(f"{module} takes one of {EXP_RANGE_ARGS}, got {arg=}")
  return arg == "keras"


def exp_range_sources(module: str, arg: str | None, *, shared: dict, row: dict, line: int) -> dict:
  """The sources of an exp_range row: `shared` (the network's), Table 1's `line`, and `row`'s
  ``{field: (value, source)}``."""
  keras = _is_keras(module, arg)
  return {
      **shared,
      "schedule.name": Paper("exp_range", "Table 1", line, "exp_range"),
      "schedule.scale_bounds": Paper(True, "§3.1", 99, "each boundary value declines",
                                     departs="the Keras callback's formula (line 401): only the amplitude declines"
                                     if keras else ""),
      **{field: source for field, (_, source) in row.items()},
  }


def exp_range_config(module: str, arg: str | None, *, build, label: str, row: dict) -> config_lib.Config:
  """An exp_range row built by `build` (`alexnet` or `googlenet`) with `row`'s ``{field: (value, source)}``."""
  keras = _is_keras(module, arg)
  return build({
      "name": module + (":keras" if keras else ""),
      "paper": paper_results.quote(module, label + (" (the Keras formula)" if keras else "")),
      "schedule.name": "exp_range",
      "schedule.scale_bounds": not keras,
      **{field: value for field, (value, _) in row.items()},
  })
