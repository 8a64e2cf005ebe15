"""Data-parallel training and evaluation of the paper's networks with a clr_optax schedule.

The pieces, importable from a notebook:

* `create_train_state(config, dataset_info, ...)`: model, optimizer and normalisation in one `TrainState`.
* `train_step(state, batch, lr)`: one pure SGD step (augmentation and normalisation inside), shared by the
  trainer, `clr_optax.range_test` and the benchmarks. Under `jax.pmap` (``state.axis_name="batch"``)
  gradients, metrics and BatchNorm statistics are averaged across devices with `lax.pmean`.
* `build_schedule(config, ...)`, `build_optimizer(config)`: the config's learning-rate policy and optimizer.
* `train_and_evaluate(config, workdir)`: the whole run: whole training set on the devices, a per-epoch
  shuffle on device, batches gathered inside the compiled step, the schedule evaluated inside the step,
  evaluation every N steps, metrics to JSONL/CSV, a progress bar, orbax checkpoints, resume, NaN guard.

The command line (``python -m experiments.train --help``) is `main` at the bottom.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax import lax

from experiments import configs as config_lib

AXIS = "batch"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CSV_FIELDS = ("step", "epoch", "split", "loss", "accuracy", "lr", "grad_norm", "images_per_sec", "wall_time")


class TrainState(struct.PyTreeNode):
  """Everything a training step reads and writes.

  Attributes:
    step: number of steps taken (int32 scalar).
    params: the model's parameters.
    batch_stats: BatchNorm running statistics (an empty dict for models without BatchNorm).
    opt_state: the optimizer's state; the learning rate is an injected hyperparameter in it.
    rng: PRNG key; each step folds in the step number (and the device index under pmap).
    mean, std: normalisation constants (per channel, or Caffe's mean image with std 1).
    apply_fn: the Flax module's apply.
    tx: the optimizer, built with `optax.inject_hyperparams` so that `train_step` can set its learning rate.
    augment: whether the step applies the random crop and flip.
    pad: padding of the random crop.
    axis_name: the pmap axis to average over, or None for a single-device step.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array
  mean: jax.Array
  std: jax.Array
  apply_fn: Callable[..., Any] = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  augment: bool = struct.field(pytree_node=False, default=False)
  pad: int = struct.field(pytree_node=False, default=4)
  axis_name: str | None = struct.field(pytree_node=False, default=None)

  def checkpoint_items(self) -> dict[str, Any]:
    """The arrays a checkpoint holds, as host numpy arrays (everything but the constants and static fields).

    Host arrays are written once, by the primary process, on any number of hosts; the PRNG key is stored
    as its raw key data.
    """
    items = {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
             "opt_state": self.opt_state, "rng": jax.random.key_data(self.rng)}
    return jax.tree.map(np.asarray, jax.device_get(items))

  def replace_checkpoint_items(self, items: Mapping[str, Any]) -> TrainState:
    """This state with the arrays of `items` (as returned by `checkpoint_items`) put back."""
    items = dict(items)
    rng = jax.random.wrap_key_data(jnp.asarray(items.pop("rng")), impl=jax.random.key_impl(self.rng))
    return self.replace(rng=rng, **items)


# ----------------------------------------------------------------------------------------------------------
# The step.

def _set_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
  hyperparams = dict(opt_state.hyperparams)
  hyperparams["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hyperparams["learning_rate"]).dtype)
  return opt_state._replace(hyperparams=hyperparams)


def train_step(state: TrainState, batch: Mapping[str, jax.Array], lr: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a batch of uint8 images; pure, so it can be jitted, pmapped or scanned.

  Args:
    state: the `TrainState` (its `axis_name` says whether to average across a pmap axis).
    batch: ``{"image": uint8 [B, H, W, 3], "label": int32 [B]}`` (this device's share under pmap).
    lr: the learning rate of this step (a scalar; the trainer passes ``schedule(state.step)``).

  Returns:
    ``(new_state, metrics)`` with metrics ``loss``, ``accuracy`` (of this batch before the update, averaged
    over devices), ``lr`` and ``grad_norm`` (of the averaged gradient).

  Examples:
    >>> state, metrics = jax.jit(train_step)(state, batch, 0.01)  # doctest: +SKIP
  """
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top

  images = batch["image"]
  key = jax.random.fold_in(state.rng, state.step)
  aug_key, dropout_key, depth_key = jax.random.split(key, 3)
  if state.axis_name is not None:
    # Dropout masks differ per device; stochastic-depth decisions stay shared by the whole global batch.
    dropout_key = jax.random.fold_in(dropout_key, lax.axis_index(state.axis_name))
  if state.augment:
    # One key per example, from its position in the global batch: the augmentation of a global batch is
    # the same whether it runs on one device or is split across several.
    offset = lax.axis_index(state.axis_name) * images.shape[0] if state.axis_name is not None else 0
    keys = jax.vmap(lambda i: jax.random.fold_in(aug_key, i))(offset + jnp.arange(images.shape[0]))
    images = jax.vmap(lambda k, im: data_lib.random_crop_flip(k, im[None], pad=state.pad)[0])(keys, images)
  x = data_lib.normalize(images, state.mean, state.std)
  labels = batch["label"]
  has_bn = bool(jax.tree.leaves(state.batch_stats))

  def loss_fn(params):
    variables = {"params": params}
    rngs = {"dropout": dropout_key, "stochastic_depth": depth_key}
    if has_bn:
      variables["batch_stats"] = state.batch_stats
      logits, new_vars = state.apply_fn(variables, x, train=True, mutable=["batch_stats"], rngs=rngs)
      new_stats = new_vars["batch_stats"]
    else:
      logits = state.apply_fn(variables, x, train=True, rngs=rngs)
      new_stats = state.batch_stats
    logits = logits.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (logits, new_stats)

  (loss, (logits, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
  if state.axis_name is not None:
    grads, loss, accuracy = lax.pmean((grads, loss, accuracy), state.axis_name)
  opt_state = _set_learning_rate(state.opt_state, lr)
  updates, opt_state = state.tx.update(grads, opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {"loss": loss, "accuracy": accuracy, "lr": jnp.asarray(lr, jnp.float32),
             "grad_norm": optax.tree.norm(grads)}
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=new_stats, opt_state=opt_state)
  return new_state, metrics


def eval_logits(state: TrainState, images_uint8: jax.Array) -> jax.Array:
  """Logits of the model in inference mode (BatchNorm running statistics), float32."""
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  variables = {"params": state.params}
  if jax.tree.leaves(state.batch_stats):
    variables["batch_stats"] = state.batch_stats
  x = data_lib.normalize(images_uint8, state.mean, state.std)
  return state.apply_fn(variables, x, train=False).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------------
# Config -> schedule, optimizer, state.

def build_schedule(sched: config_lib.ScheduleConfig, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """The learning-rate policy of `sched` as a function of the step (jnp only: runs inside the step).

  Args:
    sched: the config's schedule section.
    steps_per_epoch: steps in one epoch (for Durations in epochs).
    total_steps: length of the run (for Durations in percent, and one_cycle).

  Returns:
    An `optax.Schedule`.
  """
  import clr_optax  # pylint: disable=g-import-not-at-top

  def steps(spec, name):
    return config_lib.resolve_duration(spec, steps_per_epoch=steps_per_epoch, total_steps=total_steps, name=name)

  name = sched.name
  step_size = steps(sched.step_size, "schedule.step_size")
  if name == "fixed":
    schedule = optax.constant_schedule(sched.base_lr)
  elif name == "triangular":
    schedule = clr_optax.triangular(sched.base_lr, sched.max_lr, step_size)
  elif name == "triangular2":
    schedule = clr_optax.triangular2(sched.base_lr, sched.max_lr, step_size)
  elif name == "exp_range":
    schedule = clr_optax.exp_range(sched.base_lr, sched.max_lr, step_size, sched.gamma)
  elif name == "decay":
    schedule = clr_optax.decay(sched.base_lr, sched.max_lr, step_size)
  elif name == "exp":
    schedule = clr_optax.exponential(sched.base_lr, sched.gamma)
  elif name == "staged":
    n = len(sched.stage_starts)
    if not n or {len(sched.stage_base_lrs), len(sched.stage_max_lrs), len(sched.stage_step_sizes)} != {n}:
      raise ValueError("schedule.stage_starts, stage_base_lrs, stage_max_lrs and stage_step_sizes must have the "
                       f"same non-zero length, got {sched.stage_starts=}, {sched.stage_base_lrs=}, "
                       f"{sched.stage_max_lrs=}, {sched.stage_step_sizes=}")
    starts = [steps(s, "schedule.stage_starts") for s in sched.stage_starts]
    if starts[0] != 0 or starts != sorted(starts):
      raise ValueError(f"schedule.stage_starts must start at 0 and increase, got {sched.stage_starts=}")
    stages = [clr_optax.triangular2(b, m, steps(s, "schedule.stage_step_sizes"))
              for b, m, s in zip(sched.stage_base_lrs, sched.stage_max_lrs, sched.stage_step_sizes)]
    schedule = optax.join_schedules(stages, starts[1:])
  elif name == "one_cycle":
    schedule = clr_optax.one_cycle(sched.max_lr, total_steps, pct_start=sched.pct_start,
                                   div_factor=sched.div_factor, final_div_factor=sched.final_div_factor,
                                   anneal=sched.anneal, three_phase=sched.three_phase)
  else:
    raise ValueError(f"unknown schedule.name {name!r}; one of fixed, triangular, triangular2, exp_range, decay, "
                     "exp, staged, one_cycle")
  if sched.drop_at:
    drops = sorted(steps(d, "schedule.drop_at") for d in sched.drop_at)
    scale = optax.piecewise_constant_schedule(1.0, {d: sched.drop_factor for d in drops})
    inner = schedule
    schedule = lambda count: inner(count) * scale(count)
  return schedule


def _caffe_regularize(weight_decay: float, decay_mult) -> optax.GradientTransformation:
  """Caffe's Regularize for any solver: g + weight_decay * decay_mult(path) * w."""
  from experiments import optim as optim_lib  # pylint: disable=g-import-not-at-top

  def update(updates, state, params=None):
    mults = jax.tree_util.tree_map_with_path(lambda path, p: decay_mult(optim_lib.path_names(path), p), params)
    return jax.tree.map(lambda g, w, m: g + (weight_decay * m) * w, updates, params, mults), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _scale_by_lr_mult(lr_mult) -> optax.GradientTransformation:
  """Caffe's per-blob local rate for any solver: the update times lr_mult(path)."""
  from experiments import optim as optim_lib  # pylint: disable=g-import-not-at-top

  def update(updates, state, params=None):
    mults = jax.tree_util.tree_map_with_path(lambda path, p: lr_mult(optim_lib.path_names(path), p), params)
    return jax.tree.map(lambda u, m: u * m, updates, mults), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def build_optimizer(optim: config_lib.OptimConfig, model_name: str | None = None) -> optax.GradientTransformation:
  """The config's optimizer with an injectable learning rate (``opt_state.hyperparams["learning_rate"]``).

  For the Caffe networks (cifar10_full, cifar10_quick, cifar10_bn_sigmoid) every optimizer gets Caffe's
  per-layer learning-rate and weight-decay multipliers (`experiments.models.caffe_multipliers`), as Caffe's
  solvers apply them; the other networks use one weight decay for all parameters (PyTorch's convention).

  Args:
    optim: the config's optimizer section.
    model_name: the network, to look up Caffe multipliers.

  Returns:
    An `optax.inject_hyperparams` transformation; `train_step` sets its learning rate every step.
  """
  from experiments import models  # pylint: disable=g-import-not-at-top
  wd = optim.weight_decay
  caffe = model_name in ("cifar10_full", "cifar10_quick", "cifar10_bn_sigmoid")
  lr_mult, decay_mult = models.caffe_multipliers(model_name) if caffe else (None, None)

  def wrap(tx):
    if caffe:
      parts = [_caffe_regularize(wd, decay_mult)] if wd else []
      return optax.chain(*parts, tx, _scale_by_lr_mult(lr_mult))
    return optax.chain(optax.add_decayed_weights(wd), tx) if wd else tx

  def factory(learning_rate):
    if optim.name == "caffe_sgd":
      from experiments import optim as optim_lib  # pylint: disable=g-import-not-at-top
      return optim_lib.caffe_sgd(learning_rate, momentum=optim.momentum, weight_decay=wd, lr_mult=lr_mult,
                                 decay_mult=decay_mult)
    if optim.name == "sgd":
      return wrap(optax.sgd(learning_rate, momentum=optim.momentum or None))
    if optim.name == "nesterov":
      return wrap(optax.sgd(learning_rate, momentum=optim.momentum, nesterov=True))
    if optim.name == "adam":
      return wrap(optax.adam(learning_rate, b1=optim.b1, b2=optim.b2, eps=optim.eps))
    if optim.name == "rmsprop":
      return wrap(optax.rmsprop(learning_rate, decay=optim.rms_decay, eps=optim.eps))
    if optim.name == "adagrad":
      return wrap(optax.adagrad(learning_rate, initial_accumulator_value=0.0, eps=optim.eps))
    if optim.name == "adadelta":
      return wrap(optax.adadelta(learning_rate, rho=optim.rms_decay, eps=optim.eps))
    raise ValueError(f"unknown optim.name {optim.name!r}; one of caffe_sgd, sgd, nesterov, adam, rmsprop, "
                     "adagrad, adadelta")

  factory(0.0)  # validate the name now, outside any trace
  return optax.inject_hyperparams(factory)(learning_rate=0.0)


def normalization_constants(config: config_lib.Config, train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) for `experiments.data.normalize`: per channel, or the mean image with std 1 (Caffe)."""
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  if config.data.normalization == "channel":
    mean, std = data_lib.channel_stats(train_images)
    return np.asarray(mean, np.float32), np.asarray(std, np.float32)
  if config.data.normalization == "mean_image":
    return np.asarray(data_lib.mean_image(train_images), np.float32), np.ones((3,), np.float32)
  raise ValueError(f"data.normalization must be 'channel' or 'mean_image', got {config.data.normalization=}")


def create_train_state(config: config_lib.Config, *, num_classes: int, mean: np.ndarray, std: np.ndarray,
                       image_shape: Sequence[int] = (32, 32, 3), axis_name: str | None = None,
                       rng: jax.Array | None = None) -> TrainState:
  """Initialises the model and optimizer of `config`.

  Args:
    config: the experiment config.
    num_classes: classes of the dataset.
    mean, std: normalisation constants (see `normalization_constants`).
    image_shape: (H, W, C) of the images.
    axis_name: the pmap axis name when the state will be used under pmap (BatchNorm and gradients are
      then averaged over it); None for a single-device step.
    rng: the run's key (default: ``jax.random.key(config.train.seed)``).

  Returns:
    A single-device (unreplicated) `TrainState` at step 0.
  """
  from experiments import models  # pylint: disable=g-import-not-at-top
  model = models.create_model(config.model.name, num_classes=num_classes, bn_axis_name=axis_name)
  rng = jax.random.key(config.train.seed) if rng is None else rng
  init_key, state_key = jax.random.split(rng)
  dummy = jnp.zeros((2, *image_shape), jnp.float32)
  variables = jax.jit(functools.partial(model.init, train=False))({"params": init_key, "dropout": init_key,
                                                                   "stochastic_depth": init_key}, dummy)
  params = variables["params"]
  tx = build_optimizer(config.optim, config.model.name)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(params), rng=state_key, mean=jnp.asarray(mean), std=jnp.asarray(std),
                    apply_fn=model.apply, tx=tx, augment=config.data.augment, pad=config.data.pad,
                    axis_name=axis_name)


# ----------------------------------------------------------------------------------------------------------
# Devices and pmapped functions.

# XLA:CPU (jaxlib 0.10) hands convolutions to YNNPACK by default. On a 2-core x86 CPU the cifar10_full
# training step made 632-804 images/s with XLA's own (Eigen) convolutions against 406 with YNNPACK's
# (README, "Benchmarks"; `python -m experiments.benchmarks.train_speed --variants ynnpack_convs` times the
# step without them); this option keeps YNNPACK for dots only.
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def _xla_accepts(platform: str, options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's XLA knows the compiler `options` (an option unknown to it is an error)."""
  device = jax.devices(platform)[0]
  try:
    jax.jit(lambda x: x + 1).lower(jax.device_put(np.float32(0), device)).compile(compiler_options=dict(options))
  except jax.errors.JaxRuntimeError as e:
    warnings.warn(f"compiling with XLA's default options: this jaxlib does not take {dict(options)} ({e})")
    return False
  return True


def compiler_options(devices: Sequence[jax.Device]) -> dict[str, str] | None:
  """The XLA compiler options the trainer's programs use on `devices`: `CPU_COMPILER_OPTIONS` on CPUs
  (when this jaxlib knows them), None (XLA's defaults) elsewhere. Pass them to ``jax.jit(...,
  compiler_options=...)`` or `clr_optax.range_test` to compile other programs the same way."""
  platform = devices[0].platform
  if platform != "cpu" or not _xla_accepts(platform, tuple(sorted(CPU_COMPILER_OPTIONS.items()))):
    return None
  return dict(CPU_COMPILER_OPTIONS)


def _compiled_with(pmapped: Callable[..., Any], options: dict[str, str] | None) -> Callable[..., Any]:
  """`pmapped`, compiled with XLA `options` at its first call (``jax.pmap`` takes no compiler options; its
  ahead-of-time ``lower(...).compile(...)`` does). Later calls must pass arguments of the same shapes.

  With several processes `pmapped` is returned as it is (XLA's default options): jax 0.10's compiled pmap
  expects the global arrays there and rejects each process's local ones.
  """
  if not options or jax.process_count() > 1:
    return pmapped
  compiled = None

  def call(*args):
    nonlocal compiled
    if compiled is None:
      compiled = pmapped.lower(*args).compile(compiler_options=options)
    return compiled(*args)

  return call


def replicate(tree: Any, devices: Sequence[jax.Device]) -> Any:
  """Copies every array of `tree` to each of `devices`, stacked on a new leading axis (pmap's layout)."""
  mesh = jax.sharding.Mesh(np.array(devices), ("_replica",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("_replica"))

  def put(x):
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = jax.random.key_data(x)
      return jax.random.wrap_key_data(put(data), impl=jax.random.key_impl(x))
    stacked = np.broadcast_to(np.asarray(x), (len(devices), *np.shape(x)))
    return jax.make_array_from_callback(stacked.shape, sharding, lambda idx: stacked[idx])

  return jax.tree.map(put, tree)


def unreplicate(tree: Any) -> Any:
  """The first replica of a replicated tree, on the host-default device."""
  return jax.tree.map(lambda x: x[0], tree)


def _pmap_devices(devices: Sequence[jax.Device]) -> Sequence[jax.Device] | None:
  """pmap's `devices`: None for all local devices, so that on several hosts the axis spans every host."""
  return None if list(devices) == jax.local_devices() else devices


def make_pmapped_train_step(schedule: optax.Schedule, *, global_batch: int, local_batch: int,
                            steps_per_epoch: int, devices: Sequence[jax.Device]) -> Callable[..., Any]:
  """The compiled step of the trainer: gather this device's slice of the batch, lr = schedule(step), step.

  The returned function takes ``(state, images, labels, perm)``, all replicated across `devices`: images
  and labels are the whole device-resident training set, perm this epoch's permutation. The state is
  donated. It is compiled with `compiler_options` at its first call.
  """

  def step(state, images, labels, perm):
    position = (state.step % steps_per_epoch) * global_batch + lax.axis_index(AXIS) * local_batch
    index = lax.dynamic_slice_in_dim(perm, position, local_batch)
    batch = {"image": jnp.take(images, index, axis=0), "label": jnp.take(labels, index, axis=0)}
    return train_step(state, batch, schedule(state.step))

  return _compiled_with(jax.pmap(step, axis_name=AXIS, donate_argnums=(0,), devices=_pmap_devices(devices)),
                        compiler_options(devices))


def make_pmapped_eval_step(*, local_batch: int, num_examples: int, devices: Sequence[jax.Device]):
  """``(state, images, labels, start) -> {"loss_sum", "correct", "count"}`` summed over all devices."""

  def step(state, images, labels, start):
    offsets = start + lax.axis_index(AXIS) * local_batch + jnp.arange(local_batch)
    mask = offsets < num_examples
    index = jnp.minimum(offsets, num_examples - 1)
    logits = eval_logits(state, jnp.take(images, index, axis=0))
    y = jnp.take(labels, index, axis=0)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    sums = {"loss_sum": jnp.sum(jnp.where(mask, loss, 0.0)),
            "correct": jnp.sum(jnp.where(mask, jnp.argmax(logits, -1) == y, False).astype(jnp.int32)),
            "count": jnp.sum(mask.astype(jnp.int32))}
    return lax.psum(sums, AXIS)

  return _compiled_with(jax.pmap(step, axis_name=AXIS, devices=_pmap_devices(devices)), compiler_options(devices))


def make_pmapped_shuffle(num_examples: int, devices: Sequence[jax.Device]):
  """``(replicated key) -> replicated permutation of range(num_examples)``, computed on the devices."""
  return jax.pmap(lambda key: jax.random.permutation(key, num_examples).astype(jnp.int32),
                  devices=_pmap_devices(devices))


# ----------------------------------------------------------------------------------------------------------
# Metrics, checkpoints, multi-host.

class MetricsWriter:
  """Appends metric rows to ``metrics.jsonl`` and ``metrics.csv`` in the work directory (process 0 only)."""

  def __init__(self, workdir: pathlib.Path, *, enabled: bool = True, keep_until_step: int | None = None):
    """Opens the files; on resume (`keep_until_step`) rows after that step are dropped first, atomically."""
    self.enabled = enabled
    self.jsonl = workdir / METRICS_JSONL
    self.csv = workdir / METRICS_CSV
    if not enabled:
      return
    if keep_until_step is None:
      for path in (self.jsonl, self.csv):
        path.unlink(missing_ok=True)
    else:
      self._truncate(keep_until_step)
    if not self.csv.exists():
      with open(self.csv, "w", newline="") as f:
        csv.DictWriter(f, CSV_FIELDS).writeheader()

  def _truncate(self, step: int) -> None:
    rows = []
    if self.jsonl.exists():
      with open(self.jsonl) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r["step"] <= step]
    for path, text in ((self.jsonl, "".join(json.dumps(r) + "\n" for r in rows)), (self.csv, self._csv_text(rows))):
      tmp = path.with_suffix(path.suffix + ".tmp")
      tmp.write_text(text)
      os.replace(tmp, path)

  @staticmethod
  def _csv_text(rows: list[dict[str, Any]]) -> str:
    import io  # pylint: disable=g-import-not-at-top
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

  def write(self, rows: list[dict[str, Any]]) -> None:
    """Appends `rows` (dicts with at least "step" and "split") and flushes them to disk."""
    if not self.enabled or not rows:
      return
    with open(self.jsonl, "a") as f:
      f.write("".join(json.dumps(r) + "\n" for r in rows))
    with open(self.csv, "a", newline="") as f:
      csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore").writerows(rows)


def check_finite(rows: list[dict[str, Any]]) -> None:
  """Raises FloatingPointError naming the first non-finite metric (and its step); timings are not checked."""
  for row in rows:
    for name, value in row.items():
      if name in ("images_per_sec", "wall_time", "epoch"):
        continue
      if isinstance(value, float) and not math.isfinite(value):
        raise FloatingPointError(f"non-finite {row['split']} metric {name}={value} at step {row['step']}")


def _checkpoint_manager(workdir: pathlib.Path, max_to_keep: int):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def save_checkpoint(manager, state: TrainState) -> None:
  """Writes `state` (unreplicated) as an orbax checkpoint; orbax writes to a temporary name, then renames."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave(state.checkpoint_items()))
  manager.wait_until_finished()


def restore_checkpoint(manager, state: TrainState, step: int | None = None) -> TrainState:
  """`state` with its arrays replaced by those of the checkpoint at `step` (default: the latest)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step() if step is None else step
  items = manager.restore(step, args=ocp.args.StandardRestore(state.checkpoint_items()))
  return state.replace_checkpoint_items(items)


def maybe_initialize_distributed(*, coordinator: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None, enabled: bool | None = None) -> bool:
  """Calls `jax.distributed.initialize` when asked to (or when $CLR_MULTIHOST=1); returns whether it did.

  On TPU pods and SLURM/Open MPI clusters JAX finds the coordinator itself; elsewhere pass the coordinator
  address, the number of processes and this process's id (or set $CLR_COORDINATOR, $CLR_NUM_PROCESSES,
  $CLR_PROCESS_ID). On CPU the cross-process collectives use gloo.
  """
  env = os.environ
  if enabled is None:
    enabled = env.get("CLR_MULTIHOST", "0") not in ("", "0", "false")
  if not enabled:
    return False
  coordinator = coordinator or env.get("CLR_COORDINATOR")
  num_processes = num_processes if num_processes is not None else (int(env["CLR_NUM_PROCESSES"]) if "CLR_NUM_PROCESSES" in env else None)
  process_id = process_id if process_id is not None else (int(env["CLR_PROCESS_ID"]) if "CLR_PROCESS_ID" in env else None)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects the CPU backend
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
  return True


# ----------------------------------------------------------------------------------------------------------
# The run.

@dataclasses.dataclass(frozen=True)
class RunPlan:
  """Step counts of a run, resolved from the config's Durations."""
  global_batch: int
  local_batch: int
  steps_per_epoch: int
  total_steps: int
  eval_every: int
  checkpoint_every: int


def plan_run(config: config_lib.Config, *, num_train: int, num_global_devices: int) -> RunPlan:
  """Resolves the Durations of `config` for a training set of `num_train` images on that many devices."""
  gb = config.train.batch_size
  if gb % num_global_devices:
    raise ValueError(f"train.batch_size must be divisible by the number of devices ({num_global_devices}), got "
                     f"{gb=}")
  if num_train < gb:
    raise ValueError(f"the training set ({num_train} images) is smaller than train.batch_size={gb}")
  spe = num_train // gb
  total = config_lib.resolve_duration(config.train.num_steps, steps_per_epoch=spe, name="train.num_steps")
  if str(config.train.num_steps).strip().endswith("%") or total <= 0:
    raise ValueError(f"train.num_steps must be a positive number of steps or epochs, got {config.train.num_steps=}")
  def every(spec, name):
    n = config_lib.resolve_duration(spec, steps_per_epoch=spe, total_steps=total, name=name)
    return max(n, 1)
  return RunPlan(global_batch=gb, local_batch=gb // num_global_devices, steps_per_epoch=spe, total_steps=total,
                 eval_every=every(config.train.eval_every, "train.eval_every"),
                 checkpoint_every=every(config.train.checkpoint_every, "train.checkpoint_every"))


def load_dataset(config: config_lib.Config):
  """Loads `config.data.dataset` and draws the configured stratified subsets."""
  from experiments import data as data_lib  # pylint: disable=g-import-not-at-top
  kwargs = {"cache_dir": config.data.cache_dir} if config.data.cache_dir else {}
  ds = data_lib.load(config.data.dataset, **kwargs)
  if config.data.train_size is not None or config.data.test_size is not None:
    ds = data_lib.stratified_subset(
        ds, train_size=config.data.train_size if config.data.train_size is not None else len(ds.train_labels),
        test_size=config.data.test_size if config.data.test_size is not None else len(ds.test_labels),
        seed=config.data.subset_seed)
  return ds


def evaluate(p_eval, state_r, test_images_r, test_labels_r, *, num_examples: int, global_batch: int,
             devices: Sequence[jax.Device]) -> dict[str, float]:
  """Test loss and accuracy over the whole (device-resident) test set."""
  totals = None
  for start in range(0, num_examples, global_batch):
    sums = p_eval(state_r, test_images_r, test_labels_r, replicate(np.int32(start), devices))
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(unreplicate(totals))
  count = int(totals["count"])
  return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}


# Fields a resumed run may change: they decide what is logged, evaluated and kept, not what is trained.
RESUMABLE_CHANGES = frozenset({"paper", "data.cache_dir", "train.eval_every", "train.log_every",
                               "train.checkpoint_every", "train.max_checkpoints", "train.eval_batch_size",
                               "train.progress", "train.num_devices"})


def check_resume_config(saved: dict[str, Any], config: config_lib.Config) -> None:
  """Refuses to resume a run under a config that trains differently from the one it started with.

  Args:
    saved: the run's ``config.json``, as a dict.
    config: the config of the resumed run.

  Raises:
    ValueError: naming every field outside `RESUMABLE_CHANGES` whose value differs.
  """
  # Through JSON, so that the new config's tuples compare equal to the saved lists. An image-folder dataset
  # is named by its file: the same archive in another folder (another clone, another machine) is the same data.
  old = config_lib.flat_fields(saved)
  new = config_lib.flat_fields(json.loads(json.dumps(config_lib.to_dict(config))))
  for fields in (old, new):
    if isinstance(fields.get("data.dataset"), str):
      fields["data.dataset"] = pathlib.PurePath(fields["data.dataset"]).name
  changed = sorted(k for k in old.keys() | new.keys()
                   if k not in RESUMABLE_CHANGES and old.get(k, "<missing>") != new.get(k, "<missing>"))
  if changed:
    diffs = ", ".join(f"{k}: {old.get(k, '<missing>')!r} -> {new.get(k, '<missing>')!r}" for k in changed)
    raise ValueError(f"--resume with a config that trains differently from the saved run ({diffs}); resume "
                     "with the run's own settings or start a fresh --workdir")


def train_and_evaluate(config: config_lib.Config, workdir: str | os.PathLike, *, dataset: Any = None,
                       resume: bool = False) -> dict[str, Any]:
  """Trains `config` and evaluates it on the test set; the logic behind the command line.

  Args:
    config: the experiment (see experiments.configs).
    workdir: where metrics (metrics.jsonl, metrics.csv), the config (config.json) and orbax checkpoints
      (checkpoints/) go.
    dataset: an `experiments.data.Dataset` to use instead of loading `config.data.dataset` (a notebook
      may pass one it already holds; subsets of `config.data` are not applied to it).
    resume: continue from the latest checkpoint in `workdir` (a fresh start when there is none).

  Returns:
    A summary: final test loss/accuracy, steps, wall time, the training images/s (excluding the first,
    compiling, step) and the work directory.

  Raises:
    FloatingPointError: a training or evaluation metric became NaN/inf (its name and step are in the
      message); the last checkpoint written before it is kept.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  ds = load_dataset(config) if dataset is None else dataset
  train_images = np.asarray(ds.train_images)
  train_labels = np.asarray(ds.train_labels, np.int32)
  test_images = np.asarray(ds.test_images)
  test_labels = np.asarray(ds.test_labels, np.int32)

  devices = jax.local_devices()
  if config.train.num_devices is not None:
    if not 1 <= config.train.num_devices <= len(devices):
      raise ValueError(f"train.num_devices must be between 1 and the {len(devices)} local devices, got "
                       f"{config.train.num_devices=}")
    if jax.process_count() > 1 and config.train.num_devices != len(devices):
      raise ValueError("train.num_devices must be None (all local devices) on several hosts")
    devices = devices[:config.train.num_devices]
  n_global = len(devices) * jax.process_count()
  plan = plan_run(config, num_train=len(train_labels), num_global_devices=n_global)
  if config.train.eval_batch_size % n_global:
    raise ValueError(f"train.eval_batch_size must be divisible by the {n_global} devices, got "
                     f"{config.train.eval_batch_size=}")
  schedule = build_schedule(config.schedule, steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps)

  mean, std = normalization_constants(config, train_images)
  state = create_train_state(config, num_classes=int(ds.num_classes), mean=mean, std=std,
                             image_shape=train_images.shape[1:], axis_name=AXIS)
  manager = _checkpoint_manager(workdir, config.train.max_checkpoints)
  start_step = 0
  if resume and manager.latest_step() is not None:
    if (workdir / "config.json").exists():
      check_resume_config(json.loads((workdir / "config.json").read_text()), config)
    state = restore_checkpoint(manager, state)
    start_step = int(state.step)
  elif not resume and manager.latest_step() is not None:
    raise FileExistsError(f"{workdir} already holds checkpoints (latest step {manager.latest_step()}); pass "
                          "--resume to continue that run or use a fresh --workdir")
  if is_main:
    tmp = workdir / "config.json.tmp"
    tmp.write_text(json.dumps(config_lib.to_dict(config), indent=2))
    os.replace(tmp, workdir / "config.json")
  writer = MetricsWriter(workdir, enabled=is_main, keep_until_step=start_step if resume else None)

  state_r = replicate(state, devices)
  data_r = replicate((train_images, train_labels, test_images, test_labels), devices)
  p_step = make_pmapped_train_step(schedule, global_batch=plan.global_batch, local_batch=plan.local_batch,
                                   steps_per_epoch=plan.steps_per_epoch, devices=devices)
  p_eval = make_pmapped_eval_step(local_batch=config.train.eval_batch_size // n_global,
                                  num_examples=len(test_labels), devices=devices)
  p_shuffle = make_pmapped_shuffle(len(train_labels), devices)
  shuffle_key = jax.random.fold_in(jax.random.key(config.train.seed), 1)

  pbar = None
  if is_main and config.train.progress:
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    pbar = tqdm(total=plan.total_steps, initial=start_step, desc=config.name, unit="step", dynamic_ncols=True)

  pending: list[tuple[int, dict[str, jax.Array]]] = []
  last_eval: dict[str, float] = {}
  perm_r, perm_epoch = None, -1
  t_start = time.perf_counter()
  t_first = None  # time after the first (compiling) step finished
  images_seen_after_first = 0
  paused = 0.0  # seconds spent evaluating and checkpointing, left out of images/s
  rate = float("nan")

  def flush() -> None:
    nonlocal rate
    if not pending:
      return
    fetched = jax.device_get([m for _, m in pending])
    now = time.perf_counter()
    if t_first is not None and images_seen_after_first:
      rate = images_seen_after_first / max(now - t_first - paused, 1e-9)
    rows = []
    for (s, _), m in zip(pending, fetched):
      row = {"step": s, "epoch": s / plan.steps_per_epoch, "split": "train"}
      row.update({k: float(np.asarray(v)[0]) for k, v in m.items()})
      rows.append(row)
    if math.isfinite(rate):
      rows[-1]["images_per_sec"] = rate
    rows[-1]["wall_time"] = now - t_start
    pending.clear()
    writer.write(rows)
    check_finite(rows)
    if pbar is not None:
      pbar.set_postfix(loss=f"{rows[-1]['loss']:.4f}", lr=f"{rows[-1]['lr']:.3g}", img_s=f"{rate:.0f}",
                       refresh=False)

  try:
    for step in range(start_step, plan.total_steps):
      epoch = step // plan.steps_per_epoch
      if epoch != perm_epoch:
        perm_r = p_shuffle(replicate(jax.random.fold_in(shuffle_key, epoch), devices))
        perm_epoch = epoch
      state_r, metrics = p_step(state_r, data_r[0], data_r[1], perm_r)
      done = step + 1
      pending.append((done, metrics))
      if t_first is None:
        jax.block_until_ready(metrics)
        t_first = time.perf_counter()
      else:
        images_seen_after_first += plan.global_batch
      is_last = done == plan.total_steps
      do_eval = done % plan.eval_every == 0 or is_last
      do_ckpt = done % plan.checkpoint_every == 0 or is_last
      if done % config.train.log_every == 0 or do_eval or do_ckpt:
        flush()
      t_pause = time.perf_counter()
      if do_eval:
        last_eval = evaluate(p_eval, state_r, data_r[2], data_r[3], num_examples=len(test_labels),
                             global_batch=config.train.eval_batch_size, devices=devices)
        row = {"step": done, "epoch": done / plan.steps_per_epoch, "split": "test", **last_eval,
               "wall_time": time.perf_counter() - t_start}
        writer.write([row])
        check_finite([row])
        if pbar is not None:
          pbar.write(f"step {done}: test accuracy {last_eval['accuracy']:.4f}, loss {last_eval['loss']:.4f}")
      if do_ckpt:
        save_checkpoint(manager, unreplicate(state_r))
        if is_main:
          print(f"checkpoint saved at step {done}", file=sys.stderr, flush=True)
      if do_eval or do_ckpt:
        paused += time.perf_counter() - t_pause
      if pbar is not None:
        pbar.update(1)
  except FloatingPointError as e:
    latest = manager.latest_step()
    where = f"the last good checkpoint is step {latest} in {workdir / 'checkpoints'}" if latest is not None else \
        "no checkpoint had been written yet"
    raise FloatingPointError(f"{e}; stopped, {where}") from None
  finally:
    if pbar is not None:
      pbar.close()
    manager.close()

  final_state = unreplicate(state_r)
  return {"config": config.name, "steps": plan.total_steps, "test_accuracy": last_eval.get("accuracy"),
          "test_loss": last_eval.get("loss"), "train_images_per_sec": rate,
          "wall_time": time.perf_counter() - t_start, "workdir": str(workdir), "state": final_state}


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
  parser.add_argument("--data", help="dataset spec: cifar10, cifar100, or an image-folder dir/archive "
                      "(sets data.dataset)")
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
  maybe_initialize_distributed(coordinator=args.coordinator, num_processes=args.num_processes,
                               process_id=args.process_id, enabled=args.multihost)
  config = config_lib.override(config_lib.get_config(args.config), overrides)
  summary = train_and_evaluate(config, args.workdir, resume=args.resume)
  summary.pop("state")
  if jax.process_index() == 0:
    print(json.dumps(summary))
  return summary


if __name__ == "__main__":
  main()
