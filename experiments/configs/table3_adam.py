"""Table 3, ADAM with and without CLR (cifar10_full); the readings of its CLR rows are `_table3`'s.

  python -m experiments.train --config table3_adam:fixed --workdir /tmp/t3_adam_fixed --data cifar10
  python -m experiments.train --config table3_adam:clr --workdir /tmp/t3_adam_clr --data cifar10
  python -m experiments.train --config table3_adam:clr_staged --workdir /tmp/t3_adam_clr_staged --data cifar10
  python -m experiments.train --config table3_adam:clr70k --workdir /tmp/t3_adam_clr70k --data cifar10

Paper (Table 3, lines 191-193 of the paper's text): bounds 0.0005 - 0.002; fixed (at 0.0005) 81.4% at 70,000,
triangular 79.8% at 25,000 and 81.1% at 70,000.
beta1 0.9, beta2 0.999 and eps 1e-8 are ours (the usual Adam defaults): the paper does not state them.
"""

from experiments.configs import _table3

ARGS = _table3.ARGS_70K
_ROW = dict(optimizer="adam", base_lr=0.0005, max_lr=0.002, label="ADAM", args=ARGS)


def sources(arg: str | None = None) -> dict:
  return _table3.sources("table3_adam", arg, **_ROW, lines={"fixed": 191, "clr": 192, "clr70k": 193},
                         bounds="0.0005 - 0.002")


def get_config(arg: str | None = None):
  return _table3.build("table3_adam", arg, **_ROW)
