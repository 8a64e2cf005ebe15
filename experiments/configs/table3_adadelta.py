"""Table 3, AdaDelta with and without CLR (cifar10_full).

  python -m experiments.train --config table3_adadelta:fixed --workdir /tmp/t3_adadelta_fixed --data cifar10
  python -m experiments.train --config table3_adadelta:clr --workdir /tmp/t3_adadelta_clr --data cifar10

Paper (Table 3 of arXiv 1506.01186v6, checked against its text): bounds 0.01 - 0.1; fixed (at 0.01)
67.3% at 70,000, triangular 67.3% at 25,000. (The rates were earlier Caffe's AdaDelta example rate 1.0
and CLR 0.5-2.0 here, our own choice; they are now the paper's.) rho 0.95 and delta 1e-6 are Caffe's
AdaDelta example's: the paper does not state them.
"""

from experiments.configs import _table3

ARGS = ("fixed", "clr")


def get_config(arg: str | None = None):
  return _table3.build("table3_adadelta", arg, optimizer="adadelta", fixed_lr=0.01, base_lr=0.01, max_lr=0.1,
                       extra={"optim.rms_decay": 0.95, "optim.eps": 1e-6},
                       label="AdaDelta")
