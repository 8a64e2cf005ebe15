"""The data-parallel machinery: XLA compiler options, replication across devices, the pmapped programs of a
run (for the device-resident dataset: one step, or several per call, evaluation, shuffle; for fed batches: one
step, evaluation), the default steps per call and multi-host initialisation.

The programs are compiled with `compiler_options` (`Program`); the pmap axis is `AXIS`
(`TrainState.axis_name` of a replicated state).
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

# The library's rule for "this step has a convolution", the one `clr_optax.range_test` picks its CPU path by
# (its private module of XLA:CPU workarounds).
from clr_optax._xla_cpu import contains_convolution  # pylint: disable=protected-access

from experiments import augment
from experiments.step import eval_logits
from experiments.step import train_step

AXIS = "batch"

# XLA:CPU (jaxlib 0.10) hands convolutions to YNNPACK by default, slower than XLA's own (Eigen) convolutions
# for this project's convnets (`python -m experiments.benchmarks.train_speed --variants ynnpack_convs`
# times the step with them); this option keeps YNNPACK for dots only.
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


class Program:
  """A pmapped function compiled ahead of time with XLA compiler options (``jax.pmap`` takes none; its
  ``lower(...).compile(...)`` does), at `compile` or at its first call; later calls must pass arguments of
  the same shapes.

  With several processes the pmapped function is called as it is (compiled by jax at its first call, with
  XLA's default options): jax 0.10's compiled pmap expects the global arrays there and rejects each
  process's local ones.
  """

  def __init__(self, pmapped: Callable[..., Any], options: dict[str, str] | None):
    self.pmapped, self.options, self.compiled = pmapped, options, None

  def compile(self, *args: Any) -> None:
    """Compiles the program for arguments like `args` (nothing is run; a second call does nothing)."""
    if self.compiled is None and jax.process_count() == 1:
      self.compiled = self.pmapped.lower(*args).compile(compiler_options=self.options)

  def __call__(self, *args: Any) -> Any:
    self.compile(*args)
    return (self.pmapped if self.compiled is None else self.compiled)(*args)


def pmap_compiled(fn: Callable[..., Any], devices: Sequence[jax.Device], *,
                  donate_argnums: tuple[int, ...] = ()) -> Program:
  """`fn` pmapped over `devices` on the axis `AXIS`, compiled with `compiler_options` (a `Program`)."""
  pmapped = jax.pmap(fn, axis_name=AXIS, donate_argnums=donate_argnums, devices=_pmap_devices(devices))
  return Program(pmapped, compiler_options(devices))


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


def gathered_train_step(schedule: optax.Schedule, *, global_batch: int, local_batch: int,
                        steps_per_epoch: int) -> Callable[..., Any]:
  """``(state, images, labels, perm) -> (state, metrics)``, inside pmap: this device's slice of the batch at
  ``state.step`` in this epoch's permutation `perm` of the device-resident training set, gathered, and one
  `train_step` at ``lr = schedule(state.step)``."""

  def step(state, images, labels, perm):
    position = (state.step % steps_per_epoch) * global_batch + lax.axis_index(AXIS) * local_batch
    index = lax.dynamic_slice_in_dim(perm, position, local_batch)
    batch = {"image": jnp.take(images, index, axis=0), "label": jnp.take(labels, index, axis=0)}
    return train_step(state, batch, schedule(state.step))

  return step


def make_pmapped_train_step(schedule: optax.Schedule, *, global_batch: int, local_batch: int,
                            steps_per_epoch: int, devices: Sequence[jax.Device]) -> Program:
  """The compiled step of the trainer: gather this device's slice of the batch, lr = schedule(step), step.

  The returned function takes ``(state, images, labels, perm)``, all replicated across `devices`: images
  and labels are the whole device-resident training set, perm this epoch's permutation. The state is
  donated. It is compiled with `compiler_options` (a `Program`).
  """
  step = gathered_train_step(schedule, global_batch=global_batch, local_batch=local_batch,
                             steps_per_epoch=steps_per_epoch)
  return pmap_compiled(step, devices, donate_argnums=(0,))


def make_pmapped_batch_train_step(schedule: optax.Schedule, *, devices: Sequence[jax.Device]) -> Program:
  """The compiled step of a streamed run: lr = schedule(step), one step on the batch the host fed.

  The returned function takes ``(state, batch)``: the state replicated across `devices`, the batch
  (``{"image", "label"}``) split over them along its leading axis (`experiments.imagenet.prefetch_to_device`).
  The state is donated. It is compiled with `compiler_options` (a `Program`). One step per call: the host
  feeds every batch.
  """

  def step(state, batch):
    return train_step(state, batch, schedule(state.step))

  return pmap_compiled(step, devices, donate_argnums=(0,))


def permutation(key: jax.Array, num_examples: int) -> jax.Array:
  """The permutation of ``range(num_examples)`` (int32) of the epoch whose key is `key`."""
  return augment.epoch_permutation(key, num_examples).astype(jnp.int32)


def scan_steps(step: Callable[[Any, jax.Array], tuple[Any, Any]], shuffle: Callable[[jax.Array], jax.Array], *,
               length: int, steps_per_epoch: int) -> Callable[..., Any]:
  """`length` training steps as one program, drawing each new epoch's permutation on the way.

  Args:
    step: ``(state, perm) -> (state, metrics)``, one step on this epoch's permutation `perm`.
    shuffle: ``epoch -> perm``, the permutation of an epoch (an int32 scalar).
    length: steps per call: a `lax.scan` of `step`, or straight-line code for one step.
    steps_per_epoch: the epoch's length: when the step count reaches a multiple of it, `perm` becomes the
      next epoch's (a `lax.cond`, so the shuffle runs once per epoch).

  Returns:
    ``(state, perm, count) -> (state, perm, metrics)``: `count` is the steps taken so far (the state's
    step, shared by every run of a vmapped state), `perm` the permutation of its epoch, and every metric
    gains a leading axis of `length` steps.
  """

  def body(carry, _):
    state, perm, count = carry
    state, metrics = step(state, perm)
    count = count + 1
    perm = lax.cond(count % steps_per_epoch == 0, lambda: shuffle(count // steps_per_epoch), lambda: perm)
    return (state, perm, count), metrics

  def run(state, perm, count):
    if length == 1:  # no loop: on XLA:CPU a loop body loses the convolutions' fast path
      (state, perm, _), metrics = body((state, perm, count), None)
      return state, perm, jax.tree.map(lambda m: m[None], metrics)
    (state, perm, _), metrics = lax.scan(body, (state, perm, count), length=length)
    return state, perm, metrics

  return run


def make_pmapped_train_steps(schedule: optax.Schedule, *, global_batch: int, local_batch: int, steps_per_epoch: int,
                             num_examples: int, length: int, devices: Sequence[jax.Device]) -> Program:
  """`length` steps of `make_pmapped_train_step`'s step in one compiled call (`scan_steps`).

  The returned function takes ``(state, images, labels, perm, shuffle_key)``, all replicated across
  `devices`: perm is the permutation of the epoch of the next step, shuffle_key the key an epoch's is drawn
  from (``jax.random.fold_in(shuffle_key, epoch)``, as `make_pmapped_shuffle`'s). It returns
  ``(state, perm, metrics)``, perm that of the epoch of the step after the call and each metric of shape
  ``[devices, length]``. The state is donated.
  """
  one = gathered_train_step(schedule, global_batch=global_batch, local_batch=local_batch,
                            steps_per_epoch=steps_per_epoch)

  def steps(state, images, labels, perm, shuffle_key):
    run = scan_steps(lambda s, p: one(s, images, labels, p),
                     lambda epoch: permutation(jax.random.fold_in(shuffle_key, epoch), num_examples),
                     length=length, steps_per_epoch=steps_per_epoch)
    return run(state, perm, state.step)

  return pmap_compiled(steps, devices, donate_argnums=(0,))


# Steps per compiled call where `default_steps_per_call` does not keep one: the default log interval and a
# tenth of the default evaluation interval (1,000 steps), so that calls need not be shortened there.
ACCELERATOR_STEPS_PER_CALL = 100


def default_steps_per_call(state: Any, image_shape: Sequence[int], platform: str) -> int:
  """``train.steps_per_call`` when the config leaves it None: `ACCELERATOR_STEPS_PER_CALL`, except 1 on
  XLA:CPU (``platform="cpu"``) for a network with convolutions, whose gradients lose their fast path inside
  XLA:CPU's loops (an order of magnitude slower per step; `clr_optax.range_test` documents the same trap).

  Args:
    state: the run's `TrainState` (its network is traced, in inference mode, to look for convolutions).
    image_shape: (H, W, C) of the training images.
    platform: the devices' platform (``jax.Device.platform``).
  """
  if platform != "cpu":
    return ACCELERATOR_STEPS_PER_CALL
  images = jax.ShapeDtypeStruct((1, *image_shape), jnp.uint8)
  return 1 if contains_convolution(eval_logits, state, images) else ACCELERATOR_STEPS_PER_CALL


def _eval_sums(state, images, labels, mask):
  """``{"loss_sum", "correct", "count"}`` of the examples where `mask` holds, summed over all devices."""
  logits = eval_logits(state, images)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  sums = {"loss_sum": jnp.sum(jnp.where(mask, loss, 0.0)),
          "correct": jnp.sum(jnp.where(mask, jnp.argmax(logits, -1) == labels, False).astype(jnp.int32)),
          "count": jnp.sum(mask.astype(jnp.int32))}
  return lax.psum(sums, AXIS)


def make_pmapped_eval_step(*, local_batch: int, num_examples: int, devices: Sequence[jax.Device],
                           several_runs: bool = False) -> Program:
  """``(state, images, labels, start) -> {"loss_sum", "correct", "count"}`` summed over all devices.

  With `several_runs` the state holds several runs stacked on a leading axis (`experiments.multirun`), each
  evaluated on the same images, and every sum gains that axis.
  """

  def step(state, images, labels, start):
    offsets = start + lax.axis_index(AXIS) * local_batch + jnp.arange(local_batch)
    index = jnp.minimum(offsets, num_examples - 1)
    return _eval_sums(state, jnp.take(images, index, axis=0), jnp.take(labels, index, axis=0),
                      offsets < num_examples)

  return pmap_compiled(jax.vmap(step, in_axes=(0, None, None, None)) if several_runs else step, devices)


def make_pmapped_batch_eval_step(*, devices: Sequence[jax.Device]) -> Program:
  """``(state, batch) -> {"loss_sum", "correct", "count"}`` over a fed batch's examples where its ``"mask"``
  holds, summed over all devices (`make_pmapped_batch_train_step`'s layout)."""

  def step(state, batch):
    return _eval_sums(state, batch["image"], batch["label"], batch["mask"])

  return pmap_compiled(step, devices)


def make_pmapped_shuffle(num_examples: int, devices: Sequence[jax.Device], *, several_runs: bool = False):
  """``(replicated key) -> replicated permutation of range(num_examples)``, computed on the devices; with
  `several_runs`, keys and permutations stacked over the runs."""
  shuffle = lambda key: permutation(key, num_examples)  # noqa: E731
  return jax.pmap(jax.vmap(shuffle) if several_runs else shuffle, devices=_pmap_devices(devices))


def summed_evaluation(sums: Iterable[Any]) -> dict[str, Any]:
  """Loss and accuracy from the per-batch sums of an evaluation program (replicated), added up: floats, or for
  several runs (`make_pmapped_eval_step`'s `several_runs`) arrays over the runs."""
  totals = None
  for batch_sums in sums:
    totals = batch_sums if totals is None else jax.tree.map(jnp.add, totals, batch_sums)
  totals = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(unreplicate(totals)))
  out = {"loss": totals["loss_sum"] / totals["count"], "accuracy": totals["correct"] / totals["count"]}
  return {k: float(v) if v.ndim == 0 else v for k, v in out.items()}


def evaluate(p_eval, state_r, test_images_r, test_labels_r, *, num_examples: int, global_batch: int,
             devices: Sequence[jax.Device]) -> dict[str, Any]:
  """Test loss and accuracy over the whole (device-resident) test set, with `make_pmapped_eval_step`'s program
  (`summed_evaluation`: floats, or for several runs arrays over the runs)."""
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
