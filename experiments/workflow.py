"""The paper's workflow in one command: range test, suggested bounds, fixed LR vs triangular2, a report.

  python -m experiments.workflow --workdir workdirs/workflow --data cifar10

1. An LR range test (Smith 2017, section 3.3) on the chosen network: `clr_optax.range_test` driving
   `experiments.step.train_step` while the learning rate rises linearly, with the accuracy on a held-out
   slice of the training images measured along the way.
2. Suggested bounds (`clr_optax.suggest_bounds`), printed with the reason for each.
3. Two training runs with the same seed, data and number of steps: a fixed learning rate (the network's
   usual one) and ``triangular2`` from that rate (``--base suggested``: the suggested base_lr) to the
   suggested max_lr.
4. ``report.md`` in the work directory: a table of both runs, the range-test plot (paper Fig. 3 style:
   accuracy against learning rate, the bounds marked) and test accuracy against iteration for both runs
   (Fig. 1 style), as PNG files beside it.

Its settings are a config like every other (`experiments.configs.workflow`: the network's config plus a
``workflow`` section), recorded in the work directory's ``config.json``; every flag sets a field of it and
``--set`` any other. The defaults make §3.3's comparison of a fixed rate with CLR over the range found, at a
size that takes minutes (not the paper's Table 1 runs, whose triangular2 is Table 2's staged run):
cifar10_full on the whole training set, 2,000 steps per run, the fixed rate 0.001 against plain triangular2
from 0.001 to the suggested max_lr over two cycles. A notebook calls the
same function: ``run_workflow(workdir, configs.get_config("workflow"))``. Running the command again in the
same work directory reuses what is finished (the range test, completed runs) and resumes an interrupted
run; with settings that train differently it refuses, naming them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shlex
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import clr_optax
from clr_optax.suggest import RULES as SUGGESTION_RULES
from experiments import cli
from experiments import configs as config_lib
from experiments import parallel
from experiments import report
from experiments import reproduce
from experiments import results
from experiments import rundir
from experiments import setup
from experiments import step
from experiments import train
from experiments.configs import workflow as workflow_config

RANGE_TEST_FILE = "range_test.npz"
RANGE_TEST_PLOT = "range_test.png"
SUGGESTION_FILE = "suggestion.json"
TIMINGS_FILE = "timings.json"
RUNS = ("fixed", "triangular2")
WORKFLOW_BASES = ("fixed", "suggested")


@dataclasses.dataclass(frozen=True)
class WorkflowResult:
  """What `run_workflow` produced.

  Attributes:
    base_lr, max_lr: the suggested bounds (used by the triangular2 run).
    base_reason, max_reason: why, in words.
    fixed_lr: the fixed run's learning rate.
    fixed, clr: the two runs (`experiments.results.RunResult`).
    clr_reached: the first step at which the triangular2 run reached the fixed run's final accuracy (None:
      never).
    report: path of report.md.
    timings: seconds per phase ("range_test", "fixed", "triangular2"); a phase reused from an earlier call keeps
      the time it took then (``timings.json`` in the work directory).
  """
  base_lr: float
  max_lr: float
  base_reason: str
  max_reason: str
  fixed_lr: float
  fixed: results.RunResult
  clr: results.RunResult
  clr_reached: int | None
  report: pathlib.Path
  timings: dict[str, float]


def _say(text: str) -> None:
  print(text, file=sys.stderr, flush=True)


def run_range_test(config: config_lib.Config, train_ds, val, *, num_steps: int):
  """The LR range test of `config`'s network and optimizer on `train_ds`, accuracy measured on `val`.

  The sweep's settings are ``config.workflow``'s; its key is ``train.seed``.

  Returns:
    The `clr_optax.RangeTestResult`.
  """
  w = config.workflow
  mean, std = setup.normalization_constants(config, train_ds.train_images)
  state = setup.create_train_state(config, num_classes=train_ds.num_classes, mean=mean, std=std,
                                   image_shape=train_ds.train_images.shape[1:])
  val_images, val_labels = jnp.asarray(val[0]), jnp.asarray(val[1], jnp.int32)

  def eval_fn(s):
    logits = step.eval_logits(s, val_images)
    return {"accuracy": jnp.mean(jnp.argmax(logits, -1) == val_labels)}

  data = {"image": train_ds.train_images, "label": np.asarray(train_ds.train_labels, np.int32)}
  eval_every = max(1, num_steps // w.range_eval_points) if len(val_labels) else None
  return clr_optax.range_test(data, batch_size=config.train.batch_size, num_steps=num_steps,
                              min_lr=w.range_min_lr, max_lr=w.range_max_lr, mode=w.range_mode,
                              key=jax.random.key(config.train.seed), train_step=step.train_step, state=state,
                              eval_fn=eval_fn if eval_every else None, eval_every=eval_every,
                              compiler_options=parallel.compiler_options(jax.local_devices()),
                              progress=config.train.progress)


def _save_range_test(workdir: pathlib.Path, result, suggestion) -> None:
  arrays = {"lr": np.asarray(result.lr), "loss": np.asarray(result.loss),
            "smooth_loss": np.asarray(result.smooth_loss), "eval_step": np.asarray(result.eval_step)}
  arrays.update({f"train_{k}": np.asarray(v) for k, v in result.metrics.items()})
  arrays.update({f"eval_{k}": np.asarray(v) for k, v in result.eval_metrics.items()})
  with rundir.atomic_path(workdir / RANGE_TEST_FILE) as tmp:
    np.savez(tmp, **arrays)
  rundir.write_text(workdir / SUGGESTION_FILE, json.dumps({
      "base_lr": suggestion.base_lr, "max_lr": suggestion.max_lr, "base_reason": suggestion.base_reason,
      "max_reason": suggestion.max_reason,
      "candidates": {k: list(v) for k, v in suggestion.candidates.items()}, "notes": list(suggestion.notes)},
      indent=2))


def _bounds(workdir: pathlib.Path, config: config_lib.Config, train_ds, val, *, num_steps: int, spe: int,
            timings: dict[str, float]) -> dict[str, Any]:
  """Phases 1-2: the range test (or the saved one) and its suggested bounds, as saved in suggestion.json."""
  w = config.workflow
  if (workdir / SUGGESTION_FILE).exists() and (workdir / RANGE_TEST_PLOT).exists():
    _say(f"[1/4] range test: reusing {workdir / SUGGESTION_FILE}")
  else:
    _say(f"[1/4] range test: {config.model.name}, {num_steps} steps ({num_steps / spe:g} epochs), lr "
         f"{w.range_min_lr:g} -> {w.range_max_lr:g} ({w.range_mode}), held-out accuracy every "
         f"{max(1, num_steps // w.range_eval_points)} steps; one compiled sweep ...")
    t0 = time.perf_counter()
    result = run_range_test(config, train_ds, val, num_steps=num_steps)
    suggestion = clr_optax.suggest_bounds(result, rule=w.rule)
    timings["range_test"] = time.perf_counter() - t0
    fig = clr_optax.plot_range_test(result, suggestion=suggestion,
                                    title=f"LR range test, {config.model.name} (paper Fig. 3 style)")
    _save_range_test(workdir, result, suggestion)
    report.save_figure(fig, workdir / RANGE_TEST_PLOT)
    _say(f"      done in {timings['range_test']:.0f} s")
  saved = rundir.read_json(workdir / SUGGESTION_FILE)
  _say(f"[2/4] suggested bounds:\n      base_lr = {saved['base_lr']:.4g}: {saved['base_reason']}\n      max_lr  = "
       f"{saved['max_lr']:.4g}: {saved['max_reason']}"
       + "".join(f"\n      note: {note}" for note in saved.get("notes", [])))
  return saved


def _run_configs(config: config_lib.Config, bounds: dict[str, Any], *, step_size: int) -> dict[str, config_lib.Config]:
  """The two runs: the fixed rate, and triangular2 between the suggested bounds."""
  return {
      "fixed": config_lib.override(config, {"name": "workflow_fixed", "schedule.name": "fixed",
                                            "schedule.base_lr": fixed_rate(config)}),
      "triangular2": config_lib.override(config, {
          "name": "workflow_triangular2", "schedule.name": "triangular2", "schedule.base_lr": bounds["base_lr"],
          "schedule.max_lr": bounds["max_lr"], "schedule.step_size": str(step_size)}),
  }


def clr_bounds(config: config_lib.Config, suggestion: dict[str, Any]) -> dict[str, Any]:
  """triangular2's bounds: max_lr suggested by the range test, base_lr per ``workflow.base``, with reasons.

  Raises:
    ValueError: ``workflow.base`` is unknown, or the suggested max_lr is not above the fixed rate (then
      ``workflow.base=suggested`` or a longer range test).
  """
  base = config.workflow.base
  if base not in WORKFLOW_BASES:
    raise ValueError(f"workflow.base must be one of {WORKFLOW_BASES}, got {base!r}")
  if base == "suggested":
    return suggestion
  fixed = fixed_rate(config)
  if not suggestion["max_lr"] > fixed:
    raise ValueError(f"the range test suggests max_lr={suggestion['max_lr']:.4g}, not above the fixed rate "
                     f"{fixed:.4g} that workflow.base='fixed' takes as base_lr; use --base suggested, or look at "
                     "the range test's plot")
  return {**suggestion, "base_lr": fixed,
          "base_reason": f"the network's own fixed rate (workflow.base='fixed', as the paper does when the rate is "
                         f"known); the range test suggested {suggestion['base_lr']:.4g} ({suggestion['base_reason']})"}


def fixed_rate(config: config_lib.Config) -> float:
  """The fixed run's learning rate: ``workflow.fixed_lr``, else the config's ``schedule.base_lr``."""
  return config.schedule.base_lr if config.workflow.fixed_lr is None else config.workflow.fixed_lr


def _train(workdir: pathlib.Path, run_configs: dict[str, config_lib.Config], train_ds, *,
           timings: dict[str, float]) -> dict[str, results.RunResult]:
  """Phase 3: both runs (or the finished ones read back), each in ``<workdir>/<run>/``."""
  runs = {}
  for i, (name, cfg) in enumerate(run_configs.items()):
    if (workdir / name / rundir.SUMMARY).exists():
      _say(f"[3/4] training {name} ({i + 1}/2): reusing the finished run in {workdir / name}")
      reproduce.run_one(cfg, workdir / name)  # checks that it is the same config
    else:
      what = (f"lr {cfg.schedule.base_lr:.4g}" if name == "fixed" else
              f"{cfg.schedule.base_lr:.4g} to {cfg.schedule.max_lr:.4g}, step size {cfg.schedule.step_size}")
      _say(f"[3/4] training {name} ({i + 1}/2): {what}, {cfg.train.num_steps} steps, seed {cfg.train.seed}")
      t0 = time.perf_counter()
      reproduce.run_one(cfg, workdir / name, dataset=train_ds)
      timings[name] = time.perf_counter() - t0
    runs[name] = results.load_run(workdir / name, name, cfg.train.seed)
  return runs


def write_workflow_report(workdir: pathlib.Path, *, fixed: results.RunResult, clr: results.RunResult,
                          fixed_lr: float, base_lr: float, max_lr: float, base_reason: str, max_reason: str,
                          step_size: int, setup: dict[str, str], command: str,
                          timings: dict[str, float], lr_curves=None) -> tuple[pathlib.Path, int | None]:
  """Writes report.md and accuracy_curves.png in `workdir`; returns the report's path and the step at which
  the triangular2 run first reached the fixed run's final accuracy."""
  reached = results.first_reached(clr.steps, clr.accuracies, fixed.final)
  fixed_own = results.first_reached(fixed.steps, fixed.accuracies, fixed.final)
  fig = report.plot_accuracy_curves({f"fixed lr={fixed_lr:.3g}": [fixed],
                                     f"triangular2 {base_lr:.3g}-{max_lr:.3g}": [clr]},
                                    title="Test accuracy (paper Fig. 1 style)", lr_curves=lr_curves)
  report.save_figure(fig, workdir / "accuracy_curves.png")

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
  saved = rundir.read_json(workdir / SUGGESTION_FILE)
  candidates, notes = saved["candidates"], saved.get("notes", [])
  lines += ["## 1. LR range test (paper Fig. 3 style)", "", f"![range test]({RANGE_TEST_PLOT})", "",
            "## 2. Suggested bounds", "", f"- **base_lr = {base_lr:.4g}**: {base_reason}",
            f"- **max_lr = {max_lr:.4g}**: {max_reason}", "", "Every rule's value:", "",
            *(f"- `{name}`: {lr:.4g} ({why})" for name, (lr, why) in candidates.items()), "",
            *(["What the rules could not read:", "", *(f"- {note}" for note in notes), ""] if notes else []),
            "## 3. Fixed LR vs triangular2 (paper Fig. 1 style)", "", "![accuracy curves](accuracy_curves.png)", "",
            "Metrics of each run (JSONL/CSV, every evaluation): `fixed/`, `triangular2/`.", "",
            "## Setup", ""]
  lines += [f"- **{k}**: {v}" for k, v in setup.items()]
  lines += ["- **time**: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            + " (wall clock, compilation and evaluation included)", "", "```", command, "```", ""]
  rundir.write_text(workdir / "report.md", "\n".join(lines))
  return workdir / "report.md", reached


def _setup_lines(config: config_lib.Config, train_ds, val, *, range_steps: int) -> dict[str, str]:
  """The report's Setup section."""
  w = config.workflow
  return {
      "network": config.model.name,
      "config": f"`{config.name}` (optimizer {config.optim.name}, momentum {config.optim.momentum}, weight decay "
                f"{config.optim.weight_decay}, normalisation {config.data.normalization}, augmentation "
                f"{'on' if config.data.augment else 'off'})",
      "data": f"`{config.data.dataset}`: {len(train_ds.train_labels):,} training images, {len(val[1]):,} held out "
              f"from the training split (the range test's accuracy), {len(train_ds.test_labels):,} test images "
              f"(stratified random subsets, seed {config.data.subset_seed})",
      "batch": str(config.train.batch_size), "seed": str(config.train.seed),
      "range test": f"{range_steps} steps, lr {w.range_min_lr:g} to {w.range_max_lr:g} ({w.range_mode}), rule "
                    f"`{w.rule}`",
      "evaluation": f"every {config.train.eval_every} steps on the test images",
  }


# Choices made after the range test, which it does not read: a rerun may change them (each run's own config.json
# refuses a finished run of other settings), as the refusal of a max_lr below the fixed rate tells the user to.
AFTER_RANGE_TEST = ("workflow.base", "workflow.fixed_lr", "workflow.step_size")


def check_workdir(workdir: pathlib.Path, config: config_lib.Config) -> None:
  """Refuses a work directory whose saved workflow (``config.json``, written once the data is loaded and the run
  planned) trains differently from `config`, but for `AFTER_RANGE_TEST`.

  Raises:
    ValueError: naming the fields that differ (`rundir.run_differences`).
  """
  if (workdir / rundir.CONFIG).exists():
    diffs = [d for d in rundir.run_differences(rundir.read_json(workdir / rundir.CONFIG), config)
             if d.split(":")[0] not in AFTER_RANGE_TEST]
    if diffs:
      raise ValueError(f"{workdir} holds a workflow run with other settings ({', '.join(diffs)}); run it with "
                       "its own settings, or use another --workdir (or delete it)")


def run_workflow(workdir: str | pathlib.Path, config: config_lib.Config | None = None, *, dataset: Any = None,
                 command: str | None = None) -> WorkflowResult:
  """Runs the whole workflow (range test, bounds, fixed vs triangular2, report) in `workdir`.

  Args:
    workdir: where everything goes (config.json, report.md, PNGs, the range test's records, one directory
      per run).
    config: the workflow's config (`experiments.configs.workflow`; default ``get_config("workflow")``).
    dataset: an `experiments.data.Dataset` already in memory, instead of loading ``config.data.dataset``
      (the config's subsets and held-out images are drawn from it).
    command: the command line to print in the report.

  Returns:
    A `WorkflowResult`.

  Raises:
    ValueError: `config` has no workflow section or an unknown rule (checked before anything runs), or
      `workdir` holds a workflow of other settings or is a file.
  """
  config = config_lib.get_config("workflow") if config is None else config
  if config.workflow is None:
    raise ValueError(f"config {config.name!r} has no workflow section; start from get_config('workflow')")
  if config.workflow.rule not in SUGGESTION_RULES:
    raise ValueError(f"workflow.rule must be one of {SUGGESTION_RULES}, got {config.workflow.rule!r}")
  if config.workflow.base not in WORKFLOW_BASES:
    raise ValueError(f"workflow.base must be one of {WORKFLOW_BASES}, got {config.workflow.base!r}")
  workdir = rundir.make_dir(workdir)
  check_workdir(workdir, config)
  timings_path = workdir / TIMINGS_FILE
  timings: dict[str, float] = rundir.read_json(timings_path) if timings_path.exists() else {}
  _say(f"[0/4] data: {config.data.dataset} (train {config.data.train_size or 'all'}, held out "
       f"{config.workflow.val_size}, test {config.data.test_size or 'all'})")
  train_ds, val = setup.load_data(config, dataset=dataset)
  plan = train.plan_run(config, num_train=len(train_ds.train_labels), num_global_devices=1)
  n_range = config_lib.resolve_duration(config.workflow.range_steps, steps_per_epoch=plan.steps_per_epoch,
                                        name="workflow.range_steps")
  n_step = config_lib.resolve_duration(config.workflow.step_size, steps_per_epoch=plan.steps_per_epoch,
                                       total_steps=plan.total_steps, name="workflow.step_size")
  if n_step < 1:
    raise ValueError(f"workflow.step_size must be at least one step, got {config.workflow.step_size=}")
  rundir.write_config(workdir, config)  # only now: a run refused above leaves no settings to block its rerun

  bounds = clr_bounds(config, _bounds(workdir, config, train_ds, val, num_steps=n_range, spe=plan.steps_per_epoch,
                                      timings=timings))
  rundir.write_text(timings_path, json.dumps(timings))
  run_configs = _run_configs(config, bounds, step_size=n_step)
  runs = _train(workdir, run_configs, train_ds, timings=timings)
  rundir.write_text(timings_path, json.dumps(timings))
  fixed_lr = fixed_rate(config)
  lr_curves = {f"fixed {fixed_lr:.3g}": results.lr_curve(workdir / "fixed"),
               "triangular2": results.lr_curve(workdir / "triangular2")}
  path, reached = write_workflow_report(
      workdir, fixed=runs["fixed"], clr=runs["triangular2"], fixed_lr=fixed_lr, base_lr=bounds["base_lr"],
      max_lr=bounds["max_lr"], base_reason=bounds["base_reason"], max_reason=bounds["max_reason"],
      step_size=n_step, setup=_setup_lines(config, train_ds, val, range_steps=n_range),
      command=command or "run_workflow(...)", timings=timings, lr_curves=lr_curves)
  _say(f"[4/4] report: {path}\n      fixed {100 * runs['fixed'].final:.2f}%, triangular2 "
       f"{100 * runs['triangular2'].final:.2f}% (final test accuracy)")
  return WorkflowResult(base_lr=bounds["base_lr"], max_lr=bounds["max_lr"], base_reason=bounds["base_reason"],
                        max_reason=bounds["max_reason"], fixed_lr=fixed_lr, fixed=runs["fixed"],
                        clr=runs["triangular2"], clr_reached=reached, report=path, timings=timings)


def _optional_int(text: str) -> int | None:
  value = int(text)
  return None if value == 0 else value


# Flag -> the config field it sets (flags whose value is the field's, converted by the field's type).
FLAG_FIELDS = {"data": "data.dataset", "model": "model.name", "train_size": "data.train_size",
               "val_size": "workflow.val_size", "test_size": "data.test_size", "batch_size": "train.batch_size",
               "step_size": "workflow.step_size", "fixed_lr": "workflow.fixed_lr", "eval_every": "train.eval_every",
               "range_steps": "workflow.range_steps", "range_min_lr": "workflow.range_min_lr",
               "range_max_lr": "workflow.range_max_lr", "range_mode": "workflow.range_mode",
               "rule": "workflow.rule", "base": "workflow.base", "num_devices": "train.num_devices"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parses the command line of ``python -m experiments.workflow``; a flag left out keeps the config's value."""
  p = argparse.ArgumentParser(prog="python -m experiments.workflow", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  w = config_lib.WorkflowConfig()
  p.add_argument("--workdir", required=True, help="where the report, plots and runs go")
  p.add_argument("--config", default="default", help="config giving optimizer and preprocessing")
  p.add_argument("--data", default="cifar10", help="cifar10 (tensorflow-datasets) or an image-folder dir/archive")
  p.add_argument("--model", default=None, help="network (experiments.models name; default: the config's)")
  p.add_argument("--train-size", type=_optional_int, default=workflow_config.TRAIN_SIZE,
                 help="training images (0 or None: all)")
  p.add_argument("--val-size", type=int, default=w.val_size, help="held-out training images for the range test")
  p.add_argument("--test-size", type=_optional_int, default=workflow_config.TEST_SIZE, help="test images (0: all)")
  p.add_argument("--batch-size", type=int, default=100)
  p.add_argument("--steps", type=int, default=workflow_config.STEPS, help="steps of each training run")
  p.add_argument("--step-size", default=w.step_size,
                 help="triangular2 half cycle ('25%%' of the run, '4ep' epochs or '200' steps)")
  p.add_argument("--fixed-lr", type=float, default=None, help="the fixed run's rate (default: the config's)")
  p.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default steps/32)")
  p.add_argument("--range-steps", default=w.range_steps, help="range test length ('8ep' or steps)")
  p.add_argument("--range-min-lr", type=float, default=w.range_min_lr)
  p.add_argument("--range-max-lr", type=float, default=w.range_max_lr)
  p.add_argument("--range-mode", default=w.range_mode, choices=("linear", "exponential"))
  p.add_argument("--rule", default=w.rule, help="bounds rule: auto, accuracy, valley, steepest")
  p.add_argument("--base", default=w.base, choices=WORKFLOW_BASES,
                 help="triangular2's base_lr: the fixed run's rate, or the range test's suggestion")
  p.add_argument("--seed", type=int, default=0, help="seed of the subsets, the initialisation and the shuffles")
  p.add_argument("--num-devices", type=int, default=None, help="devices for training (default: all local ones)")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="override any other config field (after the flags)")
  return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> config_lib.Config:
  """The workflow config the flags describe: ``workflow:<--config>``, the flags' fields, then ``--set``."""
  updates: dict[str, Any] = dict(workflow_config.intervals(args.steps))
  updates.update({field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
                  if getattr(args, flag) is not None or flag in ("train_size", "test_size", "fixed_lr")})
  updates.update({"train.seed": args.seed, "data.subset_seed": args.seed, "train.progress": not args.no_progress})
  updates.update(config_lib.parse_overrides(args.set))
  return config_lib.override(config_lib.get_config(f"workflow:{args.config}"), updates)


def main(argv: Sequence[str] | None = None) -> WorkflowResult:
  """Command-line entry point."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  return run_workflow(args.workdir, config_from_args(args),
                      command="python -m experiments.workflow " + shlex.join(argv))


if __name__ == "__main__":
  cli.run(main)
