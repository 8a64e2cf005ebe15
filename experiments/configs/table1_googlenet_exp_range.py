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
from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs.provenance import Paper

ARGS = ("paper", "keras")


def _check(arg: str | None) -> str:
  arg = arg or "paper"
  if arg not in ARGS:
    raise ValueError(f"table1_googlenet_exp_range takes one of {ARGS}, got {arg=}")
  return arg


def sources(arg: str | None = None) -> dict:
  keras = _check(arg) == "keras"
  return {
      **_imagenet.GOOGLENET_SOURCES,
      "schedule.name": Paper("exp_range", "Table 1", 134, "exp_range"),
      "schedule.scale_bounds": Paper(True, "§3.1", 99, "each boundary value declines",
                                     departs="the Keras callback's formula (line 401): only the amplitude declines"
                                     if keras else ""),
      "schedule.base_lr": Paper(0.01, "§4.2.2", 306, "*base_lr* was set to 0.01"),
      "schedule.max_lr": Paper(0.026, "§4.2.2", 306, "*max_lr* was set to 0.026"),
      "schedule.step_size": Paper("30000", "§4.2.2", 304, "*stepsize* = 30000"),
      "schedule.gamma": Paper(0.99998, "§4.2.2", 310, "0.99998"),
      "train.num_steps": Paper("240000", "Table 1", 134, "240,000"),
  }


def get_config(arg: str | None = None) -> config_lib.Config:
  keras = _check(arg) == "keras"
  name = "table1_googlenet_exp_range" + (":keras" if keras else "")
  return _imagenet.googlenet({
      "name": name,
      "paper": paper_results.quote("table1_googlenet_exp_range",
                                   "GoogLeNet exp_range" + (" (the Keras formula)" if keras else "")),
      "schedule.name": "exp_range",
      "schedule.scale_bounds": not keras,
      "schedule.base_lr": 0.01,
      "schedule.max_lr": 0.026,
      "schedule.step_size": "30000",
      "schedule.gamma": 0.99998,
      "train.num_steps": "240000",
  })
