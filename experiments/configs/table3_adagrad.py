"""Table 3, AdaGrad with and without CLR (cifar10_full).

  python -m experiments.train --config table3_adagrad:fixed --workdir /tmp/t3_adagrad_fixed --data cifar10
  python -m experiments.train --config table3_adagrad:clr --workdir /tmp/t3_adagrad_clr --data cifar10

Paper (Table 3, as we recall it; to be verified): fixed 74.6% at 70,000, CLR 76.0% at 25,000.
Rates are ours (fixed 0.01, CLR 0.01-0.06).
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None):
  return _table3.build("table3_adagrad", arg, optimizer="adagrad", fixed_lr=0.01, base_lr=0.01, max_lr=0.06,
                       paper={"fixed": "Table 3, AdaGrad fixed: 74.6% at 70,000 (to be verified)",
                              "clr": "Table 3, AdaGrad + CLR: 76.0% at 25,000 (to be verified)"})
