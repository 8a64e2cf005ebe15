"""Caffe's ImageNet reference networks ``bvlc_alexnet`` and ``bvlc_reference_caffenet`` in Flax linen.

The paper's AlexNet rows of Table 1 and its Fig. 7 range test ran Caffe's reference model. Both prototxts
have the same layers (60,965,224 parameters for 1000 classes):

  conv1 11x11/4 96 -> ReLU -> [LRN, max pool 3/2] -> conv2 5x5 256 (pad 2, group 2) -> ReLU -> [LRN, max
  pool 3/2] -> conv3 3x3 384 (pad 1) -> ReLU -> conv4 3x3 384 (pad 1, group 2) -> ReLU -> conv5 3x3 256
  (pad 1, group 2) -> ReLU -> max pool 3/2 -> fc6 4096 -> ReLU -> dropout 0.5 -> fc7 4096 -> ReLU ->
  dropout 0.5 -> fc8

and differ in two places: ``bvlc_alexnet`` normalises before pooling (norm1 -> pool1), CaffeNet pools
first (pool1 -> norm1), and their constant bias fillers differ (below). The LRN is across channels
(local_size 5, alpha 1e-4, beta 0.75), pooling is Caffe's ceil mode, weights start Gaussian (std 0.01;
fc6 and fc7 0.005), and every weight has lr_mult 1 / decay_mult 1, every bias lr_mult 2 / decay_mult 0
(:func:`experiments.models.caffe_multipliers`). ``group: 2`` is ``feature_group_count=2``: output
channel group ``g`` sees input channel group ``g`` only, as in Caffe. Caffe flattens ``pool5`` in
C, H, W order and Flax in H, W, C order, a fixed permutation of fc6's rows (see ``Cifar10Full``).

References:
  BVLC/caffe ``models/bvlc_alexnet/train_val.prototxt``, ``models/bvlc_reference_caffenet/train_val.prototxt``;
  Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012.
"""

from __future__ import annotations

import jax
from flax import linen as nn

from experiments.models.caffe_layers import caffe_max_pool, lrn_across_channels

__all__ = ["AlexNet", "BIAS_FILLERS"]

# The constant bias fillers of the two prototxts, per layer.
BIAS_FILLERS = {
  "alexnet": {"conv1": 0.0, "conv2": 0.1, "conv3": 0.0, "conv4": 0.1, "conv5": 0.1, "fc6": 0.1, "fc7": 0.1,
              "fc8": 0.0},
  "caffenet": {"conv1": 0.0, "conv2": 1.0, "conv3": 0.0, "conv4": 1.0, "conv5": 1.0, "fc6": 1.0, "fc7": 1.0,
               "fc8": 0.0},
}


class AlexNet(nn.Module):
  """``bvlc_alexnet`` (``variant="alexnet"``) or ``bvlc_reference_caffenet`` (``variant="caffenet"``).

  Takes float32 NHWC images, 227x227 in Caffe; smaller inputs work down to 55x55 (pool5 is then 1x1 and fc6
  has 256 inputs instead of 256 * 6 * 6).

  Attributes:
    num_classes: outputs of fc8.
    variant: ``"alexnet"`` or ``"caffenet"``: the LRN/pool order and the bias fillers.
    dropout_rate: drop6 / drop7's ``dropout_ratio`` (0.5); training needs ``rngs={"dropout": key}``.
    bn_axis_name: unused (no BatchNorm); accepted so every model takes the same arguments.
  """

  num_classes: int = 1000
  variant: str = "alexnet"
  dropout_rate: float = 0.5
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.variant not in BIAS_FILLERS:
      raise ValueError(f"AlexNet variant must be one of {sorted(BIAS_FILLERS)}, got {self.variant=}")
    bias = BIAS_FILLERS[self.variant]

    def conv(name, features, kernel, stride=1, pad=0, groups=1):
      return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                     feature_group_count=groups, kernel_init=nn.initializers.normal(0.01),
                     bias_init=nn.initializers.constant(bias[name]), name=name)

    def fc(name, features, std):
      return nn.Dense(features, kernel_init=nn.initializers.normal(std),
                      bias_init=nn.initializers.constant(bias[name]), name=name)

    def norm_and_pool(y):
      if self.variant == "alexnet":
        return caffe_max_pool(lrn_across_channels(y), 3, 2)
      return lrn_across_channels(caffe_max_pool(y, 3, 2))

    x = norm_and_pool(nn.relu(conv("conv1", 96, 11, stride=4)(x)))
    x = norm_and_pool(nn.relu(conv("conv2", 256, 5, pad=2, groups=2)(x)))
    x = nn.relu(conv("conv3", 384, 3, pad=1)(x))
    x = nn.relu(conv("conv4", 384, 3, pad=1, groups=2)(x))
    x = caffe_max_pool(nn.relu(conv("conv5", 256, 3, pad=1, groups=2)(x)), 3, 2)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(fc("fc6", 4096, 0.005)(x)))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(nn.relu(fc("fc7", 4096, 0.005)(x)))
    return fc("fc8", self.num_classes, 0.01)(x)
