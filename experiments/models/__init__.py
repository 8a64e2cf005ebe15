"""The paper's networks in Flax linen, by name.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> model = create_model("cifar10_full")
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  >>> model.apply(variables, jnp.zeros((2, 32, 32, 3)), train=False).shape
  (2, 10)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flax import linen as nn

from experiments.models.alexnet import AlexNet
from experiments.models.caffe import Cifar10BNSigmoid
from experiments.models.caffe import Cifar10Full
from experiments.models.caffe import Cifar10Quick
from experiments.models.caffe import caffe_multipliers
from experiments.models.densenet import DenseNet
from experiments.models.googlenet import GoogLeNet
from experiments.models.googlenet import softmax_loss
from experiments.models.resnet import CifarResNet

__all__ = ["CAFFE_NETS", "IMAGENET_MODELS", "MODELS", "caffe_multipliers", "create_model", "is_caffe_net",
           "softmax_loss", "uses_batch_norm"]

# name -> constructor taking (num_classes=..., **kw).
MODELS: dict[str, Callable[..., nn.Module]] = {
  "cifar10_full": Cifar10Full,
  "cifar10_quick": Cifar10Quick,
  "cifar10_bn_sigmoid": Cifar10BNSigmoid,
  "resnet20": functools.partial(CifarResNet, depth=20),
  "resnet56": functools.partial(CifarResNet, depth=56),
  "resnet110": functools.partial(CifarResNet, depth=110),
  "sd_resnet110": functools.partial(CifarResNet, depth=110, final_survival=0.5),
  "densenet40": functools.partial(DenseNet, depth=40, growth_rate=12),
  "densenet_bc100": functools.partial(DenseNet, depth=100, growth_rate=12, bottleneck=True, compression=0.5),
  # ImageNet (227x227 / 224x224 input). GoogLeNet's training output carries its auxiliary classifiers: score
  # and differentiate any model's training output with `softmax_loss`.
  "alexnet": functools.partial(AlexNet, variant="alexnet"),
  "caffenet": functools.partial(AlexNet, variant="caffenet"),
  "googlenet": GoogLeNet,
}

# The networks of the paper's ImageNet experiments, and the input side (pixels) of each.
IMAGENET_MODELS = {"alexnet": 227, "caffenet": 227, "googlenet": 224}

_BATCH_NORM = frozenset(MODELS) - {"cifar10_full", "cifar10_quick"} - set(IMAGENET_MODELS)
# The Caffe networks: every solver trains them with the prototxt's per-layer lr_mult and decay_mult
# (`caffe_multipliers`), as Caffe's solvers do; the others use one weight decay for all parameters.
CAFFE_NETS = frozenset({"cifar10_full", "cifar10_quick", "cifar10_bn_sigmoid", *IMAGENET_MODELS})


def create_model(name: str, num_classes: int = 10, **kw: Any) -> nn.Module:
  """Builds one of the paper's networks.

  Args:
    name: one of :data:`MODELS` (``cifar10_full``, ``cifar10_quick``, ``cifar10_bn_sigmoid``,
      ``resnet20``, ``resnet56``, ``resnet110``, ``sd_resnet110``, ``densenet40``, ``densenet_bc100``,
      ``alexnet``, ``caffenet``, ``googlenet``).
    num_classes: number of outputs.
    **kw: further module attributes, e.g. ``bn_axis_name="batch"`` to average BatchNorm statistics
      across pmap devices, ``final_survival`` for ``sd_resnet110``, ``dropout_rate`` for DenseNets.

  Returns:
    A ``flax.linen.Module`` called as ``model.apply(variables, x, train=...)`` on float32 NHWC input;
    with BatchNorm (see :func:`uses_batch_norm`) training needs ``mutable=["batch_stats"]``,
    ``sd_resnet110`` needs ``rngs={"stochastic_depth": key}`` and a DenseNet with dropout, AlexNet, CaffeNet
    and GoogLeNet ``rngs={"dropout": key}`` when ``train=True``; GoogLeNet then returns a
    ``GoogLeNetOutput`` (logits and auxiliary logits) for :func:`softmax_loss`.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name=}; choose one of {sorted(MODELS)}")
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int, got {num_classes=}")
  return MODELS[name](num_classes=num_classes, **kw)


def uses_batch_norm(name: str) -> bool:
  """Whether model ``name`` has a ``batch_stats`` collection to update while training."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name=}; choose one of {sorted(MODELS)}")
  return name in _BATCH_NORM


def is_caffe_net(name: str) -> bool:
  """Whether model ``name`` is one of the Caffe networks (:data:`CAFFE_NETS`), trained with Caffe's multipliers."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name=}; choose one of {sorted(MODELS)}")
  return name in CAFFE_NETS
