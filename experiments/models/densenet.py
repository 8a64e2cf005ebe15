"""DenseNets for CIFAR (Huang, Liu, van der Maaten, Weinberger 2017) in Flax linen.

Three dense blocks on 32x32, 16x16 and 8x8 maps joined by transitions (BN-ReLU-1x1 conv-2x2 average
pool), then BN-ReLU, global average pooling and a dense layer.

* DenseNet (L=40, k=12): a 3x3 conv with 16 filters, 12 layers per block, each BN-ReLU-3x3 conv(k);
  transitions keep the channel count.
* DenseNet-BC (L=100, k=12): a 3x3 conv with 2k filters, 16 bottleneck layers per block, each
  BN-ReLU-1x1 conv(4k)-BN-ReLU-3x3 conv(k); transitions halve the channels (compression 0.5).

Convolutions have no bias and He-normal weights (``std = sqrt(2 / (k * k * out_channels))``, as the
Torch original); BatchNorm uses running average 0.9 (Flax terms) and eps 1e-5. Dropout after each conv
(rate 0.2 in the paper for the runs *without* data augmentation, 0 with it) is ``dropout_rate`` and
uses the ``"dropout"`` rng stream.

References:
  Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks",
  https://arxiv.org/abs/1608.06993
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from experiments.models import materialize
from experiments.models.resnet import he_normal

__all__ = ["DenseNet"]


class DenseNet(nn.Module):
  """DenseNet / DenseNet-BC for 32x32 inputs.

  Attributes:
    depth: total depth L (40 for DenseNet-40, 100 for DenseNet-BC-100).
    growth_rate: k.
    bottleneck: use BN-ReLU-1x1 conv(4k) before each 3x3 conv (the "B" of BC).
    compression: channel factor of the transitions (1.0, or 0.5 for the "C" of BC).
    num_classes: outputs of the final dense layer.
    dropout_rate: dropout after each conv inside blocks and transitions (0 with augmentation).
    bn_axis_name: pmap axis name over which BatchNorm statistics are averaged, or None.
  """

  depth: int = 40
  growth_rate: int = 12
  bottleneck: bool = False
  compression: float = 1.0
  num_classes: int = 10
  dropout_rate: float = 0.0
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    per_block = (self.depth - 4) // (6 if self.bottleneck else 3)
    if per_block < 1 or (self.depth - 4) % (6 if self.bottleneck else 3):
      raise ValueError(
        f"DenseNet depth must be 3n + 4 (6n + 4 with bottleneck), got depth={self.depth}, "
        f"bottleneck={self.bottleneck}")
    if not 0.0 < self.compression <= 1.0:
      raise ValueError(f"compression must be in (0, 1], got compression={self.compression}")
    k = self.growth_rate
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=he_normal,
                             conv_general_dilated=materialize.conv_general_dilated)
    conv3 = functools.partial(conv, kernel_size=(3, 3), padding=((1, 1), (1, 1)))
    norm = functools.partial(
      nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5, axis_name=self.bn_axis_name)
    drop = functools.partial(nn.Dropout, rate=self.dropout_rate, deterministic=not train)

    def maybe_drop(y):
      return drop()(y) if self.dropout_rate > 0 else y

    channels = 2 * k if self.bottleneck else 16
    x = conv3(channels)(x)
    for block in range(3):
      for _ in range(per_block):
        y = nn.relu(norm()(x))
        if self.bottleneck:
          y = maybe_drop(conv(4 * k, kernel_size=(1, 1))(y))
          y = nn.relu(norm()(y))
        y = maybe_drop(conv3(k)(y))
        x = jnp.concatenate([x, y], axis=-1)
        channels += k
      if block < 2:
        channels = int(channels * self.compression)
        x = maybe_drop(conv(channels, kernel_size=(1, 1))(nn.relu(norm()(x))))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(norm()(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)
