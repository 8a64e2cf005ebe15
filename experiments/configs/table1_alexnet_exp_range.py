"""Table 1, AlexNet "exp_range": a triangular cycle between 0.006 and 0.014, both bounds declining as gamma**t.

  python -m experiments.train --config table1_alexnet_exp_range --workdir /tmp/t1_alexnet_exp_range \
      --data imagenet2012
  python -m experiments.train --config table1_alexnet_exp_range:keras ...  # the Keras / PyTorch formula

Paper: 56.5% top-1 validation accuracy after 300,000 iterations (Table 1, line 130 of the paper's text); §4.2.1:
base_lr 0.006 and max_lr 0.014 for the comparison with exp (line 271), gamma 0.999995 (line 275), stepsize
30,000 (line 269). §3.1 defines exp_range with both bounds declining (line 99), which Fig. 10's text
bears out (line 287); the argument ``keras`` keeps the Keras callback's formula (Appendix B, line 401: only the
amplitude declines) as a labelled alternative. `sources(arg)` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs.provenance import Paper

ARGS = _imagenet.EXP_RANGE_ARGS
_ROW = {
    "schedule.base_lr": (0.006, Paper(0.006, "§4.2.1", 271, "*base_lr* = 0.006 and *max_lr* = 0.014")),
    "schedule.max_lr": (0.014, Paper(0.014, "§4.2.1", 271, "*base_lr* = 0.006 and *max_lr* = 0.014")),
    "schedule.step_size": ("30000", Paper("30000", "§4.2.1", 269, "30,000 iterations")),
    "schedule.gamma": (0.999995, Paper(0.999995, "§4.2.1", 275, "*gamma* = 0.999995")),
    "train.num_steps": ("300000", Paper("300000", "Table 1", 130, "300,000")),
}


def sources(arg: str | None = None) -> dict:
  return _imagenet.exp_range_sources("table1_alexnet_exp_range", arg, shared=_imagenet.ALEXNET_SOURCES, row=_ROW,
                                     line=130)


def get_config(arg: str | None = None):
  return _imagenet.exp_range_config("table1_alexnet_exp_range", arg, build=_imagenet.alexnet, label="AlexNet exp_range",
                                    row=_ROW)
