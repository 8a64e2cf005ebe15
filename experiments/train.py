"""Data-parallel training and evaluation of the paper's networks with a clr_optax schedule.

`train_and_evaluate(config, workdir)` is the whole run: the batches of each step from its data
(`experiments.feed`: the whole CIFAR training set on the devices, shuffled per epoch on device and gathered
inside the compiled call, ``train.steps_per_call`` steps per call; or ImageNet streamed from the host, one
step per call), the schedule evaluated inside the step (`experiments.parallel`), calls cut so that none
crosses an evaluation or a checkpoint (`plan_calls`), evaluation every N steps, metrics to JSONL/CSV (a row
per step), a progress bar, orbax checkpoints, resume and a NaN guard (`experiments.rundir` owns the files).
Its loop (`Loop`) is the one run loop: for one run here, for the stacked runs of `experiments.multirun`.
The pieces it is made of live in `experiments.step` (the pure step), `experiments.setup` (config ->
schedule, optimizer, state), `experiments.feed` (config -> data and its feeder) and `experiments.parallel`
(devices and pmapped programs).

The command line (``python -m experiments.train --help``) is `main` at the bottom.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import sys
import time
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from experiments import cli
from experiments import configs as config_lib
from experiments import feed
from experiments import hostmem
from experiments import parallel
from experiments import rundir
from experiments import setup


@dataclasses.dataclass(frozen=True)
class RunPlan:
  """Step counts of a run, resolved from the config's Durations."""
  global_batch: int
  local_batch: int
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  checkpoint_every: int


def check_batch_sizes(config: config_lib.Config, num_global_devices: int) -> None:
  """Raises ValueError unless the training and evaluation batches of `config` split evenly across that many
  devices (the trainer checks before it opens the data)."""
  gb = config.train.batch_size
  if gb % num_global_devices:
    raise ValueError(f"train.batch_size must be divisible by the number of devices ({num_global_devices}), got "
                     f"{gb=}")
  if config.train.eval_batch_size % num_global_devices:
    raise ValueError(f"train.eval_batch_size must be divisible by the {num_global_devices} devices, got "
                     f"{config.train.eval_batch_size=}")


def plan_run(config: config_lib.Config, *, num_train: int, num_global_devices: int) -> RunPlan:
  """Resolves the Durations of `config` for a training set of `num_train` images on that many devices, and
  checks that its training and evaluation batches split evenly across them (`check_batch_sizes`)."""
  check_batch_sizes(config, num_global_devices)
  gb = config.train.batch_size
  if num_train < gb:
    raise ValueError(f"the training set ({num_train} images) is smaller than train.batch_size={gb}")
  spe = num_train // gb
  total = config_lib.resolve_duration(config.train.num_steps, steps_per_epoch=spe, name="train.num_steps")
  if total <= 0:
    raise ValueError(f"train.num_steps must be at least one step, got {config.train.num_steps=} ({spe} steps per "
                     "epoch)")

  def every(spec, name):  # a positive interval shorter than a step is every step
    return max(config_lib.resolve_duration(spec, steps_per_epoch=spe, total_steps=total, name=name), 1)

  return RunPlan(global_batch=gb, local_batch=gb // num_global_devices, steps_per_epoch=spe, total_steps=total,
                 eval_every=every(config.train.eval_every, "train.eval_every"),
                 checkpoint_every=every(config.train.checkpoint_every, "train.checkpoint_every"))


def plan_calls(start: int, total: int, steps_per_call: int, *, every: Sequence[int] = (),
               ends: Sequence[int] = ()) -> Iterator[tuple[int, int]]:
  """The compiled calls from step `start` to `total`: ``(first step, number of steps)`` in order.

  No call crosses a stop: a multiple of an interval of `every` (evaluations, checkpoints), a step of `ends`
  or `total`. Calls take `steps_per_call` steps; the steps left before a stop, when fewer, are taken in calls
  of the powers of two that sum to them, so that a run compiles at most ``1 + ceil(log2(steps_per_call))``
  programs (one where `steps_per_call` divides the intervals).

  Examples:
    >>> list(plan_calls(0, 13, 4, every=(7,)))
    [(0, 4), (4, 2), (6, 1), (7, 4), (11, 2)]
  """
  if steps_per_call < 1:
    raise ValueError(f"steps_per_call must be a positive integer, got {steps_per_call=}")
  step = start
  while step < total:
    stop = min([total, *((step // n + 1) * n for n in every), *(e for e in ends if e > step)])
    gap = stop - step
    length = steps_per_call if gap >= steps_per_call else 1 << (gap.bit_length() - 1)
    yield step, length
    step += length


def check_finite(rows: list[dict[str, Any]]) -> None:
  """Raises FloatingPointError naming the first non-finite metric (and its step); timings are not checked."""
  for row in rows:
    for name, value in row.items():
      if name in ("images_per_sec", "wall_time", "epoch"):
        continue
      if isinstance(value, float) and not math.isfinite(value):
        raise FloatingPointError(f"non-finite {row['split']} metric {name}={value} at step {row['step']}")


class Meter:
  """A run's wall time and training throughput: the first call (and compilation), evaluations and checkpoints
  are left out of the images per second."""

  def __init__(self):
    self.start = time.perf_counter()
    self.first_done: float | None = None  # when the first call finished
    self.images = 0  # images trained on after the first call
    self.paused = 0.0  # seconds spent evaluating and checkpointing
    self.rate = float("nan")  # images/s at the last `update`

  def step(self, metrics: Any, images: int) -> None:
    """Counts a call that trained `images` images; the first one is waited for, so that its compilation
    (and its images) are not counted."""
    if self.first_done is None:
      jax.block_until_ready(metrics)
      self.first_done = time.perf_counter()
    else:
      self.images += images

  @contextlib.contextmanager
  def pause(self) -> Iterator[None]:
    """A block whose time does not count as training (evaluation, checkpoints)."""
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.paused += time.perf_counter() - t0

  def update(self) -> float:
    """Updates `rate` (the training images/s so far) and returns the seconds since the start."""
    now = time.perf_counter()
    if self.first_done is not None and self.images:
      self.rate = self.images / max(now - self.first_done - self.paused, 1e-9)
    return now - self.start

  def elapsed(self) -> float:
    return time.perf_counter() - self.start


def step_rows(first: int, metrics: dict[str, np.ndarray], steps_per_epoch: int) -> list[dict[str, Any]]:
  """The training rows of a call that began after step `first`: one per step, from `metrics` (one run's and
  one device's, each of shape ``[steps]``)."""
  num = len(next(iter(metrics.values())))
  return [{"step": first + i + 1, "epoch": (first + i + 1) / steps_per_epoch, "split": "train",
           **{k: float(v[i]) for k, v in metrics.items()}} for i in range(num)]


class Loop:
  """The run loop of R runs trained in one program (R = 1: `train_and_evaluate`): its calls (`plan_calls`),
  each call's program and arguments from a feeder (`experiments.feed`), and each run's logging, evaluations
  and checkpoints, every run to its own metrics writer and checkpoint manager.

  The feeder's state holds one run, or with ``feeder.stacked`` the runs stacked on a leading axis
  (`experiments.multirun`), whose messages then name the run. Each metric of a call of ``length`` steps is
  ``[devices]``, ``[devices, length]`` or ``[devices, length, runs]``; an evaluation gives floats, or arrays
  over the runs. A run that ends before the others logs nothing after its last step.
  """

  def __init__(self, configs: Sequence[config_lib.Config], plans: Sequence[RunPlan], feeder, state_r, *,
               writers: Sequence[rundir.MetricsWriter], managers: Sequence[Any], progress_start: int | None):
    self.configs, self.plans, self.feeder, self.state_r = list(configs), list(plans), feeder, state_r
    self.writers, self.managers = list(writers), list(managers)
    self.meter = Meter()
    self.pending: list[tuple[int, int, Any]] = []  # (first step, steps, metrics) of the calls not yet logged
    self.last_eval: list[dict[str, float]] = [{} for _ in configs]
    self.pbar = None
    if progress_start is not None:
      from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top  (optional: only with a progress bar)
      self.pbar = tqdm(total=max(p.total_steps for p in plans), initial=progress_start, unit="step",
                       desc=f"{len(configs)} runs together" if feeder.stacked else configs[0].name,
                       dynamic_ncols=True)

  def run(self, start_step: int) -> None:
    """Steps every run from `start_step` to its end, logging, evaluating and checkpointing each on the way."""
    plans, feeder = self.plans, self.feeder
    calls = list(plan_calls(start_step, max(p.total_steps for p in plans), feeder.steps_per_call,
                            every=sorted({n for p in plans for n in (p.eval_every, p.checkpoint_every)}),
                            ends=[p.total_steps for p in plans]))
    if not calls:  # a resumed run that had finished: no data to open
      return
    args = feeder.train_args(start_step)
    for i, (first, length) in enumerate(calls):
      call_args = next(args)
      if i == 0:  # every call's program compiled before the first step: no call compiles later
        feeder.compile(self.state_r, {n for _, n in calls}, *call_args)
      self.state_r, metrics = feeder.step(self.state_r, length, *call_args)
      done = first + length
      self.pending.append((first, length, metrics))
      self.meter.step(metrics, plans[0].global_batch * length)
      live = [k for k, p in enumerate(plans) if done <= p.total_steps]
      evals = [k for k in live if done % plans[k].eval_every == 0 or done == plans[k].total_steps]
      ckpts = [k for k in live if done % plans[k].checkpoint_every == 0 or done == plans[k].total_steps]
      if evals or ckpts or any(done // c.train.log_every > first // c.train.log_every for c in self.configs):
        self._flush()
      if evals or ckpts:
        with self.meter.pause():
          if evals:
            self._evaluate(done, evals)
          for k in ckpts:
            self._checkpoint(done, k)
      if self.pbar is not None:
        self.pbar.update(length)

  def _check(self, k: int, rows: list[dict[str, Any]]) -> None:
    """`check_finite` of run `k`'s `rows`; the message names the run where runs train together."""
    try:
      check_finite(rows)
    except FloatingPointError as e:
      if not self.feeder.stacked:
        raise
      raise FloatingPointError(f"{self.configs[k].name} (seed {self.configs[k].train.seed}): {e}") from None

  def _flush(self) -> None:
    """Fetches the pending training metrics, writes each run's (up to its end) and checks them for NaN/inf."""
    fetched = jax.device_get([m for _, _, m in self.pending])
    wall_time = self.meter.update()
    per_run = []
    for k, (plan, writer) in enumerate(zip(self.plans, self.writers)):
      rows = [row for (first, length, _), m in zip(self.pending, fetched)
              for row in step_rows(first, {n: np.asarray(v)[0].reshape(length, -1)[:, k] for n, v in m.items()},
                                   plan.steps_per_epoch) if row["step"] <= plan.total_steps]
      if rows:
        if math.isfinite(self.meter.rate):
          rows[-1]["images_per_sec"] = self.meter.rate
        rows[-1]["wall_time"] = wall_time
        writer.write(rows)
      per_run.append(rows)
    self.pending.clear()
    for k, rows in enumerate(per_run):
      self._check(k, rows)
    if self.pbar is not None:
      shown = {} if self.feeder.stacked else {"loss": f"{per_run[0][-1]['loss']:.4f}",
                                              "lr": f"{per_run[0][-1]['lr']:.3g}"}
      self.pbar.set_postfix(**shown, img_s=f"{self.meter.rate:.0f}", refresh=False)

  def _evaluate(self, done: int, runs: Sequence[int]) -> None:
    """Evaluates every run (one program) and logs the evaluations of `runs`."""
    out = self.feeder.evaluate(self.state_r)
    for k in runs:
      self.last_eval[k] = {n: float(np.reshape(v, -1)[k]) for n, v in out.items()}
      where = {"step": done, "epoch": done / self.plans[k].steps_per_epoch}
      rows = [{**where, "split": "test", **self.last_eval[k], "wall_time": self.meter.elapsed()}]
      if self.configs[k].train.eval_train:  # one run only (`experiments.multirun.trains_alone`)
        rows.append({**where, "split": "train_eval", **self.feeder.evaluate_train(self.state_r),
                     "wall_time": self.meter.elapsed()})
      self.writers[k].write(rows)
      self._check(k, rows)
    if self.pbar is not None and not self.feeder.stacked:
      self.pbar.write(f"step {done}: test accuracy {self.last_eval[0]['accuracy']:.4f}, "
                      f"loss {self.last_eval[0]['loss']:.4f}")

  def run_state(self, k: int):
    """Run `k`'s state (unreplicated)."""
    state = parallel.unreplicate(self.state_r)
    return jax.tree.map(lambda x: x[k], state) if self.feeder.stacked else state

  def _checkpoint(self, done: int, k: int) -> None:
    rundir.save_checkpoint(self.managers[k], self.run_state(k))
    if jax.process_index() == 0:
      config = self.configs[k]
      named = f" ({config.name}, seed {config.train.seed})" if self.feeder.stacked else ""
      print(f"checkpoint saved at step {done}{named}", file=sys.stderr, flush=True)

  def close(self) -> None:
    if self.pbar is not None:
      self.pbar.close()


def initial_state(config: config_lib.Config, data: feed.DeviceData | feed.StreamData, workdir: pathlib.Path,
                  manager, *, resume: bool):
  """The state to start from (restored on `resume` when there is a checkpoint) and its step.

  Raises:
    FileExistsError: `workdir` holds checkpoints and `resume` is false.
    ValueError: resuming a run saved with a config that trains differently (`rundir.check_same_run`).
  """
  state = setup.create_train_state(config, num_classes=data.num_classes, mean=data.mean, std=data.std,
                                   image_shape=data.image_shape, axis_name=parallel.AXIS)
  latest = manager.latest_step()
  if latest is None:
    return state, 0
  if not resume:
    raise FileExistsError(f"{workdir} already holds checkpoints (latest step {latest}); pass --resume to "
                          "continue that run or use a fresh --workdir")
  rundir.check_same_run(workdir, config)
  state = rundir.restore_checkpoint(manager, state)
  return state, int(state.step)


def logged_evaluation(workdir: pathlib.Path, step: int) -> dict[str, float]:
  """The test loss and accuracy logged at `step` (a resumed run that had already finished trains nothing)."""
  if not (workdir / rundir.METRICS_JSONL).exists():
    return {}
  rows = [r for r in rundir.read_metrics(workdir)["test"] if r["step"] == step]
  return {"loss": rows[-1]["loss"], "accuracy": rows[-1]["accuracy"]} if rows else {}


def train_and_evaluate(config: config_lib.Config, workdir: str | os.PathLike, *, dataset: Any = None,
                       resume: bool = False) -> dict[str, Any]:
  """Trains `config` and evaluates it on the test set (ImageNet: the validation set); the logic behind the
  command line.

  Args:
    config: the experiment (see experiments.configs).
    workdir: where metrics (metrics.jsonl, metrics.csv), the config (config.json) and orbax checkpoints
      (checkpoints/) go (`experiments.rundir`).
    dataset: an `experiments.data.Dataset` to use instead of loading `config.data.dataset` (a notebook
      may pass one it already holds; subsets of `config.data` are not applied to it). Not for the ImageNet
      configs (``data.crop_size`` set), which stream `config.data.dataset` (`experiments.feed`).
    resume: continue from the latest checkpoint in `workdir` (a fresh start when there is none).

  Returns:
    A summary: final test loss/accuracy, steps, the number of training images, wall time, the training images/s
    (excluding the first, compiling, call), the steps per compiled call, the devices it ran on (all hosts')
    and their kind, and the work directory.

  Raises:
    FloatingPointError: a training or evaluation metric became NaN/inf (its name and step are in the
      message); the last checkpoint written before it is kept.
  """
  workdir = rundir.make_dir(workdir)
  is_main = jax.process_index() == 0
  devices = parallel.run_devices(config.train.num_devices)
  n_global = len(devices) * jax.process_count()
  check_batch_sizes(config, n_global)  # before the data is opened (the stream's mean image takes a pass)
  manager = rundir.checkpoint_manager(workdir, config.train.max_checkpoints)
  try:
    data = feed.open_data(config, workdir, dataset=dataset, reuse=resume and manager.latest_step() is not None)
    plan = plan_run(config, num_train=data.num_train, num_global_devices=n_global)
    state, start_step = initial_state(config, data, workdir, manager, resume=resume)
    if is_main:
      rundir.write_config(workdir, config)
    writer = rundir.MetricsWriter(workdir, enabled=is_main, keep_until_step=start_step if resume else None)
    schedule = setup.build_schedule(config.schedule, steps_per_epoch=plan.steps_per_epoch,
                                    total_steps=plan.total_steps)
    feeder = data.feeder(config, plan, schedule, devices, state=state)
    loop = Loop([config], [plan], feeder, parallel.replicate(state, devices), writers=[writer], managers=[manager],
                progress_start=start_step if is_main and config.train.progress else None)
    try:
      loop.run(start_step)
    finally:
      loop.close()
  except FloatingPointError as e:
    latest = manager.latest_step()
    where = (f"the last good checkpoint is step {latest} in {workdir / rundir.CHECKPOINTS}" if latest is not None
             else "no checkpoint had been written yet")
    raise FloatingPointError(f"{e}; stopped, {where}") from None
  finally:
    manager.close()
  last_eval = loop.last_eval[0] or logged_evaluation(workdir, plan.total_steps)
  return {"config": config.name, "steps": plan.total_steps, "train_images": data.num_train,
          "test_accuracy": last_eval.get("accuracy"),
          "test_loss": last_eval.get("loss"), "train_images_per_sec": loop.meter.rate,
          "steps_per_call": feeder.steps_per_call, "wall_time": loop.meter.elapsed(), "devices": n_global,
          "device_kind": devices[0].device_kind, "workdir": str(workdir), "peak_rss_mib": hostmem.peak_rss_mib(),
          "state": loop.run_state(0)}


# ----------------------------------------------------------------------------------------------------------
# Command line.

def _help_epilog() -> str:
  lines = ["configs (--config NAME, or NAME:ARG for those listing ARGs):"]
  for name in config_lib.list_configs():
    args = config_lib.config_args(name)
    lines.append(f"  {name}" + (f"  ARG in {{{', '.join(args)}}}" if args else ""))
  lines.append("")
  lines.append("overrides (--set key=value or trailing key=value; values typed by the field, tuples comma-separated,")
  lines.append("Durations as '2000' steps, '8ep' epochs or '5%' of the run); defaults of the default config:")
  for key, value in config_lib.flat_fields(config_lib.get_config("default")).items():
    lines.append(f"  {key}={value!r}")
  return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, dict[str, str]]:
  """Parses the command line; returns the flags and the overrides."""
  parser = argparse.ArgumentParser(
      prog="python -m experiments.train", description="Train one of the paper's experiments.",
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_help_epilog())
  parser.add_argument("--config", required=True, help="experiment config name (see below)")
  parser.add_argument("--workdir", required=True, help="directory for metrics and checkpoints")
  parser.add_argument("--data", help="dataset spec (sets data.dataset): cifar10, cifar100, or an image-folder "
                      "dir/archive; for the ImageNet configs imagenet2012 (tensorflow-datasets) or a "
                      "{train,val}/<wnid>/*.JPEG folder")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
  parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --workdir")
  parser.add_argument("--multihost", action="store_true", default=None,
                      help="call jax.distributed.initialize() (also $CLR_MULTIHOST=1)")
  parser.add_argument("--coordinator", help="multi-host: coordinator host:port ($CLR_COORDINATOR)")
  parser.add_argument("--num-processes", type=int, help="multi-host: number of processes ($CLR_NUM_PROCESSES)")
  parser.add_argument("--process-id", type=int, help="multi-host: this process's id ($CLR_PROCESS_ID)")
  parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more overrides")
  args = parser.parse_args(argv)
  overrides = config_lib.parse_overrides([*args.set, *args.overrides])
  if args.data:
    overrides["data.dataset"] = args.data
  return args, overrides


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Command-line entry point: parse, build the config, train, print the summary."""
  args, overrides = parse_args(argv)
  parallel.maybe_initialize_distributed(coordinator=args.coordinator, num_processes=args.num_processes,
                                        process_id=args.process_id, enabled=args.multihost)
  config = config_lib.override(config_lib.get_config(args.config), overrides)
  summary = train_and_evaluate(config, args.workdir, resume=args.resume)
  summary.pop("state")
  if jax.process_index() == 0:
    print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  cli.run(main)
