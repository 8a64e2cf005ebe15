"""Table 3, AdaDelta with and without CLR (cifar10_full).

  python -m experiments.train --config table3_adadelta:fixed --workdir /tmp/t3_adadelta_fixed --data cifar10
  python -m experiments.train --config table3_adadelta:clr --workdir /tmp/t3_adadelta_clr --data cifar10

Paper (Table 3, as we recall it; to be verified): fixed 67.3% at 70,000, CLR 67.3% at 25,000.
Rates are ours (Caffe's AdaDelta example: rate 1.0, rho 0.95, delta 1e-6; CLR 0.5-2.0).
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None):
  return _table3.build("table3_adadelta", arg, optimizer="adadelta", fixed_lr=1.0, base_lr=0.5, max_lr=2.0,
                       extra={"optim.rms_decay": 0.95, "optim.eps": 1e-6},
                       paper={"fixed": "Table 3, AdaDelta fixed: 67.3% at 70,000 (to be verified)",
                              "clr": "Table 3, AdaDelta + CLR: 67.3% at 25,000 (to be verified)"})
