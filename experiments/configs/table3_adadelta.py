"""Table 3, AdaDelta with and without CLR (cifar10_full); the readings of its CLR rows are `_table3`'s.

  python -m experiments.train --config table3_adadelta:fixed --workdir /tmp/t3_adadelta_fixed --data cifar10
  python -m experiments.train --config table3_adadelta:clr --workdir /tmp/t3_adadelta_clr --data cifar10
  python -m experiments.train --config table3_adadelta:clr_staged --workdir /tmp/t3_adadelta_clr_staged --data cifar10

Paper (Table 3, lines 199-200 of the paper's text): bounds 0.01 - 0.1; fixed (at 0.01) 67.3% at 70,000,
triangular 67.3% at 25,000.
rho 0.95 and delta 1e-6 are Caffe's AdaDelta example's: the paper does not state them (ours).
"""

from experiments.configs import _table3

ARGS = _table3.ARGS
_ROW = dict(optimizer="adadelta", base_lr=0.01, max_lr=0.1, label="AdaDelta", args=ARGS)


def sources(arg: str | None = None) -> dict:
  return _table3.sources("table3_adadelta", arg, **_ROW, lines={"fixed": 199, "clr": 200},
                         bounds="0.01 - 0.1")


def get_config(arg: str | None = None):
  return _table3.build("table3_adadelta", arg, **_ROW, extra={"optim.rms_decay": 0.95, "optim.eps": 1e-6})
