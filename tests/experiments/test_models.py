"""Tests for experiments.models: Caffe layer semantics against float64 transcriptions of Caffe's loops,
published parameter counts, shapes, BatchNorm across devices, stochastic depth, one training step."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.models import IMAGENET_MODELS, MODELS, create_model, uses_batch_norm
from experiments.models.caffe import caffe_multipliers
from experiments.models.caffe_layers import (
  CaffeBatchNorm,
  caffe_avg_pool,
  caffe_max_pool,
  caffe_pool_output_size,
  _power,
  lrn_across_channels,
  lrn_within_channel,
)
from experiments.models.resnet import CifarResNet, survival_probabilities

# ---------------------------------------------------------------------------------------------------
# Float64 transcriptions of Caffe's CPU code (NHWC instead of NCHW, otherwise line by line).


def caffe_pool_reference(x, kernel, stride, pad, method):
  """PoolingLayer::Reshape + Forward_cpu (MAX and AVE), float64."""
  n, height, width, c = x.shape
  pooled_h = int(math.ceil((height + 2 * pad - kernel) / stride)) + 1
  pooled_w = int(math.ceil((width + 2 * pad - kernel) / stride)) + 1
  if pad:
    if (pooled_h - 1) * stride >= height + pad:
      pooled_h -= 1
    if (pooled_w - 1) * stride >= width + pad:
      pooled_w -= 1
  top = np.zeros((n, pooled_h, pooled_w, c))
  for ph in range(pooled_h):
    for pw in range(pooled_w):
      hstart, wstart = ph * stride - pad, pw * stride - pad
      if method == "max":
        hend, wend = min(hstart + kernel, height), min(wstart + kernel, width)
        hstart, wstart = max(hstart, 0), max(wstart, 0)
        top[:, ph, pw, :] = x[:, hstart:hend, wstart:wend, :].max(axis=(1, 2))
      else:
        hend, wend = min(hstart + kernel, height + pad), min(wstart + kernel, width + pad)
        pool_size = (hend - hstart) * (wend - wstart)
        hstart, wstart = max(hstart, 0), max(wstart, 0)
        hend, wend = min(hend, height), min(wend, width)
        top[:, ph, pw, :] = x[:, hstart:hend, wstart:wend, :].sum(axis=(1, 2)) / pool_size
  return top


def lrn_within_channel_reference(x, local_size, alpha, beta):
  """x / (1 + alpha / n^2 * sum of x^2 over the zero-padded n x n window) ** beta, float64."""
  _, height, width, _ = x.shape
  half = (local_size - 1) // 2
  out = np.empty_like(x)
  for h in range(height):
    for w in range(width):
      window = x[:, max(h - half, 0) : h + half + 1, max(w - half, 0) : w + half + 1, :]
      s = (window**2).sum(axis=(1, 2))
      out[:, h, w, :] = x[:, h, w, :] / (1.0 + alpha / local_size**2 * s) ** beta
  return out


@pytest.mark.parametrize(
  "size,kernel,stride,pad",
  [(32, 3, 2, 0), (16, 3, 2, 0), (8, 3, 2, 0), (7, 3, 2, 0), (9, 2, 2, 0), (7, 3, 2, 1), (6, 3, 1, 1), (10, 4, 3, 1)],
)
@pytest.mark.parametrize("method", ["max", "ave"])
def test_pooling_matches_caffe(size, kernel, stride, pad, method):
  rng = np.random.default_rng(size * 100 + kernel * 10 + pad)
  x = rng.normal(size=(2, size, size + 1, 3)) * 3.0
  pool = caffe_max_pool if method == "max" else caffe_avg_pool
  got = jax.jit(pool, static_argnums=(1, 2, 3))(jnp.asarray(x, jnp.float32), kernel, stride, pad)
  want = caffe_pool_reference(x, kernel, stride, pad, method)
  assert got.shape == want.shape
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_caffe_pooling_output_sizes_are_ceil_mode():
  # cifar10_full's three 3x3/2 pools: 32 -> 16 -> 8 -> 4 (floor mode would give 15 -> 7 -> 3).
  assert [caffe_pool_output_size(s, 3, 2) for s in (32, 16, 8)] == [16, 8, 4]
  with pytest.raises(ValueError, match="pad"):
    caffe_pool_output_size(8, 3, 2, pad=3)


def test_avg_pool_gradient_matches_caffe_backward():
  # Backward_cpu (AVE) spreads top_diff / pool_size over the clipped window: d(sum of outputs)/dx.
  x = jnp.ones((1, 7, 7, 1))
  grad = jax.grad(lambda v: caffe_avg_pool(v, 3, 2).sum())(x)[0, :, :, 0]
  want = np.zeros((7, 7))
  for ph in range(caffe_pool_output_size(7, 3, 2)):
    for pw in range(caffe_pool_output_size(7, 3, 2)):
      h0, w0 = ph * 2, pw * 2
      h1, w1 = min(h0 + 3, 7), min(w0 + 3, 7)
      want[h0:h1, w0:w1] += 1.0 / ((h1 - h0) * (w1 - w0))
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-6)


def caffe_max_pool_backward_reference(x, top_diff, kernel, stride, pad):
  """PoolingLayer::Forward_cpu's argmax (strict `>` scan, row-major) + Backward_cpu (MAX), float64."""
  n, height, width, c = x.shape
  bottom_diff = np.zeros_like(x)
  for ph in range(top_diff.shape[1]):
    for pw in range(top_diff.shape[2]):
      hstart, wstart = ph * stride - pad, pw * stride - pad
      hend, wend = min(hstart + kernel, height), min(wstart + kernel, width)
      hstart, wstart = max(hstart, 0), max(wstart, 0)
      for b in range(n):
        for ch in range(c):
          best, where = -np.inf, None
          for h in range(hstart, hend):
            for w in range(wstart, wend):
              if x[b, h, w, ch] > best:
                best, where = x[b, h, w, ch], (h, w)
          bottom_diff[b, where[0], where[1], ch] += top_diff[b, ph, pw, ch]
  return bottom_diff


POOL_GRADIENT_CASES = [(7, 3, 2, 0), (8, 3, 2, 0), (32, 3, 2, 0), (7, 3, 2, 1), (6, 3, 1, 1), (10, 4, 3, 1),
                       (9, 2, 2, 0), (10, 2, 3, 0), (14, 12, 2, 0)]  # last: 144 taps, past an int8 argmax


@pytest.mark.parametrize("ties", [True, False])
@pytest.mark.parametrize("size,kernel,stride,pad", POOL_GRADIENT_CASES)
def test_max_pool_gradient_matches_caffe_backward(size, kernel, stride, pad, ties):
  # With ties (few distinct values, so most windows tie) the gradient must reach Caffe's argmax (the first
  # maximum in row-major order) and no other element.
  rng = np.random.default_rng(size + 10 * kernel + 100 * pad)
  x = rng.integers(0, 3, size=(2, size, size + 1, 2)).astype(np.float64) if ties else rng.normal(
      size=(2, size, size + 1, 2))
  top_diff = rng.normal(size=caffe_pool_reference(x, kernel, stride, pad, "max").shape)
  _, vjp = jax.vjp(lambda v: caffe_max_pool(v, kernel, stride, pad), jnp.asarray(x, jnp.float32))
  (grad,) = vjp(jnp.asarray(top_diff, jnp.float32))
  want = caffe_max_pool_backward_reference(x, top_diff, kernel, stride, pad)
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size,kernel,stride,pad", POOL_GRADIENT_CASES)
def test_avg_pool_gradient_matches_caffe_backward_everywhere(size, kernel, stride, pad):
  # Backward_cpu (AVE) adds top_diff / pool_size to every element of the window clipped to the input.
  rng = np.random.default_rng(size + kernel)
  x = rng.normal(size=(2, size, size + 1, 2))
  top_diff = rng.normal(size=caffe_pool_reference(x, kernel, stride, pad, "ave").shape)
  want = np.zeros_like(x)
  height, width = x.shape[1:3]
  for ph in range(top_diff.shape[1]):
    for pw in range(top_diff.shape[2]):
      hstart, wstart = ph * stride - pad, pw * stride - pad
      hend, wend = min(hstart + kernel, height + pad), min(wstart + kernel, width + pad)
      pool_size = (hend - hstart) * (wend - wstart)
      hstart, wstart, hend, wend = max(hstart, 0), max(wstart, 0), min(hend, height), min(wend, width)
      want[:, hstart:hend, wstart:wend, :] += top_diff[:, ph : ph + 1, pw : pw + 1, :] / pool_size
  _, vjp = jax.vjp(lambda v: caffe_avg_pool(v, kernel, stride, pad), jnp.asarray(x, jnp.float32))
  (grad,) = jax.jit(vjp)(jnp.asarray(top_diff, jnp.float32))
  np.testing.assert_allclose(np.asarray(grad), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exponent", [-0.75, -0.5, -2.0, 1.5])
def test_lrn_power_and_its_derivative_match_float64(exponent):
  base = np.geomspace(1e-3, 1e4, 57)
  power = jax.jit(jax.vmap(jax.value_and_grad(lambda b: _power(b, exponent))))
  value, derivative = power(jnp.asarray(base, jnp.float32))
  np.testing.assert_allclose(np.asarray(value), base**exponent, rtol=3e-7)
  np.testing.assert_allclose(np.asarray(derivative), exponent * base ** (exponent - 1), rtol=1e-6)


@pytest.mark.parametrize("lrn", ["within", "across"])
def test_lrn_gradient_matches_float64_finite_differences(lrn):
  rng = np.random.default_rng(7)
  x = rng.normal(size=(1, 5, 4, 6)) * 30.0  # large enough that the normalisation acts
  cot = rng.normal(size=x.shape)
  if lrn == "within":
    reference = lambda v: lrn_within_channel_reference(v, 3, 5e-3, 0.75)  # noqa: E731
    fn = lambda v: lrn_within_channel(v, 3, 5e-3, 0.75)  # noqa: E731
  else:
    def reference(v):
      sq = np.pad(v**2, ((0, 0), (0, 0), (0, 0), (2, 2)))
      return v * (1.0 + 1e-3 / 5 * sum(sq[..., i : i + v.shape[-1]] for i in range(5))) ** -0.75
    fn = lambda v: lrn_across_channels(v, 5, 1e-3, 0.75)  # noqa: E731
  eps = 1e-4
  want = np.zeros_like(x)
  for i in np.ndindex(*x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    want[i] = ((reference(x + e) - reference(x - e)) * cot).sum() / (2 * eps)
  _, vjp = jax.vjp(fn, jnp.asarray(x, jnp.float32))
  (got,) = jax.jit(vjp)(jnp.asarray(cot, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
  assert np.abs(want - cot).max() > 1e-2 * np.abs(cot).max()  # the LRN's own term must matter


@pytest.mark.parametrize("alpha,beta,scale", [(5e-5, 0.75, 100.0), (1.0, 0.75, 1.0), (0.3, 2.0, 2.0)])
@pytest.mark.parametrize("local_size", [3, 5])
def test_lrn_within_channel_matches_reference(alpha, beta, scale, local_size):
  rng = np.random.default_rng(local_size)
  x = rng.normal(size=(2, 8, 7, 4)) * scale
  got = jax.jit(lrn_within_channel, static_argnums=(1, 2, 3))(jnp.asarray(x, jnp.float32), local_size, alpha, beta)
  want = lrn_within_channel_reference(x, local_size, alpha, beta)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
  # The normalisation must actually act in these cases, or the test proves nothing.
  assert np.max(np.abs(want - x)) > 1e-3 * np.max(np.abs(x))


def test_lrn_rejects_even_window():
  with pytest.raises(ValueError, match="local_size"):
    lrn_within_channel(jnp.ones((1, 4, 4, 1)), 4)


# ---------------------------------------------------------------------------------------------------
# Parameter counts and shapes (abstract evaluation: no compilation, milliseconds per model).

# Published counts: exact for the Caffe prototxts (sums of blob sizes), else as printed in the papers
# (He et al. 2015 Table 6: 0.27M/0.85M/1.7M; Huang et al. 2017 Table 2: 1.0M and 0.8M), with half a
# unit in the last printed digit as tolerance.
PUBLISHED = {
  "cifar10_full": (89_578, 0),  # 2,432 + 25,632 + 51,264 + 10,250
  "cifar10_quick": (145_578, 0),  # 2,432 + 25,632 + 51,264 + 65,600 + 650
  "cifar10_bn_sigmoid": (89_450, 0),  # bias-free convs 2,400 + 25,600 + 51,200, ip1 10,250
  "resnet20": (270_000, 5_000),
  "resnet56": (850_000, 5_000),
  "resnet110": (1_700_000, 50_000),
  "sd_resnet110": (1_700_000, 50_000),
  "densenet40": (1_000_000, 50_000),
  "densenet_bc100": (800_000, 50_000),
}

# The CIFAR networks (32x32 input); the ImageNet ones are tested in test_imagenet_models.py.
CIFAR_MODELS = sorted(set(MODELS) - set(IMAGENET_MODELS))


def key(seed):
  """An RBG key: threefry's random-bit programs take seconds to compile on the CPU backend; RBG's do not."""
  return jax.random.key(seed, impl="rbg")


def normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


RNGS = {"params": key(0), "stochastic_depth": key(1), "dropout": key(2)}


def test_every_model_has_a_published_count():
  assert set(PUBLISHED) == set(CIFAR_MODELS)


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_parameter_count_and_shapes(name):
  num_classes = 10
  model = create_model(name, num_classes=num_classes)
  variables = jax.eval_shape(lambda: model.init(RNGS, jnp.zeros((1, 32, 32, 3)), train=False))
  count = sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))
  published, tolerance = PUBLISHED[name]
  assert abs(count - published) <= tolerance, f"{name}: {count} parameters, published {published}"
  x = jax.ShapeDtypeStruct((3, 32, 32, 3), jnp.float32)
  assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape == (3, num_classes)
  mutable = ["batch_stats"] if uses_batch_norm(name) else False
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=mutable, rngs=RNGS), variables, x)
  logits = out[0] if mutable else out
  assert logits.shape == (3, num_classes)
  assert ("batch_stats" in variables) == uses_batch_norm(name)


@pytest.mark.parametrize("name", ["cifar10_full", "cifar10_quick", "cifar10_bn_sigmoid", "resnet20", "densenet40"])
def test_num_classes(name):
  model = create_model(name, num_classes=100)
  x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
  logits, _ = jax.eval_shape(lambda x: model.init_with_output(RNGS, x, train=False), x)
  assert logits.shape == (2, 100)


def test_create_model_errors():
  with pytest.raises(ValueError, match="resnet21"):
    create_model("resnet21")
  with pytest.raises(ValueError, match="num_classes"):
    create_model("resnet20", num_classes=0)
  with pytest.raises(ValueError, match="6n"):
    CifarResNet(depth=21).init(RNGS, jnp.zeros((1, 32, 32, 3)))


def test_cifar10_full_init_follows_prototxt():
  model = create_model("cifar10_full")
  params = jax.jit(model.init)(key(3), jnp.zeros((1, 32, 32, 3)))["params"]
  for layer, std in [("conv1", 1e-4), ("conv2", 1e-2), ("conv3", 1e-2), ("ip1", 1e-2)]:
    kernel = np.asarray(params[layer]["kernel"])
    assert abs(kernel.std() / std - 1) < 0.1, (layer, kernel.std())
    assert abs(kernel.mean()) < 0.1 * std
    assert not np.any(np.asarray(params[layer]["bias"]))
  assert params["ip1"]["kernel"].shape == (64 * 4 * 4, 10)


def test_caffe_multipliers_follow_prototxt():
  lr_mult, decay_mult = caffe_multipliers("cifar10_full")
  table = {
    (layer, blob): (lr_mult((layer, blob), None), decay_mult(("params", layer, blob), None))
    for layer in ("conv1", "conv2", "conv3", "ip1")
    for blob in ("kernel", "bias")
  }
  assert table == {
    ("conv1", "kernel"): (1, 1), ("conv1", "bias"): (2, 1),
    ("conv2", "kernel"): (1, 1), ("conv2", "bias"): (2, 1),
    ("conv3", "kernel"): (1, 1), ("conv3", "bias"): (1, 1),
    ("ip1", "kernel"): (1, 250), ("ip1", "bias"): (2, 0),
  }
  quick_lr, _ = caffe_multipliers("cifar10_quick")
  assert quick_lr(("conv3", "bias"), None) == 2.0
  with pytest.raises(ValueError, match="path"):
    lr_mult(("conv1",), None)
  with pytest.raises(ValueError, match="resnet20"):
    caffe_multipliers("resnet20")


# ---------------------------------------------------------------------------------------------------
# BatchNorm: Caffe's running sums, and statistics averaged across pmap devices.


def test_caffe_batch_norm_matches_reference():
  f, eps = 0.999, 1e-5
  rng = np.random.default_rng(0)
  batches = [rng.normal(loc=i, scale=1 + i, size=(4, 3, 3, 2)) for i in range(3)]
  bn = CaffeBatchNorm(f)
  variables = bn.init(key(0), jnp.zeros((4, 3, 3, 2)), train=False)
  mean_sum = var_sum = 0.0
  scale = 0.0
  for x in batches:
    y, updates = bn.apply(variables, jnp.asarray(x, jnp.float32), train=True, mutable=["batch_stats"])
    variables = {**variables, **updates}
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(np.asarray(y), (x - mean) / np.sqrt(var + eps), rtol=1e-4, atol=1e-4)
    m = 4 * 3 * 3
    mean_sum, var_sum, scale = f * mean_sum + mean, f * var_sum + m / (m - 1) * var, f * scale + 1
  x = batches[0]
  y = bn.apply(variables, jnp.asarray(x, jnp.float32), train=False)
  want = (x - mean_sum / scale) / np.sqrt(var_sum / scale + eps)
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
  "model,size",
  [(create_model("cifar10_bn_sigmoid"), 16), (CifarResNet(depth=8), 8)],
  ids=["caffe_batchnorm", "flax_batchnorm"],
)
def test_batch_stats_are_averaged_across_devices(model, size):
  devices = 2
  assert jax.local_device_count() >= devices, "tests/conftest.py sets 4 fake CPU devices"
  x = normal(1, (2 * devices, size, size, 3)) * 2.0 + 0.5
  variables = jax.jit(lambda x: model.init(key(0), x, train=False))(x[:1])
  single = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])[1])(variables, x)
  sharded = model.clone(bn_axis_name="batch")

  def step(variables, x):
    return sharded.apply(variables, x, train=True, mutable=["batch_stats"])[1]

  replicated = jax.tree.map(lambda a: jnp.stack([a] * devices), variables)
  multi = jax.pmap(step, axis_name="batch")(replicated, x.reshape((devices, 2) + x.shape[1:]))
  leaves = jax.tree.leaves(single)
  assert leaves and jax.tree.structure(multi) == jax.tree.structure(single)
  for got, want in zip(jax.tree.leaves(multi), leaves):
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Stochastic depth (on a ResNet-8 with 3 blocks: the same code as sd_resnet110, compiles fast).


def test_survival_probabilities_decay_linearly_to_half():
  p = survival_probabilities(54)
  assert p[-1] == pytest.approx(0.5)
  assert p[0] == pytest.approx(1 - 0.5 / 54)
  np.testing.assert_allclose(np.diff(p), -0.5 / 54, rtol=1e-5)
  with pytest.raises(ValueError, match="final_survival"):
    survival_probabilities(3, 0.0)


def test_stochastic_depth_gates_per_batch_and_scales_at_test():
  plain = CifarResNet(depth=8)
  sd = CifarResNet(depth=8, final_survival=0.5)
  always = CifarResNet(depth=8, final_survival=1.0)
  x = normal(1, (2, 8, 8, 3))
  variables = jax.jit(lambda x: plain.init(key(0), x, train=False))(x)

  @functools.partial(jax.jit, static_argnums=(0, 1))
  def run(model, train, key):
    if train:
      return model.apply(variables, x, train=True, mutable=["batch_stats"], rngs={"stochastic_depth": key})[0]
    return model.apply(variables, x, train=False)

  k5 = key(5)
  # Survival 1 everywhere is the plain network, in training and at test.
  np.testing.assert_allclose(run(always, True, k5), run(plain, True, k5), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(run(always, False, k5), run(plain, False, k5), rtol=1e-5, atol=1e-5)
  # Training draws a gate per block per call: different keys give different networks, the same key the same.
  outs = [np.asarray(run(sd, True, key(k))) for k in range(6)]
  assert len({o.tobytes() for o in outs}) > 1
  np.testing.assert_array_equal(outs[0], np.asarray(run(sd, True, key(0))))
  # At test the branches are scaled by p_l: deterministic, and not the plain network.
  test_out = np.asarray(run(sd, False, k5))
  np.testing.assert_array_equal(test_out, np.asarray(run(sd, False, key(9))))
  assert np.max(np.abs(test_out - np.asarray(run(plain, False, k5)))) > 1e-4


# ---------------------------------------------------------------------------------------------------
# One training step per model on a fixed tiny batch.


def _sgd_losses(name, steps, learning_rate, batch=2):
  model = create_model(name)
  x = normal(1, (batch, 32, 32, 3))
  labels = jnp.arange(batch) % 10
  variables = jax.jit(lambda x: model.init(RNGS, x, train=False))(x)
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  mutable = list(state) or False

  @jax.jit
  def step(params, state, key):
    def loss_fn(params):
      rngs = {"stochastic_depth": key, "dropout": key}
      out = model.apply({"params": params, **state}, x, train=True, mutable=mutable, rngs=rngs)
      logits, new_state = out if mutable else (out, state)
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new_state

    (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
    return params, dict(new_state), loss, grads

  losses = []
  for i in range(steps):
    params, state, loss, grads = step(params, state, key(100))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads)), name
    losses.append(float(loss))
  return losses


# Learning rates chosen per family so that a few plain-SGD steps on two images overfit them.
FAST = {"cifar10_full": 0.05, "cifar10_quick": 0.05, "cifar10_bn_sigmoid": 0.01, "resnet20": 0.1}
SLOW = {"resnet56": 0.05, "resnet110": 0.05, "sd_resnet110": 0.05, "densenet40": 0.1, "densenet_bc100": 0.1}


def test_fast_and_slow_sets_cover_every_model():
  assert set(FAST) | set(SLOW) == set(CIFAR_MODELS)


@pytest.mark.parametrize("name", sorted(FAST))
def test_sgd_steps_reduce_loss(name):
  losses = _sgd_losses(name, steps=8, learning_rate=FAST[name])
  assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_sgd_steps_reduce_loss_deep_models(name):
  # One update, then the loss at the updated parameters: at init the deep nets' logits are large
  # (no zero-init of the last BatchNorm), so more plain-SGD steps on two images oscillate.
  losses = _sgd_losses(name, steps=2, learning_rate=SLOW[name])
  assert losses[1] < losses[0], losses
