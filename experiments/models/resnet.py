"""CIFAR ResNets (He et al. 2015, Sec. 4.2) and Stochastic Depth (Huang et al. 2016) in Flax linen.

A ResNet of depth ``6n + 2``: a 3x3 conv with 16 filters, three stages of ``n`` basic blocks with 16, 32
and 64 filters (the first block of stages 2 and 3 strides by 2), global average pooling and a dense
layer. Shortcuts are option A: identity, and where the shape changes, a stride-2 subsampling with the
new channels zero-padded (no parameters). Convolutions have no bias and He-normal weights
(``std = sqrt(2 / (k * k * out_channels))`` as fb.resnet.torch, on which the Stochastic Depth code is
built); BatchNorm uses PyTorch/Torch's defaults (running average 0.9 in Flax terms, eps 1e-5).

Stochastic depth drops each residual branch for the whole mini-batch with probability ``1 - p_l``,
``p_l = 1 - l / L * (1 - p_L)`` (``p_L = 0.5``, ``l = 1..L`` over all ``L`` blocks), and scales the
branch by ``p_l`` at test time. The gate is one Bernoulli draw per block per call from the
``"stochastic_depth"`` rng stream: give every device the same key to drop per global mini-batch as
the original does. A dropped branch is still computed and multiplied by zero (no ``lax.cond``, so
BatchNorm collectives stay unconditional under pmap); its BatchNorm running statistics therefore
still move on that batch, where the Torch original skips the block's forward pass.

References:
  He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", https://arxiv.org/abs/1512.03385
  Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth",
  https://arxiv.org/abs/1603.09382
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from experiments.models import materialize

__all__ = ["CifarResNet", "he_normal", "survival_probabilities"]

# fb.resnet.torch / Stochastic Depth / DenseNet originals: normal(0, sqrt(2 / (kh * kw * out_channels))).
he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def survival_probabilities(num_blocks: int, final_survival: float = 0.5) -> np.ndarray:
  """Linear-decay survival probabilities ``p_l = 1 - l / L * (1 - p_L)`` for ``l = 1..L``.

  Args:
    num_blocks: number of residual blocks ``L``.
    final_survival: ``p_L``, the last block's survival probability.

  Returns:
    float32 array of length ``num_blocks``.

  Examples:
    >>> survival_probabilities(4).tolist()
    [0.875, 0.75, 0.625, 0.5]
  """
  if num_blocks < 1 or not 0.0 < final_survival <= 1.0:
    raise ValueError(f"need num_blocks >= 1 and 0 < final_survival <= 1, got {num_blocks=}, {final_survival=}")
  layers = np.arange(1, num_blocks + 1, dtype=np.float64)
  return (1.0 - layers / num_blocks * (1.0 - final_survival)).astype(np.float32)


class _BasicBlock(nn.Module):
  features: int
  strides: int
  survival: float | None  # None: plain residual block
  bn_axis_name: str | None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = functools.partial(nn.Conv, kernel_size=(3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                             kernel_init=he_normal, conv_general_dilated=materialize.conv_general_dilated)
    norm = functools.partial(
      nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=self.bn_axis_name)
    y = conv(self.features, strides=(self.strides, self.strides))(x)
    y = nn.relu(norm()(y))
    y = norm()(conv(self.features)(y))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = x[:, :: self.strides, :: self.strides, :]
      extra = self.features - x.shape[-1]
      shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    if self.survival is not None:
      if train:
        gate = jax.random.bernoulli(self.make_rng("stochastic_depth"), self.survival)
        y = y * gate.astype(y.dtype)
      else:
        y = y * self.survival
    return nn.relu(shortcut + y)


class CifarResNet(nn.Module):
  """ResNet-(6n+2) for CIFAR with option-A shortcuts, optionally with stochastic depth.

  Attributes:
    depth: 20, 32, 44, 56, 110, ... (``depth = 6n + 2``).
    num_classes: outputs of the final dense layer.
    final_survival: None for a plain ResNet, else stochastic depth's ``p_L`` (0.5 in the paper).
    bn_axis_name: pmap axis name over which BatchNorm statistics are averaged, or None.
  """

  depth: int = 20
  num_classes: int = 10
  final_survival: float | None = None
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if (self.depth - 2) % 6 or self.depth < 8:
      raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got depth={self.depth}")
    blocks_per_stage = (self.depth - 2) // 6
    survival = [None] * (3 * blocks_per_stage)
    if self.final_survival is not None:
      survival = [float(p) for p in survival_probabilities(3 * blocks_per_stage, self.final_survival)]
    x = nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, kernel_init=he_normal,
                conv_general_dilated=materialize.conv_general_dilated)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=self.bn_axis_name)(x)
    x = nn.relu(x)
    index = 0
    for stage, features in enumerate((16, 32, 64)):
      for block in range(blocks_per_stage):
        strides = 2 if stage > 0 and block == 0 else 1
        x = _BasicBlock(features, strides, survival[index], self.bn_axis_name)(x, train)
        index += 1
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)
