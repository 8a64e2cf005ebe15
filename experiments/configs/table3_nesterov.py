"""Table 3, Nesterov momentum with and without CLR (cifar10_full).

  python -m experiments.train --config table3_nesterov:fixed --workdir /tmp/t3_nesterov_fixed --data cifar10
  python -m experiments.train --config table3_nesterov:clr --workdir /tmp/t3_nesterov_clr --data cifar10

Paper (Table 3 of arXiv 1506.01186v6, checked against its text): bounds 0.001 - 0.006; fixed (at
0.001) 82.1% at 70,000 iterations, triangular 81.3% at 25,000. optax's Nesterov applies the rate after
the momentum (Caffe's NesterovSolver before it).
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None):
  return _table3.build("table3_nesterov", arg, optimizer="nesterov", fixed_lr=0.001, base_lr=0.001, max_lr=0.006,
                       label="Nesterov")
