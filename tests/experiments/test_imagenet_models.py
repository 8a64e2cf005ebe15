"""Tests for the ImageNet networks (AlexNet, CaffeNet, GoogLeNet): layer shapes and parameter counts from the
prototxts, Caffe's across-channel LRN against a transcription of its CPU loop, fillers, multipliers, the
auxiliary classifiers' loss, and a few training steps at reduced resolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from experiments.models import IMAGENET_MODELS, caffe_multipliers, create_model, softmax_loss, uses_batch_norm
from experiments.models.caffe_layers import lrn_across_channels
from experiments.models.googlenet import AUX_LOSS_WEIGHT, INCEPTION_WIDTHS, AuxClassifier, GoogLeNetOutput, Inception


def key(seed):
  """An RBG key: threefry's random-bit programs take seconds to compile on the CPU backend; RBG's do not."""
  return jax.random.key(seed, impl="rbg")


RNGS = {"params": key(0), "dropout": key(1)}

# ---------------------------------------------------------------------------------------------------
# Layer shapes transcribed from the prototxts (BVLC/caffe models/*/train_val.prototxt): per layer
# (kernel, input channels per group, num_output); inner products have kernel 1 and their flattened input.


def alexnet_layers():
  # conv1 11x11/4 on 227 -> 55 -> pool 27 -> conv2 (group 2) -> pool 13 -> conv3..5 -> pool 6: fc6 sees 256*6*6.
  return {"conv1": (11, 3, 96), "conv2": (5, 96 // 2, 256), "conv3": (3, 256, 384), "conv4": (3, 384 // 2, 384),
          "conv5": (3, 384 // 2, 256), "fc6": (1, 256 * 6 * 6, 4096), "fc7": (1, 4096, 4096), "fc8": (1, 4096, 1000)}


# (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj) of each inception block, as listed in the prototxt.
PROTOTXT_INCEPTION = [
  ("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64), ("4a", 192, 96, 208, 16, 48, 64),
  ("4b", 160, 112, 224, 24, 64, 64), ("4c", 128, 128, 256, 24, 64, 64), ("4d", 112, 144, 288, 32, 64, 64),
  ("4e", 256, 160, 320, 32, 128, 128), ("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128),
]


def googlenet_layers(aux=True):
  layers = {"conv1/7x7_s2": (7, 3, 64), "conv2/3x3_reduce": (1, 64, 64), "conv2/3x3": (3, 64, 192)}
  channels = 192
  for block, w1, r3, w3, r5, w5, wp in PROTOTXT_INCEPTION:
    p = f"inception_{block}/"
    layers.update({p + "1x1": (1, channels, w1), p + "3x3_reduce": (1, channels, r3), p + "3x3": (3, r3, w3),
                   p + "5x5_reduce": (1, channels, r5), p + "5x5": (5, r5, w5), p + "pool_proj": (1, channels, wp)})
    channels = w1 + w3 + w5 + wp
    if aux and block in ("4a", "4d"):
      # ave pool 5/3 on the 14x14 map -> 4x4; conv 1x1 128; fc 1024 on 128*4*4; classifier.
      head = "loss1/" if block == "4a" else "loss2/"
      layers.update({head + "conv": (1, channels, 128), head + "fc": (1, 128 * 4 * 4, 1024),
                     head + "classifier": (1, 1024, 1000)})
  assert channels == 1024
  layers["loss3/classifier"] = (1, 1024, 1000)
  return layers


def caffe_count(layers):
  return sum(k * k * cin * cout + cout for k, cin, cout in layers.values())


# Published: 60,965,224 is the count quoted for bvlc_alexnet and CaffeNet ("60 million parameters", Krizhevsky
# et al. 2012); Szegedy et al. 2015, Table 1, list "about 6.8M" for GoogLeNet without the auxiliary heads (its
# rows' figures are rounded); the bvlc_googlenet prototxt's blobs sum to 6,998,552.
PUBLISHED = {"alexnet": (60_965_224, 0), "caffenet": (60_965_224, 0), "googlenet": (6_800_000, 0.05)}


def test_prototxt_arithmetic_gives_the_published_counts():
  for name, layers in [("alexnet", alexnet_layers()), ("googlenet", googlenet_layers(aux=False))]:
    published, rel = PUBLISHED[name]
    assert abs(caffe_count(layers) - published) <= rel * published, name
  assert caffe_count(googlenet_layers(aux=False)) == 6_998_552


def _param_shapes(name, size, **kw):
  model = create_model(name, num_classes=1000, **kw)
  variables = jax.eval_shape(lambda: model.init(RNGS, jnp.zeros((1, size, size, 3)), train=False))
  assert set(variables) == {"params"} and not uses_batch_norm(name)
  return {k: v.shape for k, v in traverse_util.flatten_dict(variables["params"], sep="/").items()}


@pytest.mark.parametrize("name", ["alexnet", "caffenet", "googlenet", "googlenet_no_aux"])
def test_layer_shapes_and_counts_follow_the_prototxt(name):
  if name == "googlenet_no_aux":
    shapes, layers = _param_shapes("googlenet", 224, aux_classifiers=False), googlenet_layers(aux=False)
  else:
    shapes = _param_shapes(name, IMAGENET_MODELS[name])
    layers = alexnet_layers() if name != "googlenet" else googlenet_layers()
  want = {}
  for layer, (k, cin, cout) in layers.items():
    is_fc = layer.startswith("fc") or layer.endswith(("/fc", "classifier"))
    want[layer + "/kernel"] = (cin, cout) if is_fc else (k, k, cin, cout)
    want[layer + "/bias"] = (cout,)
  assert shapes == want
  assert sum(int(np.prod(s)) for s in shapes.values()) == caffe_count(layers)
  if name in ("alexnet", "caffenet"):
    assert caffe_count(layers) == PUBLISHED[name][0]
  if name == "googlenet":
    assert caffe_count(layers) == 13_378_280  # with loss1 and loss2


# ---------------------------------------------------------------------------------------------------
# Caffe's LRN across channels.


def lrn_across_channels_reference(x, size, alpha, beta, k):
  """LRNLayer::CrossChannelForward_cpu (NHWC instead of NCHW): a rolling sum over padded squares, float64."""
  n, height, width, channels = x.shape
  pre_pad = (size - 1) // 2
  padded = np.zeros((n, height, width, channels + size - 1))
  padded[..., pre_pad:pre_pad + channels] = x * x
  alpha_over_size = alpha / size
  scale = np.empty_like(x)
  scale[..., 0] = k + alpha_over_size * padded[..., :size].sum(-1)
  for c in range(1, channels):
    scale[..., c] = scale[..., c - 1] + alpha_over_size * (padded[..., c + size - 1] - padded[..., c - 1])
  return x * scale ** -beta


@pytest.mark.parametrize("size,alpha,beta,k,scale", [(5, 1e-4, 0.75, 1.0, 100.0), (3, 1.0, 0.75, 1.0, 1.0),
                                                     (5, 0.5, 2.0, 2.0, 3.0)])
def test_lrn_across_channels_matches_caffe(size, alpha, beta, k, scale):
  x = np.random.default_rng(size).normal(size=(2, 3, 4, 7)) * scale
  got = jax.jit(lrn_across_channels, static_argnums=(1, 2, 3, 4))(jnp.asarray(x, jnp.float32), size, alpha, beta, k)
  want = lrn_across_channels_reference(x, size, alpha, beta, k)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
  assert np.max(np.abs(want - x / k ** beta)) > 1e-3 * np.max(np.abs(x))  # the neighbours matter here
  with pytest.raises(ValueError, match="local_size"):
    lrn_across_channels(jnp.ones((1, 2, 2, 4)), 4)


# ---------------------------------------------------------------------------------------------------
# Fillers, groups and multipliers.


def test_alexnet_fillers_follow_the_prototxts():
  for variant, biases in [("alexnet", {"conv1": 0, "conv2": 0.1, "conv3": 0, "conv4": 0.1, "conv5": 0.1,
                                       "fc6": 0.1, "fc7": 0.1, "fc8": 0}),
                          ("caffenet", {"conv1": 0, "conv2": 1, "conv3": 0, "conv4": 1, "conv5": 1,
                                        "fc6": 1, "fc7": 1, "fc8": 0})]:
    model = create_model(variant, num_classes=1000)
    # At 67 px (fc6 has 256 inputs) to keep the test fast: the fillers do not depend on the input size.
    params = jax.jit(lambda x: model.init(key(3), x))(jnp.zeros((1, 67, 67, 3)))["params"]
    for layer, value in biases.items():
      np.testing.assert_array_equal(np.asarray(params[layer]["bias"]), np.float32(value), err_msg=f"{variant} {layer}")
      std = 0.005 if layer in ("fc6", "fc7") else 0.01
      kernel = np.asarray(params[layer]["kernel"])
      assert abs(kernel.std() / std - 1) < 0.05 and abs(kernel.mean()) < 0.05 * std, (variant, layer)


def test_grouped_convolutions_see_their_own_half_of_the_channels():
  # conv2 of AlexNet (group 2): perturbing input channels 48..95 must leave outputs 0..127 unchanged.
  model = create_model("alexnet", num_classes=10)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 67, 67, 3)), jnp.float32)
  variables = jax.jit(lambda x: model.init(key(0), x))(x)
  conv2 = variables["params"]["conv2"]
  conv = jax.jit(lambda p, y: jax.lax.conv_general_dilated(
    y, p["kernel"], (1, 1), ((2, 2), (2, 2)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2))
  y = jnp.asarray(np.random.default_rng(1).normal(size=(1, 7, 7, 96)), jnp.float32)
  y2 = y.at[..., 48:].add(1.0)
  a, b = np.asarray(conv(conv2, y)), np.asarray(conv(conv2, y2))
  np.testing.assert_array_equal(a[..., :128], b[..., :128])
  assert np.max(np.abs(a[..., 128:] - b[..., 128:])) > 1e-3


def _check_googlenet_fillers(params):
  for name, value in traverse_util.flatten_dict(params, sep="/").items():
    value = np.asarray(value)
    if name.endswith("bias"):
      want = 0.0 if name.endswith("classifier/bias") else 0.2
      np.testing.assert_array_equal(value, np.float32(want), err_msg=name)
    else:
      fan_in = value.size // value.shape[-1]  # Caffe's XavierFiller: count / num_output
      bound = np.sqrt(3.0 / fan_in)
      assert np.max(np.abs(value)) <= bound * (1 + 1e-6), name
      if value.size > 10_000:
        assert abs(value.std() / (bound / np.sqrt(3)) - 1) < 0.05, name


@pytest.mark.parametrize("module,shape", [
  (Inception(INCEPTION_WIDTHS["inception_4e"]), (1, 6, 6, 528)),
  (AuxClassifier(1000), (1, 14, 14, 512)),
], ids=["inception_4e", "loss1"])
def test_googlenet_xavier_and_constant_fillers(module, shape):
  # Block by block (compiling the whole network's init takes half a minute here; the slow test below does).
  kw = {"train": False} if isinstance(module, AuxClassifier) else {}
  variables = jax.jit(lambda x: module.init(key(4), x, **kw))(jnp.zeros(shape))
  _check_googlenet_fillers(variables["params"])


@pytest.mark.slow
def test_googlenet_fillers_of_every_layer():
  model = create_model("googlenet", num_classes=1000, pool5_window=3)
  params = jax.jit(lambda x: model.init(key(4), x))(jnp.zeros((1, 96, 96, 3)))["params"]
  assert len(traverse_util.flatten_dict(params)) == 2 * len(googlenet_layers())
  _check_googlenet_fillers(params)


def test_caffe_multipliers_of_the_imagenet_networks():
  for name in ("alexnet", "caffenet"):
    lr_mult, decay_mult = caffe_multipliers(name)
    for layer in alexnet_layers():
      assert (lr_mult(("params", layer, "kernel"), None), decay_mult((layer, "kernel"), None)) == (1, 1)
      assert (lr_mult((layer, "bias"), None), decay_mult((layer, "bias"), None)) == (2, 0)
  lr_mult, decay_mult = caffe_multipliers("googlenet")
  for layer in googlenet_layers():
    path = tuple(layer.split("/"))
    assert (lr_mult(path + ("kernel",), None), decay_mult(path + ("kernel",), None)) == (1, 1)
    assert (lr_mult(("params",) + path + ("bias",), None), decay_mult(path + ("bias",), None)) == (2, 0)
  with pytest.raises(ValueError, match="path"):
    lr_mult(("inception_3a", "1x1"), None)


# ---------------------------------------------------------------------------------------------------
# GoogLeNet's training output and loss.


def test_softmax_loss_weights_the_auxiliary_classifiers():
  rng = np.random.default_rng(0)
  logits, aux1, aux2 = (rng.normal(size=(4, 5)) * 3 for _ in range(3))
  labels = np.array([0, 3, 4, 1])

  def ce(z):  # float64 log-softmax
    z = z - z.max(-1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(-1)) - z[np.arange(4), labels]))

  f32 = lambda z: jnp.asarray(z, jnp.float32)  # noqa: E731
  out = GoogLeNetOutput(f32(logits), (f32(aux1), f32(aux2)))
  loss, scored = jax.jit(softmax_loss)(out, labels)
  assert AUX_LOSS_WEIGHT == 0.3
  np.testing.assert_allclose(float(loss), ce(logits) + 0.3 * ce(aux1) + 0.3 * ce(aux2), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(scored), np.asarray(out.logits))
  plain_loss, plain = softmax_loss(jnp.asarray(logits, jnp.float32), labels)
  np.testing.assert_allclose(float(plain_loss), ce(logits), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(plain), np.asarray(out.logits))


# ---------------------------------------------------------------------------------------------------
# A few training steps at reduced resolution (AlexNet at 67 px; GoogLeNet at 96 px with a 3x3 pool5).


def _train(name, size, steps, learning_rate, batch=2, num_classes=5, **kw):
  model = create_model(name, num_classes=num_classes, **kw)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(batch, size, size, 3)) * 50, jnp.float32)
  labels = jnp.arange(batch) % num_classes
  params = jax.jit(lambda x: model.init(RNGS, x, train=False))(x)["params"]

  @jax.jit
  def step(params, dropout_key):
    def loss_fn(params):
      out = model.apply({"params": params}, x, train=True, rngs={"dropout": dropout_key})
      return softmax_loss(out, labels)[0], out

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss, out, grads

  losses, outs = [], []
  for _ in range(steps):
    # One dropout mask throughout: the same objective every step, so plain gradient descent must lower it.
    params, loss, out, grads = step(params, key(100))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads)), name
    losses.append(float(loss))
    outs.append(out)
  evaluate = jax.jit(lambda p: model.apply({"params": p}, x, train=False))
  return losses, outs, grads, evaluate(params), evaluate(params)


def test_alexnet_trains_at_reduced_resolution():
  losses, outs, grads, eval1, eval2 = _train("caffenet", 67, steps=6, learning_rate=0.001)
  assert losses[-1] < losses[0], losses
  assert outs[0].shape == (2, 5)
  np.testing.assert_array_equal(np.asarray(eval1), np.asarray(eval2))  # no dropout at test


@pytest.mark.slow
def test_alexnet_full_resolution_step():
  losses, *_ = _train("alexnet", 227, steps=2, learning_rate=0.001)
  assert all(np.isfinite(losses))


def test_googlenet_training_output_carries_the_auxiliary_logits():
  model = create_model("googlenet", num_classes=5, pool5_window=3)
  x = jax.ShapeDtypeStruct((2, 96, 96, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(RNGS, x, train=False), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, rngs=RNGS), variables, x)
  assert isinstance(out, GoogLeNetOutput) and out.logits.shape == (2, 5)
  assert [a.shape for a in out.aux_logits] == [(2, 5), (2, 5)]
  assert jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x).shape == (2, 5)
  deploy = model.clone(aux_classifiers=False)
  plain = jax.eval_shape(lambda x: deploy.init_with_output(RNGS, x, train=True), x)[0]
  assert plain.shape == (2, 5)  # the deploy network returns plain logits in training too


@pytest.mark.slow
def test_googlenet_trains_with_auxiliary_heads_at_reduced_resolution():
  losses, outs, grads, eval1, _ = _train("googlenet", 96, steps=4, learning_rate=0.001, pool5_window=3)
  out = outs[0]
  assert isinstance(out, GoogLeNetOutput) and out.logits.shape == (2, 5)
  assert [a.shape for a in out.aux_logits] == [(2, 5), (2, 5)]
  assert eval1.shape == (2, 5)  # test mode: loss3's logits only
  # The auxiliary heads are trained: their classifiers get gradients.
  for head in ("loss1", "loss2", "loss3"):
    assert np.max(np.abs(np.asarray(grads[head]["classifier"]["kernel"]))) > 0, head
  assert losses[-1] < losses[0], losses
