"""Table 3, Adam with and without CLR (cifar10_full).

  python -m experiments.train --config table3_adam:fixed --workdir /tmp/t3_adam_fixed --data cifar10
  python -m experiments.train --config table3_adam:clr --workdir /tmp/t3_adam_clr --data cifar10
  python -m experiments.train --config table3_adam:clr70k --workdir /tmp/t3_adam_clr70k --data cifar10

Paper (Table 3 of arXiv 1506.01186v6, checked against its text): bounds 0.0005 - 0.002; fixed (at
0.0005) 81.4% at 70,000, triangular 79.8% at 25,000 and 81.1% at 70,000. (The CLR max_lr was earlier
0.003 here, written from memory; the paper's is 0.002.)
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr", "clr70k")


def get_config(arg: str | None = None):
  return _table3.build("table3_adam", arg, optimizer="adam", fixed_lr=0.0005, base_lr=0.0005, max_lr=0.002,
                       label="Adam", args=ARGS)
