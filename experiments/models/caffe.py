"""Caffe's CIFAR-10 example networks in Flax linen, with Caffe's own layer semantics.

The paper's Table 1, Fig. 6 and Table 3 baselines ran Caffe's ``examples/cifar10`` networks:
`Cifar10Full`, `Cifar10Quick` and `Cifar10BNSigmoid`, built from Caffe's pooling, within-channel LRN and
BatchNorm (`experiments.models.caffe_layers`) rather than their Flax look-alikes, which change the numbers.

Layer and parameter names follow the prototxt (``conv1``, ``ip1``, ...), so Caffe's per-layer
``lr_mult``/``decay_mult`` can be looked up by name: see :func:`caffe_multipliers`.

References:
  BVLC/caffe ``examples/cifar10/cifar10_full_train_test.prototxt``, ``cifar10_quick_train_test.prototxt``,
  ``cifar10_full_sigmoid_train_test_bn.prototxt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
from flax import linen as nn

from experiments.models import materialize
from experiments.models.caffe_layers import CaffeBatchNorm
from experiments.models.caffe_layers import caffe_avg_pool
from experiments.models.caffe_layers import caffe_max_pool
from experiments.models.caffe_layers import lrn_within_channel

__all__ = ["Cifar10BNSigmoid", "Cifar10Full", "Cifar10Quick", "caffe_multipliers"]


def _conv(name: str, features: int, std: float, use_bias: bool = True) -> nn.Conv:
  return nn.Conv(
    features, (5, 5), padding=((2, 2), (2, 2)), use_bias=use_bias,
    kernel_init=nn.initializers.normal(std), bias_init=nn.initializers.zeros, name=name,
    conv_general_dilated=materialize.conv_general_dilated)


def _ip(name: str, features: int, std: float) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.normal(std), bias_init=nn.initializers.zeros, name=name)


class Cifar10Full(nn.Module):
  """Caffe ``cifar10_full`` (89,578 parameters), the paper's Table 1 network.

  conv1 5x5x32 (pad 2, std 1e-4) -> max pool 3/2 -> ReLU -> LRN -> conv2 5x5x32 (std 0.01) -> ReLU ->
  avg pool 3/2 -> LRN -> conv3 5x5x64 (std 0.01) -> ReLU -> avg pool 3/2 -> ip1 (std 0.01), biases zero.
  Caffe flattens ``pool3`` in C, H, W order and Flax in H, W, C order: a fixed permutation of ``ip1``'s
  rows, which changes nothing for a network trained from an i.i.d. Gaussian start.

  Attributes:
    num_classes: outputs of ``ip1``.
    lrn_alpha: LRN alpha (5e-5).
    lrn_beta: LRN beta (0.75).
    lrn_size: LRN window (3).
    bn_axis_name: unused (no BatchNorm); accepted so every model takes the same arguments.
  """

  num_classes: int = 10
  lrn_alpha: float = 5e-5
  lrn_beta: float = 0.75
  lrn_size: int = 3
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no train/test difference
    lrn = lambda y: lrn_within_channel(y, self.lrn_size, self.lrn_alpha, self.lrn_beta)  # noqa: E731
    x = _conv("conv1", 32, 1e-4)(x)
    x = lrn(nn.relu(caffe_max_pool(x, 3, 2)))
    x = lrn(caffe_avg_pool(nn.relu(_conv("conv2", 32, 1e-2)(x)), 3, 2))
    x = caffe_avg_pool(nn.relu(_conv("conv3", 64, 1e-2)(x)), 3, 2)
    return _ip("ip1", self.num_classes, 1e-2)(x.reshape((x.shape[0], -1)))


class Cifar10Quick(nn.Module):
  """Caffe ``cifar10_quick`` (145,578 parameters).

  conv1 5x5x32 (std 1e-4) -> max pool 3/2 -> ReLU -> conv2 5x5x32 (std 0.01) -> ReLU -> avg pool 3/2 ->
  conv3 5x5x64 (std 0.01) -> ReLU -> avg pool 3/2 -> ip1 64 (std 0.1) -> ip2 (std 0.1); every conv pads 2,
  biases start at zero. As in the prototxt there is no nonlinearity between ip1 and ip2.

  Attributes:
    num_classes: outputs of ``ip2``.
    bn_axis_name: unused (no BatchNorm).
  """

  num_classes: int = 10
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    x = nn.relu(caffe_max_pool(_conv("conv1", 32, 1e-4)(x), 3, 2))
    x = caffe_avg_pool(nn.relu(_conv("conv2", 32, 1e-2)(x)), 3, 2)
    x = caffe_avg_pool(nn.relu(_conv("conv3", 64, 1e-2)(x)), 3, 2)
    x = _ip("ip1", 64, 0.1)(x.reshape((x.shape[0], -1)))
    return _ip("ip2", self.num_classes, 0.1)(x)


class Cifar10BNSigmoid(nn.Module):
  """Caffe ``cifar10_full_sigmoid_train_test_bn``: the paper's Fig. 6 network (89,450 parameters).

  ``cifar10_full`` without LRN, with sigmoid for ReLU and a Caffe ``BatchNorm`` (no scale/shift) where
  the prototxt puts it: conv1 -> max pool -> bn1 -> sigmoid -> conv2 -> bn2 ->
  sigmoid -> avg pool -> conv3 -> bn3 -> sigmoid -> avg pool -> ip1. The convs have no bias
  (``bias_term: false``), the Gaussian inits are those of ``cifar10_full``.

  Attributes:
    num_classes: outputs of ``ip1``.
    bn_axis_name: pmap axis name over which BatchNorm statistics are averaged, or None.
    moving_average_fraction: Caffe BatchNorm's running-average factor (0.999).
  """

  num_classes: int = 10
  bn_axis_name: str | None = None
  moving_average_fraction: float = 0.999

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    def bn(name, y):
      return CaffeBatchNorm(self.moving_average_fraction, axis_name=self.bn_axis_name, name=name)(y, train)

    x = caffe_max_pool(_conv("conv1", 32, 1e-4, use_bias=False)(x), 3, 2)
    x = nn.sigmoid(bn("bn1", x))
    x = nn.sigmoid(bn("bn2", _conv("conv2", 32, 1e-2, use_bias=False)(x)))
    x = caffe_avg_pool(x, 3, 2)
    x = nn.sigmoid(bn("bn3", _conv("conv3", 64, 1e-2, use_bias=False)(x)))
    x = caffe_avg_pool(x, 3, 2)
    return _ip("ip1", self.num_classes, 1e-2)(x.reshape((x.shape[0], -1)))


# Caffe's per-layer multipliers: layer -> ((weight lr_mult, weight decay_mult), (bias lr_mult, bias decay_mult)).
# Caffe's defaults are lr_mult 1 and decay_mult 1 for every blob, biases included; layers absent here use them.
_CAFFE_MULTIPLIERS: dict[str, dict[str, tuple[tuple[float, float], tuple[float, float]]]] = {
  # cifar10_full_train_test.prototxt: conv1/conv2 biases lr_mult 2; conv3 has no param blocks;
  # ip1 weights decay_mult 250, ip1 bias lr_mult 2 and decay_mult 0.
  "cifar10_full": {
    "conv1": ((1.0, 1.0), (2.0, 1.0)),
    "conv2": ((1.0, 1.0), (2.0, 1.0)),
    "ip1": ((1.0, 250.0), (2.0, 0.0)),
  },
  # cifar10_quick_train_test.prototxt: every bias lr_mult 2, decay_mult left at 1.
  "cifar10_quick": {
    "conv1": ((1.0, 1.0), (2.0, 1.0)),
    "conv2": ((1.0, 1.0), (2.0, 1.0)),
    "conv3": ((1.0, 1.0), (2.0, 1.0)),
    "ip1": ((1.0, 1.0), (2.0, 1.0)),
    "ip2": ((1.0, 1.0), (2.0, 1.0)),
  },
  # cifar10_full_sigmoid_train_test_bn.prototxt: convs have no bias; ip1 bias decay_mult 0.
  # (Its solver sets no weight_decay, so decay multipliers only matter if one is given.)
  "cifar10_bn_sigmoid": {
    "ip1": ((1.0, 1.0), (1.0, 0.0)),
  },
}

# Networks whose every layer has the same param blocks: models/bvlc_alexnet, bvlc_reference_caffenet and
# bvlc_googlenet train_val.prototxt give every convolution and inner product weights lr_mult 1 / decay_mult 1
# and biases lr_mult 2 / decay_mult 0 (the auxiliary classifiers' layers too).
_CAFFE_UNIFORM_MULTIPLIERS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
  "alexnet": ((1.0, 1.0), (2.0, 0.0)),
  "caffenet": ((1.0, 1.0), (2.0, 0.0)),
  "googlenet": ((1.0, 1.0), (2.0, 0.0)),
}


def caffe_multipliers(name: str) -> tuple[Callable[[Sequence[str], Any], float], Callable[[Sequence[str], Any], float]]:
  """Caffe's ``lr_mult`` and ``decay_mult`` for a Caffe network's parameters, chosen by path.

  Args:
    name: ``"cifar10_full"``, ``"cifar10_quick"``, ``"cifar10_bn_sigmoid"``, ``"alexnet"``, ``"caffenet"`` or
      ``"googlenet"``.

  Returns:
    ``(lr_mult, decay_mult)``: functions ``(path, param) -> float`` where ``path`` is the parameter's
    key path as strings, e.g. ``("conv1", "bias")`` or GoogLeNet's ``("inception_3a", "1x1", "kernel")``
    (the layer is the path joined by ``/``, Caffe's name ``inception_3a/1x1``; a leading ``"params"`` is
    ignored), as :func:`experiments.optim.caffe_sgd` expects.

  Examples:
    >>> lr_mult, decay_mult = caffe_multipliers("cifar10_full")
    >>> lr_mult(("conv1", "bias"), None), decay_mult(("ip1", "kernel"), None)
    (2.0, 250.0)
  """
  known = sorted(_CAFFE_MULTIPLIERS) + sorted(_CAFFE_UNIFORM_MULTIPLIERS)
  if name not in known:
    raise ValueError(f"no Caffe multipliers for {name=}; known: {known}")
  table = _CAFFE_MULTIPLIERS.get(name, {})
  default = _CAFFE_UNIFORM_MULTIPLIERS.get(name, ((1.0, 1.0), (1.0, 1.0)))

  def lookup(path: Sequence[str], which: int) -> float:
    path = tuple(path)
    if path and path[0] == "params":
      path = path[1:]
    if len(path) < 2 or path[-1] not in ("kernel", "bias"):
      raise ValueError(f"expected a ('layer', ..., 'kernel'|'bias') parameter path of a {name} network, got {path=}")
    layer, blob = "/".join(path[:-1]), path[-1]
    weight, bias = table.get(layer, default)
    return (weight if blob == "kernel" else bias)[which]

  return (lambda path, param: lookup(path, 0)), (lambda path, param: lookup(path, 1))
