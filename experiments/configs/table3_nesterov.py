"""Table 3, Nesterov with and without CLR (cifar10_full); the readings of its CLR rows are `_table3`'s.

  python -m experiments.train --config table3_nesterov:fixed --workdir /tmp/t3_nesterov_fixed --data cifar10
  python -m experiments.train --config table3_nesterov:clr --workdir /tmp/t3_nesterov_clr --data cifar10
  python -m experiments.train --config table3_nesterov:clr_staged --workdir /tmp/t3_nesterov_clr_staged --data cifar10

Paper (Table 3, lines 189-190 of the paper's text): bounds 0.001 - 0.006; fixed (at 0.001) 82.1% at 70,000
iterations, triangular 81.3% at 25,000.
optax's Nesterov applies the rate after the momentum (Caffe's NesterovSolver before it).
"""

from experiments.configs import _table3

ARGS = _table3.ARGS
_ROW = dict(optimizer="nesterov", base_lr=0.001, max_lr=0.006, label="Nesterov", args=ARGS)


def sources(arg: str | None = None) -> dict:
  return _table3.sources("table3_nesterov", arg, **_ROW, lines={"fixed": 189, "clr": 190},
                         bounds="0.001 - 0.006")


def get_config(arg: str | None = None):
  return _table3.build("table3_nesterov", arg, **_ROW)
