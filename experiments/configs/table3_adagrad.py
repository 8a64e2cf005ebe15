"""Table 3, AdaGrad with and without CLR (cifar10_full).

  python -m experiments.train --config table3_adagrad:fixed --workdir /tmp/t3_adagrad_fixed --data cifar10
  python -m experiments.train --config table3_adagrad:clr --workdir /tmp/t3_adagrad_clr --data cifar10

Paper (Table 3 of arXiv 1506.01186v6, checked against its text): bounds 0.003 - 0.035; fixed (at
0.003) 74.6% at 70,000, triangular 76.0% at 25,000. (The rates were earlier fixed 0.01 and CLR
0.01-0.06 here, our own choice; they are now the paper's.)
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None):
  return _table3.build("table3_adagrad", arg, optimizer="adagrad", fixed_lr=0.003, base_lr=0.003, max_lr=0.035,
                       label="AdaGrad")
