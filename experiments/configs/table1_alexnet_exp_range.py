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
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Paper

ARGS = ("paper", "keras")


def _check(arg: str | None) -> str:
  arg = arg or "paper"
  if arg not in ARGS:
    raise ValueError(f"table1_alexnet_exp_range takes one of {ARGS}, got {arg=}")
  return arg


def sources(arg: str | None = None) -> dict:
  keras = _check(arg) == "keras"
  return {
      **_imagenet.ALEXNET_SOURCES,
      "schedule.name": Paper("exp_range", "Table 1", 130, "exp_range"),
      "schedule.scale_bounds": Paper(True, "§3.1", 99, "each boundary value declines",
                                     departs="the Keras callback's formula (line 401): only the amplitude declines"
                                     if keras else ""),
      "schedule.base_lr": Paper(0.006, "§4.2.1", 271, "*base_lr* = 0.006 and *max_lr* = 0.014"),
      "schedule.max_lr": Paper(0.014, "§4.2.1", 271, "*base_lr* = 0.006 and *max_lr* = 0.014"),
      "schedule.step_size": Paper("30000", "§4.2.1", 269, "30,000 iterations"),
      "schedule.gamma": Paper(0.999995, "§4.2.1", 275, "*gamma* = 0.999995"),
      "train.num_steps": Paper("300000", "Table 1", 130, "300,000"),
  }


def get_config(arg: str | None = None) -> config_lib.Config:
  keras = _check(arg) == "keras"
  name = "table1_alexnet_exp_range" + (":keras" if keras else "")
  return _imagenet.alexnet({
      "name": name,
      "paper": paper_results.quote("table1_alexnet_exp_range",
                                   "AlexNet exp_range" + (" (the Keras formula)" if keras else "")),
      "schedule.name": "exp_range",
      "schedule.scale_bounds": not keras,
      "schedule.base_lr": 0.006,
      "schedule.max_lr": 0.014,
      "schedule.step_size": "30000",
      "schedule.gamma": 0.999995,
      "train.num_steps": "300000",
  })
