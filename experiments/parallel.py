"""The data-parallel machinery: XLA compiler options, replication across devices, the pmapped programs of a
run (step, evaluation, shuffle; for the device-resident dataset and for fed batches) and multi-host
initialisation.

The programs are compiled with `compiler_options`; the pmap axis is `AXIS` (`TrainState.axis_name` of a
replicated state).
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments import data as data_lib
from experiments.step import eval_logits
from experiments.step import train_step

AXIS = "batch"

# XLA:CPU (jaxlib 0.10) hands convolutions to YNNPACK by default. On a 2-core x86 CPU the cifar10_full
# training step made 632-804 images/s with XLA's own (Eigen) convolutions against 406 with YNNPACK's
# (experiments/benchmarks/README.md; `python -m experiments.benchmarks.train_speed --variants ynnpack_convs`
# times the step without them); this option keeps YNNPACK for dots only.
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


def make_pmapped_batch_train_step(schedule: optax.Schedule, *, devices: Sequence[jax.Device]) -> Callable[..., Any]:
  """The compiled step of a streamed run: lr = schedule(step), one step on the batch the host fed.

  The returned function takes ``(state, batch)``: the state replicated across `devices`, the batch
  (``{"image", "label"}``) split over them along its leading axis (`experiments.imagenet.prefetch_to_device`).
  The state is donated. It is compiled with `compiler_options` at its first call.
  """

  def step(state, batch):
    return train_step(state, batch, schedule(state.step))

  return _compiled_with(jax.pmap(step, axis_name=AXIS, donate_argnums=(0,), devices=_pmap_devices(devices)),
                        compiler_options(devices))


def _eval_sums(state, images, labels, mask):
  """``{"loss_sum", "correct", "count"}`` of the examples where `mask` holds, summed over all devices."""
  logits = eval_logits(state, images)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  sums = {"loss_sum": jnp.sum(jnp.where(mask, loss, 0.0)),
          "correct": jnp.sum(jnp.where(mask, jnp.argmax(logits, -1) == labels, False).astype(jnp.int32)),
          "count": jnp.sum(mask.astype(jnp.int32))}
  return lax.psum(sums, AXIS)


def make_pmapped_eval_step(*, local_batch: int, num_examples: int, devices: Sequence[jax.Device]):
  """``(state, images, labels, start) -> {"loss_sum", "correct", "count"}`` summed over all devices."""

  def step(state, images, labels, start):
    offsets = start + lax.axis_index(AXIS) * local_batch + jnp.arange(local_batch)
    index = jnp.minimum(offsets, num_examples - 1)
    return _eval_sums(state, jnp.take(images, index, axis=0), jnp.take(labels, index, axis=0),
                      offsets < num_examples)

  return _compiled_with(jax.pmap(step, axis_name=AXIS, devices=_pmap_devices(devices)), compiler_options(devices))


def make_pmapped_batch_eval_step(*, devices: Sequence[jax.Device]):
  """``(state, batch) -> {"loss_sum", "correct", "count"}`` over a fed batch's examples where its ``"mask"``
  holds, summed over all devices (`make_pmapped_batch_train_step`'s layout)."""

  def step(state, batch):
    return _eval_sums(state, batch["image"], batch["label"], batch["mask"])

  return _compiled_with(jax.pmap(step, axis_name=AXIS, devices=_pmap_devices(devices)), compiler_options(devices))


def make_pmapped_shuffle(num_examples: int, devices: Sequence[jax.Device]):
  """``(replicated key) -> replicated permutation of range(num_examples)``, computed on the devices."""
  return jax.pmap(lambda key: data_lib.epoch_permutation(key, num_examples).astype(jnp.int32),
                  devices=_pmap_devices(devices))


def summed_evaluation(sums: Iterable[Any]) -> dict[str, float]:
  """Loss and accuracy from the per-batch sums of an evaluation program (replicated), added up."""
  totals = None
  for batch_sums in sums:
    totals = batch_sums if totals is None else jax.tree.map(jnp.add, totals, batch_sums)
  totals = jax.device_get(unreplicate(totals))
  count = int(totals["count"])
  return {"loss": float(totals["loss_sum"]) / count, "accuracy": float(totals["correct"]) / count}


def evaluate(p_eval, state_r, test_images_r, test_labels_r, *, num_examples: int, global_batch: int,
             devices: Sequence[jax.Device]) -> dict[str, float]:
  """Test loss and accuracy over the whole (device-resident) test set, with `make_pmapped_eval_step`'s program."""
  return summed_evaluation(p_eval(state_r, test_images_r, test_labels_r, replicate(np.int32(start), devices))
                           for start in range(0, num_examples, global_batch))


def run_devices(num_devices: int | None) -> list[jax.Device]:
  """The local devices a run uses: the first `num_devices` (``train.num_devices``), or all of them (None).

  Raises:
    ValueError: `num_devices` is not between 1 and the local devices, or is set on several hosts.
  """
  devices = jax.local_devices()
  if num_devices is None:
    return devices
  if not 1 <= num_devices <= len(devices):
    raise ValueError(f"train.num_devices must be between 1 and the {len(devices)} local devices, got "
                     f"train.num_devices={num_devices}")
  if jax.process_count() > 1 and num_devices != len(devices):
    raise ValueError("train.num_devices must be None (all local devices) on several hosts")
  return devices[:num_devices]


def _env_int(name: str) -> int | None:
  return int(os.environ[name]) if name in os.environ else None


def maybe_initialize_distributed(*, coordinator: str | None = None, num_processes: int | None = None,
                                 process_id: int | None = None, enabled: bool | None = None) -> bool:
  """Calls `jax.distributed.initialize` when asked to (or when $CLR_MULTIHOST=1); returns whether it did.

  On TPU pods and SLURM/Open MPI clusters JAX finds the coordinator itself; elsewhere pass the coordinator
  address, the number of processes and this process's id (or set $CLR_COORDINATOR, $CLR_NUM_PROCESSES,
  $CLR_PROCESS_ID). On CPU the cross-process collectives use gloo.
  """
  if enabled is None:
    enabled = os.environ.get("CLR_MULTIHOST", "0") not in ("", "0", "false")
  if not enabled:
    return False
  coordinator = coordinator or os.environ.get("CLR_COORDINATOR")
  num_processes = num_processes if num_processes is not None else _env_int("CLR_NUM_PROCESSES")
  process_id = process_id if process_id is not None else _env_int("CLR_PROCESS_ID")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects the CPU backend
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
  return True
