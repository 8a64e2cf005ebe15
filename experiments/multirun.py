"""Several runs in one program: runs that differ only in seed and schedule train together, vmapped.

`train_and_evaluate_together(configs, workdirs)` trains runs whose configs differ only in the seed
(``train.seed``), the learning-rate policy and its hyper-parameters (any ``schedule.*`` field, the policy
itself included), their length (``train.num_steps``) and their logging, evaluation and checkpoint intervals
(`PER_RUN_FIELDS`) as one compiled program: the runs' states are stacked on a leading axis and every step
is `jax.vmap`-ped over it, inside the trainer's `pmap` over devices, several steps per call as in
`experiments.train` (``train.steps_per_call``). Run ``i`` trains at ``lax.switch(i, schedules, step)``,
its own `experiments.setup.build_schedule`; its initialisation, shuffles and augmentation come from its own
seed, as in a run of its own. The runs share the dataset held on the devices (`experiments.feed.DeviceData`,
CIFAR); the streamed ImageNet configs (``data.crop_size`` set) train one run at a time and are refused.
The trainer's loop (`experiments.train.Loop`) drives them; this module gives it their stacked state and
program (`StackedFeeder`).

Each run ends with the directory a run of its own leaves (`experiments.rundir`: ``config.json``, its
metrics, its checkpoints), so `experiments.reproduce` (which writes ``summary.json`` and uses this module
where `gains` says so) and `experiments.results` read it unchanged. Its metrics equal those of the run
trained alone up to float rounding (vmapped convolutions are computed by other kernels; tested). A run that
ends before the others is frozen: its state stops changing, its steps are still computed (and its metrics
dropped) until the longest run ends. Runs that resume from different steps train in one program per step.

Where it gains: on GPUs and TPUs a small network leaves most of the device idle, and R runs vmapped cost
little more than one. On XLA:CPU vmapped convolutions are several times slower than separate runs
(`clr_optax.range_test` keeps them apart there for that reason), so `gains` is false on the CPU.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments import configs as config_lib
from experiments import feed
from experiments import parallel
from experiments import rundir
from experiments import setup
from experiments import train

# The fields in which runs trained together may differ (a trailing "." names a whole section); every other
# field (data, network, optimizer, batch, devices, steps per call) makes the program and must be equal.
PER_RUN_FIELDS = ("name", "paper", "schedule.", "train.seed", "train.num_steps", "train.eval_every",
                  "train.log_every", "train.checkpoint_every", "train.max_checkpoints")


def _per_run(field: str) -> bool:
  return any(field.startswith(f) if f.endswith(".") else field == f for f in PER_RUN_FIELDS)


def trains_alone(config: config_lib.Config) -> str | None:
  """Why `config` cannot train in one program with other runs, or None when it can."""
  if feed.is_streamed(config):
    return "streams ImageNet from the host (data.crop_size set)"
  if config.train.eval_train:
    return "also evaluates on the training set (train.eval_train)"
  return None


def shared_fields(config: config_lib.Config) -> dict[str, Any]:
  """The fields of `config` that runs trained together share: all but `PER_RUN_FIELDS`."""
  return {k: v for k, v in config_lib.flat_fields(config).items() if not _per_run(k)}


def group_runs(configs: Sequence[config_lib.Config]) -> list[list[int]]:
  """The indices of `configs` grouped into runs that can train together (equal `shared_fields`), each group
  in order and the groups in the order of their first run."""
  groups: dict[str, list[int]] = {}
  for i, config in enumerate(configs):
    groups.setdefault(json.dumps(shared_fields(config), sort_keys=True, default=str), []).append(i)
  return list(groups.values())


def gains(platform: str) -> bool:
  """Whether training runs together is the default on devices of `platform`: everywhere but XLA:CPU."""
  return platform != "cpu"


def _check_together(configs: Sequence[config_lib.Config]) -> None:
  first = shared_fields(configs[0])
  for config in configs[1:]:
    other = shared_fields(config)
    diffs = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
    if diffs:
      raise ValueError(f"runs trained together may differ only in {', '.join(PER_RUN_FIELDS)}; {config.name} "
                       f"differs from {configs[0].name} in " +
                       ", ".join(f"{k} ({first.get(k)!r} -> {other.get(k)!r})" for k in diffs))


def stack(trees: Sequence[Any]) -> Any:
  """`trees` (states of one structure; their static fields are taken from the first) stacked on a new
  leading axis."""
  leaves = [jax.tree.leaves(t) for t in trees]
  return jax.tree.unflatten(jax.tree.structure(trees[0]), [jnp.stack(xs) for xs in zip(*leaves)])


def make_pmapped_train_steps(schedules: Sequence[optax.Schedule], totals: Sequence[int], *, global_batch: int,
                             local_batch: int, steps_per_epoch: int, num_examples: int, length: int,
                             devices: Sequence[jax.Device]) -> parallel.Program:
  """`parallel.make_pmapped_train_steps`'s call for a stacked state: every step vmapped over the runs.

  Run ``i`` trains at ``schedules[i](step)`` (a `lax.switch` by the run's index) until its step reaches
  ``totals[i]``; from there its state is kept as it is.

  The returned function takes ``(states, images, labels, perms, shuffle_keys)`` replicated across
  `devices`, the states, permutations and keys stacked over the runs, and returns ``(states, perms,
  metrics)``, each metric of shape ``[devices, length, runs]``. The states are donated.
  """
  branches = [lambda count, s=s: jnp.asarray(s(count), jnp.float32) for s in schedules]
  run_ids, ends = np.arange(len(schedules), dtype=np.int32), np.asarray(totals, np.int32)

  def one_run(state, perm, run_id, end, images, labels):
    step = parallel.gathered_train_step(lambda count: lax.switch(run_id, branches, count),
                                        global_batch=global_batch, local_batch=local_batch,
                                        steps_per_epoch=steps_per_epoch)
    new, metrics = step(state, images, labels, perm)
    keep = lambda n, o: jnp.where(state.step < end, n, o)  # noqa: E731  (a finished run stays as it is)
    fields = ("step", "params", "batch_stats", "opt_state")
    return new.replace(**{f: jax.tree.map(keep, getattr(new, f), getattr(state, f)) for f in fields}), metrics

  def steps(states, images, labels, perms, keys):
    run = parallel.scan_steps(
        lambda s, p: jax.vmap(one_run, in_axes=(0, 0, 0, 0, None, None))(s, p, run_ids, ends, images, labels),
        lambda epoch: jax.vmap(lambda k: parallel.permutation(jax.random.fold_in(k, epoch), num_examples))(keys),
        length=length, steps_per_epoch=steps_per_epoch)
    return run(states, perms, jnp.max(states.step))  # the steps of the runs still training

  return parallel.pmap_compiled(steps, devices, donate_argnums=(0,))


class StackedFeeder(feed.DeviceFeeder):
  """`experiments.feed.DeviceFeeder` for runs trained together (`experiments.train.Loop`'s feeder): their states
  stacked on a leading axis, each run shuffled by its own seed, every call `make_pmapped_train_steps`'s program."""

  stacked = True

  def __init__(self, data: feed.DeviceData, configs: Sequence[config_lib.Config], plans: Sequence[train.RunPlan],
               devices: Sequence[jax.Device], *, steps_per_call: int):
    super().__init__(data, configs[0], plans[0], None, devices, steps_per_call=steps_per_call)
    self.schedules = [setup.build_schedule(c.schedule, steps_per_epoch=p.steps_per_epoch, total_steps=p.total_steps)
                      for c, p in zip(configs, plans)]
    self.totals = [p.total_steps for p in plans]
    self.shuffle_key = jnp.stack([feed.shuffle_key(c.train.seed) for c in configs])
    self.shuffle_key_r = parallel.replicate(self.shuffle_key, devices)

  def _program(self, length: int) -> parallel.Program:
    if length not in self.programs:
      self.programs[length] = make_pmapped_train_steps(
          self.schedules, self.totals, global_batch=self.plan.global_batch, local_batch=self.plan.local_batch,
          steps_per_epoch=self.plan.steps_per_epoch, num_examples=self.num_train, length=length,
          devices=self.devices)
    return self.programs[length]


def train_and_evaluate_together(configs: Sequence[config_lib.Config], workdirs: Sequence[str | os.PathLike], *,
                                dataset: Any = None, resume: bool = False) -> list[dict[str, Any]]:
  """Trains `configs` together (one vmapped program) and evaluates each, each run in its own work directory.

  Args:
    configs: the runs; they may differ only in `PER_RUN_FIELDS`.
    workdirs: each run's work directory (what `experiments.train.train_and_evaluate` writes there).
    dataset: an `experiments.data.Dataset` to use instead of loading the configs' (shared) data
      (`experiments.feed.open_data`).
    resume: continue each run from the latest checkpoint in its directory; runs resuming from different
      steps train in one program per step, one after the other.

  Returns:
    Each run's summary, as `experiments.train.train_and_evaluate` returns it (``"state"`` the run's own),
    with ``"runs_together"``: the runs in its program; its ``"wall_time"`` is its share (1/R) of the
    program's, so that summing over runs counts the program's once; its ``"train_images_per_sec"`` are its
    own images per second (the program trains R times as many).

  Raises:
    ValueError: no runs, a directory per run missing, one run twice or two in one directory
      (`experiments.rundir.check_distinct_runs`), streamed (ImageNet) configs, runs that differ in a
      shared field (naming them), or what `experiments.train.train_and_evaluate` refuses.
    FloatingPointError: a run's metric became NaN/inf (naming the run, the metric and its step); every run
      keeps its last checkpoint.
  """
  if not configs or len(configs) != len(workdirs):
    raise ValueError(f"one work directory per run is needed, got {len(configs)} configs and {len(workdirs)} "
                     "workdirs")
  rundir.check_distinct_runs(configs, workdirs)
  alone = [f"{c.name} {why}" for c in configs if (why := trains_alone(c))]
  if alone:
    raise ValueError(f"runs trained together share the dataset held on the devices and one program; "
                     f"{'; '.join(alone)}: train each on its own (experiments.train, or experiments.reproduce, "
                     "which never groups them)")
  _check_together(configs)
  workdirs = [pathlib.Path(d) for d in workdirs]
  is_main = jax.process_index() == 0
  devices = parallel.run_devices(configs[0].train.num_devices)
  n_global = len(devices) * jax.process_count()
  data = feed.open_data(configs[0], workdirs[0], dataset=dataset)
  plans = [train.plan_run(c, num_train=data.num_train, num_global_devices=n_global) for c in configs]
  managers = []
  summaries: list[dict[str, Any]] = [{} for _ in configs]
  try:
    states, starts, writers = [], [], []
    for config, workdir in zip(configs, workdirs):
      rundir.make_dir(workdir)
      managers.append(rundir.checkpoint_manager(workdir, config.train.max_checkpoints))
      state, start = train.initial_state(config, data, workdir, managers[-1], resume=resume)
      if is_main:
        rundir.write_config(workdir, config)
      writers.append(rundir.MetricsWriter(workdir, enabled=is_main, keep_until_step=start if resume else None))
      states.append(state)
      starts.append(start)
    steps_per_call = data.steps_per_call(configs[0], states[0], devices[0].platform)
    for start in sorted(set(starts)):
      runs = [i for i, s in enumerate(starts) if s == start and s < plans[i].total_steps]
      if not runs:
        continue
      feeder = StackedFeeder(data, [configs[i] for i in runs], [plans[i] for i in runs], devices,
                             steps_per_call=steps_per_call)
      loop = train.Loop([configs[i] for i in runs], [plans[i] for i in runs], feeder,
                        parallel.replicate(stack([states[i] for i in runs]), devices),
                        writers=[writers[i] for i in runs], managers=[managers[i] for i in runs],
                        progress_start=start if is_main and configs[0].train.progress else None)
      try:
        loop.run(start)
      finally:
        loop.close()
      for k, i in enumerate(runs):
        summaries[i] = {"test_accuracy": loop.last_eval[k].get("accuracy"), "test_loss": loop.last_eval[k].get("loss"),
                        "train_images_per_sec": loop.meter.rate, "steps_per_call": steps_per_call,
                        "runs_together": len(runs), "wall_time": loop.meter.elapsed() / len(runs),
                        "state": loop.run_state(k)}
  except FloatingPointError as e:
    kept = ", ".join(f"{c.name} seed {c.train.seed}: step {m.latest_step()}" for c, m in zip(configs, managers))
    raise FloatingPointError(f"{e}; stopped, every run keeps its last checkpoint ({kept})") from None
  finally:
    for manager in managers:
      manager.close()
  out = []
  for config, plan, workdir, state, summary in zip(configs, plans, workdirs, states, summaries):
    if not summary:  # finished before (a resumed run that had already ended)
      last = train.logged_evaluation(workdir, plan.total_steps)
      summary = {"test_accuracy": last.get("accuracy"), "test_loss": last.get("loss"),
                 "train_images_per_sec": float("nan"), "wall_time": 0.0, "state": state}
    out.append({"config": config.name, "steps": plan.total_steps, "train_images": data.num_train, **summary,
                "devices": n_global, "device_kind": devices[0].device_kind, "workdir": str(workdir)})
  return out
