"""Named reproductions of the paper's experiments, full length or shrunk, and their reports.

  python -m experiments.reproduce table1 --shrink 50 --seeds 0,1,2 --data path/to/cifar10-jpeg.tar.xz

runs the five Table 1 policies (fixed, triangular2, decay, exp, exp_range) for every seed, each in its own
work directory ``<workdir>/<config>/seed<k>/`` (metrics, orbax checkpoints), then writes
``experiments/reports/<name>.md``: our final and best test accuracies (mean ± std over the seeds) beside the
paper's number, the iteration at which each run first reached the fixed-LR run's final accuracy, the data,
the hardware, the wall time and the exact command. Running the same command again continues: finished runs
are read back, an interrupted run resumes from its last checkpoint.

Shrinking by a factor F (`shrink_config`) divides every iteration count of the config by F and keeps
everything else:

* ``train.num_steps``, ``schedule.step_size``, ``schedule.drop_at``, ``schedule.stage_starts``,
  ``schedule.stage_step_sizes``, ``train.eval_every``, ``train.checkpoint_every`` (Durations in steps or
  epochs: divided by F and rounded to the nearest step, at least 1; percentages of the run are unchanged)
  (``train.log_every``, how often training metrics reach the host, is capped at a fiftieth of a run in steps);
* ``schedule.gamma`` of the ``exp`` and ``exp_range`` policies becomes ``gamma**F``, so the decay over the
  (shorter) run is the same as over the full run;
* unchanged: the batch size, the learning-rate bounds, the network, the optimizer, the data.

So a shrunk run follows the same learning-rate curve as the full run, compressed F times along the
iteration axis, and sees F times fewer examples. The reports restate the paper's iterations as ours x F.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shlex
import sys
import time
from typing import Any, Sequence

from experiments import configs as config_lib

# ----------------------------------------------------------------------------------------------------------
# The named experiments.


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A named reproduction: the configs it runs and the fixed-LR run the others are measured against.

  Attributes:
    name: the name on the command line and of the report (``experiments/reports/<name>.md``).
    title: what the paper calls it.
    configs: config names (`experiments.configs.get_config`) run for every seed.
    reference: the config whose final accuracy the "first reached" iteration refers to (the fixed-LR run),
      or None where the experiment has none.
  """
  name: str
  title: str
  configs: tuple[str, ...]
  reference: str | None


def _table3(opt: str, title: str, extra: tuple[str, ...] = ()) -> Experiment:
  return Experiment(f"table3_{opt}", title, (f"table3_{opt}:fixed", f"table3_{opt}:clr", *extra),
                    f"table3_{opt}:fixed")


def _table4(net: str, title: str) -> Experiment:
  return Experiment(f"table4_{net}", title, tuple(f"table4_{net}:{a}" for a in ("0.1", "0.2", "0.3", "clr")),
                    f"table4_{net}:0.1")


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("table1", "Table 1, CIFAR-10 with cifar10_full: five learning-rate policies",
               ("table1_fixed", "table1_triangular2", "table1_decay", "table1_exp", "table1_exp_range"),
               "table1_fixed"),
    Experiment("table2", "Table 2 / Figure 1, the staged triangular2 run against the fixed policy",
               ("table1_fixed", "table2_staged"), "table1_fixed"),
    _table3("nesterov", "Table 3, Nesterov momentum with and without CLR"),
    _table3("adam", "Table 3, Adam with and without CLR", ("table3_adam:clr70k",)),
    _table3("rmsprop", "Table 3, RMSprop with and without CLR"),
    _table3("adagrad", "Table 3, AdaGrad with and without CLR"),
    _table3("adadelta", "Table 3, AdaDelta with and without CLR"),
    Experiment("fig6", "Figure 6, batch-normalised sigmoid network: fixed LR vs CLR",
               ("fig6_bn_sigmoid:fixed", "fig6_bn_sigmoid:clr"), "fig6_bn_sigmoid:fixed"),
    _table4("resnet", "Table 4, ResNet-56 on CIFAR-10: fixed 0.1/0.2/0.3 vs CLR 0.1-0.3"),
    _table4("sd_resnet", "Table 4, Stochastic Depth ResNet-110: fixed 0.1/0.2/0.3 vs CLR 0.1-0.3"),
    _table4("densenet", "Table 4, DenseNet-40: fixed 0.1/0.2/0.3 vs CLR 0.1-0.2"),
    Experiment("one_cycle_resnet56", "One-cycle ResNet-56 (super-convergence)", ("one_cycle_resnet56",), None),
)}


def get_experiment(name: str) -> Experiment:
  """The named experiment, or a single config (any `experiments.configs` name) run on its own.

  Raises:
    ValueError: `name` is neither (the message lists the experiments).
  """
  if name in EXPERIMENTS:
    return EXPERIMENTS[name]
  try:
    config = config_lib.get_config(name)
  except ValueError:
    raise ValueError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)} or a config name "
                     f"({', '.join(config_lib.list_configs())})") from None
  return Experiment(name.replace(":", "_"), config.paper or name, (name,), None)


# ----------------------------------------------------------------------------------------------------------
# Shrinking.

_DURATIONS = ("train.num_steps", "train.eval_every", "train.checkpoint_every", "schedule.step_size")
_DURATION_TUPLES = ("schedule.drop_at", "schedule.stage_starts", "schedule.stage_step_sizes")


def shrink_duration(spec: str, factor: float) -> str:
  """A Duration divided by `factor`: steps rounded to the nearest step (at least 1), epochs kept in epochs.

  Percentages of the run are returned unchanged (the run itself shrinks).

  Examples:
    >>> shrink_duration("70000", 50), shrink_duration("8ep", 4), shrink_duration("5%", 10)
    ('1400', '2ep', '5%')
  """
  text = str(spec).strip().lower().replace("_", "")
  if text.endswith("%"):
    return str(spec)
  for unit in ("epochs", "ep"):
    if text.endswith(unit):
      epochs = float(text.removesuffix(unit)) / factor
      return f"{epochs:g}ep"
  steps = float(text.removesuffix("steps"))
  if steps == 0:
    return "0"
  return str(max(1, int(round(steps / factor))))


def shrink_config(config: config_lib.Config, factor: float) -> config_lib.Config:
  """`config` with its iteration counts divided by `factor` (see the module docstring for exactly what).

  Args:
    config: an experiment config.
    factor: the shrink factor F >= 1 (1 returns `config` unchanged).

  Returns:
    The shrunk config; its name is unchanged.

  Raises:
    ValueError: `factor` is below 1 or not finite.
  """
  if not (math.isfinite(factor) and factor >= 1):
    raise ValueError(f"the shrink factor must be a finite number >= 1, got {factor=}")
  if factor == 1:
    return config
  flat = config_lib.flat_fields(config)
  updates: dict[str, Any] = {k: shrink_duration(flat[k], factor) for k in _DURATIONS}
  updates.update({k: tuple(shrink_duration(d, factor) for d in flat[k]) for k in _DURATION_TUPLES})
  if updates["train.num_steps"].isdigit():  # in steps (a run in epochs keeps its log interval)
    updates["train.log_every"] = max(1, min(flat["train.log_every"], int(updates["train.num_steps"]) // 50))
  if config.schedule.name in ("exp", "exp_range"):
    updates["schedule.gamma"] = float(config.schedule.gamma) ** factor
  return config_lib.override(config, updates)


# ----------------------------------------------------------------------------------------------------------
# Running.


def run_dir(workdir: str | os.PathLike, config_name: str, seed: int) -> pathlib.Path:
  """Where the run of `config_name` with `seed` keeps its metrics and checkpoints."""
  return pathlib.Path(workdir) / config_name.replace(":", "_") / f"seed{seed}"


def build_configs(experiment: Experiment, *, seeds: Sequence[int], shrink: float = 1.0,
                  overrides: dict[str, str] | None = None) -> list[tuple[str, int, config_lib.Config]]:
  """``(config_name, seed, config)`` of every run, seed by seed: shrunk, `overrides` applied, the seed set.

  Seed-major order, so that an interrupted reproduction has whole seeds (every config) done first.
  """
  bases = []
  for name in experiment.configs:
    base = shrink_config(config_lib.get_config(name), shrink)
    bases.append((name, config_lib.override(base, dict(overrides or {}))))
  return [(name, seed, config_lib.override(base, {"train.seed": seed})) for seed in seeds for name, base in bases]


def _run_cost(config: config_lib.Config) -> float:
  """A rough cost of a run (its steps), to balance shards."""
  try:
    return float(config_lib.resolve_duration(config.train.num_steps, steps_per_epoch=500))
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


SUMMARY = "summary.json"


def run_one(config: config_lib.Config, directory: pathlib.Path, *, dataset: Any = None) -> dict[str, Any]:
  """Runs (or resumes, or reads back) one run; returns its summary (also written to ``summary.json``).

  Raises:
    ValueError: `directory` holds a run of a different config.
  """
  from experiments import train  # pylint: disable=g-import-not-at-top
  directory.mkdir(parents=True, exist_ok=True)
  summary_file = directory / SUMMARY
  wanted = config_lib.to_dict(config)
  old_config = directory / "config.json"
  if old_config.exists():
    stored = json.loads(old_config.read_text())
    if stored != json.loads(json.dumps(wanted)):
      raise ValueError(f"{directory} holds a run of a different config (compare {old_config}); use another "
                       "--workdir or delete it")
  if summary_file.exists():
    return json.loads(summary_file.read_text())
  t0 = time.perf_counter()
  summary = train.train_and_evaluate(config, directory, dataset=dataset, resume=True)
  summary.pop("state", None)
  summary["process_wall_time"] = time.perf_counter() - t0
  tmp = summary_file.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(summary, indent=2))
  os.replace(tmp, summary_file)
  return summary


def _data_key(config: config_lib.Config) -> tuple:
  return (config.data.dataset, config.data.train_size, config.data.test_size, config.data.subset_seed,
          config.data.cache_dir)


def run_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                   shrink: float = 1.0, overrides: dict[str, str] | None = None,
                   shard: tuple[int, int] = (0, 1)) -> list[dict[str, Any]]:
  """Runs every (config, seed) of `experiment` that is not finished yet, one after the other.

  Args:
    experiment: what to run (`get_experiment`).
    workdir: the parent of the runs' directories (`run_dir`).
    seeds: the seeds (``train.seed``); the data subset stays the same for all of them.
    shrink: the shrink factor (`shrink_config`).
    overrides: config fields set on every run after shrinking (``{"data.dataset": "cifar10"}``).
    shard: ``(index, count)``: run only this share of the runs (`shard_runs`), for parallel processes.

  Returns:
    The summaries of this shard's runs.
  """
  from experiments import train  # pylint: disable=g-import-not-at-top
  runs = shard_runs(build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides), shard)
  datasets: dict[tuple, Any] = {}
  summaries = []
  for i, (name, seed, config) in enumerate(runs):
    directory = run_dir(workdir, name, seed)
    print(f"[{i + 1}/{len(runs)}] {name} seed {seed} -> {directory}", file=sys.stderr, flush=True)
    if not (directory / SUMMARY).exists() and _data_key(config) not in datasets:
      datasets[_data_key(config)] = train.load_dataset(config)
    summaries.append(run_one(config, directory, dataset=datasets.get(_data_key(config))))
  return summaries


# ----------------------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parses the command line of ``python -m experiments.reproduce``."""
  epilog = "experiments:\n" + "\n".join(f"  {e.name:20s} {e.title}" for e in EXPERIMENTS.values())
  epilog += "\n  or any single config name (python -m experiments.train --help lists them)"
  parser = argparse.ArgumentParser(
      prog="python -m experiments.reproduce", description="Run named reproductions and write their reports.",
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
  parser.add_argument("names", nargs="+", metavar="NAME", help="experiments to run (see below)")
  parser.add_argument("--shrink", type=float, default=1.0,
                      help="divide every iteration count by this factor (1: full length); see the module docstring")
  parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
  parser.add_argument("--workdir", default="workdirs/reproduce", help="parent of the runs' work directories")
  parser.add_argument("--data", help="dataset spec: cifar10 (tfds) or an image-folder dir/archive")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field of every run (after shrinking)")
  parser.add_argument("--shard", default="0/1", metavar="I/N", help="run only share I of N (parallel processes)")
  parser.add_argument("--report-dir", default=None, help="where reports go (default experiments/reports)")
  parser.add_argument("--no-report", action="store_true", help="only run; write no report")
  args = parser.parse_args(argv)
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
  args = parse_args(argv)
  experiments = [get_experiment(n) for n in args.names]
  for experiment in experiments:
    run_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                   overrides=args.overrides, shard=args.shard)


if __name__ == "__main__":
  main()
