"""Caffe's layer semantics in JAX: its pooling, its within-channel and across-channel LRN, its BatchNorm.

Three details of Caffe change the numbers and are reproduced here rather than replaced by their Flax
look-alikes:

* **Pooling** rounds the output size *up* (``ceil((H + 2 pad - k) / s) + 1``; 32 -> 16 -> 8 -> 4 for a
  3x3/2 window) and an average pool divides by the window clipped to the padded input, not by ``k*k``
  (``PoolingLayer::Forward_cpu``).
* **Within-channel LRN** is Caffe's composite of square -> average pool (``local_size``, pad
  ``(local_size-1)/2``) -> power(shift 1, scale alpha, power -beta) -> product, i.e.
  ``x * (1 + alpha / n^2 * sum_{n x n} x^2) ** -beta`` with zero padding (``LRNLayer::LayerSetUp``).
  Caffe's default across-channel LRN is :func:`lrn_across_channels`.
* **BatchNorm** keeps Caffe's *normalised* running sums (``moving_average_fraction`` 0.999,
  bias-corrected by a running scale factor, the variance with the ``m / (m - 1)`` correction) and has no
  learnable scale or shift, as Caffe's ``BatchNorm`` layer without a following ``Scale`` layer.

The networks built from them: `experiments.models.caffe` (CIFAR-10), `experiments.models.alexnet`,
`experiments.models.googlenet`.

References:
  BVLC/caffe ``src/caffe/layers/pooling_layer.cpp``, ``lrn_layer.cpp``, ``batch_norm_layer.cpp``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from experiments.models import materialize

__all__ = [
  "CaffeBatchNorm",
  "caffe_avg_pool",
  "caffe_max_pool",
  "caffe_pool_output_size",
  "lrn_across_channels",
  "lrn_within_channel",
]


def caffe_pool_output_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
  """Caffe's pooled output length along one axis (ceil mode, last window must start inside).

  Args:
    size: input length.
    kernel: window length.
    stride: window stride.
    pad: zero padding on each side.

  Returns:
    ``ceil((size + 2 pad - kernel) / stride) + 1``, less one when padding would make the last window
    start in the padding, exactly as ``PoolingLayer::Reshape``.
  """
  if kernel <= 0 or stride <= 0 or pad < 0 or pad >= kernel:
    raise ValueError(f"pooling needs kernel > 0, stride > 0, 0 <= pad < kernel, got {kernel=}, {stride=}, {pad=}")
  if size + 2 * pad < kernel:
    raise ValueError(f"pooling window larger than the padded input, got {size=}, {kernel=}, {pad=}")
  out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
  if pad and (out - 1) * stride >= size + pad:
    out -= 1
  return out


def _pool_padding(size: int, kernel: int, stride: int, pad: int) -> tuple[int, tuple[int, int]]:
  """Output length and the (low, high) padding that makes a VALID window cover Caffe's windows."""
  out = caffe_pool_output_size(size, kernel, stride, pad)
  high = max(0, (out - 1) * stride + kernel - size - pad)
  return out, (pad, high)


def _window_reduce(x: jax.Array, init: float, op, kernel: int, stride: int, pad: int) -> jax.Array:
  """Reduces Caffe's pooling windows with `op` as two separable passes of strided slices: along each row of
  a window (columns), then across its rows (``init`` pads the input)."""
  _, height, width, _ = x.shape
  out_h, pad_h = _pool_padding(height, kernel, stride, pad)
  out_w, pad_w = _pool_padding(width, kernel, stride, pad)
  x = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=np.array(init, x.dtype))
  cols = None
  for j in range(kernel):
    v = x[:, :, j : j + (out_w - 1) * stride + 1 : stride, :]
    cols = v if cols is None else op(cols, v)
  out = None
  for i in range(kernel):
    v = cols[:, i : i + (out_h - 1) * stride + 1 : stride, :, :]
    out = v if out is None else op(out, v)
  return out


def _shift(a: jax.Array, axis: int, low: int, length: int) -> jax.Array:
  """`a` after `low` zeros along `axis`, cut or zero-extended to `length`."""
  widths = [(0, 0)] * a.ndim
  widths[axis] = (low, max(0, length - low - a.shape[axis]))
  return jax.lax.slice_in_dim(jnp.pad(a, widths), 0, length, axis=axis)


def _window_transpose(tap_gradient: Callable[[int], jax.Array], shape: tuple[int, ...], kernel: int, stride: int,
                      pad: int) -> jax.Array:
  """The gradient of a pooling layer's input: the sum over windows ``w`` and taps ``t`` of
  ``tap_gradient(t)[w]`` (output-shaped; taps numbered row-major, ``t = i * kernel + j``) at input position
  ``stride * w + (i, j) - pad``.

  Built without scatters or interior padding: the input positions ``stride * q + r`` of each phase
  ``r = (r_h, r_w)`` receive from the taps ``r + stride * m`` of the windows ``q - m``, so each phase is a sum
  of shifted output-sized arrays, and the ``stride**2`` phases interleave (a stack and a reshape) into the
  padded input. XLA fuses all of it into one loop over the input.
  """
  n, height, width, channels = shape
  _, pad_h = _pool_padding(height, kernel, stride, pad)
  _, pad_w = _pool_padding(width, kernel, stride, pad)
  qh, qw = -(-(height + sum(pad_h)) // stride), -(-(width + sum(pad_w)) // stride)
  taps = lambda r: range(-(-(kernel - r) // stride)) if r < kernel else range(0)  # noqa: E731
  dtype = jax.eval_shape(tap_gradient, 0).dtype
  phases = []
  for rh in range(stride):
    row = []
    for rw in range(stride):
      total = jnp.zeros((n, qh, qw, channels), dtype)
      for mh in taps(rh):
        for mw in taps(rw):
          part = tap_gradient((rh + stride * mh) * kernel + rw + stride * mw)
          total = total + _shift(_shift(part, 1, mh, qh), 2, mw, qw)
      row.append(total)
    phases.append(jnp.stack(row, axis=3))  # [N, qh, qw, r_w, C]
  padded = jnp.stack(phases, axis=2).reshape(n, qh * stride, qw * stride, channels)  # [N, qh, r_h, qw, r_w, C]
  return padded[:, pad_h[0] : pad_h[0] + height, pad_w[0] : pad_w[0] + width, :]


def _pool_taps(x: jax.Array, kernel: int, stride: int, pad: int) -> list[jax.Array]:
  """The ``kernel**2`` taps of every window of ``x`` padded with -inf, row-major, each output-shaped."""
  _, height, width, _ = x.shape
  out_h, pad_h = _pool_padding(height, kernel, stride, pad)
  out_w, pad_w = _pool_padding(width, kernel, stride, pad)
  x = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=np.array(-np.inf, x.dtype))
  return [x[:, i : i + (out_h - 1) * stride + 1 : stride, j : j + (out_w - 1) * stride + 1 : stride, :]
          for i in range(kernel) for j in range(kernel)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x: jax.Array, kernel: int, stride: int, pad: int) -> jax.Array:
  return _max_pool_forward(x, kernel, stride, pad)[0]


def _max_pool_forward(x, kernel, stride, pad):
  # Caffe's Forward_cpu: a strict `>` scan over each window in row-major order, so the first maximum wins.
  taps = _pool_taps(x, kernel, stride, pad)
  out, argmax = taps[0], jnp.zeros(taps[0].shape, jnp.int8 if kernel * kernel <= 127 else jnp.int32)
  for t, v in enumerate(taps[1:], 1):
    take = v > out
    out, argmax = jnp.where(take, v, out), jnp.where(take, jnp.asarray(t, argmax.dtype), argmax)
  out, argmax = materialize.materialized(out, argmax)
  return out, (argmax, x.shape)


def _max_pool_backward(kernel, stride, pad, residuals, g):
  # Caffe's Backward_cpu: each window's gradient goes to its argmax alone.
  argmax, shape = residuals
  g, argmax = materialize.materialized(g, argmax)
  zero = jnp.zeros((), g.dtype)
  return (_window_transpose(lambda t: jnp.where(argmax == t, g, zero), shape, kernel, stride, pad),)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)


def caffe_max_pool(x: jax.Array, kernel: int, stride: int, pad: int = 0) -> jax.Array:
  """Caffe MAX pooling of an NHWC array: ceil-mode output size, windows clipped to the input.

  Each window's gradient goes to one element, the one Caffe's ``Forward_cpu`` records as the argmax (the
  first maximum in row-major order, ties included), as in Caffe's ``Backward_cpu``. The argmax is kept as a
  small integer per output (a custom VJP); the forward pass's outputs and the backward pass's inputs are
  `experiments.models.materialize.materialized`, which on XLA:CPU made the cifar10_full training step 1.28x
  faster than autodiff through separable maxima in an alternating timing (``python -m
  experiments.benchmarks.train_speed --variants maxpool_separable``).

  Args:
    x: ``[N, H, W, C]`` array.
    kernel: square window size.
    stride: stride in both spatial axes.
    pad: padding on each side (never selected: windows are clipped to the real input).

  Returns:
    ``[N, H', W', C]`` with ``H' = caffe_pool_output_size(H, kernel, stride, pad)``.

  Examples:
    >>> caffe_max_pool(jnp.zeros((1, 32, 32, 3)), 3, 2).shape
    (1, 16, 16, 3)
  """
  return _max_pool(x, kernel, stride, pad)


def _ave_divisor(size: int, kernel: int, stride: int, pad: int) -> np.ndarray:
  """Caffe's per-output window size along one axis: clipped to ``size + pad``, padding counted."""
  out = caffe_pool_output_size(size, kernel, stride, pad)
  start = np.arange(out) * stride - pad
  end = np.minimum(start + kernel, size + pad)
  return (end - start).astype(np.float32)


def _ave_divisors(shape: tuple[int, ...], kernel: int, stride: int, pad: int, dtype) -> jax.Array:
  _, height, width, _ = shape
  divisor = np.outer(_ave_divisor(height, kernel, stride, pad), _ave_divisor(width, kernel, stride, pad))
  return jnp.asarray(divisor[None, :, :, None], dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _avg_pool(x: jax.Array, kernel: int, stride: int, pad: int) -> jax.Array:
  return _avg_pool_forward(x, kernel, stride, pad)[0]


def _avg_pool_forward(x, kernel, stride, pad):
  out = _window_reduce(x, 0.0, jnp.add, kernel, stride, pad) / _ave_divisors(x.shape, kernel, stride, pad, x.dtype)
  return materialize.materialized(out), x.shape


def _avg_pool_backward(kernel, stride, pad, shape, g):
  # Caffe's Backward_cpu (AVE): top_diff / pool_size to every element of the window.
  per_tap = materialize.materialized(g / _ave_divisors(shape, kernel, stride, pad, g.dtype))
  return (_window_transpose(lambda t: per_tap, shape, kernel, stride, pad),)


_avg_pool.defvjp(_avg_pool_forward, _avg_pool_backward)


def caffe_avg_pool(x: jax.Array, kernel: int, stride: int, pad: int = 0) -> jax.Array:
  """Caffe AVE pooling of an NHWC array.

  The sum runs over the window's part inside the input (padding adds zeros); it is divided by the
  window clipped to the *padded* input, ``(min(hstart + k, H + pad) - hstart) * (...)``, so a window
  that overhangs the padded input in ceil mode is averaged over fewer elements. The gradient is Caffe's
  (each window's output gradient over its divisor, to every element of the window), computed by a custom
  VJP as the max pool's is.

  Args:
    x: ``[N, H, W, C]`` array.
    kernel: square window size.
    stride: stride in both spatial axes.
    pad: zero padding on each side.

  Returns:
    ``[N, H', W', C]`` with ``H' = caffe_pool_output_size(H, kernel, stride, pad)``.

  Examples:
    >>> caffe_avg_pool(jnp.ones((1, 8, 8, 1)), 3, 2)[0, :, :, 0].tolist()[0]
    [1.0, 1.0, 1.0, 1.0]
  """
  return _avg_pool(x, kernel, stride, pad)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _power(base: jax.Array, exponent: float) -> jax.Array:
  """``base ** exponent`` for a constant exponent; -0.75 (every LRN here) as ``rsqrt(b) * sqrt(rsqrt(b))``,
  and the derivative ``exponent * power / base`` from the value, so neither pass evaluates ``pow``
  (a log and an exp per element, a large part of the cifar10_full step on XLA:CPU)."""
  if exponent == -0.75:
    r = jax.lax.rsqrt(base)
    return r * jnp.sqrt(r)
  return base**exponent


@_power.defjvp
def _power_jvp(exponent, primals, tangents):
  (base,), (tangent,) = primals, tangents
  value = _power(base, exponent)
  return value, exponent * value / base * tangent


def lrn_within_channel(x: jax.Array, local_size: int = 3, alpha: float = 5e-5, beta: float = 0.75) -> jax.Array:
  """Caffe's ``LRN`` with ``norm_region: WITHIN_CHANNEL`` on an NHWC array.

  .. math::
    y = x \\left(1 + \\frac{\\alpha}{n^2} \\sum_{n \\times n} x^2\\right)^{-\\beta}

  with the sum over a zero-padded ``n x n`` spatial window in the same channel (``n = local_size``).

  Args:
    x: ``[N, H, W, C]`` array.
    local_size: odd window size ``n``.
    alpha: scale (Caffe divides it by ``n^2`` through its average pool).
    beta: exponent.

  Returns:
    An array shaped like ``x``.
  """
  if local_size % 2 != 1:
    raise ValueError(f"LRN needs an odd local_size, got {local_size=}")
  mean_square = caffe_avg_pool(jnp.square(x), local_size, 1, (local_size - 1) // 2)
  return x * _power(1.0 + alpha * mean_square, -beta)


def lrn_across_channels(x: jax.Array, local_size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jax.Array:
  """Caffe's ``LRN`` with its default ``norm_region: ACROSS_CHANNELS`` on an NHWC array.

  .. math::
    y_c = x_c \\left(k + \\frac{\\alpha}{n} \\sum_{c' = c - (n-1)/2}^{c + (n-1)/2} x_{c'}^2\\right)^{-\\beta}

  with the sum over ``n = local_size`` neighbouring channels, zero beyond the first and last channel
  (``LRNLayer::CrossChannelForward_cpu``: ``alpha_over_size``, ``pre_pad = (size - 1) / 2``).

  Args:
    x: ``[N, H, W, C]`` array.
    local_size: odd number of channels ``n`` in the sum.
    alpha: scale (divided by ``n``, as Caffe does).
    beta: exponent.
    k: Caffe's ``k`` (default 1).

  Returns:
    An array shaped like ``x``.

  Examples:
    >>> lrn_across_channels(jnp.ones((1, 2, 2, 8))).shape
    (1, 2, 2, 8)
  """
  if local_size % 2 != 1:
    raise ValueError(f"LRN needs an odd local_size, got {local_size=}")
  half = (local_size - 1) // 2
  channels = x.shape[-1]
  padded = jnp.pad(jnp.square(x), ((0, 0),) * (x.ndim - 1) + ((half, half),))
  window_sum = sum(padded[..., i:i + channels] for i in range(local_size))
  return x * _power(k + (alpha / local_size) * window_sum, -beta)


class CaffeBatchNorm(nn.Module):
  """Caffe's ``BatchNorm`` layer: normalisation only, with Caffe's bias-corrected running averages.

  Training normalises with the batch statistics over ``(N, H, W)`` (averaged over ``axis_name``
  devices when set) and accumulates ``mean_sum = f * mean_sum + mean``, ``var_sum = f * var_sum +
  m / (m - 1) * var`` and ``scale = f * scale + 1`` in ``batch_stats``; evaluation normalises with
  ``mean_sum / scale`` and ``var_sum / scale`` (``f = moving_average_fraction``, ``m`` the number of
  values per channel in the global batch).

  Attributes:
    moving_average_fraction: Caffe's ``moving_average_fraction`` (default 0.999).
    epsilon: added to the variance (Caffe's default 1e-5).
    axis_name: pmap axis over which batch statistics are averaged, or None.
  """

  moving_average_fraction: float = 0.999
  epsilon: float = 1e-5
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    channels = x.shape[-1]
    mean_sum = self.variable("batch_stats", "mean_sum", jnp.zeros, (channels,), jnp.float32)
    var_sum = self.variable("batch_stats", "var_sum", jnp.zeros, (channels,), jnp.float32)
    scale = self.variable("batch_stats", "scale", jnp.zeros, (), jnp.float32)
    if train:
      axes = tuple(range(x.ndim - 1))
      mean = jnp.mean(x, axes)
      mean_square = jnp.mean(jnp.square(x), axes)
      count = math.prod(x.shape[:-1])
      if self.axis_name is not None:
        mean, mean_square = jax.lax.pmean((mean, mean_square), self.axis_name)
        count = count * jax.lax.psum(1, self.axis_name)
      var = jnp.maximum(mean_square - jnp.square(mean), 0.0)
      if not self.is_initializing():
        f = self.moving_average_fraction
        correction = count / jnp.maximum(count - 1, 1)
        mean_sum.value = f * mean_sum.value + jax.lax.stop_gradient(mean)
        var_sum.value = f * var_sum.value + correction * jax.lax.stop_gradient(var)
        scale.value = f * scale.value + 1.0
    else:
      inv = jnp.where(scale.value == 0, 0.0, 1.0 / jnp.where(scale.value == 0, 1.0, scale.value))
      mean, var = mean_sum.value * inv, var_sum.value * inv
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon)
