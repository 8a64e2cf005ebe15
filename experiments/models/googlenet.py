"""Caffe's ``bvlc_googlenet`` (Inception v1) in Flax linen, with its two auxiliary classifiers.

The paper's GoogLeNet rows of Table 1 and its Fig. 11 range test ran Caffe's ``bvlc_googlenet``:

  conv1/7x7_s2 64 (pad 3) -> ReLU -> max pool 3/2 -> LRN -> conv2/3x3_reduce 64 -> ReLU -> conv2/3x3 192
  (pad 1) -> ReLU -> LRN -> max pool 3/2 -> inception 3a, 3b -> max pool 3/2 -> inception 4a, [loss1] 4b,
  4c, 4d, [loss2] 4e -> max pool 3/2 -> inception 5a, 5b -> ave pool 7/1 -> dropout 0.4 -> loss3/classifier

Each inception block concatenates four branches (1x1; 1x1 reduce -> 3x3 pad 1; 1x1 reduce -> 5x5 pad 2;
max pool 3/1 pad 1 -> 1x1 pool_proj), each convolution followed by a ReLU. The auxiliary classifiers
``loss1`` (on inception_4a) and ``loss2`` (on inception_4d) are ave pool 5/3 -> conv 1x1 128 -> ReLU ->
fc 1024 -> ReLU -> dropout 0.7 -> classifier; Caffe adds their softmax losses with ``loss_weight: 0.3``.

Layer names are the prototxt's, split at ``/`` into nested modules (``inception_3a/1x1`` is
``params["inception_3a"]["1x1"]``), so :func:`experiments.models.caffe_multipliers` finds Caffe's
multipliers (weights lr 1 / decay 1, biases lr 2 / decay 0). Weights use Caffe's ``xavier`` filler
(uniform, variance 1 / fan_in), biases the constant 0.2 (the three classifiers 0). Pooling is Caffe's
ceil mode, LRN across channels (5, 1e-4, 0.75).

Training output: with ``train=True`` the model returns a :class:`GoogLeNetOutput` ``(logits,
aux_logits)``; :func:`softmax_loss` turns it (or any model's plain logits) into Caffe's training loss and
the logits to score. With ``train=False`` it returns loss3's logits only, as the other models.

References:
  BVLC/caffe ``models/bvlc_googlenet/train_val.prototxt``; Szegedy et al., "Going Deeper with
  Convolutions", CVPR 2015 (arXiv 1409.4842).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from experiments.models.caffe_layers import caffe_avg_pool, caffe_max_pool, lrn_across_channels

__all__ = ["AUX_LOSS_WEIGHT", "AuxClassifier", "GoogLeNet", "GoogLeNetOutput", "INCEPTION_WIDTHS", "Inception",
           "softmax_loss"]

# Caffe's loss_weight of loss1/loss and loss2/loss (loss3/loss3 has 1).
AUX_LOSS_WEIGHT = 0.3

# Per inception block, its convolutions' num_output in the prototxt:
# (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj).
INCEPTION_WIDTHS = {
  "inception_3a": (64, 96, 128, 16, 32, 32),
  "inception_3b": (128, 128, 192, 32, 96, 64),
  "inception_4a": (192, 96, 208, 16, 48, 64),
  "inception_4b": (160, 112, 224, 24, 64, 64),
  "inception_4c": (128, 128, 256, 24, 64, 64),
  "inception_4d": (112, 144, 288, 32, 64, 64),
  "inception_4e": (256, 160, 320, 32, 128, 128),
  "inception_5a": (256, 160, 320, 32, 128, 128),
  "inception_5b": (384, 192, 384, 48, 128, 128),
}

_XAVIER = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")  # Caffe's XavierFiller (FAN_IN)


class GoogLeNetOutput(NamedTuple):
  """GoogLeNet's training output: loss3's logits and those of the auxiliary classifiers (loss1, loss2)."""

  logits: jax.Array
  aux_logits: tuple[jax.Array, ...]


def _conv(name: str, features: int, kernel: int, stride: int = 1, pad: int = 0) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                 kernel_init=_XAVIER, bias_init=nn.initializers.constant(0.2), name=name)


def _classifier(name: str, features: int) -> nn.Dense:
  return nn.Dense(features, kernel_init=_XAVIER, bias_init=nn.initializers.zeros, name=name)


class _Scope(nn.Module):
  """A chain of convolutions (each followed by a ReLU) under one prototxt prefix, e.g. ``conv2/``."""

  layers: tuple[tuple[str, int, int, int, int], ...]  # (name, num_output, kernel, stride, pad)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for name, features, kernel, stride, pad in self.layers:
      x = nn.relu(_conv(name, features, kernel, stride, pad)(x))
    return x


class _Loss3(nn.Module):
  """``loss3/classifier``, the main classifier."""

  num_classes: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return _classifier("classifier", self.num_classes)(x)


class Inception(nn.Module):
  """One inception block: the concatenation of its 1x1, 3x3, 5x5 and pool-projection branches."""

  widths: tuple[int, int, int, int, int, int]

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w1, r3, w3, r5, w5, wp = self.widths
    b1 = nn.relu(_conv("1x1", w1, 1)(x))
    b3 = nn.relu(_conv("3x3", w3, 3, pad=1)(nn.relu(_conv("3x3_reduce", r3, 1)(x))))
    b5 = nn.relu(_conv("5x5", w5, 5, pad=2)(nn.relu(_conv("5x5_reduce", r5, 1)(x))))
    bp = nn.relu(_conv("pool_proj", wp, 1)(caffe_max_pool(x, 3, 1, 1)))
    return jnp.concatenate([b1, b3, b5, bp], axis=-1)


class AuxClassifier(nn.Module):
  """``loss1`` / ``loss2``: ave pool 5/3 -> conv 1x1 128 -> ReLU -> fc 1024 -> ReLU -> dropout -> classifier."""

  num_classes: int
  dropout_rate: float = 0.7

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = nn.relu(_conv("conv", 128, 1)(caffe_avg_pool(x, 5, 3)))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(1024, kernel_init=_XAVIER, bias_init=nn.initializers.constant(0.2), name="fc")(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return _classifier("classifier", self.num_classes)(x)


class GoogLeNet(nn.Module):
  """Caffe ``bvlc_googlenet``: 6,998,552 parameters for 1000 classes, 13,378,280 with the auxiliary heads.

  Takes float32 NHWC images, 224x224 in Caffe. pool5 is a 7x7 average pool, the whole final map at 224;
  smaller inputs need ``pool5_window`` no larger than their final map (3 at 96x96).

  Attributes:
    num_classes: outputs of each classifier.
    aux_classifiers: build loss1 and loss2 (as the train_val prototxt); False gives the deploy network.
    pool5_window: pool5's kernel (Caffe: 7).
    dropout_rate: pool5/drop_7x7_s1's ratio (0.4); the auxiliary heads' is 0.7.
    bn_axis_name: unused (no BatchNorm); accepted so every model takes the same arguments.
  """

  num_classes: int = 1000
  aux_classifiers: bool = True
  pool5_window: int = 7
  dropout_rate: float = 0.4
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | GoogLeNetOutput:
    x = _Scope((("7x7_s2", 64, 7, 2, 3),), name="conv1")(x)
    x = lrn_across_channels(caffe_max_pool(x, 3, 2))
    x = _Scope((("3x3_reduce", 64, 1, 1, 0), ("3x3", 192, 3, 1, 1)), name="conv2")(x)
    x = caffe_max_pool(lrn_across_channels(x), 3, 2)
    aux = []
    for block in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
      if block in ("4a", "5a"):
        x = caffe_max_pool(x, 3, 2)  # pool3/3x3_s2, pool4/3x3_s2
      name = f"inception_{block}"
      x = Inception(INCEPTION_WIDTHS[name], name=name)(x)
      if self.aux_classifiers and block in ("4a", "4d"):
        head = AuxClassifier(self.num_classes, name="loss1" if block == "4a" else "loss2")
        # Built at init in either mode so that the parameters do not depend on `train`.
        if train or self.is_initializing():
          aux.append(head(x, train))
    x = caffe_avg_pool(x, self.pool5_window, 1)
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x.reshape((x.shape[0], -1)))
    logits = _Loss3(self.num_classes, name="loss3")(x)
    if train and self.aux_classifiers:
      return GoogLeNetOutput(logits, tuple(aux))
    return logits


def softmax_loss(output: jax.Array | GoogLeNetOutput, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A model's training loss as Caffe sums it, and the logits to score.

  .. math::
    L = \\mathrm{CE}(\\text{loss3}) + 0.3 \\, \\mathrm{CE}(\\text{loss1}) + 0.3 \\, \\mathrm{CE}(\\text{loss2})

  for a :class:`GoogLeNetOutput`, each term the batch mean of the softmax cross-entropy; for plain logits
  (every other model, or GoogLeNet with ``train=False``) the mean cross-entropy of the logits.

  Args:
    output: ``model.apply(..., train=True)``'s result (without the mutable collections).
    labels: int [B] class indices.

  Returns:
    ``(loss, logits)``: the scalar loss to differentiate (float32) and the main classifier's logits.
  """
  if isinstance(output, GoogLeNetOutput):
    logits, aux_logits = output
  else:
    logits, aux_logits = output, ()

  def ce(z: Any) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(z.astype(jnp.float32), labels).mean()

  loss = ce(logits)
  for z in aux_logits:
    loss = loss + AUX_LOSS_WEIGHT * ce(z)
  return loss, logits
