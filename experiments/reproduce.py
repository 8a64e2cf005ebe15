"""Named reproductions of the paper's experiments, full length or shrunk, and their reports.

  python -m experiments.reproduce table1 --shrink 50 --seeds 0,1,2 --data path/to/cifar10-jpeg.tar.xz

runs the five Table 1 policies (fixed, triangular2, decay, exp, exp_range) for every seed, each in its own
work directory ``<workdir>/<config>/seed<k>/`` (metrics, orbax checkpoints), then writes
``experiments/reports/<name>.md``: our final and best test accuracies (mean ± std over the seeds) beside the
paper's number, the iteration at which each run first reached the fixed-LR run's final accuracy, the data,
the hardware, the wall time and the exact command. Running the same command again continues: finished runs
are read back, an interrupted run resumes from its last checkpoint. Each finished run's small results
(``summary.json``, ``metrics.jsonl``, ``config.json``; never checkpoints) are copied to
``experiments/reports/<name>/runs/<config>/seed<k>/`` to be committed, and a run found there counts as
finished, so a fresh clone continues a long reproduction where the committed runs leave off.

Shrinking by a factor F (`shrink_config`) divides every iteration count of the config by F and keeps
everything else:

* ``train.num_steps``, ``schedule.step_size``, ``schedule.drop_at``, ``schedule.stage_starts``,
  ``schedule.stage_step_sizes``, ``train.eval_every``, ``train.checkpoint_every`` (Durations in steps or
  epochs: divided by F and rounded to the nearest step, at least 1; percentages of the run are unchanged);
* ``train.log_every`` (how often training metrics reach the host) is capped at a fiftieth of a run in steps;
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
    Experiment("table1_full", "Table 1's headline pair at full length: triangular2 (25,000 iterations) against "
               "fixed (70,000)", ("table1_triangular2", "table1_fixed"), "table1_fixed"),
    Experiment("table2", "Table 2 / Figure 1, the staged triangular2 run against the fixed policy",
               ("table1_fixed", "table2_staged"), "table1_fixed"),
    _table3("nesterov", "Table 3, Nesterov momentum with and without CLR"),
    _table3("adam", "Table 3, Adam with and without CLR", ("table3_adam:clr70k",)),
    _table3("rmsprop", "Table 3, RMSprop with and without CLR"),
    _table3("adagrad", "Table 3, AdaGrad with and without CLR"),
    _table3("adadelta", "Table 3, AdaDelta with and without CLR"),
    Experiment("fig6", "Figure 6, batch-normalised sigmoid network: fixed LR vs CLR",
               ("fig6_bn_sigmoid:fixed", "fig6_bn_sigmoid:clr"), "fig6_bn_sigmoid:fixed"),
    _table4("resnet", "Table 4, ResNet-56: fixed 0.1/0.2/0.3 vs CLR 0.1-0.3"),
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
# What a finished run leaves that is worth committing (never its checkpoints).
RESULT_FILES = (SUMMARY, "metrics.jsonl", "config.json")
REPORTS = pathlib.Path(__file__).parent / "reports"


def results_dir(report_dir: str | os.PathLike | None, experiment: str, config_name: str, seed: int) -> pathlib.Path:
  """Where a finished run's small results are kept for committing: ``<reports>/<experiment>/runs/<config>/seed<k>``.

  A run found there (with a matching config) counts as finished, on any machine: a fresh clone picks up the
  committed runs of a long reproduction instead of training them again.
  """
  root = pathlib.Path(report_dir) if report_dir else REPORTS
  return root / experiment / "runs" / config_name.replace(":", "_") / f"seed{seed}"


def finished_dir(config: config_lib.Config, directory: pathlib.Path, archive: pathlib.Path | None) -> pathlib.Path | None:
  """The directory holding the finished run of `config`: its committed results, else its work directory.

  Raises:
    ValueError: the finished run there was made with a config that trains differently.
  """
  for d in (archive, directory):
    if d is not None and (d / SUMMARY).exists():
      check_same_config(config, d)
      return d
  return None


def check_same_config(config: config_lib.Config, directory: pathlib.Path) -> None:
  """Refuses a `directory` whose ``config.json`` trains differently from `config` (`train.check_resume_config`)."""
  from experiments import train  # pylint: disable=g-import-not-at-top
  saved = directory / "config.json"
  if saved.exists():
    try:
      train.check_resume_config(json.loads(saved.read_text()), config)
    except ValueError as e:
      raise ValueError(f"{directory} holds a run of a different config ({e}); use another --workdir or "
                       "delete it") from None


def run_one(config: config_lib.Config, directory: pathlib.Path, *, dataset: Any = None,
            archive: pathlib.Path | None = None) -> dict[str, Any]:
  """Runs (or resumes, or reads back) one run; returns its summary (also written to ``summary.json``).

  Args:
    config: the run.
    directory: its work directory (metrics, checkpoints); an unfinished run there is resumed.
    dataset: passed to `experiments.train.train_and_evaluate`.
    archive: where finished results are kept (`results_dir`): a finished run there is read back, and a run
      finished here is copied there (`RESULT_FILES`).

  Raises:
    ValueError: `directory` or `archive` holds a run of a different config.
  """
  from experiments import train  # pylint: disable=g-import-not-at-top
  done = finished_dir(config, directory, archive)
  if done is not None:
    if archive is not None and done != archive:
      archive_results(done, archive)
    return json.loads((done / SUMMARY).read_text())
  directory.mkdir(parents=True, exist_ok=True)
  check_same_config(config, directory)
  t0 = time.perf_counter()
  summary = train.train_and_evaluate(config, directory, dataset=dataset, resume=True)
  summary.pop("state", None)
  summary["process_wall_time"] = time.perf_counter() - t0
  _write_text(directory / SUMMARY, json.dumps(summary, indent=2))
  if archive is not None:
    archive_results(directory, archive)
  return summary


# The trainer writes every step's training metrics; the kept copy has every ARCHIVED_TRAIN_EVERY-th step's
# (and every evaluation), a hundredth of the size: the reports read the evaluations.
ARCHIVED_TRAIN_EVERY = 100


def archive_results(directory: pathlib.Path, archive: pathlib.Path) -> None:
  """Copies a finished run's `RESULT_FILES` to `archive`, the summary last (it marks the copy complete).

  ``metrics.jsonl`` keeps every evaluation and the training rows of every `ARCHIVED_TRAIN_EVERY`-th step.
  """
  archive.mkdir(parents=True, exist_ok=True)
  for name in sorted(RESULT_FILES, key=lambda n: n == SUMMARY):
    text = (directory / name).read_text()
    if name == "metrics.jsonl":
      text = "".join(line + "\n" for line in text.splitlines() if line.strip() and _kept_row(json.loads(line)))
    _write_text(archive / name, text)


def _kept_row(row: dict[str, Any]) -> bool:
  return row.get("split") != "train" or int(row["step"]) % ARCHIVED_TRAIN_EVERY == 0


def _write_text(path: pathlib.Path, text: str) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def _data_key(config: config_lib.Config) -> tuple:
  return (config.data.dataset, config.data.train_size, config.data.test_size, config.data.subset_seed,
          config.data.cache_dir)


def run_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int] = (0, 1, 2),
                   shrink: float = 1.0, overrides: dict[str, str] | None = None,
                   shard: tuple[int, int] = (0, 1), dataset: Any = None, only: Sequence[str] = (),
                   report_dir: str | os.PathLike | None = None, archive: bool = True) -> list[dict[str, Any]]:
  """Runs every (config, seed) of `experiment` that is not finished yet, one after the other.

  Args:
    experiment: what to run (`get_experiment`).
    workdir: the parent of the runs' directories (`run_dir`).
    seeds: the seeds (``train.seed``); the data subset stays the same for all of them.
    shrink: the shrink factor (`shrink_config`).
    overrides: config fields set on every run after shrinking (``{"data.dataset": "cifar10"}``).
    shard: ``(index, count)``: run only this share of the runs (`shard_runs`), for parallel processes.
    dataset: an `experiments.data.Dataset` every run uses instead of loading its ``config.data`` (a notebook
      may pass one it holds; the configs' subsets are then not applied).
    only: run only these configs of the experiment (all when empty).
    report_dir: where the reports and the finished runs' results (`results_dir`) are kept.
    archive: keep finished runs' results under `report_dir` and count those found there as finished.

  Returns:
    The summaries of this shard's runs.
  """
  from experiments import train  # pylint: disable=g-import-not-at-top
  unknown = set(only) - set(experiment.configs)
  if unknown:
    raise ValueError(f"--only names configs that {experiment.name} does not run: {sorted(unknown)}; it runs "
                     f"{', '.join(experiment.configs)}")
  runs = build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides)
  runs = shard_runs([r for r in runs if not only or r[0] in only], shard)
  datasets: dict[tuple, Any] = {}
  summaries = []
  for i, (name, seed, config) in enumerate(runs):
    directory = run_dir(workdir, name, seed)
    kept = results_dir(report_dir, experiment.name, name, seed) if archive else None
    print(f"[{i + 1}/{len(runs)}] {name} seed {seed} -> {directory}", file=sys.stderr, flush=True)
    if dataset is not None:
      datasets[_data_key(config)] = dataset
    elif finished_dir(config, directory, kept) is None and _data_key(config) not in datasets:
      datasets[_data_key(config)] = train.load_dataset(config)
    summaries.append(run_one(config, directory, dataset=datasets.get(_data_key(config)), archive=kept))
  return summaries


# ----------------------------------------------------------------------------------------------------------
# Results: metrics read back, the "first reached" iteration, aggregation over seeds.


def read_metrics(directory: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
  """The rows of a run's ``metrics.jsonl`` split by ``"split"`` (``{"train": [...], "test": [...]}``)."""
  out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
  path = pathlib.Path(directory) / "metrics.jsonl"
  with open(path) as f:
    for line in f:
      if line.strip():
        row = json.loads(line)
        out.setdefault(row["split"], []).append(row)
  return out


def first_reached(steps: Sequence[int], accuracies: Sequence[float], target: float) -> int | None:
  """The first step whose accuracy is at least `target` (None if none is).

  Accuracies are compared after rounding both sides to 1e-9, so a run reaches its own final accuracy at the
  latest at its last evaluation.

  Examples:
    >>> first_reached([100, 200, 300], [0.5, 0.62, 0.61], 0.6)
    200
  """
  for step, acc in zip(steps, accuracies):
    if round(acc, 9) >= round(target, 9):
      return int(step)
  return None


@dataclasses.dataclass(frozen=True)
class RunResult:
  """The outcome of one run (one config, one seed), read from its metrics.

  Attributes:
    config: the config name.
    seed: the seed.
    steps: evaluation steps (the test-accuracy curve's x).
    accuracies: test accuracy at those steps (fractions in [0, 1]).
    total_steps: the run's length.
    wall_time: seconds of the run's last (or only) segment, compilation and evaluation included.
    images_per_sec: training throughput, the first (compiling) step and evaluation excluded.
  """
  config: str
  seed: int
  steps: tuple[int, ...]
  accuracies: tuple[float, ...]
  total_steps: int
  wall_time: float | None = None
  images_per_sec: float | None = None

  @property
  def final(self) -> float:
    return self.accuracies[-1]

  @property
  def best(self) -> float:
    return max(self.accuracies)

  @property
  def best_step(self) -> int:
    return self.steps[self.accuracies.index(self.best)]


def load_run(directory: str | os.PathLike, config: str, seed: int) -> RunResult:
  """A finished run's `RunResult` (its ``metrics.jsonl``, and ``summary.json`` when there is one)."""
  directory = pathlib.Path(directory)
  test = read_metrics(directory)["test"]
  if not test:
    raise ValueError(f"{directory} has no test evaluation yet")
  summary = json.loads((directory / SUMMARY).read_text()) if (directory / SUMMARY).exists() else {}
  return RunResult(config=config, seed=seed, steps=tuple(int(r["step"]) for r in test),
                   accuracies=tuple(float(r["accuracy"]) for r in test),
                   total_steps=int(summary.get("steps", test[-1]["step"])),
                   wall_time=summary.get("wall_time"), images_per_sec=summary.get("train_images_per_sec"))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  a = np.asarray(values, np.float64)
  return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
  """One config's results over its seeds.

  Attributes:
    config: the config name.
    runs: its runs, by seed.
    reached: per run, the first step at which it reached the reference (fixed-LR) run of the same seed's
      final accuracy (None: never), or an empty tuple when the experiment has no reference.
    reference_at_end: per run, the reference run's (same seed) accuracy at its last evaluation not after
      this run's last step: the fixed policy at the same iteration (empty without a reference).
  """
  config: str
  runs: tuple[RunResult, ...]
  reached: tuple[int | None, ...]
  reference_at_end: tuple[float | None, ...] = ()

  @property
  def final(self) -> tuple[float, float]:
    """Mean and sample std over seeds of the final accuracy."""
    return _mean_std([r.final for r in self.runs])

  @property
  def best(self) -> tuple[float, float]:
    return _mean_std([r.best for r in self.runs])


def accuracy_at(run: RunResult, step: int) -> float | None:
  """`run`'s test accuracy at its last evaluation at or before `step` (None if it has none so early).

  Examples:
    >>> accuracy_at(RunResult("c", 0, (10, 20, 30), (0.1, 0.2, 0.3), 30), 25)
    0.2
  """
  before = [a for s, a in zip(run.steps, run.accuracies) if s <= step]
  return before[-1] if before else None


def summarize(experiment: Experiment, runs: Sequence[RunResult]) -> list[ConfigSummary]:
  """Groups runs by config (in the experiment's order) and computes the "first reached" iterations.

  The reference of a run is the reference config's run with the same seed; a run reaches it at the first
  evaluation whose accuracy is at least that run's final accuracy.
  """
  by_config: dict[str, list[RunResult]] = {}
  for r in runs:
    by_config.setdefault(r.config, []).append(r)
  ref = {r.seed: r for r in by_config.get(experiment.reference, [])} if experiment.reference else {}
  out = []
  for name in experiment.configs:
    mine = sorted(by_config.get(name, []), key=lambda r: r.seed)
    if not mine:
      continue
    reached = tuple(first_reached(r.steps, r.accuracies, ref[r.seed].final) if r.seed in ref else None
                    for r in mine) if ref else ()
    at_end = tuple(accuracy_at(ref[r.seed], r.steps[-1]) if r.seed in ref else None for r in mine) if ref else ()
    out.append(ConfigSummary(name, tuple(mine), reached, at_end))
  return out


# ----------------------------------------------------------------------------------------------------------
# The report.


def hardware_description() -> dict[str, str]:
  """CPU model, core count, JAX version and devices of this machine."""
  import platform  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = models[0] if models else cpu
  except OSError:
    pass
  return {"cpu": cpu, "cores": str(os.cpu_count()), "jax": jax.__version__,
          "devices": ", ".join(str(d) for d in jax.devices()), "python": platform.python_version(),
          "platform": platform.platform()}


def _pm(mean_std: tuple[float, float]) -> str:
  return f"{100 * mean_std[0]:.1f} ± {100 * mean_std[1]:.1f}"


def paper_dataset(spec: str | os.PathLike) -> str | None:
  """Which of the paper's datasets a data spec (``data.dataset``) is: "cifar10", "cifar100" or None.

  The tfds names are themselves; an image folder or archive is identified by the last component of its path
  that names CIFAR-10 or CIFAR-100 (``cifar100-jpeg.tar.xz``, ``data/CIFAR-100/``); None when none does.

  Examples:
    >>> paper_dataset("cifar100"), paper_dataset("data/cifar10-jpeg.tar.xz"), paper_dataset("/d/cifar_100/jpeg")
    ('cifar100', 'cifar10', 'cifar100')
    >>> paper_dataset("data/imagenette") is None
    True
  """
  import re  # pylint: disable=g-import-not-at-top
  for part in reversed(pathlib.PurePath(str(spec).strip()).parts):
    found = re.search(r"cifar10(0)?(?!\d)", re.sub(r"[-_ ]", "", part.lower()))
    if found:
      return "cifar100" if found.group(1) else "cifar10"
  return None


def _paper_column(dataset: str | None) -> str:
  """The paper's column a report shows for runs on `dataset` (None: not identified, CIFAR-10 shown)."""
  return "cifar100" if dataset == "cifar100" else "cifar10"


def _paper_cell(config: str, shrink: float, dataset: str | None = "cifar10") -> tuple[str, str]:
  """The paper's accuracy (in `dataset`'s column; None: the CIFAR-10 one) and iterations for `config`.

  "-" where the paper has no row for `config` or no number in that column; "see the paper" where the row
  gives no accuracy.
  """
  from experiments.configs import paper_results  # pylint: disable=g-import-not-at-top
  r = paper_results.get(config)
  if r is None:
    return "-", "-"
  column = _paper_column(dataset)
  value = r.accuracy_on(column)
  if value is None:
    acc = "see the paper" if column == "cifar10" else "-"
  else:
    acc = f"{value:.1f}" + ("" if r.verified else " (unverified)")
  if r.iterations is None:
    return acc, "-"
  ours = r.iterations / shrink
  return acc, f"{r.iterations:,}" + (f" (= {ours:g} here)" if shrink != 1 else "")


def results_table(summaries: Sequence[ConfigSummary], *, shrink: float, reference: str | None,
                  dataset: str | None = "cifar10") -> str:
  """The markdown table of a report: ours (mean ± std over seeds) beside the paper's number.

  Args:
    dataset: the runs' data as `paper_dataset` names it; the paper's column shown is this dataset's, the
      CIFAR-10 one where it is None (not identified), and the column's header says which.
  """
  from experiments.configs import paper_results  # pylint: disable=g-import-not-at-top
  column = paper_results.DATASETS[_paper_column(dataset)]
  head = ["config", "seeds", "iterations (ours)", "final test acc. % (ours)", "best test acc. % (ours)",
          f"paper acc. % ({column})", "paper iterations"]
  if reference:
    head[5:5] = [f"first reached {reference} final acc. (iteration, per seed)",
                 f"{reference} at the same iteration, acc. %"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for s in summaries:
    steps = sorted({r.total_steps for r in s.runs})
    cells = [f"`{s.config}`", str(len(s.runs)), "/".join(f"{n:,}" for n in steps), _pm(s.final), _pm(s.best)]
    if reference:
      cells.append(", ".join("never" if x is None else f"{x:,}" for x in s.reached) if s.reached else "-")
      at_end = [x for x in s.reference_at_end if x is not None]
      cells.append(_pm(_mean_std(at_end)) if at_end else "-")
    cells.extend(_paper_cell(s.config, shrink, dataset))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def per_run_csv(summaries: Sequence[ConfigSummary]) -> str:
  """One row per run: config, seed, steps, final, best, best step, first reached, wall time, images/s."""
  import csv  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["config", "seed", "total_steps", "final_accuracy", "best_accuracy", "best_step",
              "first_reached_reference", "wall_time_s", "train_images_per_sec"])
  for s in summaries:
    for i, r in enumerate(s.runs):
      reached = s.reached[i] if s.reached else None
      w.writerow([s.config, r.seed, r.total_steps, f"{r.final:.4f}", f"{r.best:.4f}", r.best_step,
                  "" if reached is None else reached, "" if r.wall_time is None else f"{r.wall_time:.1f}",
                  "" if r.images_per_sec is None else f"{r.images_per_sec:.1f}"])
  return buf.getvalue()


def curves_csv(summaries: Sequence[ConfigSummary]) -> str:
  """Every test evaluation of every run: config, seed, step, accuracy."""
  lines = ["config,seed,step,test_accuracy"]
  for s in summaries:
    for r in s.runs:
      lines += [f"{s.config},{r.seed},{step},{acc:.4f}" for step, acc in zip(r.steps, r.accuracies)]
  return "\n".join(lines) + "\n"


def plot_accuracy_curves(curves: dict[str, Sequence[RunResult]], *, title: str = "", shrink: float = 1.0,
                         lr_curves: dict[str, tuple[Sequence[int], Sequence[float]]] | None = None):
  """Test accuracy against iteration, one line per config (mean over seeds, band of ± one std).

  Args:
    curves: config (label) -> its runs.
    title: the figure's title.
    shrink: the shrink factor (the x label then says how to read paper iterations).
    lr_curves: optional label -> (steps, learning rates), drawn in a lower panel.

  Returns:
    The matplotlib Figure (paper Figure 1 style).
  """
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rows = 2 if lr_curves else 1
  fig, axes = plt.subplots(rows, 1, figsize=(7.5, 4.2 if rows == 1 else 6.4), sharex=True, squeeze=False,
                           layout="constrained", height_ratios=[3, 1][:rows])
  ax = axes[0, 0]
  for label, runs in curves.items():
    common = sorted(set.intersection(*(set(r.steps) for r in runs)))
    acc = np.array([[dict(zip(r.steps, r.accuracies))[s] for s in common] for r in runs]) * 100
    mean = acc.mean(0)
    line, = ax.plot(common, mean, label=f"{label}" + (f" (mean of {len(runs)})" if len(runs) > 1 else ""))
    if len(runs) > 1:
      std = acc.std(0, ddof=1)
      ax.fill_between(common, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
  ax.set_ylabel("test accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small", loc="lower right")
  if title:
    ax.set_title(title)
  if lr_curves:
    lax_ = axes[1, 0]
    for label, (steps, lrs) in lr_curves.items():
      lax_.plot(steps, lrs, label=label, linewidth=1)
    lax_.set_ylabel("learning rate")
    lax_.grid(alpha=0.3)
  xlabel = "iteration" + (f" (x {shrink:g} = the paper's iteration)" if shrink != 1 else "")
  axes[-1, 0].set_xlabel(xlabel)
  return fig


def _quoted(config: str, *, iterations: bool = True) -> str:
  """The paper's result for a config as prose, e.g. ``82.2% at 42,000``, from paper_results."""
  from experiments.configs import paper_results  # pylint: disable=g-import-not-at-top
  r = paper_results.get(config)
  text = f"{r.accuracy:.1f}%"
  return text + (f" at {r.iterations:,}" if iterations else "")


def _claims_table1(by: dict[str, ConfigSummary], shrink: float) -> list[str]:
  """The paper's Table 1 claims, each checked against our numbers (the paper's from paper_results)."""
  from experiments.configs import paper_results  # pylint: disable=g-import-not-at-top
  iters = {name: f"{paper_results.get(name).iterations:,}" for name in ("table1_fixed", "table1_triangular2")}
  out = []
  fixed, tri = by.get("table1_fixed"), by.get("table1_triangular2")
  if fixed and tri:
    reached = [x for x in tri.reached if x is not None]
    fixed_len = max(r.total_steps for r in fixed.runs)
    held = len(reached) == len(tri.runs) and max(reached) < fixed_len
    out.append(
        f"- **triangular2 reaches the fixed policy's final accuracy in fewer iterations** (paper: {iters['table1_triangular2']} vs "
        f"{iters['table1_fixed']}): {'held' if held else 'did not hold'} here. triangular2 reached the same-seed fixed run's "
        f"final accuracy in {len(reached)} of {len(tri.runs)} seeds"
        + (f", at iterations {', '.join(f'{x:,}' for x in reached)} (fixed: {fixed_len:,})" if reached else "")
        + f"; final accuracy {_pm(tri.final)}% after {max(r.total_steps for r in tri.runs):,} iterations vs "
        f"fixed {_pm(fixed.final)}% after {fixed_len:,}"
        + (f"; at the same iteration ({max(r.total_steps for r in tri.runs):,}) the fixed runs stood at "
           f"{_pm(_mean_std(tri.reference_at_end))}%." if tri.reference_at_end and None not in tri.reference_at_end
           else "."))
  exp, expr = by.get("table1_exp"), by.get("table1_exp_range")
  if exp and expr:
    d = expr.final[0] - exp.final[0]
    out.append(
        f"- **exp_range beats exp** (paper: {_quoted('table1_exp_range')} vs {_quoted('table1_exp')}): "
        f"{'held' if d > 0 else 'did not hold'} here: exp_range {_pm(expr.final)}% vs exp {_pm(exp.final)}% "
        f"(difference {100 * d:+.1f} points; seed std about {100 * max(exp.final[1], expr.final[1]):.1f}).")
  decay = by.get("table1_decay")
  if decay and tri:
    d = tri.final[0] - decay.final[0]
    out.append(
        f"- **decay ends below triangular2** (paper: {_quoted('table1_decay', iterations=False)} vs "
        f"{_quoted('table1_triangular2', iterations=False)}, both {iters['table1_triangular2']} iterations): "
        f"{'held' if d > 0 else 'did not hold'} here: decay {_pm(decay.final)}% vs triangular2 "
        f"{_pm(tri.final)}% (difference {100 * d:+.1f} points).")
  return out


CLAIMS = {"table1": _claims_table1, "table1_full": _claims_table1}


def write_report(experiment: Experiment, summaries: Sequence[ConfigSummary], *, path: str | os.PathLike,
                 shrink: float, seeds: Sequence[int], command: str, data: str, hardware: dict[str, str],
                 elapsed: str, overrides: dict[str, str] | None = None, notes: str = "",
                 dataset: str | None = None,
                 gpu_note: str = "No GPU was available: the full-length GPU runs were not done here.",
                 lr_curves: dict[str, tuple[Sequence[int], Sequence[float]]] | None = None) -> pathlib.Path:
  """Writes ``<path>`` (markdown) and, beside it in ``<stem>/``, results.csv, curves.csv and accuracy.png.

  Args:
    experiment: what was run.
    summaries: `summarize` of its runs.
    path: the report's path (``experiments/reports/<name>.md``).
    shrink: the shrink factor of the runs.
    seeds: the seeds.
    command: the exact command that produced the runs.
    data: what data the runs used, in words.
    dataset: which of the paper's datasets the runs used (`paper_dataset`: "cifar10", "cifar100"), which
      picks the paper's column; None: not identified, the CIFAR-10 column is shown and the report says so.
    hardware: `hardware_description`.
    elapsed: the wall time, in words (what it includes).
    overrides: config fields set on every run.
    notes: hand-written discussion appended to the report.
    gpu_note: a line on accelerator runs.
    lr_curves: config -> (steps, learning rates), drawn under the accuracy curves.

  Returns:
    The report's path. Files are written atomically (a temporary name, then a rename).
  """
  path = pathlib.Path(path)
  data_dir = path.with_suffix("")
  data_dir.mkdir(parents=True, exist_ok=True)
  by = {s.config: s for s in summaries}

  _write_text(data_dir / "results.csv", per_run_csv(summaries))
  _write_text(data_dir / "curves.csv", curves_csv(summaries))
  fig = plot_accuracy_curves({s.config: s.runs for s in summaries}, title=experiment.title, shrink=shrink,
                             lr_curves=lr_curves)
  tmp_png = data_dir / "accuracy.tmp.png"
  fig.savefig(tmp_png, dpi=120)
  os.replace(tmp_png, data_dir / "accuracy.png")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(fig)

  rel = data_dir.name
  lines = [f"# {experiment.title}", ""]
  length = "full length" if shrink == 1 else f"shrunk {shrink:g}x (every iteration count divided by {shrink:g})"
  lines += [f"Experiment `{experiment.name}`, {length}, seeds {', '.join(map(str, seeds))}; test accuracies "
            "are mean ± sample std over the seeds.", ""]
  if dataset is None:
    lines += ["The data of these runs is not identified as CIFAR-10 or CIFAR-100 (see Data below): the "
              "paper's numbers shown are its CIFAR-10 column.", ""]
  else:
    from experiments.configs import paper_results  # pylint: disable=g-import-not-at-top
    lines += [f"The paper's numbers shown are its {paper_results.DATASETS[dataset]} column, the data of "
              "these runs.", ""]
  lines += [results_table(summaries, shrink=shrink, reference=experiment.reference, dataset=dataset), ""]
  if experiment.reference:
    lines += [f"\"First reached\": the first evaluation at which a run's test accuracy was at least the final "
              f"accuracy of the `{experiment.reference}` run with the same seed (resolution: the evaluation "
              "interval).", ""]
  lines += [f"![test accuracy against iteration]({rel}/accuracy.png)", "",
            f"Per-run numbers: [{rel}/results.csv]({rel}/results.csv); every evaluation: "
            f"[{rel}/curves.csv]({rel}/curves.csv).", ""]
  claims = CLAIMS.get(experiment.name)
  if claims:
    lines += ["## The paper's claims, checked", "", *claims(by, shrink), ""]
  if notes:
    lines += ["## Discussion", "", notes.strip(), ""]
  lines += ["## How this was run", "", "```", command, "```", ""]
  if overrides:
    lines += ["Overrides applied to every run (after shrinking): "
              + ", ".join(f"`{k}={v}`" for k, v in overrides.items()) + ".", ""]
  if shrink != 1:
    lines += [f"Shrinking by {shrink:g} (`experiments.reproduce.shrink_config`) divides the iteration counts "
              "(run length, step size, step-down points, evaluation and checkpoint intervals) by the factor, "
              f"rounded to whole iterations, and replaces the `exp`/`exp_range` gamma by gamma**{shrink:g}: "
              "each shrunk run follows the full run's learning-rate curve compressed along the iteration "
              f"axis. Batch size, bounds, network, optimizer and data are unchanged, so a run sees {shrink:g} "
              "times fewer examples and its step size is that many times fewer epochs: accuracies are far "
              "below the paper's, and only the comparison between policies is meaningful.", ""]
  lines += [f"- **Data**: {data}", f"- **Hardware**: {hardware.get('cpu')}, {hardware.get('cores')} cores; "
            f"JAX {hardware.get('jax')}, devices: {hardware.get('devices')}; Python {hardware.get('python')}, "
            f"{hardware.get('platform')}.", f"- **Wall time**: {elapsed}", f"- {gpu_note}", ""]
  _write_text(path, "\n".join(lines))
  return path


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
  parser.add_argument("--partial", action="store_true",
                      help="with --report-only: report the finished runs, naming the unfinished ones")
  parser.add_argument("--notes", help="a markdown file whose text goes into the report's Discussion")
  parser.add_argument("--command", help="the command to print in the report (default: this one)")
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


def describe_data(config: config_lib.Config) -> str:
  """The data of a run, in words, for a report."""
  spec = str(config.data.dataset)
  if spec in ("cifar10", "cifar100"):
    text = f"{spec.upper()} from tensorflow-datasets"
  elif "cifar10-jpeg" in pathlib.Path(spec).name:
    text = (f"CIFAR-10 as JPEG re-encodings (`{pathlib.Path(spec).name}`: quality about 75, 4:2:0 chroma, "
            "about 30 dB PSNR against the original pixels; labels and class balance exact), so expect "
            "accuracies a little below the original CIFAR-10's")
  else:
    text = f"the image-folder dataset `{spec}`"
  train = "all 50,000 training images" if config.data.train_size is None else \
      f"a stratified subset of {config.data.train_size:,} training images"
  test = "all test images" if config.data.test_size is None else \
      f"a stratified subset of {config.data.test_size:,} test images (the same for every run)"
  return (f"{text}; {train}; evaluated on {test}; normalisation {config.data.normalization}, "
          f"augmentation {'on' if config.data.augment else 'off'}.")


def _elapsed(results: Sequence[RunResult]) -> str:
  """The runs' wall and throughput, from their summaries (file times are not kept by a clone of committed runs)."""
  walls = [r.wall_time for r in results if r.wall_time is not None]
  rates = [r.images_per_sec for r in results if r.images_per_sec]
  text = (f"{sum(walls) / 60:.1f} min summed over the {len(walls)} runs (each run's wall time includes "
          "its compilation, evaluations and checkpoints; a resumed run counts only its last segment)")
  if rates:
    text += (f"; training throughput {min(rates):.0f}-{max(rates):.0f} images/s per run (compilation and "
             "evaluation excluded)")
  return text + "."


def report_experiment(experiment: Experiment, *, workdir: str | os.PathLike, seeds: Sequence[int],
                      shrink: float, overrides: dict[str, str] | None, command: str,
                      report_dir: str | os.PathLike | None = None, notes: str = "",
                      hardware: dict[str, str] | None = None, partial: bool = False) -> pathlib.Path:
  """Reads every run of `experiment` back and writes its report (`write_report`).

  Args:
    partial: report the finished runs only, naming the unfinished ones in the report (default: refuse).

  Raises:
    FileNotFoundError: a run has not finished (no ``summary.json``) and `partial` is false: run the command
      again to finish it.
  """
  all_runs = build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides)
  results, runs, missing = [], [], []
  for name, seed, config in all_runs:
    directory = finished_dir(config, run_dir(workdir, name, seed), results_dir(report_dir, experiment.name, name, seed))
    if directory is None:
      if not partial:
        raise FileNotFoundError(f"the run {name} seed {seed} in {run_dir(workdir, name, seed)} has not finished; run the same "
                                "command again (without --report-only) to finish it")
      missing.append(f"`{name}` seed {seed}")
      continue
    runs.append((name, seed, config))
    results.append(load_run(directory, name, seed))
  if missing:
    notes = (f"**Incomplete**: {len(missing)} of {len(all_runs)} runs had not finished when this report was "
             f"written: {', '.join(missing)}.\n\n" + notes)
  summaries = summarize(experiment, results)
  lr_curves = {}
  try:
    from experiments import train  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    for name, seed, config in runs:
      if name not in lr_curves:
        total = results[[n for n, _, _ in runs].index(name)].total_steps
        spe = (config.data.train_size or 50000) // config.train.batch_size
        steps = np.arange(total)
        schedule = train.build_schedule(config.schedule, steps_per_epoch=spe, total_steps=total)
        lr_curves[name] = (steps, np.asarray(schedule(steps)))
  except (ValueError, TypeError) as e:  # a schedule that cannot be rebuilt: report without its curve
    print(f"no learning-rate panel: {e}", file=sys.stderr)
    lr_curves = {}
  report_dir = pathlib.Path(report_dir) if report_dir else REPORTS
  datasets = {paper_dataset(config.data.dataset) for _, _, config in runs}
  return write_report(experiment, summaries, path=report_dir / f"{experiment.name}.md", shrink=shrink,
                      seeds=seeds, command=command, data=describe_data(runs[0][2]),
                      hardware=hardware or hardware_description(), elapsed=_elapsed(results),
                      overrides=overrides, notes=notes, lr_curves=lr_curves or None,
                      dataset=datasets.pop() if len(datasets) == 1 else None)


def main(argv: Sequence[str] | None = None) -> None:
  """Command-line entry point: run the named experiments, then write their reports."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  experiments = [get_experiment(n) for n in args.names]
  command = "python -m experiments.reproduce " + shlex.join(a for a in argv)
  notes = pathlib.Path(args.notes).read_text() if args.notes else ""
  for experiment in experiments:
    if not args.report_only:
      run_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                     overrides=args.overrides, shard=args.shard, only=args.only, report_dir=args.report_dir)
    if args.no_report or args.shard[1] > 1:
      continue
    path = report_experiment(experiment, workdir=args.workdir, seeds=args.seeds, shrink=args.shrink,
                             overrides=args.overrides, command=args.command or command,
                             report_dir=args.report_dir, notes=notes, partial=args.partial or bool(args.only))
    print(f"report: {path}", file=sys.stderr)


if __name__ == "__main__":
  main()
