"""Do the range test's suggestions train well? Every rule's ``max_lr`` against the rate that trains best.

For each setup (issue 26 §1):

(a) the ground truth: short trainings over a grid of fixed learning rates and of triangular ``max_lr`` (one
    cycle, ``base_lr = max_lr / 4``) give the rate that trains best and the band of rates within 1 accuracy
    point of it (held-out test images; for the quadratic, within 5% of the lowest loss on all its data);
(b) ``--seeds`` (K = 5) range tests on fresh seeds from ``--first-seed`` (default
    `suggest_verdicts.SWEEP_SEEDS`, 100: 100-104; the thresholds of `clr_optax.suggest` were chosen on the seeds
    0-4 of ``suggest_robustness``, and the grid trains with `suggest_verdicts.GRID_SEEDS`; a rule changed after
    reading seeds 100-104 is judged on seeds it was not chosen on, ``--first-seed 105``);
(c) every rule's suggestion per sweep, as a ratio to the best triangular ``max_lr``, and whether it lies in
    each band: ours (`clr_optax.suggest_bounds` with each of its rules; "default" is ``rule="auto"``) and the
    peers' (`experiments.benchmarks.peer_rules`), all reading the same sweeps.

A band is the run of grid rates around the best whose score is within the tolerance, widened by half a grid
step (geometrically) at each end, where the next grid point lies: the true edge is somewhere between.

Setups (``--setups``; CIFAR-10 from ``--data``, default ``$CLR_TEST_CIFAR10``, stratified subsets):

* ``quadratic``: the README's least squares (SGD, batch 64, linear sweep), known limit 2 / lambda_max;
* ``mlp_b16``: a 192-32-10 MLP on images pooled to 8x8x3, SGD with momentum 0.9, batch 16, linear sweep,
  training accuracy only (no ``eval_fn``): the small-batch case of issue 26;
* ``mlp_b256``: the same MLP with Adam, batch 256, exponential sweep;
* ``cifar10_quick``: Caffe's cifar10_quick with Adam (Caffe's per-layer multipliers), exponential sweep;
* ``cifar10_full``: Caffe's cifar10_full and solver (SGD with momentum 0.9), linear sweep, as in Fig. 3;
* ``resnet20``: a BatchNorm ResNet-20, SGD with momentum 0.9, exponential sweep.

The grid trains several rates together where that is fast (``vmap`` over rates and seeds for the quadratic and
the MLPs); the convnets train one rate at a time (XLA:CPU runs vmapped convolutions several times slower).

Records (``--out``, default ``workdirs/suggest_quality``): ``<setup>/settings.json``, ``<setup>/sweep<seed>.npz``
per range test and ``<setup>/grid.json`` (one entry per training, written as each finishes); a run that is
stopped resumes from them, and the suggestions are always recomputed from the kept sweeps. ``report.json`` and
the Markdown tables (``--markdown``, followed by the text of ``--notes``) are rewritten after each setup; ``--report-only`` re-renders them from the
records without training. ``--quick`` runs every setup tiny (minutes) into ``<out>/quick``::

  nice -n 2 python -m experiments.benchmarks.suggest_quality --markdown experiments/reports/suggest_quality.md \
      --notes experiments/reports/notes/suggest_quality.md
  python -m experiments.benchmarks.suggest_quality --quick
  python -m experiments.benchmarks.suggest_quality --report-only --markdown /tmp/table.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import pathlib
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import clr_optax
from experiments import cli
from experiments import data as data_lib
from experiments import parallel
from experiments import step as step_lib
from experiments.benchmarks import suggest_verdicts as verdicts
from experiments.benchmarks import suggest_robustness
from experiments.benchmarks.range_test_speed import SmallMLP
from experiments.benchmarks.range_test_speed import pooled

TITLE = "# Do the range test's suggestions train well? (issue 26 §1)"
SETUPS = ("quadratic", "mlp_b16", "mlp_b256", "cifar10_quick", "cifar10_full", "resnet20")
QUADRATIC_NOISE = 0.5     # std of the noise added to the quadratic's targets
COMPILER_OPTIONS = parallel.compiler_options(jax.local_devices())


@dataclasses.dataclass(frozen=True)
class Setup:
  """One setup: its training problem, its range test and its grid."""
  name: str
  settings: dict[str, Any]     # everything the records depend on (JSON)
  data: Any                    # training arrays with a leading example axis
  init: Any                    # key -> state
  train_step: Any              # (state, batch, lr) -> (state, metrics)
  score: Any                   # state -> {"accuracy": ..., "loss": ...} of the ground truth (jittable)
  sweep: dict[str, Any]        # range_test's batch_size, num_steps, min_lr, max_lr, mode (and eval_every)
  eval_fn: Any                 # the sweep's held-out eval_fn, or None
  grid: tuple[float, ...]      # the grid's rates (fixed rate, or triangular max_lr)
  grid_steps: int
  batch_size: int              # of the grid's trainings
  grid_seeds: int
  together: bool               # vmap the grid's trainings
  target: str                  # "accuracy" (higher is better) or "loss"
  known: dict[str, float] = dataclasses.field(default_factory=dict)


# The sizes of each setup: (full, quick). Grid: (first rate, ratio, points).
SIZES = {
    "quadratic": dict(full=dict(grid=(1 / 16, 2 ** 0.5, 11), grid_steps=100, seeds=3),
                      quick=dict(grid=(1 / 4, 2.0, 3), grid_steps=50, seeds=1)),
    "mlp_b16": dict(full=dict(train=10000, test=2000, sweep_steps=600, grid=(1 / 128, 2 ** 0.5, 15),
                              grid_steps=1250, seeds=2),
                    quick=dict(train=1000, test=500, sweep_steps=100, grid=(0.01, 4.0, 3), grid_steps=100, seeds=1)),
    "mlp_b256": dict(full=dict(train=10000, test=2000, sweep_steps=200, grid=(1e-4, 2 ** 0.5, 17),
                               grid_steps=400, seeds=2),
                     quick=dict(train=1000, test=500, sweep_steps=50, grid=(1e-3, 4.0, 3), grid_steps=40, seeds=1)),
    "cifar10_quick": dict(full=dict(train=5000, val=500, test=2000, batch=50, sweep_steps=200,
                                    grid=(1.25e-4, 2.0, 6), grid_steps=250, seeds=2),
                          quick=dict(train=500, val=100, test=200, batch=25, sweep_steps=24, grid=(2.5e-4, 4.0, 2),
                                     grid_steps=8, seeds=1)),
    "cifar10_full": dict(full=dict(train=5000, val=500, test=2000, batch=50, sweep_steps=200,
                                   grid=(1.25e-3, 2.0, 6), grid_steps=250, seeds=2),
                         quick=dict(train=500, val=100, test=200, batch=25, sweep_steps=24, grid=(2.5e-3, 4.0, 2),
                                    grid_steps=8, seeds=1)),
    "resnet20": dict(full=dict(train=5000, val=500, test=2000, batch=32, sweep_steps=120,
                               grid=(0.0125, 2.0, 6), grid_steps=150, seeds=2),
                     quick=dict(train=500, val=100, test=200, batch=16, sweep_steps=24, grid=(0.05, 4.0, 2),
                                grid_steps=8, seeds=1)),
}


def _grid(first: float, ratio: float, points: int) -> tuple[float, ...]:
  return tuple(float(f"{first * ratio ** i:.6g}") for i in range(points))


def _optax_problem(loss_fn, params_fn, factory):
  """``(init, train_step)`` of a ``loss_fn(params, batch) -> (loss, metrics)`` and an optax factory."""
  tx = optax.inject_hyperparams(factory)(learning_rate=0.0)

  def init(key):
    params = params_fn(key)
    return {"params": params, "opt": tx.init(params)}

  def train_step(state, batch, lr):
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch)
    opt = step_lib.set_learning_rate(state["opt"], lr)
    updates, opt = tx.update(grads, opt, state["params"])
    return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss, **metrics}

  return init, train_step


def quadratic(size: dict[str, Any]) -> Setup:
  """The README's least squares with noisy targets (without noise every rate below the limit reaches the
  float32 floor); the ground truth is the loss on all its data after the grid's training."""
  data, loss, limit = suggest_robustness.quadratic_problem(noise=QUADRATIC_NOISE)
  init, train_step = _optax_problem(lambda w, b: (loss(w, b), {}), lambda key: jnp.zeros(8, jnp.float32), optax.sgd)
  every = jax.device_put(data)
  sweep = dict(batch_size=64, num_steps=100, min_lr=1e-3, max_lr=2.0, mode="linear")
  grid = _grid(*size["grid"])
  settings = {"sweep": sweep, "grid": grid, "grid_steps": size["grid_steps"], "batch": 64, "optimizer": "sgd",
              "seeds": size["seeds"], "noise": QUADRATIC_NOISE, "target": "loss on all 1,024 examples"}
  return Setup("quadratic", settings, data, init, train_step, lambda s: {"loss": loss(s["params"], every)}, sweep,
               None, grid, size["grid_steps"], 64, size["seeds"], True, "loss", {"stability limit": limit})


def mlp(name: str, dataset: data_lib.Dataset, size: dict[str, Any]) -> Setup:
  """The 192-32-10 MLP on pooled images: SGD with momentum at batch 16 (linear sweep) or Adam at batch 256
  (exponential sweep); scored on stratified test images."""
  sub = data_lib.stratified_subset(dataset, train_size=size["train"], test_size=size["test"], seed=0)
  data = {"image": pooled(sub.train_images), "label": sub.train_labels}
  test_x, test_y = jax.device_put((pooled(sub.test_images), sub.test_labels))
  model = SmallMLP()

  def loss_fn(params, batch):
    logits = model.apply({"params": params}, batch["image"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"])}

  def score(state):
    loss, metrics = loss_fn(state["params"], {"image": test_x, "label": test_y})
    return {"loss": loss, **metrics}

  if name == "mlp_b16":
    factory, optimizer, batch = functools.partial(optax.sgd, momentum=0.9), "sgd momentum 0.9", 16
    sweep = dict(batch_size=batch, num_steps=size["sweep_steps"], min_lr=0.0, max_lr=1.0, mode="linear")
  else:
    factory, optimizer, batch = optax.adam, "adam", 256
    sweep = dict(batch_size=batch, num_steps=size["sweep_steps"], min_lr=1e-5, max_lr=1.0, mode="exponential")
  init, train_step = _optax_problem(loss_fn, lambda key: model.init(key, jnp.zeros((1, 192)))["params"], factory)
  grid = _grid(*size["grid"])
  settings = {"sweep": sweep, "grid": grid, "grid_steps": size["grid_steps"], "batch": batch, "optimizer": optimizer,
              "seeds": size["seeds"], "train_images": size["train"], "test_images": size["test"], "data": sub.source,
              "target": "test accuracy"}
  return Setup(name, settings, data, init, train_step, score, sweep, None, grid, size["grid_steps"], batch,
               size["seeds"], True, "accuracy")


CONVNETS = {  # setup -> (network, config overrides, optimizer in words, sweep: min_lr, max_lr, mode)
    "cifar10_quick": ("cifar10_quick", {"optim.name": "adam", "optim.weight_decay": 0.0}, "adam (Caffe's lr_mult)",
                      (1e-5, 0.1, "exponential")),
    "cifar10_full": ("cifar10_full", {}, "caffe_sgd momentum 0.9, weight decay 0.004", (0.0, 0.02, "linear")),
    "resnet20": ("resnet20", {"optim.name": "sgd", "optim.weight_decay": 1e-4, "data.normalization": "channel"},
                 "sgd momentum 0.9, weight decay 1e-4", (1e-4, 10.0, "exponential")),
}


def convnet(name: str, dataset: data_lib.Dataset, size: dict[str, Any]) -> Setup:
  """A network of `experiments.models` with its trainer's step on a stratified subset, scored on test images."""
  model, overrides, optimizer, (min_lr, max_lr, mode) = CONVNETS[name]
  problem = suggest_robustness.cifar10_problem(model, dataset, train_size=size["train"], val_size=size["val"],
                                               test_size=size["test"], overrides=overrides)
  test_images, test_labels = jax.device_put(problem.test)

  def score(state):
    logits = jnp.concatenate([step_lib.eval_logits(state, test_images[i:i + 500])
                              for i in range(0, test_images.shape[0], 500)])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, test_labels).mean()
    return {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == test_labels)}

  batch = size["batch"]
  sweep = dict(batch_size=batch, num_steps=size["sweep_steps"], min_lr=min_lr, max_lr=max_lr, mode=mode,
               eval_every=max(1, size["sweep_steps"] // 25))
  grid = _grid(*size["grid"])
  settings = {"sweep": sweep, "grid": grid, "grid_steps": size["grid_steps"], "batch": batch, "optimizer": optimizer,
              "seeds": size["seeds"], "train_images": size["train"], "held_out_images": size["val"],
              "test_images": size["test"], "data": problem.source, "target": "test accuracy"}
  return Setup(name, settings, problem.data, problem.init, step_lib.train_step, score, sweep, problem.held_out, grid,
               size["grid_steps"], batch, size["seeds"], False, "accuracy")


def make_setup(name: str, dataset: data_lib.Dataset | None, quick: bool) -> Setup:
  size = SIZES[name]["quick" if quick else "full"]
  if name == "quadratic":
    return quadratic(size)
  if name.startswith("mlp"):
    return mlp(name, dataset, size)
  return convnet(name, dataset, size)


# ----------------------------------------------------------------------------------------------
# (a) The grid


def schedule(kind: str, rate: float, steps: int) -> np.ndarray:
  """The learning rate of each step of a grid training: ``rate`` throughout, or one triangular cycle from
  ``rate / 4`` up to ``rate`` and back."""
  if kind == "fixed":
    return np.full(steps, rate, np.float32)
  return np.asarray(clr_optax.triangular(rate / 4, rate, steps // 2)(jnp.arange(steps)), np.float32)


def batch_order(seed: int, num_examples: int, batch_size: int, steps: int) -> np.ndarray:
  """``[steps, batch_size]`` example indices: a fresh permutation each epoch (the last partial batch dropped)."""
  rng = np.random.default_rng(seed)
  per_epoch = num_examples // batch_size
  epochs = -(-steps // per_epoch)
  idx = np.concatenate([rng.permutation(num_examples)[:per_epoch * batch_size] for _ in range(epochs)])
  return idx[:steps * batch_size].reshape(steps, batch_size).astype(np.int32)


def _num_examples(data: Any) -> int:
  return int(jax.tree.leaves(data)[0].shape[0])


def train_together(setup: Setup, runs: list[tuple[str, float, int]]) -> list[dict[str, float]]:
  """Trains ``runs`` (kind, rate, seed) as one vmapped scan; their scores."""
  data = jax.device_put(setup.data)
  n = _num_examples(setup.data)
  idx = np.stack([batch_order(seed, n, setup.batch_size, setup.grid_steps) for _, _, seed in runs])
  lrs = np.stack([schedule(kind, rate, setup.grid_steps) for kind, rate, _ in runs])
  keys = jnp.stack([jax.random.key(seed) for _, _, seed in runs])

  @jax.jit
  def run(keys, idx, lrs):
    states = jax.vmap(setup.init)(keys)

    def body(states, xs):
      i, lr = xs
      batch = jax.vmap(lambda ii: jax.tree.map(lambda a: a[ii], data))(i)
      states, _ = jax.vmap(setup.train_step)(states, batch, lr)
      return states, None

    states, _ = lax.scan(body, states, (jnp.swapaxes(idx, 0, 1), lrs.T))
    return jax.vmap(setup.score)(states)

  scores = jax.device_get(run(keys, jnp.asarray(idx), jnp.asarray(lrs)))
  return [{k: float(v[i]) for k, v in scores.items()} for i in range(len(runs))]


def train_one(setup: Setup, kind: str, rate: float, seed: int, programs: dict[str, Any]) -> dict[str, float]:
  """One grid training as a host loop of jitted steps; it stops early once the loss is not finite."""
  if not programs:

    def step(state, data, idx, lr):
      return setup.train_step(state, jax.tree.map(lambda a: jnp.take(a, idx, axis=0), data), lr)

    programs["data"] = jax.device_put(setup.data)
    programs["step"] = jax.jit(step, compiler_options=COMPILER_OPTIONS)
    programs["score"] = jax.jit(setup.score, compiler_options=COMPILER_OPTIONS)
  idx = batch_order(seed, _num_examples(setup.data), setup.batch_size, setup.grid_steps)
  lrs = schedule(kind, rate, setup.grid_steps)
  state = setup.init(jax.random.key(seed))
  for t in range(setup.grid_steps):
    state, metrics = programs["step"](state, programs["data"], idx[t], lrs[t])
    if t % 50 == 49 and not np.isfinite(float(metrics["loss"])):
      return {"loss": float("nan"), "accuracy": float("nan"), "stopped_at": t + 1}
  return {k: float(v) for k, v in jax.device_get(programs["score"](state)).items()}


def run_grid(setup: Setup | None, folder: pathlib.Path) -> dict[str, dict[str, float]]:
  """Every grid training's scores, from ``grid.json`` where kept, else trained (and added to it); with no
  ``setup`` (--report-only), the kept ones."""
  path = folder / "grid.json"
  records = json.loads(path.read_text()) if path.exists() else {}
  if setup is None:
    return records
  first = verdicts.GRID_SEEDS
  todo = [(kind, rate, first + s) for kind in verdicts.KINDS for rate in setup.grid for s in range(setup.grid_seeds)
          if verdicts.key(kind, rate, first + s) not in records]
  if not todo:
    return records

  def keep(run, scores, seconds):
    records[verdicts.key(*run)] = {**scores, "seconds": round(seconds, 2)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    os.replace(tmp, path)

  if setup.together:
    t0 = time.perf_counter()
    scores = train_together(setup, todo)
    seconds = (time.perf_counter() - t0) / len(todo)
    for run, score in zip(todo, scores):
      keep(run, score, seconds)
    print(f"  {setup.name}: {len(todo)} grid trainings together, {seconds * len(todo):.0f} s", flush=True)
  else:
    programs: dict[str, Any] = {}
    for run in todo:
      t0 = time.perf_counter()
      score = train_one(setup, *run, programs)
      keep(run, score, time.perf_counter() - t0)
      print(f"  {setup.name}: {verdicts.key(*run)}: {score} ({time.perf_counter() - t0:.0f} s)", flush=True)
  return records


# ----------------------------------------------------------------------------------------------
# (b) The range tests (their reading, (c), is suggest_verdicts.py)


def run_sweeps(setup: Setup | None, folder: pathlib.Path, seeds: range) -> dict[int, Any]:
  """The range tests of ``seeds``, from ``sweep<seed>.npz`` where kept, else run (and kept); with no ``setup``
  (--report-only), the kept ones."""
  out = {}
  for seed in seeds:
    path = folder / f"sweep{seed}.npz"
    if not path.exists():
      if setup is None:
        continue
      t0 = time.perf_counter()
      kwargs = dict(setup.sweep)
      if setup.eval_fn is None:
        kwargs.pop("eval_every", None)
      # The initial state is made outside the sweep, as a user makes it (the trainer's initializer is a jitted
      # program of its own, which cannot be nested in the sweep's); the seed makes it and drives the shuffle.
      state = setup.init(jax.random.key(seed))
      result = clr_optax.range_test(setup.data, train_step=setup.train_step, state=state, key=seed,
                                    eval_fn=setup.eval_fn, compiler_options=COMPILER_OPTIONS, progress=False, **kwargs)
      suggest_robustness.save_sweep(path, result, time.perf_counter() - t0)
      print(f"  {setup.name}: sweep seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    out[seed] = suggest_robustness.load_sweep(path)
  return out


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {SETUPS}")
  parser.add_argument("--data", default=os.environ.get("CLR_TEST_CIFAR10", "cifar10"),
                      help="experiments.data.load spec of CIFAR-10 (default: $CLR_TEST_CIFAR10, else tfds)")
  parser.add_argument("--seeds", type=int, default=None, help="K, range tests per setup (default 5; 2 with --quick)")
  parser.add_argument("--first-seed", type=int, default=verdicts.SWEEP_SEEDS,
                      help=f"the first range test's seed (default {verdicts.SWEEP_SEEDS}); seeds first..first+K-1")
  parser.add_argument("--out", default="workdirs/suggest_quality", help="records and report.json")
  parser.add_argument("--quick", action="store_true", help="every setup tiny, records under <out>/quick")
  parser.add_argument("--report-only", action="store_true",
                      help="train nothing: report from the kept records (with the settings they were made with)")
  parser.add_argument("--markdown", default=None, help="also write the tables to this Markdown file")
  parser.add_argument("--notes", default=None,
                      help="a Markdown file whose text follows the tables in --markdown (what the numbers say)")
  args = parser.parse_args(argv)
  names = args.setups.split(",")
  unknown = set(names) - set(SETUPS)
  if unknown:
    parser.error(f"unknown setups {sorted(unknown)}; choose from {SETUPS}")
  seeds = args.seeds or (2 if args.quick else 5)
  if seeds < 1:
    parser.error(f"--seeds must be >= 1, got {seeds}")
  if args.first_seed < verdicts.SWEEP_SEEDS:
    parser.error(f"--first-seed must be >= {verdicts.SWEEP_SEEDS}: the seeds below were used to choose thresholds, "
                 f"got {args.first_seed}")
  out = pathlib.Path(args.out) / ("quick" if args.quick else "")
  header = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
            "device": jax.devices()[0].device_kind, "seeds": seeds, "first_seed": args.first_seed,
            "quick": args.quick}
  print(f"jax {jax.__version__}, {header['device']}, {header['cpus']} CPUs; K = {seeds}", flush=True)
  dataset = None
  reports = []
  for name in names:
    folder = out / name
    settings_path = folder / "settings.json"
    setup = None
    if args.report_only:
      if not settings_path.exists():
        raise SystemExit(f"--report-only: no records of {name}: {settings_path} does not exist")
      settings = json.loads(settings_path.read_text())
      target = "loss" if name == "quadratic" else "accuracy"
    else:
      if dataset is None and name != "quadratic":
        dataset = data_lib.load(args.data)
      setup = make_setup(name, dataset, args.quick)
      settings, target = json.loads(json.dumps(setup.settings)), setup.target
      if setup.known:
        settings["known"] = setup.known
      if settings_path.exists() and json.loads(settings_path.read_text()) != settings:
        raise SystemExit(f"{folder} holds records made with other settings ({settings_path}); remove them or "
                         "pass another --out")
      folder.mkdir(parents=True, exist_ok=True)
      settings_path.write_text(json.dumps(settings, indent=1))
      print(f"== {name}: {settings}", flush=True)
    sweeps = run_sweeps(setup, folder, range(args.first_seed, args.first_seed + seeds))
    grid = run_grid(setup, folder)
    reports.append(verdicts.evaluate_setup(name, settings, target, grid, sweeps))
    (out / "report.json").write_text(json.dumps({"header": header, "setups": reports}, indent=1))
    table = verdicts.markdown(reports, header)
    if args.markdown:
      notes = pathlib.Path(args.notes).read_text() if args.notes else ""
      pathlib.Path(args.markdown).write_text(f"{TITLE}\n\n{table}\n{notes}".rstrip() + "\n")
  print(table)


if __name__ == "__main__":
  cli.run(main)
