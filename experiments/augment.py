"""Normalisation statistics (on the host, once) and augmentation (on the device, inside compiled steps).

`channel_stats` and `mean_image` reduce a uint8 training set in float64; `normalize`,
`random_crop_flip` and `epoch_permutation` are batched `jnp` ops that run inside the compiled train
step on the device-resident dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np


def _chunks(images: np.ndarray, size: int = 2048) -> Iterator[np.ndarray]:
  for start in range(0, len(images), size):
    yield np.asarray(images[start:start + size], np.float64)


def _check_batch(name: str, images: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or not len(images):
    raise ValueError(f"{name} must be a non-empty uint8 [N, H, W, C] array, got {images.dtype} {images.shape}")
  return images


def channel_stats(train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and (population) standard deviation, in [0, 255] units.

  Args:
    train_images: uint8 [N, H, W, C].

  Returns:
    ``(mean, std)``, float32 [C] each. The sums of values and of squares are exact (integers in
    float64, below 2^53 for any dataset under ~10^9 pixels).
  """
  train_images = _check_batch("train_images", train_images)
  channels = train_images.shape[-1]
  total, squares = np.zeros(channels), np.zeros(channels)
  for chunk in _chunks(train_images):
    pixels = chunk.reshape(-1, channels)
    total += np.ones(len(pixels)) @ pixels  # BLAS: much faster than pixels.sum(axis=0)
    squares += np.ones(len(pixels)) @ (pixels * pixels)
  count = train_images.size // channels
  mean = total / count
  return mean.astype(np.float32), np.sqrt(squares / count - mean**2).astype(np.float32)


def mean_image(train_images: np.ndarray) -> np.ndarray:
  """The mean training image, float32 [H, W, C] in [0, 255] units (Caffe's mean-image subtraction).

  Use it as ``normalize(images, mean_image(train_images), 1.0)``.
  """
  train_images = _check_batch("train_images", train_images)
  total = sum(chunk.sum(axis=0) for chunk in _chunks(train_images))
  return (total / len(train_images)).astype(np.float32)


def normalize(images_uint8: jax.Array, mean, std) -> jax.Array:
  """``(images - mean) / std`` in float32; ``mean``, ``std`` broadcast (per channel or per pixel)."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (jnp.asarray(images_uint8, jnp.float32) - mean) / std


def random_crop_flip(key: jax.Array, images_uint8: jax.Array, *, pad: int = 4) -> jax.Array:
  """Pads each image with ``pad`` zero pixels per side, crops it back at random, flips half.

  Every image gets its own crop offset (uniform over the ``(2 pad + 1)^2`` positions) and its own
  horizontal flip (probability 1/2): the standard CIFAR augmentation, as one gather on the batch.

  Args:
    key: a PRNG key.
    images_uint8: [B, H, W, C] (any dtype; the output has the same).
    pad: pixels of zero padding per side; 0 only flips.

  Returns:
    The augmented batch, same shape and dtype.
  """
  if images_uint8.ndim != 4:
    raise ValueError(f"images_uint8 must be [B, H, W, C], got shape {images_uint8.shape}")
  if pad < 0:
    raise ValueError(f"pad must be non-negative, got {pad=}")
  b, h, w, _ = images_uint8.shape
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * pad + 1)
  flips = jax.random.bernoulli(flip_key, 0.5, (b,))
  padded = jnp.pad(images_uint8, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  rows = offsets[:, :1] + jnp.arange(h)                                             # [B, H]
  cols = offsets[:, 1:] + jnp.where(flips[:, None], jnp.arange(w)[::-1], jnp.arange(w))  # [B, W]
  return padded[jnp.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def epoch_permutation(key: jax.Array, n: int) -> jax.Array:
  """A random permutation of ``range(n)`` drawn on device: one epoch's order of the training set."""
  return jax.random.permutation(key, n)
