"""How robust are the range test's suggestions? K seeds per setup, the spread of each rule's value across them.

The complaint users raise most against every LR finder is that its suggestion changes from one run to the
next. This script runs ``--seeds`` (K = 5) range tests of each setup, one seed at a time (a new init and a
new shuffle each, as a user re-running the test would get), and reports for each rule of
`clr_optax.suggest_bounds` its value per seed, the spread across seeds (max / min) and, where the answer is
known, the ratio to it:

* ``quadratic``: the README's example (least squares on 8 features, SGD, batch 64, 100 steps, lr 1e-3 -> 2
  linear). The known answer is SGD's stability limit 2 / lambda_max of the loss's Hessian: ``max_lr``
  should lie below it, within a small factor.
* ``cifar10_quick``: Caffe's cifar10_quick and solver on a stratified CIFAR-10 subset (``--quick-train``
  images, ``--val`` more held out and scored during the sweep), batch 100, lr 0 -> 0.02 linear over 8
  epochs. No known answer.
* ``cifar10_full``: Caffe's cifar10_full and solver over the paper's Fig. 3 sweep (batch 100, lr 0 -> 0.02
  linear over 8 epochs; Smith reads base_lr 0.001 and max_lr 0.006 off it) on ``--full-train`` training
  images (all 50,000 in the paper; fewer here, so each epoch has fewer steps).

Each seed's records are kept in ``--out/<setup>/seed<k>.npz`` and, after every seed, ``--out/<setup>.json``
is rewritten with what is done so far (the suggestions are recomputed from the records every time, so a run
with changed rules re-reads the sweeps instead of repeating them; ``--rerun`` repeats them). Setups run in
the order given, cheapest first::

  nice -n 10 python -m experiments.benchmarks.suggest_robustness --data /path/cifar10-jpeg.tar.xz
  python -m experiments.benchmarks.suggest_robustness --setups quadratic          # seconds
  python -m experiments.benchmarks.suggest_robustness --data ... --full-train 50000  # the paper's size
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import clr_optax
from experiments import cli
from experiments import configs
from experiments import data as data_lib
from experiments import parallel
from experiments import setup
from experiments import step

SETUPS = ("quadratic", "cifar10_quick", "cifar10_full")
# The values compared across seeds: the default rule's bounds, then every rule's own value.
DEFAULT = ("default max_lr", "default base_lr")


@dataclasses.dataclass(frozen=True)
class Sweep:
  """One setup: how to run a seed's range test, and the known answer where there is one."""
  name: str
  settings: dict[str, Any]
  run: Any                                   # seed -> RangeTestResult
  known: dict[str, float] = dataclasses.field(default_factory=dict)  # "max_lr"/"base_lr" -> value


def quadratic_problem(noise: float = 0.0) -> tuple[dict[str, np.ndarray], Any, float]:
  """The README's least squares on 8 features (targets with Gaussian noise of std ``noise`` added):
  ``(data, loss_fn(w, batch), SGD's stability limit 2 / lambda_max)``."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1024, 8)).astype(np.float32)
  y = x @ rng.normal(size=8).astype(np.float32)
  if noise:
    y = y + noise * rng.normal(size=len(x)).astype(np.float32)
  data = {"x": x, "y": y}
  hessian = 2 * x.astype(np.float64).T @ x / len(x)
  limit = 2 / np.linalg.eigvalsh(hessian)[-1]

  def loss_fn(w, batch):
    return jnp.mean((batch["x"] @ w - batch["y"]) ** 2)

  return data, loss_fn, float(limit)


def quadratic_setup() -> Sweep:
  """The README's example; its stability limit 2 / lambda_max is the known answer."""
  data, loss_fn, limit = quadratic_problem()
  settings = dict(batch_size=64, num_steps=100, min_lr=1e-3, max_lr=2.0, mode="linear")

  def run(seed):
    return clr_optax.range_test(data, loss_fn=loss_fn, params=jnp.zeros(8), optimizer=optax.sgd, key=seed,
                                progress=False, **settings)

  return Sweep("quadratic", {**settings, "examples": len(data["x"]), "features": 8}, run, {"max_lr": limit})


@dataclasses.dataclass(frozen=True)
class Cifar10Problem:
  """A Caffe or CIFAR network, its solver and a stratified CIFAR-10 subset, ready for range tests and trainings."""
  data: dict[str, np.ndarray]                # the training images and labels
  init: Any                                  # key -> experiments.step.TrainState
  held_out: Any                              # state -> {"accuracy"} on the held-out training images
  test: tuple[np.ndarray, np.ndarray]        # test images and labels (none unless asked for)
  config: Any
  source: str


def cifar10_problem(model: str, dataset, *, train_size: int, val_size: int, test_size: int = 0,
                    overrides: dict[str, Any] | None = None) -> Cifar10Problem:
  """``model`` with Table 1's solver (``overrides`` of the ``table1_fixed`` config change it) on a stratified
  subset of ``train_size`` training images, ``val_size`` more held out (a random set: the subset is shuffled)
  and ``test_size`` test images."""
  sub = data_lib.stratified_subset(dataset, train_size=train_size + val_size, test_size=test_size, seed=0)
  val_images, val_labels = jax.device_put((sub.train_images[:val_size], sub.train_labels[:val_size]))
  data = {"image": sub.train_images[val_size:], "label": sub.train_labels[val_size:]}
  config = configs.override(configs.get_config("table1_fixed"), {"model.name": model, **(overrides or {})})
  mean, std = setup.normalization_constants(config, data["image"])

  init = setup.state_initializer(config, num_classes=dataset.num_classes, mean=mean, std=std,
                                image_shape=data["image"].shape[1:])

  def held_out(state):
    logits = step.eval_logits(state, val_images)
    return {"accuracy": jnp.mean(jnp.argmax(logits, -1) == val_labels)}

  return Cifar10Problem(data, init, held_out, (sub.test_images, sub.test_labels), config, sub.source)


def cifar10_setup(model: str, dataset, *, train_size: int, val_size: int, epochs: int, eval_points: int,
                  known: dict[str, float]) -> Sweep:
  """Caffe's network ``model`` and solver, the paper's sweep (lr 0 -> 0.02 linear, batch 100)."""
  problem = cifar10_problem(model, dataset, train_size=train_size, val_size=val_size)
  data, config = problem.data, problem.config
  batch = config.train.batch_size
  num_steps = epochs * (train_size // batch)
  eval_every = max(1, num_steps // eval_points)

  settings = dict(batch_size=batch, num_steps=num_steps, min_lr=0.0, max_lr=0.02, mode="linear")

  def run(seed):
    return clr_optax.range_test(data, train_step=step.train_step, state=problem.init, key=seed,
                                eval_fn=problem.held_out,
                                eval_every=eval_every, compiler_options=parallel.compiler_options(jax.local_devices()),
                                progress=False, **settings)

  return Sweep(model, {**settings, "train_images": train_size, "held_out_images": val_size, "epochs": epochs,
                       "eval_every": eval_every, "optimizer": config.optim.name, "data": problem.source}, run, known)


def save_sweep(path: pathlib.Path, result: clr_optax.RangeTestResult, seconds: float) -> None:
  arrays = {"lr": result.lr, "loss": result.loss, "smooth_loss": result.smooth_loss, "masked": result.masked,
            "diverged_step": result.diverged_step, "eval_step": result.eval_step, "seconds": seconds}
  arrays.update({f"metric_{k}": v for k, v in result.metrics.items()})
  arrays.update({f"eval_{k}": v for k, v in result.eval_metrics.items()})
  tmp = path.with_suffix(".tmp.npz")
  np.savez(tmp, mode=result.mode, **{k: np.asarray(v) for k, v in arrays.items()})
  os.replace(tmp, path)


def load_sweep(path: pathlib.Path) -> tuple[clr_optax.RangeTestResult, float]:
  with np.load(path) as f:
    get = {k: f[k] for k in f.files}
  metrics = {k[len("metric_"):]: v for k, v in get.items() if k.startswith("metric_")}
  evals = {k[len("eval_"):]: v for k, v in get.items() if k.startswith("eval_") and k != "eval_step"}
  result = clr_optax.RangeTestResult(lr=get["lr"], loss=get["loss"], smooth_loss=get["smooth_loss"],
                                     masked=get["masked"], diverged_step=get["diverged_step"], metrics=metrics,
                                     eval_step=get["eval_step"], eval_metrics=evals, mode=str(get["mode"]))
  return result, float(get["seconds"])


def _values(result: clr_optax.RangeTestResult) -> dict[str, float]:
  """The default rule's bounds and every rule's value, from one seed's sweep (NaN where a rule found none)."""
  try:
    s = result.suggest()
  except ValueError:
    return {name: float("nan") for name in DEFAULT}
  out = {DEFAULT[0]: s.max_lr, DEFAULT[1]: s.base_lr}
  out.update({name: lr for name, (lr, _) in s.candidates.items()})
  return out


def summarize(sweep: Sweep, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
  """Per rule: the values across seeds, their spread (max / min) and the ratio to the known answer."""
  names = list(dict.fromkeys(name for row in per_seed for name in row["values"]))
  rules = {}
  for name in names:
    v = np.array([row["values"].get(name, np.nan) for row in per_seed], np.float64)
    ok = v[np.isfinite(v) & (v > 0)]
    entry = {"values": v.tolist(), "found": int(ok.size),
             "spread": float(ok.max() / ok.min()) if ok.size else None}
    target = sweep.known.get("max_lr" if "max" in name or name in ("valley", "steepest", "min_loss") else
                             "base_lr")
    if target and ok.size:
      entry["vs_known"] = [float(ok.min() / target), float(ok.max() / target)]
    rules[name] = entry
  return rules


# The answers known for the CIFAR setups: the paper's bounds for cifar10_full, none for cifar10_quick.
KNOWN = {"cifar10_quick": {}, "cifar10_full": {"max_lr": 0.006, "base_lr": 0.001}}


def stored_setup(name: str, out: pathlib.Path) -> Sweep:
  """A CIFAR setup as its kept sweeps were made (their settings.json), for --report-only: no data needed."""
  path = out / name / "settings.json"
  if not path.exists():
    raise SystemExit(f"--report-only: no sweep of {name} to report: {path} does not exist")
  return Sweep(name, json.loads(path.read_text()), run=None, known=KNOWN[name])


def run_setup(sweep: Sweep, out: pathlib.Path, seeds: int, rerun: bool, report_only: bool = False) -> dict[str, Any]:
  folder = out / sweep.name
  folder.mkdir(parents=True, exist_ok=True)
  report_path = out / f"{sweep.name}.json"
  settings_path = folder / "settings.json"
  if settings_path.exists() and json.loads(settings_path.read_text()) != sweep.settings and not rerun:
    raise SystemExit(f"{folder} holds sweeps made with other settings ({settings_path}); pass --rerun or "
                     "another --out")
  settings_path.write_text(json.dumps(sweep.settings, indent=1))
  per_seed = []
  report = {"setup": sweep.name, "settings": sweep.settings, "known": sweep.known, "seeds": [], "rules": {}}
  for seed in range(seeds):
    path = folder / f"seed{seed}.npz"
    if path.exists() and not rerun:
      result, seconds = load_sweep(path)
    elif report_only:
      continue
    else:
      t0 = time.perf_counter()
      result = sweep.run(seed)
      seconds = time.perf_counter() - t0
      save_sweep(path, result, seconds)
      result, _ = load_sweep(path)
    per_seed.append({"seed": seed, "seconds": round(seconds, 1), "diverged_step": int(result.diverged_step[0]),
                     "values": _values(result)})
    report = {"setup": sweep.name, "settings": sweep.settings, "known": sweep.known, "seeds": per_seed,
              "rules": summarize(sweep, per_seed), "jax": jax.__version__,
              "device": jax.devices()[0].device_kind, "cpus": os.cpu_count()}
    report_path.write_text(json.dumps(report, indent=1))
    print(f"  {sweep.name} seed {seed}: {seconds:.0f} s, default max_lr {per_seed[-1]['values'][DEFAULT[0]]:.4g}",
          flush=True)
  return report


def print_table(reports: list[dict[str, Any]]) -> None:
  print("\n| setup | rule | values across seeds | max/min | vs known answer |")
  print("|---|---|---|---|---|")
  for report in reports:
    for name, entry in report["rules"].items():
      values = ", ".join(f"{v:.3g}" for v in entry["values"])
      spread = f"{entry['spread']:.2f}x" if entry["spread"] else "-"
      known = (f"{entry['vs_known'][0]:.2f}-{entry['vs_known'][1]:.2f}x" if "vs_known" in entry else "")
      print(f"| {report['setup']} | {name} | {values} | {spread} | {known} |")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {SETUPS}")
  parser.add_argument("--data", default=os.environ.get("CLR_TEST_CIFAR10", "cifar10"),
                      help="experiments.data.load spec of CIFAR-10 (default: $CLR_TEST_CIFAR10, else tfds)")
  parser.add_argument("--seeds", type=int, default=5, help="K, range tests per setup")
  parser.add_argument("--quick-train", type=int, default=5000, help="cifar10_quick: training images")
  parser.add_argument("--full-train", type=int, default=10000, help="cifar10_full: training images (paper: 50,000)")
  parser.add_argument("--val", type=int, default=1000, help="held-out training images scored during the sweeps")
  parser.add_argument("--eval-points", type=int, default=50, help="held-out evaluations per sweep")
  parser.add_argument("--out", default="workdirs/suggest_robustness", help="records and JSON reports")
  parser.add_argument("--rerun", action="store_true", help="repeat sweeps whose records exist")
  parser.add_argument("--report-only", action="store_true",
                      help="run no sweep: report the seeds whose records exist (e.g. while another process runs), "
                           "with the settings they were made with; needs no data")
  args = parser.parse_args(argv)
  names = args.setups.split(",")
  unknown = set(names) - set(SETUPS)
  if unknown:
    parser.error(f"unknown setups {sorted(unknown)}; choose from {SETUPS}")
  out = pathlib.Path(args.out)
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; K = {args.seeds} seeds")
  dataset = None
  reports = []
  for name in names:
    if name == "quadratic":
      sweep = quadratic_setup()
    elif args.report_only:
      sweep = stored_setup(name, out)
    else:
      if dataset is None:
        dataset = data_lib.load(args.data)
      train_size = args.quick_train if name == "cifar10_quick" else args.full_train
      sweep = cifar10_setup(name, dataset, train_size=train_size, val_size=args.val, epochs=8,
                            eval_points=args.eval_points, known=KNOWN[name])
    print(f"== {name}: {sweep.settings}", flush=True)
    reports.append(run_setup(sweep, out, args.seeds, args.rerun, args.report_only))
  print_table(reports)


if __name__ == "__main__":
  cli.run(main)
