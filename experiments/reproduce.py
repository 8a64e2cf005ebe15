"""Named reproductions of the paper's experiments, full length or shrunk, and their reports.

  python -m experiments.reproduce table1 --shrink 50 --seeds 0,1,2 --data path/to/cifar10-jpeg.tar.xz

runs the five Table 1 policies (fixed, triangular2, decay, exp, exp_range; the groups are
`experiments.configs.tables`) for every seed, each in its own work directory ``<workdir>/<config>/seed<k>/``
(`experiments.rundir`: metrics, orbax checkpoints), then writes ``experiments/reports/<name>.md``
(`experiments.report`): our final and best test accuracies (mean ± std over the seeds) beside the paper's
number, the iteration at which each run first reached the fixed-LR run's final accuracy, the data, the
hardware, the wall time and the exact command. Running the same command again continues: finished runs
are read back, an interrupted run resumes from its last checkpoint. Each finished run's small results
(``summary.json``, ``metrics.jsonl``, ``config.json``; never checkpoints) are copied to
``experiments/reports/<name>/runs/<config>/seed<k>/`` to be committed, and a run found there counts as
finished, so a fresh clone continues a long reproduction where the committed runs leave off.

On GPUs and TPUs the runs that differ only in seed and schedule (Table 1's five policies and its seeds)
train together as one vmapped program (`experiments.multirun`), each still ending in its own run directory;
not on XLA:CPU, where vmapped convolutions are slower than separate runs (``--vmap-runs on|off`` decides).
The streamed (ImageNet) rows always train one run at a time.

``--shrink F`` divides every iteration count by F (`experiments.configs.shrink`): a shrunk run follows the
full run's learning-rate curve compressed F times along the iterations.

The ImageNet rows are experiments too (``table1_alexnet``, ``table1_googlenet``, ``fig7``, ``fig11``; their
configs stream ``--data imagenet2012`` or an ImageNet folder, `experiments.feed`). ``--cost`` prints what an
experiment's runs would cost (iterations, images, compute, and the time on one accelerator: measured by its
finished runs where there are any, on paper otherwise) and runs nothing; every report has the same table:

  python -m experiments.reproduce table1_alexnet table1_googlenet --cost --seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import sys
import time
from typing import Any, Sequence

import jax

from experiments import cli
from experiments import configs as config_lib
from experiments import feed
from experiments import fidelity
from experiments import multirun
from experiments import report
from experiments import results
from experiments import rundir
from experiments import setup
from experiments import train
from experiments.configs.shrink import shrink_config
from experiments.configs.tables import EXPERIMENTS
from experiments.configs.tables import Experiment
from experiments.configs.tables import get_experiment

REPORTS = pathlib.Path(__file__).parent / "reports"
# Steps per epoch assumed only to weigh runs against each other when sharding (CIFAR's 50,000 training
# images in batches of 100); a run's real length is resolved by `train.plan_run`.
_COST_STEPS_PER_EPOCH = 500


def build_configs(experiment: Experiment, *, seeds: Sequence[int], shrink: float = 1.0,
                  overrides: dict[str, str] | None = None) -> list[tuple[str, int, config_lib.Config]]:
  """``(config_name, seed, config)`` of every run, seed by seed: shrunk, `overrides` applied, the seed set.

  Seed-major order, so that an interrupted reproduction has whole seeds (every config) done first.

  Raises:
    ValueError: a seed is listed twice, or is not one the PRNG takes (`experiments.rundir.check_distinct_runs`,
      ``train.seed``); checked before anything runs or is reported.
  """
  bases = []
  for name in experiment.configs:
    base = shrink_config(config_lib.get_config(name), shrink)
    bases.append((name, config_lib.override(base, dict(overrides or {}))))
  runs = [(name, seed, config_lib.override(base, {"train.seed": seed})) for seed in seeds for name, base in bases]
  rundir.check_distinct_runs([config for _, _, config in runs])
  return runs


def _run_cost(config: config_lib.Config) -> float:
  """A rough cost of a run (its steps), to balance shards."""
  try:
    return float(config_lib.resolve_duration(config.train.num_steps, steps_per_epoch=_COST_STEPS_PER_EPOCH))
  except ValueError:
    return 1.0


def shard_runs(runs: list[Any], shard: tuple[int, int], cost=lambda r: _run_cost(r[2])) -> list[Any]:
  """The runs of shard ``(index, count)``: longest first, each to the least loaded shard.

  Every shard computes the same assignment, so ``--shard 0/2`` and ``--shard 1/2`` split the runs between
  two processes with no overlap and none left out.
  """
  index, count = shard
  if not 0 <= index < count:
    raise ValueError(f"shard must be INDEX/COUNT with 0 <= INDEX < COUNT, got {shard=}")
  loads = [0.0] * count
  mine = []
  order = sorted(range(len(runs)), key=lambda i: (-cost(runs[i]), i))
  for i in order:
    k = min(range(count), key=lambda j: (loads[j], j))
    loads[k] += cost(runs[i])
    if k == index:
      mine.append(i)
  return [runs[i] for i in sorted(mine)]


def results_dir(report_dir: str | os.PathLike | None, experiment: str, config_name: str, seed: int) -> pathlib.Path:
  """Where a finished run's small results are kept for committing: ``<reports>/<experiment>/runs/<config>/seed<k>``.

  A run found there (with a matching config) counts as finished, on any machine: a fresh clone picks up the
  committed runs of a long reproduction instead of training them again.
  """
  return rundir.run_dir((pathlib.Path(report_dir) if report_dir else REPORTS) / experiment / "runs", config_name, seed)


def finished_dir(config: config_lib.Config, directory: pathlib.Path, archive: pathlib.Path | None) -> pathlib.Path | None:
  """The directory holding the finished run of `config`: its committed results, else its work directory.

  Raises:
    ValueError: the finished run there was made with a config that trains differently.
  """
  for d in (archive, directory):
    if d is not None and (d / rundir.SUMMARY).exists():
      rundir.check_same_run(d, config)
      return d
  return None


def run_one(config: config_lib.Config, directory: pathlib.Path, *, dataset: Any = None,
            archive: pathlib.Path | None = None) -> dict[str, Any]:
  """Runs (or resumes, or reads back) one run; returns its summary (also written to ``summary.json``).

  Args:
    config: the run.
    directory: its work directory (metrics, checkpoints); an unfinished run there is resumed.
    dataset: passed to `experiments.train.train_and_evaluate`.
    archive: where finished results are kept (`results_dir`): a finished run there is read back, and a run
      finished here is copied there (`rundir.RESULT_FILES`).

  Raises:
    ValueError: `directory` or `archive` holds a run of a different config.
  """
  done = finished_dir(config, directory, archive)
  if done is not None:
    if archive is not None and done != archive:
      archive_results(done, archive)
    return rundir.read_json(done / rundir.SUMMARY)
  rundir.make_dir(directory)
  rundir.check_same_run(directory, config)
  t0 = time.perf_counter()
  summary = train.train_and_evaluate(config, directory, dataset=dataset, resume=True)
  return _finish(directory, summary, time.perf_counter() - t0, archive)


def run_together(runs: Sequence[tuple[config_lib.Config, pathlib.Path, pathlib.Path | None]], *,
                 dataset: Any = None) -> list[dict[str, Any]]:
  """Runs (or resumes) unfinished runs that can share a program as one (`experiments.multirun`); each ends
  as `run_one` leaves it, its ``summary.json`` written and its results kept.

  Args:
    runs: ``(config, directory, archive)`` of each run, as `run_one` takes them.
    dataset: passed to `experiments.multirun.train_and_evaluate_together`.

  Raises:
    ValueError: a directory holds a run of a different config, or the runs cannot train together.
  """
  for config, directory, _ in runs:
    rundir.make_dir(directory)
    rundir.check_same_run(directory, config)
  t0 = time.perf_counter()
  summaries = multirun.train_and_evaluate_together([c for c, _, _ in runs], [d for _, d, _ in runs],
                                                   dataset=dataset, resume=True)
  share = (time.perf_counter() - t0) / len(runs)
  return [_finish(directory, summary, share, archive) for (_, directory, archive), summary in zip(runs, summaries)]


def _finish(directory: pathlib.Path, summary: dict[str, Any], seconds: float,
            archive: pathlib.Path | None) -> dict[str, Any]:
  """Writes a trained run's ``summary.json`` (`seconds` of this process as ``process_wall_time``) and keeps its
  results in `archive`; returns the summary."""
  summary.pop("state", None)
  summary["process_wall_time"] = seconds
  rundir.write_text(directory / rundir.SUMMARY, json.dumps(summary, indent=2))
  if archive is not None:
    archive_results(directory, archive)
  return summary


# The trainer writes every step's training metrics; the kept copy has every ARCHIVED_TRAIN_EVERY-th step's
# (and every evaluation), a hundredth of the size: the reports read the evaluations.
ARCHIVED_TRAIN_EVERY = 100


def archive_results(directory: pathlib.Path, archive: pathlib.Path) -> None:
  """Copies a finished run's `rundir.RESULT_FILES` to `archive`, the summary last (it marks the copy complete).

  ``metrics.jsonl`` keeps every evaluation and the training rows of every `ARCHIVED_TRAIN_EVERY`-th step.
  """
  rundir.make_dir(archive)
  for name in sorted(rundir.RESULT_FILES, key=lambda n: n == rundir.SUMMARY):
    text = (directory / name).read_text()
    if name == rundir.METRICS_JSONL:
      text = "".join(line + "\n" for line in text.splitlines() if line.strip() and _kept_row(json.loads(line)))
    rundir.write_text(archive / name, text)


def _kept_row(row: dict[str, Any]) -> bool:
  return row.get("split") != "train" or int(row["step"]) % ARCHIVED_TRAIN_EVERY == 0


def _data_key(config: config_lib.Config) -> tuple:
  return (config.data.dataset, config.data.train_size, config.data.test_size, config.data.subset_seed,
          config.data.cache_dir)


def run_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                   shrink: float = 1.0, overrides: dict[str, str] | None = None,
                   shard: tuple[int, int] = (0, 1), dataset: Any = None, only: Sequence[str] = (),
                   report_dir: str | os.PathLike | None = None, archive: bool = True,
                   together: bool | None = None) -> list[dict[str, Any]]:
  """Runs every (config, seed) of `experiment` that is not finished yet: one after the other, or several
  as one program (`together`).

  Args:
    experiment: what to run (`experiments.configs.tables.get_experiment`).
    workdir: the parent of the runs' directories (`rundir.run_dir`).
    seeds: the seeds (``train.seed``); the data subset stays the same for all of them.
    shrink: the shrink factor (`shrink_config`).
    overrides: config fields set on every run after shrinking (``{"data.dataset": "cifar10"}``).
    shard: ``(index, count)``: run only this share of the runs (`shard_runs`), for parallel processes.
    dataset: an `experiments.data.Dataset` every run uses instead of loading its ``config.data`` (a notebook
      may pass one it holds; the configs' subsets are then not applied).
    only: run only these configs of the experiment (all when empty).
    report_dir: where the reports and the finished runs' results (`results_dir`) are kept.
    archive: keep finished runs' results under `report_dir` and count those found there as finished.
    together: train this shard's unfinished runs that can share a program (`multirun.group_runs`: Table 1's
      policies and seeds; never the streamed ImageNet runs) as one vmapped program (`run_together`); None:
      where the backend gains from it (`multirun.gains`: not on XLA:CPU).

  Returns:
    The summaries of this shard's runs.
  """
  unknown = set(only) - set(experiment.configs)
  if unknown:
    raise ValueError(f"--only names configs that {experiment.name} does not run: {sorted(unknown)}; it runs "
                     f"{', '.join(experiment.configs)}")
  runs = build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides)
  runs = shard_runs([r for r in runs if not only or r[0] in only], shard)
  places = [(rundir.run_dir(workdir, name, seed), results_dir(report_dir, experiment.name, name, seed) if archive
             else None) for name, seed, _ in runs]
  if together is None:
    together = multirun.gains(jax.local_devices()[0].platform)
  units = [[i] for i in range(len(runs))]
  if together:
    todo = [i for i, ((_, _, config), (d, kept)) in enumerate(zip(runs, places))
            if not multirun.trains_alone(config) and finished_dir(config, d, kept) is None]
    groups = [[todo[j] for j in group] for group in multirun.group_runs([runs[i][2] for i in todo])]
    grouped = {i for group in groups for i in group}
    units = sorted(groups + [[i] for i in range(len(runs)) if i not in grouped], key=min)
  datasets: dict[tuple, Any] = {}
  summaries: list[dict[str, Any]] = [{} for _ in runs]
  for unit in units:
    config = runs[unit[0]][2]
    for i in unit:
      name, seed, _ = runs[i]
      with_others = f" (one program with {len(unit) - 1} more)" if len(unit) > 1 else ""
      print(f"[{i + 1}/{len(runs)}] {name} seed {seed} -> {places[i][0]}{with_others}", file=sys.stderr, flush=True)
    if dataset is not None:
      datasets[_data_key(config)] = dataset
    elif (not feed.is_streamed(config) and any(finished_dir(runs[i][2], *places[i]) is None for i in unit)
          and _data_key(config) not in datasets):  # the ImageNet stream opens its data in the trainer
      datasets[_data_key(config)] = setup.load_data(config)[0]
    data = datasets.get(_data_key(config))
    if len(unit) == 1:
      summaries[unit[0]] = run_one(config, places[unit[0]][0], dataset=data, archive=places[unit[0]][1])
    else:
      outs = run_together([(runs[i][2], *places[i]) for i in unit], dataset=data)
      for i, summary in zip(unit, outs):
        summaries[i] = summary
  return summaries


def report_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int],
                      shrink: float, overrides: dict[str, str] | None, command: str,
                      report_dir: str | os.PathLike | None = None, notes: str = "",
                      hardware: dict[str, str] | None = None, partial: bool = False) -> pathlib.Path:
  """Reads every run of `experiment` back and writes its report (`experiments.report.write_report`).

  The learning-rate panel shows the rate each config's first finished run logged.

  Args:
    partial: report the finished runs only, naming the unfinished ones in the report (default: refuse).

  Raises:
    FileNotFoundError: a run has not finished (no ``summary.json``) and `partial` is false, or no run has: run
      the command again to finish it.
  """
  all_runs = build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides)
  finished, runs, missing, lr_curves = [], [], [], {}
  for name, seed, config, directory in _located(experiment, all_runs, workdir, report_dir):
    if directory is None:
      if not partial:
        raise FileNotFoundError(f"the run {name} seed {seed} in {rundir.run_dir(workdir, name, seed)} has not "
                                "finished; run the same command again (without --report-only) to finish it")
      missing.append(f"`{name}` seed {seed}")
      continue
    runs.append((name, seed, config))
    finished.append(results.load_run(directory, name, seed))
    steps, rates = results.lr_curve(directory)
    if name not in lr_curves and len(steps):
      lr_curves[name] = (steps, rates)
  if not runs:
    raise FileNotFoundError(f"no run of {experiment.name} in {workdir} has finished: nothing to report; run the "
                            "same command without --report-only first")
  if missing:
    notes = (f"**Incomplete**: {len(missing)} of {len(all_runs)} runs had not been run or not finished when this "
             f"report was written: {', '.join(missing)}.\n\n" + notes)
  report_dir = pathlib.Path(report_dir) if report_dir else REPORTS
  datasets = {report.run_dataset(config) for _, _, config in runs}
  train_images = next((r.train_images for r in finished if r.train_images is not None), None)
  return report.write_report(
      dataclasses.replace(experiment, title=report.run_title(experiment, _per_config(all_runs))),
      results.summarize(experiment, finished), path=report_dir / f"{experiment.name}.md",
      shrink=shrink, seeds=seeds, command=command, data=report.describe_data(runs[0][2], train_images),
      hardware=hardware or report.hardware_description(), elapsed=report.describe_elapsed(finished),
      overrides=overrides, notes=notes, lr_curves=lr_curves or None,
      dataset=datasets.pop() if len(datasets) == 1 else None, cost=report.cost_table(_per_config(all_runs), finished))


def _located(experiment: Experiment, runs: list[tuple[str, int, config_lib.Config]], workdir: str | os.PathLike,
             report_dir: str | os.PathLike | None) -> list[tuple[str, int, config_lib.Config, pathlib.Path | None]]:
  """Each run with the directory of its finished results (`finished_dir`; None: not finished)."""
  return [(name, seed, config, finished_dir(config, rundir.run_dir(workdir, name, seed),
                                            results_dir(report_dir, experiment.name, name, seed)))
          for name, seed, config in runs]


def _per_config(runs: list[tuple[str, int, config_lib.Config]]) -> list[tuple[str, config_lib.Config]]:
  """Each config of `runs` once, with its first seed's config (the seeds cost the same)."""
  return list({name: config for name, _, config in reversed(runs)}.items())[::-1]


def cost_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int], shrink: float,
                    overrides: dict[str, str] | None, report_dir: str | os.PathLike | None = None) -> str:
  """What `experiment`'s runs would cost (`experiments.report.cost_table`), with the throughput its finished
  runs measured where there are any; trains nothing and needs no data."""
  runs = build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides)
  finished = [results.load_run(directory, name, seed)
              for name, seed, _, directory in _located(experiment, runs, workdir, report_dir) if directory]
  per_run = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}) of each config"
  return f"# {experiment.title}: what a run costs\n\nOne run of each config; the experiment runs {per_run}.\n\n" + \
      report.cost_table(_per_config(runs), finished)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parses the command line of ``python -m experiments.reproduce``."""
  epilog = "experiments:\n" + "\n".join(f"  {e.name:20s} {e.title}" for e in EXPERIMENTS.values())
  epilog += "\n  or any single config name (python -m experiments.train --help lists them)"
  parser = argparse.ArgumentParser(
      prog="python -m experiments.reproduce", description="Run named reproductions and write their reports.",
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
  parser.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (see below)")
  parser.add_argument("--fidelity", action="store_true",
                      help="write the fidelity report (every setting of every paper row against the paper's text, "
                      "experiments/fidelity.py) to <report-dir>/fidelity.md; run nothing")
  parser.add_argument("--shrink", type=float, default=1.0,
                      help="divide every iteration count by this factor (1: full length); see "
                      "experiments/configs/shrink.py")
  parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
  parser.add_argument("--workdir", default="workdirs/reproduce", help="parent of the runs' work directories")
  parser.add_argument("--data", help="dataset spec: cifar10 or cifar100 (tfds) or an image-folder dir/archive")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field of every run (after shrinking)")
  parser.add_argument("--shard", default="0/1", metavar="I/N", help="run only share I of N (parallel processes)")
  parser.add_argument("--only", action="append", default=[], metavar="CONFIG",
                      help="run only this config of the experiment (repeatable); the report names the rest as "
                      "unfinished")
  parser.add_argument("--report-dir", default=None, help="where reports go (default experiments/reports)")
  parser.add_argument("--no-report", action="store_true", help="only run; write no report")
  parser.add_argument("--report-only", action="store_true", help="write the report of finished runs; run nothing")
  parser.add_argument("--cost", action="store_true",
                      help="print what the runs would cost (iterations, images, compute, time; the throughput of "
                      "finished runs where there are any); run nothing")
  parser.add_argument("--partial", action="store_true",
                      help="with --report-only: report the finished runs, naming the unfinished ones")
  parser.add_argument("--notes", help="a markdown file whose text goes into the report's Discussion")
  parser.add_argument("--command", help="the command to print in the report (default: this one)")
  parser.add_argument("--vmap-runs", choices=("auto", "on", "off"), default="auto",
                      help="train the runs that differ only in seed and schedule as one vmapped program "
                      "(experiments/multirun.py; not the streamed ImageNet runs); auto: on GPUs and TPUs, not on "
                      "XLA:CPU (default auto)")
  args = parser.parse_args(argv)
  if not args.names and not args.fidelity:
    parser.error("name at least one experiment (or --fidelity)")
  try:
    args.seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
  except ValueError:
    parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
  if not args.seeds:
    parser.error("--seeds is empty")
  try:
    index, count = (int(x) for x in args.shard.split("/"))
  except ValueError:
    parser.error(f"--shard takes INDEX/COUNT, e.g. 0/2, got {args.shard!r}")
  args.shard = (index, count)
  args.overrides = config_lib.parse_overrides(args.set)
  if args.data:
    args.overrides["data.dataset"] = args.data
  return args


def main(argv: Sequence[str] | None = None) -> None:
  """Command-line entry point: run the named experiments, then write their reports."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  if args.fidelity:
    print(f"fidelity report: {fidelity.write(pathlib.Path(args.report_dir or REPORTS) / 'fidelity.md')}",
          file=sys.stderr)
  experiments = [get_experiment(n) for n in args.names]
  command = "python -m experiments.reproduce " + shlex.join(a for a in argv)
  notes = pathlib.Path(args.notes).read_text() if args.notes else ""
  for experiment in experiments:
    if args.cost:
      print(cost_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                            overrides=args.overrides, report_dir=args.report_dir))
      continue
    if not args.report_only:
      run_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                     overrides=args.overrides, shard=args.shard, only=args.only, report_dir=args.report_dir,
                     together={"auto": None, "on": True, "off": False}[args.vmap_runs])
    if args.no_report or args.shard[1] > 1:
      continue
    path = report_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                             overrides=args.overrides, command=args.command or command,
                             report_dir=args.report_dir, notes=notes, partial=args.partial or bool(args.only))
    print(f"report: {path}", file=sys.stderr)


if __name__ == "__main__":
  cli.run(main)
