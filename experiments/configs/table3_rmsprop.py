"""Table 3, RMSprop with and without CLR (cifar10_full); the readings of its CLR rows are `_table3`'s.

  python -m experiments.train --config table3_rmsprop:fixed --workdir /tmp/t3_rmsprop_fixed --data cifar10
  python -m experiments.train --config table3_rmsprop:clr --workdir /tmp/t3_rmsprop_clr --data cifar10
  python -m experiments.train --config table3_rmsprop:clr_staged --workdir /tmp/t3_rmsprop_clr_staged --data cifar10
  python -m experiments.train --config table3_rmsprop:clr70k --workdir /tmp/t3_rmsprop_clr70k --data cifar10

Paper (Table 3, lines 194-196 of the paper's text): bounds 0.0001 - 0.0003; fixed (at 0.0001) 75.2% at 70,000,
triangular 72.8% at 25,000 and 75.1% at 70,000.
rms_decay 0.98 is ours: the paper does not state it.
"""

from experiments.configs import _table3

ARGS = _table3.ARGS_70K
_ROW = dict(optimizer="rmsprop", base_lr=0.0001, max_lr=0.0003, label="RMSprop", args=ARGS)


def sources(arg: str | None = None) -> dict:
  return _table3.sources("table3_rmsprop", arg, **_ROW, lines={"fixed": 194, "clr": 195, "clr70k": 196},
                         bounds="0.0001 - 0.0003")


def get_config(arg: str | None = None):
  return _table3.build("table3_rmsprop", arg, **_ROW, extra={"optim.rms_decay": 0.98})
