"""Table 1, row "exp_range": a triangular cycle whose bounds both decline as gamma**iteration.

  python -m experiments.train --config table1_exp_range --workdir /tmp/table1_exp_range --data cifar10
  python -m experiments.train --config table1_exp_range:70k ...    # Figure 4: on to 70,000 iterations
  python -m experiments.train --config table1_exp_range:keras ...  # the Keras / PyTorch formula

Paper: 82.2% at 42,000 iterations (Table 1, line 125 of the paper's text); §4.1.1 (line 182): gamma 0.99994,
and running on to 70,000 iterations (Figure 4) did not improve on it. §3.1 defines the policy as each boundary
value declining by gamma**iteration (line 99), so the curve oscillates around exp's base_lr * gamma**iteration,
as Fig. 10's text says of its accuracies (line 287): `clr_optax.exp_range(..., scale_bounds=True)`, this
config. Appendix B points to a Keras callback (line 401) in which only the amplitude declines and the lower
bound stays at base_lr (PyTorch's CyclicLR too): the argument ``keras`` keeps that formula as a labelled
alternative, with the step size of 2,000 of the runs made with it.

The paper gives neither the bounds nor the step size of this run. Bounds: its CIFAR-10 range-test bounds
0.001 - 0.006 (§4.1.1, line 164). Step size: 1,750 (3.5 epochs), the one nearest §4.1.1's 2,000 (line 164) for
which both 42,000 and 70,000 end a cycle, since §3.2 advises stopping at the end of one (line 107); with 2,000,
42,000 is a peak. `sources(arg)` says where each setting comes from.
"""

from experiments.configs import config_lib
from experiments.configs import default
from experiments.configs import paper_results
from experiments.configs.provenance import CAFFE_CIFAR10_FULL
from experiments.configs.provenance import Assumed
from experiments.configs.provenance import Paper

ARGS = ("42k", "70k", "keras")
_BOUNDS = Assumed("the paper gives none for this run; its CIFAR-10 range-test bounds (§4.1.1, line 164)")


def sources(arg: str | None = None) -> dict:
  arg = _check(arg)
  keras = arg == "keras"
  return {
      **CAFFE_CIFAR10_FULL,
      "schedule.name": Paper("exp_range", "Table 1", 125, "exp_range"),
      "schedule.scale_bounds": Paper(
          True, "§3.1", 99, "each boundary value declines",
          departs="the Keras callback's formula that Appendix B points to (line 401): only the amplitude "
                  "declines" if keras else ""),
      "schedule.base_lr": _BOUNDS,
      "schedule.max_lr": _BOUNDS,
      "schedule.step_size": Assumed(
          "the paper gives none; §4.1.1's 2,000 (line 164), as in the runs made with this formula" if keras else
          "the paper gives none; the nearest to §4.1.1's 2,000 (line 164) for which 42,000 and 70,000 both end a "
          "cycle (§3.2 advises stopping at one, line 107)"),
      "schedule.gamma": Paper(0.99994, "§4.1.1", 182, "*gamma* = 0.99994"),
      "train.num_steps": (Paper("70000", "§4.1.1, Fig. 4", 182, "iteration 70,000") if arg == "70k" else
                          Paper("42000", "Table 1", 125, "42,000")),
  }


def _check(arg: str | None) -> str:
  arg = arg or "42k"
  if arg not in ARGS:
    raise ValueError(f"table1_exp_range takes one of {ARGS}, got {arg=}")
  return arg


def get_config(arg: str | None = None) -> config_lib.Config:
  arg = _check(arg)
  name = "table1_exp_range" if arg == "42k" else f"table1_exp_range:{arg}"
  keras = arg == "keras"
  return config_lib.override(default.get_config(), {
      "name": name,
      "paper": paper_results.quote(name, "exp_range (the Keras formula)" if keras else "exp_range"),
      "schedule.name": "exp_range",
      "schedule.scale_bounds": not keras,
      "schedule.base_lr": 0.001,
      "schedule.max_lr": 0.006,
      "schedule.step_size": "2000" if keras else "1750",
      "schedule.gamma": 0.99994,
      "train.num_steps": "70000" if arg == "70k" else "42000",
  })
