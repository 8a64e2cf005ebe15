"""The paper's workflow in one command: range test, suggested bounds, fixed LR vs triangular2, a report.

  python -m experiments.workflow --workdir workdirs/workflow --data cifar10

1. An LR range test (Smith 2017, section 3.3) on the chosen network: `clr_optax.range_test` driving
   `experiments.train.train_step` while the learning rate rises linearly, with the accuracy on a held-out
   slice of the training images measured along the way.
2. Suggested bounds (`clr_optax.suggest_bounds`), printed with the reason for each.
3. Two training runs with the same seed, data and number of steps: a fixed learning rate (the network's
   usual one) and ``triangular2`` between the suggested bounds.
4. ``report.md`` in the work directory: a table of both runs, the range-test plot (paper Fig. 3 style:
   accuracy against learning rate, the bounds marked) and test accuracy against iteration for both runs
   (Fig. 1 style), as PNG files beside it.

The defaults (cifar10_quick on a stratified 5,000-image subset, 1,600 steps per run) finish in minutes on a
laptop CPU; every size is a flag (``--train-size 0`` uses the whole training set). A notebook calls the
same function: ``run_workflow(workdir, data=...)``. Running the command again in the same work directory
reuses what is finished (the range test, completed runs) and resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Any, Sequence

import numpy as np

from experiments import configs as config_lib
from experiments import reproduce

RANGE_TEST_FILE = "range_test.npz"
SUGGESTION_FILE = "suggestion.json"


@dataclasses.dataclass(frozen=True)
class WorkflowResult:
  """What `run_workflow` produced.

  Attributes:
    base_lr, max_lr: the suggested bounds (used by the triangular2 run).
    base_reason, max_reason: why, in words.
    fixed_lr: the fixed run's learning rate.
    fixed, clr: the two runs (`experiments.reproduce.RunResult`).
    clr_reached: the first step at which the triangular2 run reached the fixed run's final accuracy (None:
      never).
    report: path of report.md.
    timings: seconds per phase ("range_test", "fixed", "triangular2").
  """
  base_lr: float
  max_lr: float
  base_reason: str
  max_reason: str
  fixed_lr: float
  fixed: reproduce.RunResult
  clr: reproduce.RunResult
  clr_reached: int | None
  report: pathlib.Path
  timings: dict[str, float]


def _say(text: str) -> None:
  print(text, file=sys.stderr, flush=True)


def _atomic_write(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def prepare_data(spec: str, *, train_size: int | None, val_size: int, test_size: int | None, seed: int,
                 dataset: Any = None):
  """The workflow's three disjoint sets: training, held-out (for the range test), test.

  Args:
    spec: `experiments.data.load` spec (``"cifar10"`` or an image-folder path).
    train_size: training images (stratified random subset; None: all but the held-out ones).
    val_size: held-out training images the range test measures accuracy on (drawn at random, disjoint
      from the training set).
    test_size: test images (stratified random subset; None: all).
    seed: seed of the subsets.
    dataset: an `experiments.data.Dataset` already in memory (then `spec` is not loaded).

  Returns:
    ``(train_ds, (val_images, val_labels))``: `train_ds` is a `Dataset` with the training and test sets.
  """
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  ds = data_lib.load(spec) if dataset is None else dataset
  n_train = len(ds.train_labels)
  want = n_train if train_size is None else train_size + val_size
  if want > n_train:
    raise ValueError(f"train_size + val_size ({want}) exceeds the {n_train} training images of {spec}")
  if train_size is not None and train_size <= 0:
    raise ValueError(f"train_size must be positive (or None for all), got {train_size=}")
  sub = data_lib.stratified_subset(ds, train_size=want, test_size=test_size, seed=seed)
  # The subset is shuffled: its first val_size images are a random held-out slice.
  train = dataclasses.replace(sub, train_images=sub.train_images[val_size:], train_labels=sub.train_labels[val_size:],
                              source=f"{sub.source}; {val_size} held out for the range test")
  return train, (sub.train_images[:val_size], sub.train_labels[:val_size])


def base_config(*, config: str, model: str | None, data: str, batch_size: int, steps: int, seed: int,
                eval_every: int, progress: bool, num_devices: int | None = None) -> config_lib.Config:
  """The network's config (`config`, e.g. "default" = Caffe cifar10_full) with the workflow's sizes."""
  updates: dict[str, Any] = {"data.dataset": data, "train.batch_size": batch_size, "train.num_steps": str(steps),
                             "train.seed": seed, "train.eval_every": str(eval_every),
                             "train.checkpoint_every": str(max(1, steps // 2)), "train.progress": progress,
                             "train.num_devices": num_devices,
                             "train.log_every": max(1, min(100, steps // 50)),
                             "data.train_size": None, "data.test_size": None,
                             "schedule.drop_at": ()}
  if model:
    updates["model.name"] = model
  return config_lib.override(config_lib.get_config(config), updates)


def run_range_test(config: config_lib.Config, train_ds, val, *, num_steps: int, min_lr: float, max_lr: float,
                   mode: str = "linear", eval_points: int = 25, seed: int = 0):
  """The LR range test of `config`'s network and optimizer on `train_ds`, accuracy measured on `val`.

  Returns:
    The `clr_optax.RangeTestResult`.
  """
  import clr_optax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top

  mean, std = train.normalization_constants(config, train_ds.train_images)
  state = train.create_train_state(config, num_classes=train_ds.num_classes, mean=mean, std=std,
                                   image_shape=train_ds.train_images.shape[1:])
  val_images, val_labels = jnp.asarray(val[0]), jnp.asarray(val[1], jnp.int32)

  def eval_fn(s):
    logits = train.eval_logits(s, val_images)
    return {"accuracy": jnp.mean(jnp.argmax(logits, -1) == val_labels)}

  data = {"image": train_ds.train_images, "label": np.asarray(train_ds.train_labels, np.int32)}
  eval_every = max(1, num_steps // eval_points) if len(val_labels) else None
  return clr_optax.range_test(data, batch_size=config.train.batch_size, num_steps=num_steps, min_lr=min_lr,
                              max_lr=max_lr, mode=mode, key=jax.random.key(seed), train_step=train.train_step,
                              state=state, eval_fn=eval_fn if eval_every else None, eval_every=eval_every,
                              compiler_options=train.compiler_options(jax.local_devices()))


def _save_range_test(workdir: pathlib.Path, result, suggestion) -> None:
  arrays = {"lr": np.asarray(result.lr), "loss": np.asarray(result.loss),
            "smooth_loss": np.asarray(result.smooth_loss), "eval_step": np.asarray(result.eval_step)}
  arrays.update({f"train_{k}": np.asarray(v) for k, v in result.metrics.items()})
  arrays.update({f"eval_{k}": np.asarray(v) for k, v in result.eval_metrics.items()})
  tmp = workdir / (RANGE_TEST_FILE + ".tmp.npz")
  np.savez(tmp, **arrays)
  os.replace(tmp, workdir / RANGE_TEST_FILE)
  _atomic_write(workdir / SUGGESTION_FILE, json.dumps({
      "base_lr": suggestion.base_lr, "max_lr": suggestion.max_lr, "base_reason": suggestion.base_reason,
      "max_reason": suggestion.max_reason,
      "candidates": {k: list(v) for k, v in suggestion.candidates.items()}}, indent=2))


def _range_test_table(workdir: pathlib.Path) -> str:
  """Every rule's candidate, as a markdown list."""
  s = json.loads((workdir / SUGGESTION_FILE).read_text())
  return "\n".join(f"- `{name}`: {lr:.4g} ({reason})" for name, (lr, reason) in s["candidates"].items())


def write_workflow_report(workdir: pathlib.Path, *, fixed: reproduce.RunResult, clr: reproduce.RunResult,
                          fixed_lr: float, base_lr: float, max_lr: float, base_reason: str, max_reason: str,
                          step_size: int, setup: dict[str, str], command: str,
                          timings: dict[str, float], lr_curves=None) -> tuple[pathlib.Path, int | None]:
  """Writes report.md and accuracy_curves.png in `workdir`; returns the report's path and the step at which
  the triangular2 run first reached the fixed run's final accuracy."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  reached = reproduce.first_reached(clr.steps, clr.accuracies, fixed.final)
  fixed_own = reproduce.first_reached(fixed.steps, fixed.accuracies, fixed.final)
  fig = reproduce.plot_accuracy_curves({f"fixed lr={fixed_lr:.3g}": [fixed],
                                        f"triangular2 {base_lr:.3g}-{max_lr:.3g}": [clr]},
                                       title="Test accuracy (paper Fig. 1 style)", lr_curves=lr_curves)
  tmp = workdir / "accuracy_curves.tmp.png"
  fig.savefig(tmp, dpi=120)
  os.replace(tmp, workdir / "accuracy_curves.png")
  plt.close(fig)

  def row(name, lr, r, first):
    return (f"| {name} | {lr} | {r.total_steps:,} | {100 * r.final:.2f} | {100 * r.best:.2f} (step {r.best_step:,}) | "
            f"{'never' if first is None else f'{first:,}'} |")

  lines = [
      "# CLR workflow report", "",
      "| run | learning rate | steps | final test acc. % | best test acc. % | first reached the fixed run's final acc. (step) |",
      "|---|---|---|---|---|---|",
      row("fixed", f"{fixed_lr:.4g}", fixed, fixed_own),
      row("triangular2", f"{base_lr:.4g} to {max_lr:.4g}, step size {step_size:,}", clr, reached), "",
  ]
  if reached is not None and fixed_own is not None:
    lines += [f"triangular2 reached the fixed run's final accuracy ({100 * fixed.final:.2f}%) at step "
              f"{reached:,}; the fixed run itself first got there at step {fixed_own:,} "
              f"({fixed_own / max(reached, 1):.1f}x as many steps).", ""]
  else:
    lines += [f"triangular2 did not reach the fixed run's final accuracy ({100 * fixed.final:.2f}%) within "
              f"{clr.total_steps:,} steps (its best: {100 * clr.best:.2f}%).", ""]
  lines += ["## 1. LR range test (paper Fig. 3 style)", "", "![range test](range_test.png)", "",
            "## 2. Suggested bounds", "", f"- **base_lr = {base_lr:.4g}**: {base_reason}",
            f"- **max_lr = {max_lr:.4g}**: {max_reason}", "", "Every rule's value:", "",
            _range_test_table(workdir), "",
            "## 3. Fixed LR vs triangular2 (paper Fig. 1 style)", "", "![accuracy curves](accuracy_curves.png)", "",
            "Metrics of each run (JSONL/CSV, every evaluation): `fixed/`, `triangular2/`.", "",
            "## Setup", ""]
  lines += [f"- **{k}**: {v}" for k, v in setup.items()]
  lines += [f"- **time**: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + " (wall clock, compilation and evaluation included)", "", "```", command, "```", ""]
  _atomic_write(workdir / "report.md", "\n".join(lines))
  return workdir / "report.md", reached


def run_workflow(workdir: str | os.PathLike, *, data: str = "cifar10", config: str = "default",
                 model: str | None = "cifar10_quick", train_size: int | None = 5000, val_size: int = 500,
                 test_size: int | None = 2000, batch_size: int = 100, steps: int = 1600,
                 step_size: str = "4ep", fixed_lr: float | None = None, eval_every: int | None = None,
                 range_steps: str = "8ep", range_min_lr: float = 0.0, range_max_lr: float = 0.02,
                 range_mode: str = "linear", rule: str = "auto", seed: int = 0, num_devices: int | None = None,
                 progress: bool = True, dataset: Any = None, command: str | None = None) -> WorkflowResult:
  """Runs the whole workflow (range test, bounds, fixed vs triangular2, report) in `workdir`.

  Args:
    workdir: where everything goes (report.md, PNGs, the range test's records, one directory per run).
    data: ``"cifar10"`` (tensorflow-datasets) or an image-folder directory/archive.
    config: the experiment config giving the network, optimizer and preprocessing ("default": Caffe's
      cifar10_full solver; "table4_resnet:0.1" for a ResNet with its recipe).
    model: the network, overriding the config's (None keeps it).
    train_size: training images (stratified subset; None: all but the held-out ones).
    val_size: held-out training images the range test measures accuracy on.
    test_size: test images (stratified subset; None: all 10,000).
    batch_size: the batch of every step.
    steps: steps of each training run.
    step_size: triangular2's half cycle, a Duration ("4ep": 4 epochs of the training set; "200": steps).
    fixed_lr: the fixed run's rate (default: the config's base rate, 0.001 for the Caffe networks).
    eval_every: steps between test evaluations (default: steps / 32).
    range_steps: length of the range test (Duration; the paper: 8 epochs).
    range_min_lr, range_max_lr: the sweep's first and last learning rate.
    range_mode: "linear" (the paper) or "exponential".
    rule: `clr_optax.suggest_bounds`'s rule ("auto": the paper's accuracy rule when it applies).
    seed: the seed of the subsets, the initialisation and the shuffles (the same for both runs).
    num_devices: local devices the training runs use, data-parallel (None: all).
    progress: show progress bars.
    dataset: an `experiments.data.Dataset` already in memory (instead of loading `data`).
    command: the command line to print in the report.

  Returns:
    A `WorkflowResult`.
  """
  import clr_optax  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timings: dict[str, float] = {}

  _say(f"[0/4] data: {data} (train {train_size or 'all'}, held out {val_size}, test {test_size or 'all'})")
  train_ds, val = prepare_data(data, train_size=train_size, val_size=val_size, test_size=test_size, seed=seed,
                               dataset=dataset)
  spe = len(train_ds.train_labels) // batch_size
  if spe < 1:
    raise ValueError(f"the training set ({len(train_ds.train_labels)} images) is smaller than {batch_size=}")
  eval_every = eval_every or max(1, steps // 32)
  cfg = base_config(config=config, model=model, data=data, batch_size=batch_size, steps=steps, seed=seed,
                    eval_every=eval_every, progress=progress, num_devices=num_devices)
  n_range = config_lib.resolve_duration(range_steps, steps_per_epoch=spe, name="range_steps")
  n_step = config_lib.resolve_duration(step_size, steps_per_epoch=spe, total_steps=steps, name="step_size")
  if n_step < 1:
    raise ValueError(f"step_size must be at least one step, got {step_size=}")
  fixed_lr = cfg.schedule.base_lr if fixed_lr is None else fixed_lr

  # 1-2. Range test and bounds.
  if (workdir / SUGGESTION_FILE).exists() and (workdir / "range_test.png").exists():
    _say(f"[1/4] range test: reusing {workdir / SUGGESTION_FILE}")
    saved = json.loads((workdir / SUGGESTION_FILE).read_text())
    base_lr, max_lr, base_reason, max_reason = (saved["base_lr"], saved["max_lr"], saved["base_reason"],
                                                saved["max_reason"])
  else:
    _say(f"[1/4] range test: {cfg.model.name}, {n_range} steps ({n_range / spe:g} epochs), lr {range_min_lr:g} -> "
         f"{range_max_lr:g} ({range_mode}), held-out accuracy every {max(1, n_range // 25)} steps; one compiled "
         "sweep, no progress bar ...")
    t0 = time.perf_counter()
    result = run_range_test(cfg, train_ds, val, num_steps=n_range, min_lr=range_min_lr, max_lr=range_max_lr,
                            mode=range_mode, seed=seed)
    suggestion = clr_optax.suggest_bounds(result, rule=rule)
    timings["range_test"] = time.perf_counter() - t0
    fig = clr_optax.plot_range_test(result, suggestion=suggestion,
                                    title=f"LR range test, {cfg.model.name} (paper Fig. 3 style)")
    tmp = workdir / "range_test.tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    _save_range_test(workdir, result, suggestion)
    os.replace(tmp, workdir / "range_test.png")
    base_lr, max_lr = suggestion.base_lr, suggestion.max_lr
    base_reason, max_reason = suggestion.base_reason, suggestion.max_reason
    _say(f"      done in {timings['range_test']:.0f} s")
  _say(f"[2/4] suggested bounds:\n      base_lr = {base_lr:.4g}: {base_reason}\n      max_lr  = {max_lr:.4g}: "
       f"{max_reason}")

  # 3. The two runs.
  runs = {}
  for i, (name, updates) in enumerate((
      ("fixed", {"name": "workflow_fixed", "schedule.name": "fixed", "schedule.base_lr": fixed_lr}),
      ("triangular2", {"name": "workflow_triangular2", "schedule.name": "triangular2",
                       "schedule.base_lr": base_lr, "schedule.max_lr": max_lr,
                       "schedule.step_size": str(n_step)}))):
    run_cfg = config_lib.override(cfg, updates)
    what = f"lr {fixed_lr:.4g}" if name == "fixed" else f"{base_lr:.4g} to {max_lr:.4g}, step size {n_step}"
    if (workdir / name / reproduce.SUMMARY).exists():
      _say(f"[3/4] training {name} ({i + 1}/2): reusing the finished run in {workdir / name}")
      reproduce.run_one(run_cfg, workdir / name)  # checks that it is the same config
    else:
      _say(f"[3/4] training {name} ({i + 1}/2): {what}, {steps} steps, seed {seed}")
      t0 = time.perf_counter()
      reproduce.run_one(run_cfg, workdir / name, dataset=train_ds)
      timings[name] = time.perf_counter() - t0
    runs[name] = reproduce.load_run(workdir / name, name, seed)

  # 4. Report.
  lr_steps = np.arange(steps)
  lr_curves = {
      f"fixed {fixed_lr:.3g}": (lr_steps, np.full(steps, fixed_lr)),
      "triangular2": (lr_steps, np.asarray(clr_optax.triangular2(base_lr, max_lr, n_step)(lr_steps))),
  }
  setup = {
      "network": cfg.model.name, "config": f"`{config}` (optimizer {cfg.optim.name}, momentum {cfg.optim.momentum}, "
      f"weight decay {cfg.optim.weight_decay}, normalisation {cfg.data.normalization}, augmentation "
      f"{'on' if cfg.data.augment else 'off'})",
      "data": f"`{data}`: {len(train_ds.train_labels):,} training images, {len(val[1]):,} held out from the "
              f"training split (the range test's accuracy), {len(train_ds.test_labels):,} test images (stratified "
              f"random subsets, seed {seed})",
      "batch": str(batch_size), "seed": str(seed),
      "range test": f"{n_range} steps, lr {range_min_lr:g} to {range_max_lr:g} ({range_mode}), rule `{rule}`",
      "evaluation": f"every {eval_every} steps on the test images",
  }
  report, reached = write_workflow_report(
      workdir, fixed=runs["fixed"], clr=runs["triangular2"], fixed_lr=fixed_lr, base_lr=base_lr, max_lr=max_lr,
      base_reason=base_reason, max_reason=max_reason, step_size=n_step, setup=setup,
      command=command or "run_workflow(...)", timings=timings, lr_curves=lr_curves)
  _say(f"[4/4] report: {report}\n      fixed {100 * runs['fixed'].final:.2f}%, triangular2 "
       f"{100 * runs['triangular2'].final:.2f}% (final test accuracy)")
  return WorkflowResult(base_lr=base_lr, max_lr=max_lr, base_reason=base_reason, max_reason=max_reason,
                        fixed_lr=fixed_lr, fixed=runs["fixed"], clr=runs["triangular2"], clr_reached=reached,
                        report=report, timings=timings)


def _optional_int(text: str) -> int | None:
  value = int(text)
  return None if value == 0 else value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parses the command line of ``python -m experiments.workflow``."""
  p = argparse.ArgumentParser(prog="python -m experiments.workflow", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--workdir", required=True, help="where the report, plots and runs go")
  p.add_argument("--data", default="cifar10", help="cifar10 (tensorflow-datasets) or an image-folder dir/archive")
  p.add_argument("--config", default="default", help="config giving optimizer and preprocessing")
  p.add_argument("--model", default="cifar10_quick", help="network (experiments.models name)")
  p.add_argument("--train-size", type=_optional_int, default=5000, help="training images (0: all)")
  p.add_argument("--val-size", type=int, default=500, help="held-out training images for the range test")
  p.add_argument("--test-size", type=_optional_int, default=2000, help="test images (0: all)")
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--steps", type=int, default=1600, help="steps of each training run")
  p.add_argument("--step-size", default="4ep", help="triangular2 half cycle ('4ep' epochs or '200' steps)")
  p.add_argument("--fixed-lr", type=float, default=None, help="the fixed run's rate (default: the config's)")
  p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default steps/32)")
  p.add_argument("--range-steps", default="8ep", help="range test length ('8ep' or steps)")
  p.add_argument("--range-min-lr", type=float, default=0.0)
  p.add_argument("--range-max-lr", type=float, default=0.02)
  p.add_argument("--range-mode", default="linear", choices=("linear", "exponential"))
  p.add_argument("--rule", default="auto", help="bounds rule: auto, accuracy, valley, steepest")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--num-devices", type=int, default=None, help="devices for training (default: all local ones)")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> WorkflowResult:
  """Command-line entry point."""
  import shlex  # pylint: disable=g-import-not-at-top
  argv = list(sys.argv[1:] if argv is None else argv)
  a = parse_args(argv)
  return run_workflow(a.workdir, data=a.data, config=a.config, model=a.model, train_size=a.train_size,
                      val_size=a.val_size, test_size=a.test_size, batch_size=a.batch_size, steps=a.steps,
                      step_size=a.step_size, fixed_lr=a.fixed_lr, eval_every=a.eval_every,
                      range_steps=a.range_steps, range_min_lr=a.range_min_lr, range_max_lr=a.range_max_lr,
                      range_mode=a.range_mode, rule=a.rule, seed=a.seed, num_devices=a.num_devices,
                      progress=not a.no_progress,
                      command="python -m experiments.workflow " + shlex.join(argv))


if __name__ == "__main__":
  main()
