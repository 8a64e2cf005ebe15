"""Table 3, AdaGrad with and without CLR (cifar10_full); the readings of its CLR rows are `_table3`'s.

  python -m experiments.train --config table3_adagrad:fixed --workdir /tmp/t3_adagrad_fixed --data cifar10
  python -m experiments.train --config table3_adagrad:clr --workdir /tmp/t3_adagrad_clr --data cifar10
  python -m experiments.train --config table3_adagrad:clr_staged --workdir /tmp/t3_adagrad_clr_staged --data cifar10

Paper (Table 3, lines 197-198 of the paper's text): bounds 0.003 - 0.035; fixed (at 0.003) 74.6% at 70,000,
triangular 76.0% at 25,000.
"""

from experiments.configs import _table3

ARGS = _table3.ARGS
_ROW = dict(optimizer="adagrad", base_lr=0.003, max_lr=0.035, label="AdaGrad", args=ARGS)


def sources(arg: str | None = None) -> dict:
  return _table3.sources("table3_adagrad", arg, **_ROW, lines={"fixed": 197, "clr": 198},
                         bounds="0.003 - 0.035")


def get_config(arg: str | None = None):
  return _table3.build("table3_adagrad", arg, **_ROW)
