"""Reports of finished runs: the markdown table beside the paper's numbers, the claims checked
(`experiments.claims`), CSV files and the accuracy and learning-rate curves (`write_report`), from
`experiments.results`' summaries; what a run costs (`cost_table`); the data and hardware in words.

The paper's numbers come from `experiments.configs.paper_results` alone.
"""

from __future__ import annotations

import csv
import io
import os
import pathlib
import platform
import re
import textwrap
from typing import Any, Sequence

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configs as config_lib
from experiments import feed
from experiments import models
from experiments import rundir
from experiments import setup
from experiments import train
from experiments.claims import CLAIMS
from experiments.claims import percent
from experiments.configs import paper_results
from experiments.configs.tables import Experiment
from experiments.results import ConfigSummary
from experiments.results import RunResult
from experiments.results import mean_std

# The sustained rate at which a run's compute becomes time where no finished run measured its throughput: a
# fraction of a current accelerator's peak, an assumption (said beside every figure it makes), not a measurement.
ON_PAPER_FLOP_PER_S = 100e12


def hardware_description() -> dict[str, str]:
  """CPU model, core count, JAX version and devices of this machine."""
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
  for part in reversed(pathlib.PurePath(str(spec).strip()).parts):
    found = re.search(r"cifar10(0)?(?!\d)", re.sub(r"[-_ ]", "", part.lower()))
    if found:
      return "cifar100" if found.group(1) else "cifar10"
  return None


def run_dataset(config: config_lib.Config) -> str | None:
  """Which of the paper's datasets `config` trains on: "imagenet2012" for the ImageNet stream
  (`experiments.feed.is_streamed`), else `paper_dataset` of its ``data.dataset``."""
  return "imagenet2012" if feed.is_streamed(config) else paper_dataset(config.data.dataset)


def _paper_column(dataset: str | None) -> str:
  """The paper's column a report shows for runs on `dataset` (None: not identified, CIFAR-10 shown)."""
  return dataset if dataset in paper_results.DATASETS else "cifar10"


def _paper_cell(config: str, shrink: float, dataset: str | None = "cifar10") -> tuple[str, str]:
  """The paper's accuracy (in `dataset`'s column; None: the CIFAR-10 one) and iterations for `config`.

  "-" where the paper has no row for `config` or no number in that column; "see the paper" where the row
  gives no accuracy.
  """
  r = paper_results.get(config)
  if r is None:
    return "-", "-"
  column = _paper_column(dataset)
  value = r.accuracy_on(column)
  if value is None:
    acc = "see the paper" if column == "cifar10" else "-"
  else:
    # The paper's best (not final) accuracy, and a number from another document, say so.
    acc = (f"{value:.1f}" + (" (best)" if r.best else "") + (" (training)" if r.training else "")
           + ("" if r.verified else f" ({r.source})"))
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
  column = paper_results.DATASETS[_paper_column(dataset)]
  head = ["config", "seeds", "iterations (ours)", "final test acc. % (ours)", "best test acc. % (ours)",
          f"paper acc. % ({column})", "paper iterations"]
  # Runs that evaluated on their training set (Figure 6's paper numbers are training accuracies) show it too.
  training = any(s.final_train is not None for s in summaries)
  if training:
    head.insert(3, "final training acc. % (ours)")
  if reference:
    head[-2:-2] = [f"first reached {reference} final acc. (iteration, per seed)",
                   f"{reference} at the same iteration, acc. %"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  reference_seeds = {r.seed for s in summaries if s.config == reference for r in s.runs}
  for s in summaries:
    steps = sorted({r.total_steps for r in s.runs})
    cells = [f"`{s.config}`", str(len(s.runs)), "/".join(f"{n:,}" for n in steps), percent(s.final), percent(s.best)]
    if training:
      cells.insert(3, "-" if s.final_train is None else percent(s.final_train))
    if reference:
      # "-": no reference run of that seed (yet) to compare with.
      cells.append(", ".join("-" if r.seed not in reference_seeds else "never" if x is None else f"{x:,}"
                             for x, r in zip(s.reached, s.runs)) if s.reached else "-")
      at_end = [x for x in s.reference_at_end if x is not None]
      cells.append(percent(mean_std(at_end)) if at_end else "-")
    cells.extend(_paper_cell(s.config, shrink, dataset))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


@functools.cache
def _forward_flops(model_name: str, options: tuple[tuple[str, int], ...], side: int, num_classes: int) -> float:
  model = models.create_model(model_name, num_classes=num_classes, **dict(options))
  x = jax.ShapeDtypeStruct((1, side, side, 3), jnp.float32)
  keys = {name: jax.random.key(0) for name in ("params", "dropout", "stochastic_depth")}
  variables = jax.eval_shape(lambda x: model.init(keys, x, train=False), x)
  return float(jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x).cost_analysis()["flops"])


def training_flops_per_image(config: config_lib.Config) -> float:
  """The training compute of one image: 3x the forward FLOPs XLA counts for the config's network at its input
  side (``data.crop_size``, else CIFAR's 32) and its dataset's classes; the backward pass costs about twice
  the forward."""
  classes = paper_results.NUM_CLASSES[run_dataset(config) or "cifar10"]
  options = tuple(sorted(setup.model_options(config.model).items()))
  return 3 * _forward_flops(config.model.name, options, config.data.crop_size or 32, classes)


def run_title(experiment: Experiment, configs: Sequence[tuple[str, config_lib.Config]]) -> str:
  """The experiment's title for runs of `configs` (``(config name, config as run)``): where their network is not
  the named config's own (``model.name`` overridden), the title names theirs in its place and says so."""
  title, ours = experiment.title, []
  for name, config in configs:
    own = config_lib.get_config(name).model.name
    if config.model.name != own:
      title = re.sub(rf"\b{re.escape(own)}\b", config.model.name, title)
      ours += [config.model.name] if config.model.name not in ours else []
  return title + (f" (network: {', '.join(ours)}, model.name overridden)" if ours else "")


def _hours(seconds: float) -> str:
  return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.1f} min"


def cost_table(configs: Sequence[tuple[str, config_lib.Config]], runs: Sequence[RunResult] = ()) -> str:
  """What each config's run costs, as a markdown table and a note on how it was worked out.

  Iterations and images follow from the config (its Durations resolved for its dataset's training images,
  `paper_results.TRAIN_IMAGES`; a dataset not identified counts as CIFAR-10), the compute from
  `training_flops_per_image`. The time is on one accelerator: measured where finished `runs` of the config
  recorded their throughput and devices (images/s per device, averaged over the runs), on paper at
  `ON_PAPER_FLOP_PER_S` otherwise.
  """
  head = ["config", "iterations", "batch", "images (epochs)", "training compute", "measured images/s per accelerator",
          "time on one accelerator"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for name, config in configs:
    train_images = paper_results.TRAIN_IMAGES[run_dataset(config) or "cifar10"]
    plan = train.plan_run(config, num_train=train_images, num_global_devices=1)
    images = plan.total_steps * plan.global_batch
    flops = images * training_flops_per_image(config)
    mine = [r for r in runs if r.config == name and r.images_per_sec and r.devices]
    if mine:
      rate = float(np.mean([r.images_per_sec / r.devices for r in mine]))
      measured = f"{rate:,.0f} ({', '.join(sorted({str(r.device_kind) for r in mine}))})"
      hours = f"{_hours(images / rate)} (measured)"
    else:
      measured, hours = "not measured", f"{_hours(flops / ON_PAPER_FLOP_PER_S)} on paper"
    lines.append(f"| `{name}` | {plan.total_steps:,} | {plan.global_batch} | {images / 1e6:,.1f} M "
                 f"({images / train_images:,.1f}) | {f'{flops:.2g}'.replace('e+', 'e')} FLOP | {measured} | {hours} |")
  lines += ["", "Compute: 3x the forward FLOPs XLA counts for one image of the network (the backward pass about "
            "twice the forward) times the images. \"On paper\": that compute at a sustained "
            f"{ON_PAPER_FLOP_PER_S / 1e12:.0f} TFLOP/s, an assumption (a fraction of a current accelerator's peak), "
            "not a measurement; \"measured\": the training throughput finished runs logged (compilation and "
            "evaluation excluded) divided by their devices. A streamed (ImageNet) run also needs the host to "
            "decode as fast as the accelerator trains (experiments/IMAGENET.md)."]
  return "\n".join(lines)


def per_run_csv(summaries: Sequence[ConfigSummary]) -> str:
  """One row per run: config, seed, steps, final, best, best step, first reached, wall time, images/s."""
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
  """Test accuracy against iteration, one line per config (mean over seeds, band of ± one std), and the
  training accuracy dashed where the runs evaluated on their training set (Figure 6).

  Args:
    curves: config (label) -> its runs.
    title: the figure's title (wrapped at 70 characters).
    shrink: the shrink factor (the x label then says how to read paper iterations).
    lr_curves: optional label -> (steps, learning rates), drawn in a lower panel.

  Returns:
    The matplotlib Figure (paper Figure 1 style).
  """
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = 2 if lr_curves else 1
  fig, axes = plt.subplots(rows, 1, figsize=(7.5, 4.2 if rows == 1 else 6.4), sharex=True, squeeze=False,
                           layout="constrained", height_ratios=[3, 1][:rows])
  ax = axes[0, 0]
  training = False
  for label, runs in curves.items():
    common = sorted(set.intersection(*(set(r.steps) for r in runs)))
    of_runs = f" (mean of {len(runs)})" if len(runs) > 1 else ""
    kinds = [("accuracies", "", "-")]
    if all(r.train_accuracies for r in runs):
      kinds.append(("train_accuracies", ", training", "--"))
      training = True
    color = None
    for field, what, style in kinds:
      acc = np.array([[dict(zip(r.steps, getattr(r, field)))[s] for s in common] for r in runs]) * 100
      mean = acc.mean(0)
      line, = ax.plot(common, mean, style, color=color, label=f"{label}{what}{of_runs}")
      color = line.get_color()
      if len(runs) > 1:
        std = acc.std(0, ddof=1)
        ax.fill_between(common, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
  ax.set_ylabel("accuracy (%): test, training dashed" if training else "test accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small", loc="lower right")
  if title:
    ax.set_title("\n".join(textwrap.wrap(title, 70)))  # a long title would run off the figure
  if lr_curves:
    lax_ = axes[1, 0]
    for label, (steps, lrs) in lr_curves.items():
      lax_.plot(steps, lrs, label=label, linewidth=1)
    lax_.set_ylabel("learning rate")
    lax_.grid(alpha=0.3)
  xlabel = "iteration" + (f" (x {shrink:g} = the paper's iteration)" if shrink != 1 else "")
  axes[-1, 0].set_xlabel(xlabel)
  return fig


def save_figure(fig: Any, path: str | os.PathLike) -> None:
  """Saves a matplotlib figure as a PNG atomically (`rundir.atomic_path`) and closes it."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top  (optional: only to draw)
  with rundir.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=120)
  plt.close(fig)


def write_report(experiment: Experiment, summaries: Sequence[ConfigSummary], *, path: str | os.PathLike,
                 shrink: float, seeds: Sequence[int], command: str, data: str, hardware: dict[str, str],
                 elapsed: str, overrides: dict[str, str] | None = None, notes: str = "",
                 dataset: str | None = None,
                 gpu_note: str = "No GPU was available: the full-length GPU runs were not done here.",
                 lr_curves: dict[str, tuple[Sequence[int], Sequence[float]]] | None = None,
                 cost: str = "") -> pathlib.Path:
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
    cost: what the runs cost (`cost_table`), a section of its own.

  Returns:
    The report's path. Files are written atomically (a temporary name, then a rename).
  """
  path = pathlib.Path(path)
  data_dir = path.with_suffix("")
  rundir.make_dir(data_dir)
  rundir.write_text(data_dir / "results.csv", per_run_csv(summaries))
  rundir.write_text(data_dir / "curves.csv", curves_csv(summaries))
  save_figure(plot_accuracy_curves({s.config: s.runs for s in summaries}, title=experiment.title, shrink=shrink,
                                   lr_curves=lr_curves), data_dir / "accuracy.png")
  lines = _results_lines(experiment, summaries, shrink=shrink, seeds=seeds, dataset=dataset, rel=data_dir.name)
  if cost:
    lines += ["## What these runs cost", "", cost, ""]
  if notes:
    lines += ["## Discussion", "", notes.strip(), ""]
  lines += _how_lines(command=command, overrides=overrides, shrink=shrink)
  lines += [f"- **Data**: {data}",
            "- **Hardware this report was written on** (runs kept from earlier sessions may have run on another "
            f"machine of the kind): {hardware.get('cpu')}, {hardware.get('cores')} cores; "
            f"JAX {hardware.get('jax')}, devices: {hardware.get('devices')}; Python {hardware.get('python')}, "
            f"{hardware.get('platform')}.", f"- **Wall time**: {elapsed}", f"- {gpu_note}", ""]
  rundir.write_text(path, "\n".join(lines))
  return path


def _results_lines(experiment: Experiment, summaries: Sequence[ConfigSummary], *, shrink: float,
                   seeds: Sequence[int], dataset: str | None, rel: str) -> list[str]:
  """The report's title, table, figure and claims."""
  lines = [f"# {experiment.title}", ""]
  length = "full length" if shrink == 1 else f"shrunk {shrink:g}x (every iteration count divided by {shrink:g})"
  lines += [f"Experiment `{experiment.name}`, {length}, "
            + (f"seeds {', '.join(map(str, seeds))}; test accuracies are mean ± sample std over the seeds."
               if len(seeds) > 1 else f"seed {seeds[0]}; test accuracies are those of one run per config."), ""]
  if dataset is None:
    lines += ["The data of these runs is not identified as CIFAR-10 or CIFAR-100 (see Data below): the "
              "paper's numbers shown are its CIFAR-10 column.", ""]
  else:
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
  check = CLAIMS.get(experiment.name)
  if check:
    lines += ["## The paper's claims, checked", "", *check({s.config: s for s in summaries}, shrink), ""]
  return lines


def _how_lines(*, command: str, overrides: dict[str, str] | None, shrink: float) -> list[str]:
  """The report's "How this was run": the command, the overrides, what shrinking did."""
  lines = ["## How this was run", "", "```", command, "```", ""]
  if overrides:
    lines += ["Overrides applied to every run (after shrinking): "
              + ", ".join(f"`{k}={v}`" for k, v in overrides.items()) + ".", ""]
  if shrink != 1:
    lines += [f"Shrinking by {shrink:g} (`experiments.configs.shrink.shrink_config`) divides the iteration counts "
              "(run length, step size, step-down points, evaluation and checkpoint intervals) by the factor, "
              f"rounded to whole iterations, and replaces the `exp`/`exp_range` gamma by gamma**{shrink:g}: "
              "each shrunk run follows the full run's learning-rate curve compressed along the iteration "
              f"axis. Batch size, bounds, network, optimizer and data are unchanged, so a run sees {shrink:g} "
              "times fewer examples and its step size is that many times fewer epochs: accuracies are far "
              "below the paper's, and only the comparison between policies is meaningful.", ""]
  return lines


def describe_data(config: config_lib.Config, train_images: int | None = None) -> str:
  """The data of a run, in words, for a report.

  Args:
    config: the run's config.
    train_images: the training images the runs recorded (None: not recorded; the count of tensorflow-datasets'
      CIFAR and of an image folder identified as CIFAR is then known, another folder's is said to be unknown).
  """
  spec = str(config.data.dataset)
  if feed.is_streamed(config):
    source = "tensorflow-datasets' imagenet2012" if spec == "imagenet2012" else f"the ImageNet-layout folder `{spec}`"
    return (f"{source}, streamed from the host: every training image, resized to 256x256, a random "
            f"{config.data.crop_size}x{config.data.crop_size} crop, mirrored at random (Caffe's data layer); "
            f"evaluated on every validation image (centre crop); normalisation {config.data.normalization}.")
  if spec in ("cifar10", "cifar100"):
    text = f"{spec.upper()} from tensorflow-datasets"
  elif "cifar10-jpeg" in pathlib.Path(spec).name:
    text = (f"CIFAR-10 as JPEG re-encodings (`{pathlib.Path(spec).name}`: quality about 75, 4:2:0 chroma, "
            "about 30 dB PSNR against the original pixels; labels and class balance exact), so expect "
            "accuracies a little below the original CIFAR-10's")
  else:
    text = f"the image-folder dataset `{spec}`"
  if config.data.train_size is not None:
    train = f"a stratified subset of {config.data.train_size:,} training images"
  elif train_images is not None or run_dataset(config) is not None:
    train = f"all {train_images or paper_results.TRAIN_IMAGES[run_dataset(config)]:,} training images"
  else:
    train = "every training image of the folder (how many was not recorded with these runs)"
  test = "all test images" if config.data.test_size is None else \
      f"a stratified subset of {config.data.test_size:,} test images (the same for every run)"
  return (f"{text}; {train}; evaluated on {test}; normalisation {config.data.normalization}, "
          f"augmentation {'on' if config.data.augment else 'off'}.")


def describe_elapsed(results: Sequence[RunResult]) -> str:
  """The runs' wall and throughput, from their summaries (file times are not kept by a clone of committed runs)."""
  walls = [r.wall_time for r in results if r.wall_time is not None]
  rates = [r.images_per_sec for r in results if r.images_per_sec]
  runs = "the run" if len(walls) == 1 else f"the {len(walls)} runs"
  text = (f"{sum(walls) / 60:.1f} min summed over {runs} (each run's wall time includes "
          "its compilation, evaluations and checkpoints; a resumed run counts only its last segment)")
  if rates:
    low, high = f"{min(rates):,.0f}", f"{max(rates):,.0f}"
    text += (f"; training throughput {low if low == high else f'{low}-{high}'} images/s per run (compilation "
             "and evaluation excluded)")
  return text + "."


