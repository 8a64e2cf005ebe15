"""The range test against independent references: SGD's stability limit on a quadratic, float64 numpy
gradient descent, separate runs, and a real-data smoke test."""

import functools
import itertools

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest

import clr_optax
from clr_optax import _xla_cpu

matplotlib.use("Agg")


def _least_squares(seed=0, n=128, d=6):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)) * np.linspace(2.0, 0.3, d)
  y = x @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
  return x, y


def _mse(w, batch):
  return jnp.mean((batch["x"] @ w - batch["y"]) ** 2)


@pytest.mark.parametrize("mode,smoothing", [("exponential", 0.0), ("exponential", 0.98), ("linear", 0.0),
                                            ("linear", 0.98)])
def test_quadratic_diverges_at_two_over_lambda_max(mode, smoothing):
  # f(w) = w^T A w / 2 with A = 2 X^T X / n: full-batch SGD is stable iff lr < 2 / lambda_max(A).
  x, _ = _least_squares()
  x = x.astype(np.float32)
  eigvals, eigvecs = np.linalg.eigh(2 * x.T.astype(np.float64) @ x / len(x))  # float64, of the float32 data
  limit = 2 / eigvals[-1]
  # Start on the unstable direction, so that the loss shows the instability as soon as it begins (from a
  # generic start the stable directions dominate the loss for many steps and hide it). The sweeps step
  # coarsely through lr = 1 / lambda_max, where the unstable direction is almost annihilated, so that it
  # stays far above float32 round-off.
  w0 = jnp.asarray(eigvecs[:, -1], jnp.float32)
  data = {"x": x, "y": np.zeros(len(x), np.float32)}
  if mode == "exponential":
    sweep = dict(min_lr=limit / 10, max_lr=limit * 100, num_steps=32)  # x1.25 per step
  else:
    sweep = dict(min_lr=0.0, max_lr=limit * 5, num_steps=49)  # +0.104 * limit per step
  result = clr_optax.range_test(data, loss_fn=_mse, params=w0, optimizer=optax.sgd, batch_size=len(x),
                                mode=mode, smoothing=smoothing, **sweep)
  lr = np.asarray(result.lr[0], np.float64)
  first_unstable = int(np.argmax(lr > limit))
  onset, diverged = int(result.onset_step[0]), int(result.diverged_step[0])
  assert abs(onset - first_unstable) <= 1, (onset, first_unstable, lr[onset] / limit)
  # The 4x rule fires once the smoothed loss has grown 4-fold: after the onset, never before.
  assert first_unstable < diverged
  if smoothing == 0.0:
    assert diverged <= first_unstable + 4
  assert result.masked[0, diverged:].all() and not result.masked[0, :diverged].any()
  suggestion = result.suggest()
  assert suggestion.max_lr < limit
  assert 0 < suggestion.base_lr < suggestion.max_lr


def test_losses_match_float64_gradient_descent():
  # Full-batch sweep: the shuffle only permutes rows, so every step must match plain GD in float64.
  x, y = _least_squares(1)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  lrs = clr_optax.learning_rates(0.001, 0.2, 30, "linear")
  w, want = np.zeros(x.shape[1]), []
  for lr in lrs:
    r = x @ w - y
    want.append(np.mean(r ** 2))
    w = w - lr * 2 * x.T @ r / len(x)
  for optimizer in [optax.sgd, optax.inject_hyperparams(optax.sgd)(learning_rate=123.0)]:
    result = clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optimizer,
                                  batch_size=len(x), num_steps=30, min_lr=0.001, max_lr=0.2)
    np.testing.assert_allclose(result.lr[0], lrs, rtol=1e-6)
    np.testing.assert_allclose(result.loss[0], want, rtol=2e-5)
    # The bias-corrected moving average of the losses.
    ema = np.cumsum([0.02 * 0.98 ** (29 - i) * l for i, l in enumerate(want)])  # only the last entry is used
    assert result.smooth_loss[0, -1] == pytest.approx(ema[-1] / (1 - 0.98 ** 30), rel=1e-5)


def test_momentum_and_adam_run_and_differ():
  x, y = _least_squares(2)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  out = {}
  for name, opt in {"sgd": optax.sgd, "momentum": functools.partial(optax.sgd, momentum=0.9),
                    "adam": optax.adam}.items():
    out[name] = clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=opt,
                                     batch_size=32, num_steps=40, min_lr=1e-4, max_lr=1.0, mode="exponential")
  # The same shuffle, so the first losses agree and later ones differ by optimizer.
  for name in ("momentum", "adam"):
    assert out[name].loss[0, 0] == out["sgd"].loss[0, 0]
    assert not np.allclose(out[name].loss[0, 5:15], out["sgd"].loss[0, 5:15])
    assert np.isfinite(np.asarray(out[name].loss)[~np.asarray(out[name].masked)]).all()


def test_masking_keeps_nan_out_and_suggestions_finite():
  x, y = _least_squares(3)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  result = clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                                batch_size=16, num_steps=80, min_lr=1e-4, max_lr=1e4, mode="exponential",
                                num_runs=2, divergence_factor=None,  # only the non-finite test
                                eval_fn=lambda w: {"norm": jnp.sum(w ** 2)}, eval_every=10)
  for run in range(2):
    d = int(result.diverged_step[run])
    assert 0 < d < 80
    live = ~np.asarray(result.masked[run])
    assert live[:d].all() and not live[d:].any()
    for rec in [result.loss, result.smooth_loss, result.metrics["loss"]]:
      assert np.isfinite(rec[run, :d]).all() and np.isnan(rec[run, d:]).all()
    norms, steps = np.asarray(result.eval_metrics["norm"][run]), np.asarray(result.eval_step[run])
    np.testing.assert_array_equal(steps, [9, 19, 29, 39, 49, 59, 69, 79])
    assert np.isfinite(norms[steps < d]).all() and np.isnan(norms[steps >= d]).all()
  s = result.suggest()
  assert np.isfinite([s.base_lr, s.max_lr]).all() and s.max_lr < np.nanmin(result.diverged_lr)


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_scan_stops_at_divergence_and_chunked_one_chunk_later(method):
  x, y = _least_squares(5)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  executed = []

  def loss_fn(w, batch):
    jax.debug.callback(lambda: executed.append(1))
    return _mse(w, batch)

  result = clr_optax.range_test(data, loss_fn=loss_fn, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                                batch_size=16, num_steps=60, min_lr=1e-3, max_lr=1e3, mode="exponential",
                                method=method, chunk_size=4)
  jax.effects_barrier()
  d = int(result.diverged_step[0])
  assert 0 < d < 59
  # The compiled loop runs the diverged step and no later one. Straight-line chunks cannot stop, but the
  # host dispatches only the chunk after the one it saw diverge, then stops.
  assert len(executed) == (d + 1 if method == "scan" else min((d // 4 + 2) * 4, 60))
  assert np.isnan(np.asarray(result.loss[0, d:])).all() and np.asarray(result.masked[0, d:]).all()
  np.testing.assert_allclose(result.lr[0], clr_optax.learning_rates(1e-3, 1e3, 60, "exponential"), rtol=1e-6)


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_runs_equal_separate_runs_and_compile_once(method):
  x, y = _least_squares(4)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  keys = jax.random.split(jax.random.key(7), 2)
  kw = dict(loss_fn=_mse, params=lambda k: jax.random.normal(k, (x.shape[1],)),
            optimizer=functools.partial(optax.sgd, momentum=0.9), batch_size=16, num_steps=20, min_lr=1e-3,
            max_lr=1.0, mode="exponential", method=method, chunk_size=2,
            eval_fn=lambda w: jnp.sum(w ** 2), eval_every=6)
  compiles = []

  def listen(event, _, **info):
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(info.get("fun_name", ""))

  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    together = clr_optax.range_test(data, key=keys, **kw)
    again = clr_optax.range_test(data, key=keys[::-1], **{**kw, "max_lr": 2.0})  # cached: no new compile
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
  sweeps = [name for name in compiles if "range_test_sweep" in name or "range_test_chunk" in name]
  assert len(sweeps) == 1, compiles
  assert together.loss.shape == (2, 20) and together.eval_metrics["value"].shape == (2, 4)
  np.testing.assert_allclose(again.lr[0, -1], 2.0, rtol=1e-6)
  for i in range(2):
    alone = clr_optax.range_test(data, key=keys[i:i + 1], **kw)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
      np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=2e-5, atol=1e-6)
  # Different seeds: different inits and shuffles.
  assert not np.allclose(together.loss[0], together.loss[1])


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_compiler_options_reach_xla(method):
  x, y = _least_squares(3)
  kw = dict(loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, batch_size=16, num_steps=8,
            min_lr=1e-3, max_lr=0.1, method=method, chunk_size=4)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  # XLA rejects an option it does not know: proof that the options get to its compiler.
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
    clr_optax.range_test(data, compiler_options={"xla_no_such_option": "1"}, **kw)
  # A real option changes how XLA compiles, not the results (float64 gradient descent is the reference
  # in test_losses_match_float64_gradient_descent).
  with_option = clr_optax.range_test(data, compiler_options={"xla_cpu_enable_fast_math": False}, **kw)
  np.testing.assert_allclose(with_option.loss, clr_optax.range_test(data, **kw).loss, rtol=1e-6)


def test_scan_and_chunked_agree_with_batchnorm_state_and_leave_inputs_alone():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train):
      x = nn.Conv(4, (3, 3))(x)
      x = nn.BatchNorm(use_running_average=not train)(x)
      return nn.Dense(3)(nn.relu(x).mean((1, 2)))

  net = Net()
  rng = np.random.default_rng(5)
  data = {"image": rng.normal(size=(48, 6, 6, 2)).astype(np.float32), "label": rng.integers(0, 3, 48)}
  variables = net.init(jax.random.key(0), data["image"][:2], train=False)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0, momentum=0.9)
  state = {"params": variables["params"], "batch_stats": variables["batch_stats"],
           "opt": tx.init(variables["params"])}
  before = jax.tree.map(np.array, state)

  def train_step(state, batch, lr):
    def loss_fn(p):
      logits, upd = net.apply({"params": p, "batch_stats": state["batch_stats"]}, batch["image"], train=True,
                              mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (logits, upd["batch_stats"])
    (loss, (logits, stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    opt = state["opt"]._replace(hyperparams={**state["opt"].hyperparams, "learning_rate": lr})
    updates, opt = tx.update(g, opt, state["params"])
    new = {"params": optax.apply_updates(state["params"], updates), "batch_stats": stats, "opt": opt}
    return new, {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}

  results = [clr_optax.range_test(data, train_step=train_step, state=state, batch_size=16, num_steps=6,
                                  min_lr=0.01, max_lr=1.0, method=m, chunk_size=2) for m in ("scan", "chunked")]
  for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert np.isfinite(results[0].metrics["accuracy"]).all()
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)


def test_auto_method_picks_chunks_for_convolutions_on_cpu():
  conv = lambda w, x: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME").sum()  # noqa: E731
  grad_of_conv = jax.grad(conv)
  x = jnp.ones((1, 3, 8, 8))
  w = jnp.ones((4, 3, 3, 3))
  assert _xla_cpu.contains_convolution(jax.jit(grad_of_conv), w, x)  # inside a nested jit
  assert not _xla_cpu.contains_convolution(lambda a: jnp.tanh(a) @ a, jnp.ones((3, 3)))


def test_pmap_across_devices_equals_separate_runs():
  if jax.local_device_count() < 4:
    pytest.skip("needs 4 (fake) devices, see tests/conftest.py")
  x, y = _least_squares(6)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  tx = optax.sgd(0.0)

  def train_step(w, batch, lr):
    loss, g = jax.value_and_grad(_mse)(w, batch)
    return w - lr * g, {"loss": loss}

  del tx
  sweep = clr_optax.make_range_test(train_step, batch_size=16, num_steps=25, min_lr=1e-3, max_lr=3.0,
                                    mode="exponential", eval_fn=lambda w: jnp.sum(w ** 2), eval_every=5)
  keys = jax.random.split(jax.random.key(3), 4)
  w0 = jnp.zeros((4, x.shape[1]))
  across = jax.pmap(sweep, in_axes=(0, None, 0))(w0, data, keys)
  assert across.loss.shape == (4, 25)
  for i in range(4):
    alone = jax.jit(sweep)(w0[i], data, keys[i])
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(across)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=2e-5, atol=1e-6)
  assert across.suggest().max_lr < 3.0


def test_bad_arguments_are_named():
  data = {"x": np.zeros((8, 2), np.float32), "y": np.zeros(8, np.float32)}
  kw = dict(loss_fn=_mse, params=jnp.zeros(2), optimizer=optax.sgd, batch_size=4, num_steps=10, min_lr=1e-3,
            max_lr=1.0)
  with pytest.raises(ValueError, match="max_lr"):
    clr_optax.range_test(data, **{**kw, "max_lr": 1e-4})
  with pytest.raises(ValueError, match="min_lr"):
    clr_optax.range_test(data, **{**kw, "min_lr": 0.0}, mode="exponential")
  with pytest.raises(ValueError, match="batch_size"):
    clr_optax.range_test(data, **{**kw, "batch_size": 9})
  with pytest.raises(ValueError, match="mode"):
    clr_optax.range_test(data, **kw, mode="cosine")
  with pytest.raises(ValueError, match="eval_every"):
    clr_optax.range_test(data, **kw, eval_fn=lambda w: 0.0)
  with pytest.raises(ValueError, match="train_step"):
    clr_optax.range_test(data, **kw, train_step=lambda s, b, lr: (s, {"loss": 0.0}))
  with pytest.raises(ValueError, match="divergence_factor"):
    clr_optax.range_test(data, **kw, divergence_factor=0.5)


@pytest.mark.slow  # about a minute on 2 CPU cores (the loading is cached; most of it is the convnet)
def test_cifar10_smoke(cifar10_archive, tmp_path):
  """A small convnet on a few hundred real CIFAR-10 images: the sweep runs, finds bounds, plots."""
  data_lib = pytest.importorskip("experiments.data")
  augment = pytest.importorskip("experiments.augment")
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  ds = data_lib.stratified_subset(data_lib.load_image_folder(cifar10_archive),
                                  train_size=400, test_size=200, seed=0)

  class SmallConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3))(x)), (2, 2), (2, 2))
      x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3))(x)), (2, 2), (2, 2))
      return nn.Dense(10)(x.reshape(x.shape[0], -1))

  net = SmallConvNet()
  mean, std = (np.asarray(v, np.float32) for v in augment.channel_stats(ds.train_images))
  test_x = augment.normalize(jnp.asarray(ds.test_images), mean, std)
  test_y = jnp.asarray(ds.test_labels)

  def loss_fn(params, batch):
    logits = net.apply(params, augment.normalize(batch["image"], mean, std))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}

  def held_out(params):
    return {"accuracy": jnp.mean(jnp.argmax(net.apply(params, test_x), -1) == test_y)}

  result = clr_optax.range_test(
      {"image": ds.train_images, "label": ds.train_labels}, loss_fn=loss_fn,
      params=lambda k: net.init(k, test_x[:1]), optimizer=functools.partial(optax.sgd, momentum=0.9),
      batch_size=40, num_steps=30, min_lr=1e-3, max_lr=3.0, mode="exponential", eval_fn=held_out,
      eval_every=5, num_runs=2)
  assert result.loss.shape == (2, 30)
  live = ~np.asarray(result.masked)
  assert live[:, :8].all() and np.isfinite(np.asarray(result.loss)[live]).all()
  s = result.suggest()
  assert 1e-3 <= s.base_lr < s.max_lr <= 3.0
  fig = result.plot()
  assert fig.axes[-1].get_xscale() == "log"
  fig.savefig(tmp_path / "range_test.png")


# ----------------------------------------------------------------------------------------------------------
# A stream of host batches, progress, staircase, argument checks.

def _sgd_loop(w0, batches, lrs):
  """The reference: a Python loop of jitted SGD steps over the given batches, no range-test machinery."""
  step = jax.jit(lambda w, b, lr: (w - lr * jax.grad(_mse)(w, b), _mse(w, b)))
  w, losses = jnp.asarray(w0), []
  for batch, lr in zip(batches, lrs):
    w, loss = step(w, batch, np.float32(lr))
    losses.append(float(loss))
  return np.asarray(losses)


def _minibatches(x, y, size, count, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(count):
    i = rng.choice(len(x), size, replace=False)
    out.append({"x": x[i].astype(np.float32), "y": y[i].astype(np.float32)})
  return out


@pytest.mark.parametrize("method,chunk_size", [("scan", None), ("scan", 3), ("chunked", 1), ("chunked", 4)])
def test_stream_equals_a_loop_of_jitted_steps_and_stops_reading_after_divergence(method, chunk_size):
  x, y = _least_squares(7)
  batches = _minibatches(x, y, 16, 80)
  lrs = clr_optax.learning_rates(1e-3, 1e3, 80, "exponential")
  want = _sgd_loop(np.zeros(x.shape[1]), batches, lrs)
  read = []

  def stream():  # an infinite generator that counts what it hands out
    for i in itertools.count():
      read.append(i)
      yield batches[i % len(batches)]

  result = clr_optax.range_test(stream(), loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                                num_steps=80, min_lr=1e-3, max_lr=1e3, mode="exponential", method=method,
                                chunk_size=chunk_size, progress=False)
  d = int(result.diverged_step[0])
  assert 0 < d < 60
  np.testing.assert_allclose(result.loss[0, :d], want[:d], rtol=2e-5)
  assert np.asarray(result.masked[0, d:]).all() and np.isnan(np.asarray(result.loss[0, d:])).all()
  np.testing.assert_allclose(result.lr[0], lrs, rtol=1e-6)
  # Divergence is seen chunk by chunk: reading stops within two chunks after the diverged step's chunk.
  block = 16 if chunk_size is None and method == "scan" else chunk_size
  assert len(read) <= (d // block + 3) * block, (len(read), d, block)


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_stream_equals_device_array_sweep_with_runs_and_evaluations(method):
  # Full batches: every step of the array sweep sees all rows (in a shuffled order, which a mean ignores),
  # so a stream that yields the whole data set each step trains on the same batches.
  x, y = _least_squares(8)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  kw = dict(loss_fn=_mse, params=lambda k: jax.random.normal(k, (x.shape[1],)),
            optimizer=functools.partial(optax.sgd, momentum=0.9), num_steps=24, min_lr=1e-3, max_lr=0.5,
            mode="exponential", num_runs=2, key=3, method=method, chunk_size=4,
            eval_fn=lambda w: {"norm": jnp.sum(w ** 2)}, eval_every=6, progress=False)
  arrays = clr_optax.range_test(data, batch_size=len(x), **kw)
  reports = []
  streamed = clr_optax.range_test(itertools.repeat(data, 24),  # a finite iterator, exactly num_steps long
                                  **{**kw, "progress": reports.append})
  # Chunks of 3 steps: the divisor of eval_every=6 that chunk_size=4 allows.
  assert [r.step for r in reports] == list(range(3, 25, 3))
  np.testing.assert_allclose([r.smooth_loss for r in reports], arrays.smooth_loss[:, 2::3].T, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(arrays), jax.tree.leaves(streamed)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  assert streamed.eval_metrics["norm"].shape == (2, 4)
  assert streamed.suggest().bounds == arrays.suggest().bounds


def test_stream_that_runs_out_names_both_numbers():
  x, y = _least_squares(9)
  batches = _minibatches(x, y, 16, 7)
  kw = dict(loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, num_steps=10, min_lr=1e-3,
            max_lr=0.01, progress=False)
  with pytest.raises(ValueError, match=r"ran out after 7 batches.*num_steps=10"):
    clr_optax.range_test(iter(batches), chunk_size=3, **kw)
  with pytest.raises(ValueError, match=r"no batch.*num_steps=10"):
    clr_optax.range_test(iter([]), **kw)
  # A longer finite generator is read one batch per step, no further.
  longer = iter(_minibatches(x, y, 16, 15))
  result = clr_optax.range_test(longer, chunk_size=4, **kw)
  assert result.loss.shape == (1, 10) and not np.asarray(result.masked).any()
  assert len(list(longer)) == 5


def test_stream_checks_its_batches():
  x, y = _least_squares(9)
  batches = _minibatches(x, y, 16, 6)
  kw = dict(loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, num_steps=6, min_lr=1e-3,
            max_lr=0.01, progress=False)
  short = batches[:3] + [{"x": batches[3]["x"][:8], "y": batches[3]["y"][:8]}] + batches[4:]
  with pytest.raises(ValueError, match="batch 3 of data"):
    clr_optax.range_test(iter(short), chunk_size=2, **kw)
  with pytest.raises(ValueError, match="batch_size=32, but the first batch"):
    clr_optax.range_test(iter(batches), batch_size=32, **kw)
  # Batches from a PyTorch-style loader are lists of arrays; any pytree works.
  pairs = [(b["x"], b["y"]) for b in batches]
  result = clr_optax.range_test(iter(pairs), loss_fn=lambda w, b: _mse(w, {"x": b[0], "y": b[1]}),
                                **{k: v for k, v in kw.items() if k != "loss_fn"})
  np.testing.assert_allclose(result.loss[0], _sgd_loop(np.zeros(x.shape[1]), batches, result.lr[0]), rtol=2e-5)


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_progress_reports_per_chunk_match_the_records(method):
  x, y = _least_squares(10)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  reports = []
  result = clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                                batch_size=16, num_steps=30, min_lr=1e-3, max_lr=1e3, mode="exponential",
                                num_runs=2, method=method, chunk_size=4, progress=reports.append)
  steps = [r.step for r in reports]
  # One report per chunk of 4 until every run has diverged, then one at the end.
  assert steps == sorted(steps) and steps[-1] == 30 and steps[:-1] == list(range(4, 4 * len(steps) - 3, 4))
  for r in reports:
    assert r.num_steps == 30 and r.smooth_loss.shape == (2,) and r.diverged.shape == (2,)
    assert r.lr == pytest.approx(float(result.lr[0, r.step - 1]), rel=1e-6)
    for run in range(2):
      diverged = 0 <= result.diverged_step[run] < r.step
      assert r.diverged[run] == diverged
      if diverged:
        assert np.isnan(r.smooth_loss[run])
      else:
        assert r.smooth_loss[run] == pytest.approx(float(result.smooth_loss[run, r.step - 1]), rel=1e-5)
  assert reports[-1].diverged.all()


@pytest.mark.parametrize("method,chunk_size", [("scan", 4), ("chunked", 1)])
def test_progress_follows_the_device(method, chunk_size):
  # Each report comes while the device is at most one chunk ahead of it, not after every chunk was queued.
  x, y = _least_squares(11)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  executed, seen = [], []

  def loss_fn(w, batch):
    jax.debug.callback(lambda: executed.append(1))
    return _mse(w, batch)

  def report(p):
    jax.effects_barrier()
    seen.append((p.step, len(executed)))

  clr_optax.range_test(data, loss_fn=loss_fn, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                       batch_size=16, num_steps=40, min_lr=1e-4, max_lr=1e-2, method=method,
                       chunk_size=chunk_size, progress=report)
  assert [s for s, _ in seen] == list(range(chunk_size, 41, chunk_size))
  for step, ran in seen:
    assert step <= ran <= step + chunk_size, seen


def test_progress_bar_by_default(capsys):
  x, y = _least_squares(10)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, batch_size=16,
                       num_steps=20, min_lr=1e-3, max_lr=0.1)
  err = capsys.readouterr().err
  assert "LR range test" in err and "20/20" in err and "lr=0.1" in err
  clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, batch_size=16,
                       num_steps=20, min_lr=1e-3, max_lr=0.1, progress=False)
  assert "LR range test" not in capsys.readouterr().err


def test_staircase_holds_each_rate_for_k_steps():
  np.testing.assert_allclose(clr_optax.learning_rates(1.0, 3.0, 7, staircase=3), [1, 1, 1, 2, 2, 2, 3])
  np.testing.assert_allclose(clr_optax.learning_rates(1e-3, 1e-1, 6, "exponential", staircase=2),
                             [1e-3, 1e-3, 1e-2, 1e-2, 1e-1, 1e-1])
  np.testing.assert_array_equal(clr_optax.learning_rates(0.0, 1.0, 9, staircase=1),
                                clr_optax.learning_rates(0.0, 1.0, 9))
  for bad in (0, 9, 2.0, True):
    with pytest.raises(ValueError, match="staircase"):
      clr_optax.learning_rates(0.0, 1.0, 9, staircase=bad)
  # The sweep trains with the held rates (float64 gradient descent as the reference), and its suggestion is
  # read per level: on the quadratic it stays below the stability limit.
  x, _ = _least_squares()
  x = x.astype(np.float32)
  eigvals = np.linalg.eigvalsh(2 * x.T.astype(np.float64) @ x / len(x))
  limit = 2 / eigvals[-1]
  data = {"x": x, "y": x @ np.linspace(-1, 1, x.shape[1]).astype(np.float32)}
  result = clr_optax.range_test(data, loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd,
                                batch_size=len(x), num_steps=120, min_lr=limit / 50, max_lr=limit * 4,
                                mode="exponential", staircase=5, progress=False)
  lrs = clr_optax.learning_rates(limit / 50, limit * 4, 120, "exponential", staircase=5)
  np.testing.assert_allclose(result.lr[0], lrs, rtol=1e-6)
  w, want = np.zeros(x.shape[1]), []
  for lr in lrs[:int(np.argmax(lrs > limit))]:  # past the limit float32 round-off grows like the loss
    r = x.astype(np.float64) @ w - data["y"]
    want.append(np.mean(r ** 2))
    w = w - lr * 2 * x.T.astype(np.float64) @ r / len(x)
  np.testing.assert_allclose(result.loss[0, :len(want)], want, rtol=1e-4)
  s = result.suggest()
  assert np.isfinite(s.bounds).all() and s.max_lr < limit


def test_numeric_arguments_are_checked_up_front():
  data = {"x": np.zeros((8, 2), np.float32), "y": np.zeros(8, np.float32)}
  kw = dict(loss_fn=_mse, params=jnp.zeros(2), optimizer=optax.sgd, batch_size=4, num_steps=10, min_lr=1e-3,
            max_lr=1.0, progress=False)
  for name, bad in [("batch_size", 32.0), ("batch_size", 0), ("batch_size", True), ("num_steps", 10.0),
                    ("min_lr", "0.1"), ("max_lr", None), ("smoothing", "0.9"), ("smoothing", 1.0),
                    ("num_runs", 2.0), ("chunk_size", 0), ("staircase", 1.5), ("divergence_factor", "4")]:
    with pytest.raises(ValueError, match=name):
      clr_optax.range_test(data, **{**kw, name: bad})
  with pytest.raises(ValueError, match="eval_every"):
    clr_optax.range_test(data, **kw, eval_fn=lambda w: 0.0, eval_every=2.5)
  with pytest.raises(ValueError, match="progress"):
    clr_optax.range_test(data, **{**kw, "progress": "yes"})
  with pytest.raises(ValueError, match="batch_size is required"):
    clr_optax.range_test(data, **{**kw, "batch_size": None})


def _tiny():
  data = {"x": np.zeros((8, 2), np.float32), "y": np.zeros(8, np.float32)}
  kw = dict(batch_size=4, num_steps=10, min_lr=1e-3, max_lr=1.0, progress=False)
  return data, kw


@pytest.mark.parametrize("arguments, error, pattern", [
    (dict(loss_fn=lambda w, b: (_mse(w, b), 3.0)), TypeError, "loss_fn must return a scalar loss or \\(loss, metrics"),
    (dict(loss_fn=lambda w, b: b["x"] @ w), ValueError, "loss_fn must return a scalar loss.*float32\\[4\\]"),
    (dict(loss_fn=lambda w, b: "loss"), TypeError, "loss_fn must return"),
    (dict(optimizer="sgd"), TypeError, "optimizer must be an optax optimizer factory.*optimizer='sgd'"),
    (dict(loss_fn="mse"), TypeError, "loss_fn must be a function"),
    (dict(eval_fn=lambda w: "good", eval_every=5), TypeError, "what eval_fn returns must be a number or a dict"),
    (dict(eval_fn=lambda w: {"acc": "good"}, eval_every=5), TypeError, "what eval_fn returns must be.*'acc'"),
    (dict(eval_fn="accuracy", eval_every=5), TypeError, "eval_fn must be a function"),
    (dict(eval_fn=lambda w: None, eval_every=5), TypeError, "what eval_fn returns must be a number"),
    (dict(key="a"), TypeError, "key must be"),
    (dict(key=1.5), TypeError, "key must be"),
    (dict(key=True), TypeError, "key must be"),
    (dict(key=2**32), ValueError, "key.*2\\*\\*32"),
    (dict(key=2**40), ValueError, "key.*2\\*\\*32"),
    (dict(key=-1), ValueError, "key.*2\\*\\*32"),
    (dict(key=jnp.zeros(3, jnp.float32)), TypeError, "key must be"),
])
def test_bad_functions_and_keys_are_named(arguments, error, pattern):
  data, kw = _tiny()
  kw = {"loss_fn": _mse, "params": jnp.zeros(2), "optimizer": optax.sgd, **kw, **arguments}
  with pytest.raises(error, match=pattern):
    clr_optax.range_test(data, **kw)


def test_seeds_are_keys_and_distinct():
  x, y = _least_squares(3, n=16, d=2)
  data = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
  _, kw = _tiny()
  kw = dict(kw, loss_fn=_mse, params=lambda k: jax.random.normal(k, (2,)), optimizer=optax.sgd)
  runs = {seed: clr_optax.range_test(data, key=seed, **kw).loss for seed in (0, 1, 2**32 - 1, np.uint32(7))}
  np.testing.assert_array_equal(runs[1], clr_optax.range_test(data, key=jnp.int32(1), **kw).loss)  # a 0-d array
  np.testing.assert_array_equal(runs[0], clr_optax.range_test(data, key=jax.random.key(0), **kw).loss)
  np.testing.assert_array_equal(runs[np.uint32(7)], clr_optax.range_test(data, key=jax.random.key(7), **kw).loss)
  assert not np.array_equal(runs[0], runs[2**32 - 1]) and not np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("step, pattern", [
    (lambda s, b, lr: s, "train_step must return \\(state, metrics\\)"),
    (lambda s, b, lr: (s, {"loss": 0.0}, 3), "train_step must return \\(state, metrics\\)"),
    (lambda s, b, lr: (jnp.zeros(4), {"loss": 0.0}), "train_step must return a state.*float32\\[4\\].*float32\\[3\\]"),
    (lambda s, b, lr: (s.astype(jnp.int32), {"loss": 0.0}), "train_step must return a state.*int32\\[3\\]"),
    (lambda s, b, lr: ({"a": s}, {"loss": 0.0}), "train_step must return a state of the structure"),
    (lambda s, b, lr: (s, {"loss": "x"}), "the metrics of train_step.* must be a number"),
])
@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_bad_train_step_returns_are_named(step, pattern, method):
  data, kw = _tiny()
  with pytest.raises((TypeError, ValueError), match=pattern):
    clr_optax.range_test(data, train_step=step, state=jnp.zeros(3), method=method, **kw)
  with pytest.raises(TypeError, match="train_step must be a function"):
    clr_optax.range_test(data, train_step=(step,), state=jnp.zeros(3), **kw)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_stream_that_ends_in_its_first_chunk_names_both_numbers(chunk_size):
  x, y = _least_squares(9)
  kw = dict(loss_fn=_mse, params=jnp.zeros(x.shape[1]), optimizer=optax.sgd, num_steps=40, min_lr=1e-3,
            max_lr=0.01, progress=False, chunk_size=chunk_size)
  with pytest.raises(ValueError, match=r"ran out after 3 batches.*num_steps=40"):
    clr_optax.range_test(iter(_minibatches(x, y, 16, 3)), **kw)
