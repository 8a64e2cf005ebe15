"""Table 1, GoogLeNet "exp_range": a triangular cycle between 0.01 and 0.026, both bounds declining as gamma**t.

  python -m experiments.train --config table1_googlenet_exp_range --workdir /tmp/t1_googlenet_exp_range \
      --data imagenet2012
  python -m experiments.train --config table1_googlenet_exp_range:keras ...  # the Keras / PyTorch formula

Paper: 60.2% top-1 validation accuracy after 240,000 iterations (Table 1, line 134 of the paper's text);
§4.2.2: base_lr 0.01 and max_lr 0.026 (line 306), gamma 0.99998 (line 310), stepsize 30,000 (line 304).
§3.1 defines exp_range with both bounds declining (line 99), which the AlexNet Fig. 10's text bears out
(line 287); the argument ``keras`` keeps the Keras callback's formula (Appendix B, line 401: only the amplitude
declines) as a labelled alternative. `sources(arg)` says where each setting comes from.
"""

from experiments.configs import _imagenet
from experiments.configs.provenance import Paper

ARGS = _imagenet.EXP_RANGE_ARGS
_ROW = {
    "schedule.base_lr": (0.01, Paper(0.01, "§4.2.2", 306, "*base_lr* was set to 0.01")),
    "schedule.max_lr": (0.026, Paper(0.026, "§4.2.2", 306, "*max_lr* was set to 0.026")),
    "schedule.step_size": ("30000", Paper("30000", "§4.2.2", 304, "*stepsize* = 30000")),
    "schedule.gamma": (0.99998, Paper(0.99998, "§4.2.2", 310, "0.99998")),
    "train.num_steps": ("240000", Paper("240000", "Table 1", 134, "240,000")),
}


def sources(arg: str | None = None) -> dict:
  return _imagenet.exp_range_sources("table1_googlenet_exp_range", arg, shared=_imagenet.GOOGLENET_SOURCES,
                                     row=_ROW, line=134)


def get_config(arg: str | None = None):
  return _imagenet.exp_range_config("table1_googlenet_exp_range", arg, build=_imagenet.googlenet,
                                    label="GoogLeNet exp_range", row=_ROW)
