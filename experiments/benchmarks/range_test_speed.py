"""How fast is the compiled range test? Against a Python loop of jitted steps and against plain training.

Same data (uint8 images, 32x32x3; random by default, or ``--data`` an image-folder dataset), batch 100,
100 and 1,000 steps, two models: a dispatch-bound small MLP (on the images pooled once to 8x8x3, 192
features -> 32 -> 10) and the compute-bound Caffe ``cifar10_quick`` convnet (uint8 images, normalised in the
step). Each model is timed three ways, every one end to end from a fresh jit (compilation included):

* sweep: ``clr_optax.range_test`` (its automatic method: one compiled loop, or on XLA:CPU for the convnet
  a host loop of compiled chunks);
* (a) loop: a Python loop calling a jitted step once per learning rate and reading the loss back each
  step to smooth it and test for divergence on the host (how fastai and pytorch-lr-finder work);
* (b) plain: the same number of training steps with no range-test bookkeeping, run the way the sweep runs
  (one ``lax.fori_loop``, or a Python loop of jitted steps that never waits for the device), keeping each
  step's metrics as a training loop that logs them does (recorded on the device, never read back). A loop
  that dropped them would let XLA skip computing the loss and accuracy: for the MLP that is about 10% of
  its step, which the sweep, whose job is to record them, cannot skip.

All three draw their batches the same way: a fresh on-device permutation of the examples every epoch
(with 5,000 examples an epoch is 50 steps, and on XLA:CPU each permutation costs about a millisecond).
The learning rate rises exponentially from 1e-4 to 0.1, where neither model diverges, so every runner
executes every step.
Every program is compiled with the trainer's XLA options (`experiments.parallel.compiler_options`; on
XLA:CPU convolutions run on XLA's Eigen kernels instead of YNNPACK).

Each is then run again with new seeds, ``--repeats`` rounds that interleave the three runners: compiled
programs are reused (``range_test`` caches them), so the fastest round of each is its steady state,
reported per step. Then K = 8 seeds run together in one sweep against 8 sequential sweeps, end to end (one
compilation each) and in the steady state.

  python -m experiments.benchmarks.range_test_speed            # CPU, 2 cores: ~1 min MLP + ~20 min convnet (--repeats 1)
  python -m experiments.benchmarks.range_test_speed --quick    # convnet 20 and 60 steps, K = 4: ~10 min
  python -m experiments.benchmarks.range_test_speed --models mlp
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

import clr_optax
from experiments import augment
from experiments import cli
from experiments import data as data_lib
from experiments import parallel
from experiments import step as step_lib
from experiments.models import create_model

BATCH = 100
# Neither model diverges below MAX_LR, so all three runners execute every step (the sweep stops at
# divergence and the loop breaks there: over a diverging range they would do different amounts of work).
MIN_LR, MAX_LR = 1e-4, 0.1
# Every program is compiled as the trainer compiles it (on XLA:CPU: convolutions on XLA's Eigen kernels).
COMPILER_OPTIONS = parallel.compiler_options(jax.local_devices())
_jit = functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)


class SmallMLP(nn.Module):
  """The dispatch-bound model: 192 features (the image pooled to 8x8x3) -> 32 -> 10."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(10)(nn.relu(nn.Dense(32)(x.reshape(x.shape[0], -1))))


def pooled(images: np.ndarray) -> np.ndarray:
  """The MLP's inputs: each image averaged over 4x4 blocks, scaled to [-0.5, 0.5] (computed once)."""
  n, h, w, c = images.shape
  x = images.reshape(n, h // 4, 4, w // 4, 4, c).astype(np.float32).mean((2, 4)) / 255.0 - 0.5
  return x.reshape(n, -1)


def _model(name):
  return SmallMLP() if name == "mlp" else create_model("cifar10_quick")


def _make(name):
  """(init(key) -> state, train_step(state, batch, lr) -> (state, metrics)) for one model."""
  model = _model(name)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0, momentum=0.9)

  def init(key):
    params = model.init(key, jnp.zeros((1, 192) if name == "mlp" else (1, 32, 32, 3)))["params"]
    return {"params": params, "opt": tx.init(params)}

  def train_step(state, batch, lr):
    x = batch["image"] if name == "mlp" else batch["image"].astype(jnp.float32) / 255.0 - 0.5

    def loss_fn(p):
      logits = model.apply({"params": p}, x, train=True)
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    opt = step_lib.set_learning_rate(state["opt"], lr)
    updates, opt = tx.update(grads, opt, state["params"])
    return ({"params": optax.apply_updates(state["params"], updates), "opt": opt},
            {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])})

  return init, train_step


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  jax.block_until_ready(out)
  return time.perf_counter() - t0, out


def sweep_runner(name, data, steps, **kw):
  """A function key -> seconds for one range test; the first call compiles, later calls reuse it."""
  init, step = _make(name)

  def run(key):
    seconds, result = _timed(lambda: clr_optax.range_test(
        data, train_step=step, state=init, key=key, batch_size=BATCH, num_steps=steps, min_lr=MIN_LR,
        max_lr=MAX_LR, mode="exponential", compiler_options=COMPILER_OPTIONS, progress=False, **kw))
    if (np.asarray(result.diverged_step) >= 0).any():
      raise RuntimeError(f"the {name} sweep diverged at step {result.diverged_step}: the runners would execute "
                         "different numbers of steps; lower MAX_LR")
    return seconds

  return run


def _epoch_permutation(n):
  """A jitted ``(key, epoch) -> permutation of n``: the fresh shuffle per epoch every runner makes (with
  XLA's default options: the plain loop calls it inside its own jit, and a nested jit takes none)."""
  return jax.jit(lambda key, epoch: augment.epoch_permutation(jax.random.fold_in(key, epoch), n))


def loop_runner(name, data, steps):
  """(a): one jitted step per learning rate from Python, the loss read back and checked each step."""
  init, step = _make(name)
  n = len(data["label"])
  per_epoch = n // BATCH
  permutation = _epoch_permutation(n)

  @_jit
  def jstep(state, data, perm, i, lr):
    idx = jax.lax.dynamic_slice_in_dim(perm, (i % per_epoch) * BATCH, BATCH)
    return step(state, jax.tree.map(lambda x: x[idx], data), lr)

  jinit = _jit(init)

  def go(key):
    state = jinit(key)
    lrs = clr_optax.learning_rates(MIN_LR, MAX_LR, steps, "exponential")
    avg, best = 0.0, math.inf
    for i, lr in enumerate(lrs):
      if i % per_epoch == 0:
        perm = permutation(key, i // per_epoch)
      state, metrics = jstep(state, data, perm, i, np.float32(lr))
      loss = float(metrics["loss"])  # the host sync the finders make every step
      avg = 0.98 * avg + 0.02 * loss
      smooth = avg / (1 - 0.98 ** (i + 1))
      if not math.isfinite(loss) or smooth > 4 * best:
        break
      best = min(best, smooth)
    return state

  return lambda key: _timed(lambda: go(key))[0]


def plain_runner(name, data, steps, method):
  """(b): the same training steps, executed the way the sweep executes them, without its bookkeeping (each
  step's metrics kept on the device)."""
  init, step = _make(name)
  n = len(data["label"])
  per_epoch = n // BATCH
  lrs = jnp.asarray(clr_optax.learning_rates(MIN_LR, MAX_LR, steps, "exponential"), jnp.float32)
  permutation = _epoch_permutation(n)

  def body(state, data, perm, i):
    idx = jax.lax.dynamic_slice_in_dim(perm, (i % per_epoch) * BATCH, BATCH)
    state, metrics = step(state, jax.tree.map(lambda x: x[idx], data), lrs[i])
    return state, jnp.stack([metrics[k] for k in sorted(metrics)])

  if method == "scan":
    @_jit
    def whole(key, data):
      perms = jax.vmap(lambda e: permutation(key, e))(jnp.arange(-(-steps // per_epoch)))

      def one(i, carry):
        state, record = body(carry[0], data, perms[i // per_epoch], i)
        return state, jax.lax.dynamic_update_index_in_dim(carry[1], record, i, 0)

      width = jax.eval_shape(lambda s: body(s, data, perms[0], 0)[1], jax.eval_shape(init, key)).shape[0]
      return jax.lax.fori_loop(0, steps, one, (init(key), jnp.zeros((steps, width), jnp.float32)))
    return lambda key: _timed(lambda: whole(key, data))[0]

  jbody, jinit = _jit(body, donate_argnums=0), _jit(init)

  def go(key):
    state, records = jinit(key), []
    for i in range(steps):
      if i % per_epoch == 0:
        perm = permutation(key, i // per_epoch)
      state, record = jbody(state, data, perm, i)
      records.append(record)
    return state, records

  return lambda key: _timed(lambda: go(key))[0]


def _uses_chunks(name) -> bool:
  return jax.default_backend() == "cpu" and name != "mlp"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="convnet: 20 and 60 steps; K = 4 seeds")
  parser.add_argument("--models", default="mlp,convnet", help="comma-separated: mlp, convnet")
  parser.add_argument("--data", default=None, help="an image-folder dataset (default: random uint8 images)")
  parser.add_argument("--examples", type=int, default=5000, help="training examples kept on the device")
  parser.add_argument("--chunk-size", type=int, default=1, help="steps per compiled chunk (chunked method)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="steady-state rounds per runner (default: 5 for the MLP, 2 for the convnet)")
  parser.add_argument("--seeds", type=int, default=None, help="K, the seeds run together (default 8; --quick 4)")
  parser.add_argument("--steps", default=None, metavar="SHORT,LONG",
                      help="the two sweep lengths (default 100,1000; --quick: 20,60 for the convnet)")
  parser.add_argument("--json", help="also write the results to this file (rewritten after each measurement)")
  args = parser.parse_args(argv)
  seeds = args.seeds or (4 if args.quick else 8)

  if args.data:
    ds = data_lib.stratified_subset(data_lib.load(args.data), train_size=args.examples, test_size=10, seed=0)
    images, labels = ds.train_images, ds.train_labels
  else:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.examples, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.examples).astype(np.int32)
  images_data = jax.device_put({"image": images, "label": labels})
  features_data = jax.device_put({"image": pooled(images), "label": labels})
  key = jax.random.key(0)
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.devices()[0].device_kind}; "
        f"{len(labels)} examples on the device, batch {BATCH}")
  results = {"device": jax.devices()[0].device_kind, "jax": jax.__version__, "examples": len(labels),
             "batch": BATCH, "models": {}}

  def save():
    if args.json:
      pathlib.Path(args.json).write_text(json.dumps(results, indent=2))

  for name in args.models.split(","):
    data = features_data if name == "mlp" else images_data
    method = "chunked" if _uses_chunks(name) else "scan"
    kw = {"chunk_size": args.chunk_size}
    print(f"\n== {name} (sweep method: {method}"
          f"{f', chunk_size {args.chunk_size}' if method == 'chunked' else ''}) ==")
    short, long_ = (20, 60) if args.quick and name != "mlp" else (100, 1000)
    if args.steps:
      short, long_ = (int(n) for n in args.steps.split(","))
    mine = results["models"][name] = {"method": method, "lengths": []}
    repeats = args.repeats or (5 if name == "mlp" else 2)
    keys = jax.random.split(key, 3)
    # The first compilation in a process also pays for XLA's own start-up (about a second here): pay it
    # before timing, so that the end-to-end figures compare compilations on an equal footing.
    plain_runner(name, data, 2, method)(keys[0])
    for steps in (short, long_):
      runners = {"sweep": sweep_runner(name, data, steps, **kw), "loop": loop_runner(name, data, steps),
                 "plain": plain_runner(name, data, steps, method)}
      e2e = {what: run(keys[0]) for what, run in runners.items()}  # each compiles
      # The steady state: compiled already; rounds interleave the runners, so that a change of load
      # during the measurement affects all three alike; the fastest round of each is reported.
      times = {what: [] for what in runners}
      for r in range(repeats):
        for what, run in runners.items():
          times[what].append(run(jax.random.fold_in(keys[1], r)))
      per = {what: min(t) / steps * 1e3 for what, t in times.items()}
      print(f"{steps:5d} steps  end to end (s), compile included: sweep {e2e['sweep']:7.2f}  (a) loop "
            f"{e2e['loop']:7.2f}  (b) plain {e2e['plain']:7.2f}  |  (a)/sweep {e2e['loop'] / e2e['sweep']:6.2f}x  "
            f"sweep/(b) {e2e['sweep'] / e2e['plain']:5.3f}")
      print(f"{steps:5d} steps  steady state (ms/step):       sweep {per['sweep']:7.3f}  (a) loop "
            f"{per['loop']:7.3f}  (b) plain {per['plain']:7.3f}  |  (a)/sweep {per['loop'] / per['sweep']:6.2f}x  "
            f"sweep/(b) {per['sweep'] / per['plain']:5.3f}")
      mine["lengths"].append({"steps": steps, "end_to_end_s": e2e, "steady_ms_per_step": per,
                              "loop_over_sweep_end_to_end": e2e["loop"] / e2e["sweep"],
                              "loop_over_sweep_steady": per["loop"] / per["sweep"],
                              "sweep_over_plain_steady": per["sweep"] / per["plain"]})
      save()

    together, one = sweep_runner(name, data, short, **kw), sweep_runner(name, data, short, **kw)
    runners = {"together": lambda k: together(jax.random.split(k, seeds)),
               "sequential": lambda k: sum(one(s[None]) for s in jax.random.split(k, seeds))}
    e2e = {what: run(keys[0]) for what, run in runners.items()}
    per = {what: min(run(jax.random.fold_in(keys[1], r)) for r in range(repeats)) for what, run in runners.items()}
    print(f"K={seeds} seeds x {short} steps: one sweep of {seeds} runs {e2e['together']:.2f} s end to end, "
          f"{per['together']:.2f} s steady; {seeds} sequential sweeps {e2e['sequential']:.2f} s / "
          f"{per['sequential']:.2f} s -> sequential/together {e2e['sequential'] / e2e['together']:.2f}x end to end, "
          f"{per['sequential'] / per['together']:.2f}x steady")
    # The measure: K seeds together against one seed's sweep (a K-th of the sequential ones).
    mine["seeds"] = {"k": seeds, "steps": short, "end_to_end_s": e2e, "steady_s": per,
                     "together_over_one_steady": per["together"] / (per["sequential"] / seeds)}
    save()
  return results


if __name__ == "__main__":
  cli.run(main)
