"""Implementation variants of the cifar10_full step that `experiments.benchmarks.train_speed --variants` times.

Each names a change to the step; `patch_model` applies the implementation ones in this process only:
  * `ynnpack_convs`: compiled with XLA's default options (on jaxlib 0.10's XLA:CPU, convolutions as
    YNNPACK fusions);
  * the model's max pool keeps each window's argmax for a custom backward pass, as Caffe's and PyTorch's
    do; instead, differentiated by autodiff: `maxpool_separable` (two separable passes of first-maximum
    selects), `maxpool_slices` (a maximum over 9 strided slices),
    `maxpool_reduce_window` (`lax.reduce_window`, whose gradient, select_and_scatter, is slow on XLA:CPU);
  * `avgpool_autodiff`: the average pool differentiated by autodiff instead of its custom backward pass;
    `lrn_pow`: LRN's power as ``pow`` and its autodiff derivative (a second ``pow``);
    `no_materialize`: `experiments.models.materialize.materialized` as the identity, so XLA fuses (and
    recomputes) across the pools' and convolutions' inputs and outputs;
    `maxpool_separable+avgpool_autodiff+lrn_pow+no_materialize`: the step without the model's own backward
    passes and materialisation;
  * `conv1_im2col`: conv1 as one dot over patches (25 shifted slices concatenated on the channel axis),
    its gradients by autodiff; `conv_nchw`: the convolutions in NCHW/OIHW dimension numbers (transposes
    around each);
  * `bf16`: convolutions and the dense layer computed in bfloat16, so pooling and LRN too (float32
    parameters);
  * `fwd_only` / `fwd_bwd`: the forward pass alone and forward+backward without the update;
  * variants combine with "+", e.g. `ynnpack_convs+conv1_im2col`;
  * `xla:<flags>`: the default step under extra XLA flags; `<variant>+xla:<flags>`: a variant under them.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp

from experiments import parallel
from experiments.models import caffe
from experiments.models import caffe_layers
from experiments.models import materialize

DEFAULT_VARIANTS = ("ynnpack_convs", "conv1_im2col", "conv_nchw", "bf16", "maxpool_slices", "maxpool_reduce_window",
                    "maxpool_separable", "avgpool_autodiff", "lrn_pow", "no_materialize",
                    "maxpool_separable+avgpool_autodiff+lrn_pow+no_materialize",
                    "fwd_only", "fwd_bwd",
                    "xla:--xla_cpu_use_onednn=true",
                    "xla:--xla_cpu_experimental_onednn_custom_call=true",
                    "xla:--xla_cpu_use_xnnpack=true",
                    "xla:--xla_cpu_use_thunk_runtime=false",
                    "xla:--xla_cpu_enable_fast_math=true",
                    "xla:--xla_cpu_multi_thread_eigen=false")


def _maxpool_slices(x, kernel, stride, pad=0):
  """Caffe ceil-mode max pooling as the maximum of the kernel*kernel strided slices (the model's taps),
  differentiated by autodiff."""
  taps = caffe_layers._pool_taps(x, kernel, stride, pad)  # pylint: disable=protected-access
  return functools.reduce(jnp.maximum, taps)


def _maxpool_separable(x, kernel, stride, pad=0):
  """The model's max pool before its custom VJP: two separable passes of first-maximum selects (the
  leftmost in the topmost row on ties, as Caffe), differentiated by autodiff."""
  first_max = lambda a, b: jnp.where(a >= b, a, b)  # noqa: E731
  return caffe_layers._window_reduce(x, -jnp.inf, first_max, kernel, stride, pad)  # pylint: disable=protected-access


def _avgpool_autodiff(x, kernel, stride, pad=0):
  """The model's average pool without its custom VJP (separable sums, differentiated by autodiff)."""
  total = caffe_layers._window_reduce(x, 0.0, jnp.add, kernel, stride, pad)  # pylint: disable=protected-access
  return total / caffe_layers._ave_divisors(x.shape, kernel, stride, pad, x.dtype)  # pylint: disable=protected-access


def _maxpool_reduce_window(x, kernel, stride, pad=0):
  """Caffe ceil-mode max pooling as one `lax.reduce_window` (gradient: select_and_scatter)."""
  _, h, w, _ = x.shape
  pads = [caffe_layers._pool_padding(n, kernel, stride, pad)[1] for n in (h, w)]  # pylint: disable=protected-access
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, kernel, kernel, 1), (1, stride, stride, 1),
                               ((0, 0), *pads, (0, 0)))


def _conv1_im2col(lhs, rhs, window_strides, padding, *args, **kwargs):
  """conv1 (3 input channels) as one dot over its 5x5 patches; the other convolutions unchanged."""
  if lhs.shape[-1] > 3:
    return jax.lax.conv_general_dilated(lhs, rhs, window_strides, padding, *args, **kwargs)
  n, h, w, c = lhs.shape
  kh, kw, _, out = rhs.shape
  xp = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  patches = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
  return jnp.einsum("nhwk,ko->nhwo", patches, rhs.reshape(kh * kw * c, out))


def _conv_nchw(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
               feature_group_count=1, precision=None):
  """The NHWC convolution computed in NCHW/OIHW dimension numbers, transposing in and out."""
  y = jax.lax.conv_general_dilated(jnp.transpose(lhs, (0, 3, 1, 2)), jnp.transpose(rhs, (3, 2, 0, 1)),
                                   window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                   dimension_numbers=("NCHW", "OIHW", "NCHW"),
                                   feature_group_count=feature_group_count, precision=precision)
  return jnp.transpose(y, (0, 2, 3, 1))


def _patch_layers(caffe, **layers) -> None:
  """Gives experiments.models.caffe a linen namespace whose `layers` (name -> keyword arguments) are
  its current ones with those keywords: caffe.py builds its layers as ``nn.Conv`` / ``nn.Dense``."""
  patched = types.SimpleNamespace(**{k: getattr(caffe.nn, k) for k in dir(caffe.nn) if not k.startswith("__")})
  for name, kwargs in layers.items():  # the variant's keywords win over the model's
    layer = getattr(caffe.nn, name)
    setattr(patched, name, lambda *a, _layer=layer, _kwargs=kwargs, **k: _layer(*a, **{**k, **_kwargs}))
  caffe.nn = patched


def patch_model(variants: str) -> dict | None:
  """Replaces parts of experiments.models.caffe and caffe_layers for implementation variants joined by "+"
  (in this process only); returns the compiler options to jit the step with: the trainer's, or XLA's
  defaults (None) for `ynnpack_convs`."""
  options = parallel.compiler_options(jax.local_devices())
  for variant in variants.split("+"):
    if variant == "ynnpack_convs":
      options = None
    elif variant == "maxpool_slices":
      caffe.caffe_max_pool = _maxpool_slices
    elif variant == "maxpool_reduce_window":
      caffe.caffe_max_pool = _maxpool_reduce_window
    elif variant == "maxpool_separable":
      caffe.caffe_max_pool = _maxpool_separable
    elif variant == "avgpool_autodiff":
      caffe.caffe_avg_pool = caffe_layers.caffe_avg_pool = _avgpool_autodiff  # the LRN's pool too
    elif variant == "lrn_pow":
      caffe_layers._power = lambda base, exponent: base**exponent  # pylint: disable=protected-access
    elif variant == "no_materialize":
      materialize.materialized = lambda *arrays: arrays[0] if len(arrays) == 1 else arrays
    elif variant == "conv1_im2col":
      _patch_layers(caffe, Conv={"conv_general_dilated": _conv1_im2col})
    elif variant == "conv_nchw":
      _patch_layers(caffe, Conv={"conv_general_dilated": _conv_nchw})
    elif variant == "bf16":
      _patch_layers(caffe, Conv={"dtype": jnp.bfloat16}, Dense={"dtype": jnp.bfloat16})
    elif variant not in ("default", "fwd_only", "fwd_bwd"):
      raise ValueError(f"unknown variant {variant!r}")
  return options
