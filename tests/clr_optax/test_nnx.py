"""Flax NNX as a user of clr_optax: the range test on an NNX module (BatchNorm and Dropout included) against
a hand-written training loop, discriminative labels for NNX state, gradient accumulation's step counts, and
the NNX guide's code."""

import dataclasses
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

linen = pytest.importorskip("flax.linen")  # flax is not a dependency of the library
nnx = pytest.importorskip("flax.nnx")

import clr_optax
from tests.clr_optax import references as ref

GUIDE = pathlib.Path(__file__).resolve().parents[2] / "docs" / "guides" / "nnx.md"


class _Net(nnx.Module):
  """Linear, Dropout, BatchNorm, ReLU, Linear: every kind of NNX state a training step changes."""

  def __init__(self, rngs):
    self.body = nnx.Linear(3, 16, rngs=rngs)
    self.drop = nnx.Dropout(0.25, rngs=rngs)
    self.norm = nnx.BatchNorm(16, rngs=rngs)
    self.head = nnx.Linear(16, 1, rngs=rngs)

  def __call__(self, x):
    return self.head(nnx.relu(self.norm(self.drop(self.body(x)))))[:, 0]


def _mse(model, batch):
  return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)


def _held_out(model):
  model.eval()  # a merged copy: BatchNorm's running averages, no dropout
  x = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
  return jnp.mean((model(x) - x.sum(axis=1)) ** 2)


def _params(model):
  return jax.tree.map(np.array, nnx.state(model, nnx.Param))


@pytest.mark.parametrize("method", ["scan", "chunked"])
def test_range_test_of_an_nnx_module_equals_a_hand_written_loop(method):
  # Identical rows make every shuffle the same batch, so a plain loop over the module can replay the sweep:
  # Dropout's masks (its random stream advancing each step) and BatchNorm's statistics included. Both runs
  # start from the module, its random stream included, so both replay it.
  row = np.array([0.5, -1.0, 2.0], np.float32)
  data = {"x": np.tile(row, (8, 1)), "y": np.full(8, 1.5, np.float32)}
  model = _Net(nnx.Rngs(0))
  before = _params(model)
  result = clr_optax.range_test(data, loss_fn=_mse, params=model, optimizer=optax.sgd, batch_size=8,
                                num_steps=10, min_lr=0.01, max_lr=0.1, eval_fn=_held_out, eval_every=10,
                                num_runs=2, method=method, progress=False)
  jax.tree.map(np.testing.assert_array_equal, _params(model), before)  # the caller's module is untouched
  assert int(model.drop.rngs.count[...]) == 0

  @nnx.jit
  def sgd_step(model, batch, lr):
    loss, grads = nnx.value_and_grad(_mse)(model, batch)
    nnx.update(model, jax.tree.map(lambda p, g: p - lr * g, nnx.state(model, nnx.Param), grads))
    return loss

  losses = [float(sgd_step(model, data, lr)) for lr in result.lr[0]]
  assert len(set(np.round(losses[:3], 6))) == 3  # the masks differ from step to step
  np.testing.assert_allclose(result.loss, [losses, losses], rtol=1e-4)
  np.testing.assert_allclose(result.eval_metrics["value"][:, -1], [_held_out(model)] * 2, rtol=1e-4)


def test_a_model_is_never_called_with_a_key():
  calls = []

  @jax.tree_util.register_dataclass
  @dataclasses.dataclass
  class Affine:  # a callable pytree of arrays, as another library's module is
    w: jax.Array

    def __call__(self, x):
      calls.append(x)
      return x * self.w

  data = {"x": np.ones((4, 1), np.float32)}
  common = dict(batch_size=2, num_steps=4, min_lr=0.1, max_lr=1.0, progress=False)
  loss_fn = lambda p, b: jnp.mean(b["x"] * p.w)  # noqa: E731
  with pytest.raises(ValueError, match=r"params is a callable that holds arrays \(Affine\)"):
    clr_optax.range_test(data, loss_fn=loss_fn, params=Affine(jnp.ones(1)), optimizer=optax.sgd, **common)
  with pytest.raises(ValueError, match=r"params is a Flax Linen module \(Dense\).*model.init"):
    clr_optax.range_test(data, loss_fn=loss_fn, params=linen.Dense(1), optimizer=optax.sgd, **common)
  with pytest.raises(ValueError, match=r"state is a Flax NNX module \(_Net\): give it as params="):
    clr_optax.range_test(data, train_step=lambda s, b, lr: (s, {"loss": 0.0}), state=_Net(nnx.Rngs(0)), **common)
  assert not calls


def test_flax_is_not_imported_by_the_library():
  code = "import sys, clr_optax; print(sorted(m for m in sys.modules if m.split('.')[0] == 'flax'))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]"


def test_discriminative_labels_as_the_nnx_state_prints():
  model = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.Linear(4, 2, rngs=nnx.Rngs(1)))
  print(nnx.state(model, nnx.Param))  # a 'layers' dict keyed 0 and 1, each with 'kernel' and 'bias'
  labels = {"layers": {0: "body", 1: {"kernel": "head", "bias": "head_bias"}}}
  rates = {"body": 0.1, "head": 0.01, "head_bias": 0.5}
  optimizer = nnx.Optimizer(model, clr_optax.discriminative(optax.sgd, labels, rates), wrt=nnx.Param)
  x = jnp.arange(6.0).reshape(2, 3)
  before = nnx.state(model, nnx.Param)
  before = jax.tree.map(np.array, before)
  grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
  optimizer.update(model, grads)
  moved = jax.tree.map(lambda new, old: np.asarray(new) - old, nnx.state(model, nnx.Param), before)
  for path, rate in [((0, "kernel"), 0.1), ((0, "bias"), 0.1), ((1, "kernel"), 0.01), ((1, "bias"), 0.5)]:
    layer, name = path
    np.testing.assert_allclose(moved["layers"][layer][name][...], -rate * grads["layers"][layer][name][...],
                               rtol=1e-5, err_msg=str(path))

  with pytest.raises(ValueError, match=r"no label for the parameter at \['layers'\]\[1\]\['bias'\]"):
    clr_optax.discriminative(optax.sgd, {"layers": {0: "body", 1: {"kernel": "head"}}}, rates).init(before)


# ----------------------------------------------------------------------------------------------------------
# Gradient accumulation: which count the schedules see.

K = 4  # micro-batches per applied update
SCHEDULE = dict(base_lr=0.1, max_lr=1.0, step_size=2)


def _accumulate(optimizer, micro_steps):
  """A scalar parameter under a constant gradient of 1: its value after each micro-batch."""
  w = jnp.zeros([])
  state = optimizer.init(w)
  update = jax.jit(optimizer.update)
  values = []
  for _ in range(micro_steps):
    updates, state = update(jnp.ones([]), state, w)
    w = optax.apply_updates(w, updates)
    values.append(float(w))
  return np.array(values), state


def _applied(micro_steps):
  """-sum of the rates of the updates applied so far, the n-th update at the rate of step n."""
  rates = [ref.caffe_rate(n, "triangular", **{k.replace("step_size", "stepsize"): v for k, v in SCHEDULE.items()})
           for n in range(micro_steps // K)]
  return np.array([-sum(rates[:(t + 1) // K]) for t in range(micro_steps)])


def test_under_multisteps_a_schedule_counts_applied_updates():
  schedule = clr_optax.triangular(**SCHEDULE)
  values, _ = _accumulate(optax.MultiSteps(optax.sgd(schedule), K), 5 * K)
  np.testing.assert_allclose(values, _applied(5 * K), rtol=1e-6)


def test_a_staircase_of_micro_batches_gives_the_rates_of_applied_updates():
  # inject_hyperparams around MultiSteps counts micro-batches: the schedule in micro-batches, held per window.
  micro = clr_optax.staircase(clr_optax.triangular(SCHEDULE["base_lr"], SCHEDULE["max_lr"], K * SCHEDULE["step_size"]),
                              steps_per_stair=K)
  optimizer = optax.inject_hyperparams(lambda learning_rate: optax.MultiSteps(optax.sgd(learning_rate), K))(
      learning_rate=micro)
  values, state = _accumulate(optimizer, 5 * K)
  np.testing.assert_allclose(values, _applied(5 * K), rtol=1e-6)
  # the logged rate is the schedule at the count of micro-batches seen, i.e. triangular(t // K)
  t = 5 * K - 1
  expected = ref.caffe_rate(t // K, "triangular", SCHEDULE["base_lr"], SCHEDULE["max_lr"], SCHEDULE["step_size"])
  np.testing.assert_allclose(float(state.hyperparams["learning_rate"]), expected, rtol=1e-6)


def test_nnx_optimizer_step_counts_micro_batches():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, optax.MultiSteps(optax.sgd(clr_optax.triangular(**SCHEDULE)), K), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer):
    optimizer.update(model, nnx.grad(lambda m: jnp.sum(m(jnp.ones((1, 2)))))(model))

  for _ in range(3 * K):
    train_step(model, optimizer)
  assert int(optimizer.step[...]) == 3 * K
  assert int(optax.tree_utils.tree_get(nnx.as_pure(optimizer.opt_state), "gradient_step")) == 3


@pytest.mark.parametrize("form,staircase", [("factory", None), ("inject_in_chain", K), ("inject_transformation", None)])
def test_range_test_through_multisteps_matches_float64_accumulation(form, staircase):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 3)).astype(np.float32)
  y = x @ np.array([1.0, -2.0, 0.5], np.float32)
  optimizer = {
      "factory": lambda lr: optax.MultiSteps(optax.sgd(lr), K),
      "inject_in_chain": optax.MultiSteps(optax.chain(optax.identity(), optax.inject_hyperparams(optax.sgd)(
          learning_rate=0.0)), K),
      "inject_transformation": optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=0.0),
                                                K).gradient_transformation(),
  }[form]
  # full batches: every step sees the whole data, so float64 gradient descent replays the sweep
  result = clr_optax.range_test({"x": x, "y": y}, loss_fn=lambda w, b: jnp.mean((b["x"] @ w - b["y"]) ** 2),
                                params=jnp.zeros(3), optimizer=optimizer, batch_size=16, num_steps=5 * K,
                                min_lr=0.01, max_lr=0.2, staircase=staircase, divergence_factor=None,
                                progress=False)
  lrs = clr_optax.learning_rates(0.01, 0.2, 5 * K, staircase=staircase)
  xd, yd = x.astype(np.float64), y.astype(np.float64)
  w, grads, losses = np.zeros(3), [], []
  for t, lr in enumerate(lrs):
    losses.append(np.mean((xd @ w - yd) ** 2))
    grads.append(2 * xd.T @ (xd @ w - yd) / len(xd))
    if t % K == K - 1:  # the accumulated mean, at the rate of the window's last micro-batch
      w = w - lr * np.mean(grads, axis=0)
      grads = []
  np.testing.assert_allclose(result.loss[0], losses, rtol=1e-5)
  if staircase:
    assert all(len(set(lrs[i:i + K])) == 1 for i in range(0, len(lrs), K))  # one rate per window


def test_multisteps_without_a_settable_rate_names_the_factory_form():
  with pytest.raises(TypeError, match=r"lambda lr: optax.MultiSteps\(optax.sgd\(lr\), k\)"):
    clr_optax.range_test({"x": np.ones((4, 1), np.float32)}, loss_fn=lambda w, b: jnp.sum(b["x"] * w),
                         params=jnp.ones(1), optimizer=optax.MultiSteps(optax.sgd(0.1), K), batch_size=2,
                         num_steps=4, min_lr=0.1, max_lr=1.0, progress=False)


# ----------------------------------------------------------------------------------------------------------
# The guide.

def test_nnx_guide_code_blocks_run(capsys):
  blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
  assert len(blocks) >= 4, "the NNX guide has lost its examples"
  namespace: dict = {}
  for i, block in enumerate(blocks):
    exec(compile(block, f"{GUIDE.name} python block {i}", "exec"), namespace)  # pylint: disable=exec-used
  assert "learning rate" in capsys.readouterr().out
