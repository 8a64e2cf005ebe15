"""Where a run's batches come from: the dataset held on the devices (CIFAR) or a stream from the host (ImageNet).

`open_data(config)` is the one place the trainer chooses: ``data.crop_size`` set means the ImageNet stream of
`experiments.imagenet` (`StreamData`), None the whole dataset as uint8 on the devices (`DeviceData`,
`experiments.data`). Both tell the trainer the same things (``num_train``, ``num_classes``, ``image_shape``,
the normalisation constants of the `TrainState`) and give it a feeder (`DeviceFeeder`, `StreamFeeder`) that
supplies each compiled call's device arguments to its program and evaluates the state on the test or
validation set. A call takes ``length`` steps (`experiments.train.plan_calls` cuts the run into calls of at
most ``feeder.steps_per_call`` steps):

  feeder = data.feeder(config, plan, schedule, devices, state=state)
  args = feeder.train_args(start_step)
  feeder.compile(state_r, lengths, *first_args)                   # every call's program, before the first
  state_r, metrics = feeder.step(state_r, length, *next(args))    # once per call; metrics [devices, length]
  feeder.evaluate(state_r)                                        # {"loss", "accuracy"}

`experiments.train.Loop` makes these calls; `experiments.multirun` gives it a `DeviceFeeder` of several runs
(``stacked``: their states stacked on a leading axis, each metric ``[devices, length, runs]`` and each
evaluation an array over the runs).

The CIFAR feeder passes the device-resident training set and the epoch's permutation (drawn on the devices
once per epoch), the step gathers its batch; with ``train.steps_per_call`` N > 1 a call is N steps of one
program (`experiments.parallel.make_pmapped_train_steps`), which draws the next epoch's permutation itself.
The ImageNet feeder passes the host's batches, decoded by grain workers and put on the devices ahead of the
step, one step per call (the host feeds every batch; ``train.steps_per_call`` must be None or 1). Batch ``k``
of the stream is a function of the seed, the host and ``k`` (`experiments.imagenet.batches`), so a run resumed
at step ``s`` trains on the batches an uninterrupted run trains on from ``s``, as the CIFAR path's per-epoch
permutations do.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
from typing import Any, Iterable, Iterator, Sequence

import jax
import numpy as np
import optax

from experiments import configs as config_lib
from experiments import data as data_lib
from experiments import imagenet
from experiments import imagenet_sources
from experiments import parallel
from experiments import rundir
from experiments import setup

# The mean image of a streamed run's training images (AlexNet's data.normalization "mean_image"), kept in its
# work directory so that a resumed run subtracts the same one without another pass over the images.
MEAN_IMAGE = "mean_image.npy"
# What the stream accepts of data.normalization: Caffe's two (the channel statistics need the images on hand).
STREAM_NORMALIZATIONS = ("mean_image", "mean_value")


def is_streamed(config: config_lib.Config) -> bool:
  """Whether `config` trains on the ImageNet stream (``data.crop_size`` set) rather than on device-resident data."""
  return config.data.crop_size is not None


def shuffle_key(seed: int) -> jax.Array:
  """The key of a run's per-epoch shuffles (epoch ``e`` folds ``e`` into it), apart from its initialisation's."""
  return jax.random.fold_in(jax.random.key(seed), 1)


@dataclasses.dataclass(frozen=True)
class DeviceData:
  """A dataset held whole on the devices (`experiments.data.Dataset`, CIFAR) and its normalisation.

  Attributes:
    dataset: the training and test images and labels (uint8), subsets drawn (`experiments.setup.load_data`).
    mean, std: the `TrainState`'s normalisation constants (`experiments.setup.normalization_constants`).
  """
  dataset: data_lib.Dataset
  mean: np.ndarray
  std: np.ndarray

  @property
  def num_train(self) -> int:
    return len(self.dataset.train_labels)

  @property
  def num_test(self) -> int:
    return len(self.dataset.test_labels)

  @property
  def num_classes(self) -> int:
    return int(self.dataset.num_classes)

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(np.shape(self.dataset.train_images)[1:])

  def steps_per_call(self, config: config_lib.Config, state: Any, platform: str) -> int:
    """``train.steps_per_call``, or where it is None `experiments.parallel.default_steps_per_call` for the
    network of `state` on devices of `platform`."""
    return config.train.steps_per_call or parallel.default_steps_per_call(state, self.image_shape, platform)

  def replicated(self, devices: Sequence[jax.Device]) -> tuple[jax.Array, ...]:
    """``(train images, train labels, test images, test labels)`` replicated across `devices` (int32 labels)."""
    ds = self.dataset
    return parallel.replicate((np.asarray(ds.train_images), np.asarray(ds.train_labels, np.int32),
                               np.asarray(ds.test_images), np.asarray(ds.test_labels, np.int32)), devices)

  def feeder(self, config: config_lib.Config, plan: Any, schedule: optax.Schedule, devices: Sequence[jax.Device], *,
             state: Any) -> DeviceFeeder:
    """The run's feeder (`plan`: its `experiments.train.RunPlan`; `state`: its `TrainState`, whose network
    decides the default steps per call)."""
    return DeviceFeeder(self, config, plan, schedule, devices,
                        steps_per_call=self.steps_per_call(config, state, devices[0].platform))


class DeviceFeeder:
  """The CIFAR path: the whole dataset replicated on the devices, shuffled per epoch on the devices, each
  step's batch gathered inside the compiled call; ``steps_per_call`` steps per call.

  With one step per call the program is the plain step (`experiments.parallel.make_pmapped_train_step`) and
  the feeder draws each epoch's permutation (on the devices) before the epoch's first step. With more, a call
  of ``length`` steps is `experiments.parallel.make_pmapped_train_steps`'s program, which returns the
  permutation of the epoch of the step after it (drawn inside the call where an epoch ends); the next call's
  arguments carry that one. A program per call length, built at `compile` or at its first call.

  A subclass with ``stacked`` true (`experiments.multirun`) trains runs stacked on a leading axis: its
  evaluations and shuffles are vmapped over them, and every call, one step long too, is a scanned program.
  """

  stacked = False  # the state holds one run

  def __init__(self, data: DeviceData, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
               devices: Sequence[jax.Device], *, steps_per_call: int):
    self.devices, self.plan, self.schedule, self.steps_per_call = devices, plan, schedule, steps_per_call
    self.num_train, self.num_test, self.eval_batch = data.num_train, data.num_test, config.train.eval_batch_size
    self.images_r, self.labels_r, self.test_images_r, self.test_labels_r = data.replicated(devices)
    n_global = len(devices) * jax.process_count()
    self.programs: dict[int, parallel.Program] = {}  # steps per call -> its program
    self.scans = self.stacked or steps_per_call > 1  # calls draw the next epoch's permutation themselves
    self.p_eval = parallel.make_pmapped_eval_step(local_batch=self.eval_batch // n_global,
                                                  num_examples=self.num_test, devices=devices,
                                                  several_runs=self.stacked)
    self.p_eval_train = (parallel.make_pmapped_eval_step(local_batch=self.eval_batch // n_global,
                                                         num_examples=self.num_train, devices=devices)
                         if config.train.eval_train else None)
    self.p_shuffle = parallel.make_pmapped_shuffle(self.num_train, devices, several_runs=self.stacked)
    self.shuffle_key = shuffle_key(config.train.seed)
    self.shuffle_key_r = parallel.replicate(self.shuffle_key, devices)
    self.perm_r = None  # the permutation of the epoch of the next step

  def _permutation(self, epoch: int) -> jax.Array:
    fold_in = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if self.stacked else jax.random.fold_in
    return self.p_shuffle(parallel.replicate(fold_in(self.shuffle_key, epoch), self.devices))

  def _program(self, length: int) -> parallel.Program:
    if length not in self.programs:
      kw = dict(global_batch=self.plan.global_batch, local_batch=self.plan.local_batch,
                steps_per_epoch=self.plan.steps_per_epoch, devices=self.devices)
      self.programs[length] = (
          parallel.make_pmapped_train_step(self.schedule, **kw) if not self.scans else
          parallel.make_pmapped_train_steps(self.schedule, num_examples=self.num_train, length=length, **kw))
    return self.programs[length]

  def train_args(self, start_step: int) -> Iterator[tuple[Any, ...]]:
    """The arguments of every call from `start_step` on, one per call and read as it is taken (after the
    previous call): ``(images, labels, perm)`` with one (unscanned) step per call, perm the permutation of
    the step's epoch; else ``(images, labels, perm, shuffle_key)``, perm the one the previous call returned."""
    spe = self.plan.steps_per_epoch
    self.perm_r = self._permutation(start_step // spe)
    if self.scans:
      while True:
        yield self.images_r, self.labels_r, self.perm_r, self.shuffle_key_r
    for step in itertools.count(start_step):
      if step % spe == 0 and step != start_step:
        self.perm_r = self._permutation(step // spe)
      yield self.images_r, self.labels_r, self.perm_r

  def compile(self, state_r, lengths: Iterable[int], *args: Any) -> None:
    """Compiles the program of every call length of `lengths` for a call with `args` (nothing is run)."""
    for length in sorted(set(lengths)):
      self._program(length).compile(state_r, *args)

  def step(self, state_r, length: int, *args: Any) -> tuple[Any, Any]:
    """One call of `length` steps (`args`: the call's from `train_args`): ``(state_r, metrics)``, each metric
    ``[devices]`` with one (unscanned) step per call, else ``[devices, length]`` (stacked: ``[devices, length,
    runs]``). The state is donated."""
    if not self.scans:
      return self._program(1)(state_r, *args)
    state_r, self.perm_r, metrics = self._program(length)(state_r, *args)
    return state_r, metrics

  def evaluate(self, state_r) -> dict[str, float]:
    """Loss and accuracy over the whole device-resident test set (stacked: arrays over the runs)."""
    return parallel.evaluate(self.p_eval, state_r, self.test_images_r, self.test_labels_r,
                             num_examples=self.num_test, global_batch=self.eval_batch, devices=self.devices)

  def evaluate_train(self, state_r) -> dict[str, float]:
    """Loss and accuracy over the whole device-resident training set (``train.eval_train``)."""
    return parallel.evaluate(self.p_eval_train, state_r, self.images_r, self.labels_r,
                             num_examples=self.num_train, global_batch=self.eval_batch, devices=self.devices)


@dataclasses.dataclass(frozen=True)
class StreamData:
  """The ImageNet training and validation sources, streamed from the host (`experiments.imagenet`).

  Attributes:
    train, val: the sources (`experiments.imagenet_sources.open_source`).
    crop_size: the side of the crops the model sees.
    host_mean: the mean the stream subtracts on the host (AlexNet: Caffe's mean image), or None (uint8
      batches; GoogLeNet's per-channel mean_value is subtracted in the step).
    mean, std: the `TrainState`'s normalisation constants (zero mean and unit std when the stream
      subtracts the mean image).
  """
  train: Sequence[dict[str, Any]]
  val: Sequence[dict[str, Any]]
  crop_size: int
  host_mean: np.ndarray | None
  mean: np.ndarray
  std: np.ndarray

  @property
  def num_train(self) -> int:
    return len(self.train)

  @property
  def num_classes(self) -> int:
    return len(self.train.class_names)

  @property
  def image_shape(self) -> tuple[int, ...]:
    return (self.crop_size, self.crop_size, 3)

  def feeder(self, config: config_lib.Config, plan: Any, schedule: optax.Schedule, devices: Sequence[jax.Device], *,
             state: Any) -> StreamFeeder:
    """The run's feeder (`plan`: its `experiments.train.RunPlan`; `state` is not needed: one step per call)."""
    del state
    return StreamFeeder(self, config, plan, schedule, devices)


def _workers(config: config_lib.Config) -> int:
  """``data.workers``, None meaning one grain worker process per CPU core of this host."""
  return (os.cpu_count() or 1) if config.data.workers is None else config.data.workers


class StreamFeeder:
  """The ImageNet path: this host's batches (its shard of the records, ``global batch / process_count``
  images a step) decoded by grain workers, put on the devices two steps ahead, fed to
  `experiments.parallel.make_pmapped_batch_train_step`'s program one step per call (the host feeds each
  step's batch, so there is nothing to scan over on the device); evaluation over this host's shard of the
  validation images, padding masked."""

  steps_per_call = 1
  stacked = False  # the state holds one run

  def __init__(self, data: StreamData, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
               devices: Sequence[jax.Device]):
    self.data, self.devices, self.total_steps = data, devices, plan.total_steps
    self.seed, self.workers = config.train.seed, _workers(config)
    self.train_batch = plan.global_batch // jax.process_count()
    self.eval_batch = config.train.eval_batch_size // jax.process_count()
    self.p_step = parallel.make_pmapped_batch_train_step(schedule, devices=devices)
    self.p_eval = parallel.make_pmapped_batch_eval_step(devices=devices)

  def train_args(self, start_step: int) -> Iterator[tuple[Any, ...]]:
    """``(batch,)`` of every step from `start_step` to the end of the run: the stream's batches from
    `start_step` on, the same as an uninterrupted run's. Dropping the iterator stops its grain workers."""
    stream = imagenet.batches(self.data.train, batch_size=self.train_batch, crop_size=self.data.crop_size,
                              train=True, seed=self.seed, mean=self.data.host_mean, start=start_step,
                              stop=self.total_steps, worker_count=self.workers)
    return ((batch,) for batch in imagenet.prefetch_to_device(stream, devices=self.devices))

  def compile(self, state_r, lengths: Iterable[int], batch: dict[str, Any]) -> None:
    """Compiles the step for batches like `batch` (`lengths`: only 1; nothing is run)."""
    assert set(lengths) <= {1}, lengths
    self.p_step.compile(state_r, batch)

  def step(self, state_r, length: int, batch: dict[str, Any]) -> tuple[Any, Any]:
    """One step on `batch` (`length` is 1): ``(state_r, metrics)``, each metric ``[devices]``; the state is
    donated."""
    assert length == 1, length
    return self.p_step(state_r, batch)

  def evaluate(self, state_r) -> dict[str, float]:
    """Loss and accuracy over every validation image once (each host its shard; padding masked)."""
    stream = imagenet.batches(self.data.val, batch_size=self.eval_batch, crop_size=self.data.crop_size,
                              train=False, mean=self.data.host_mean, worker_count=self.workers)
    return parallel.summed_evaluation(self.p_eval(state_r, batch)
                                      for batch in imagenet.prefetch_to_device(stream, devices=self.devices))


def _stream_mean(config: config_lib.Config, train: Sequence[dict[str, Any]], workdir: pathlib.Path,
                 reuse: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
  """``(host_mean, mean, std)`` of a streamed run (`StreamData`)."""
  if config.data.normalization == "mean_value":
    return (None, *setup.mean_value(config.data))
  path = workdir / MEAN_IMAGE
  if reuse and path.exists():
    host_mean = np.load(path)
  else:
    host_mean = imagenet.mean_image(train, worker_count=_workers(config),
                                    progress=config.train.progress and jax.process_index() == 0)
    if jax.process_index() == 0:
      with rundir.atomic_path(path) as tmp:
        np.save(tmp, host_mean)
  return host_mean, np.zeros((3,), np.float32), np.ones((3,), np.float32)


def _open_stream(config: config_lib.Config, workdir: pathlib.Path, reuse: bool) -> StreamData:
  data = config.data
  if data.normalization not in STREAM_NORMALIZATIONS:
    raise ValueError(f"the ImageNet stream (data.crop_size set) normalises with one of {STREAM_NORMALIZATIONS} "
                     f"(Caffe's mean_file or mean_value), got {data.normalization=}")
  if data.augment:
    raise ValueError("data.augment is the CIFAR pad-and-crop inside the step; the ImageNet stream crops and "
                     "mirrors on the host as Caffe does: set data.augment=false")
  if data.train_size is not None or data.test_size is not None:
    raise ValueError("data.train_size and data.test_size draw subsets of a dataset held on the device; the "
                     f"ImageNet stream reads every image, got {data.train_size=}, {data.test_size=}")
  if config.train.steps_per_call not in (None, 1):
    raise ValueError("train.steps_per_call scans steps over the dataset held on the device; the ImageNet stream "
                     "feeds every step's batch from the host, one step per call: set it to 1 or None, got "
                     f"train.steps_per_call={config.train.steps_per_call}")
  train, val = (imagenet_sources.open_source(data.dataset, split) for split in ("train", "val"))
  host_mean, mean, std = _stream_mean(config, train, workdir, reuse)
  return StreamData(train=train, val=val, crop_size=data.crop_size, host_mean=host_mean, mean=mean, std=std)


def open_data(config: config_lib.Config, workdir: str | os.PathLike, *, dataset: data_lib.Dataset | None = None,
              reuse: bool = False) -> DeviceData | StreamData:
  """The data of a run: `StreamData` when ``data.crop_size`` is set (ImageNet), else `DeviceData`.

  Args:
    config: the run.
    workdir: its work directory (a streamed run keeps its mean image there, `MEAN_IMAGE`).
    dataset: a device-resident dataset to use instead of loading ``data.dataset`` (`experiments.setup.load_data`).
    reuse: resuming: a streamed run reads the mean image it kept instead of computing it again.

  Raises:
    ValueError: `dataset` with a streamed config, or a setting the stream does not take (the message names it).
  """
  if is_streamed(config):
    if dataset is not None:
      raise ValueError("the ImageNet stream (data.crop_size set) reads data.dataset itself; dataset= passes a "
                       "dataset held on the device")
    if config.train.eval_train:
      raise ValueError("train.eval_train evaluates the training set held on the devices; the ImageNet stream "
                       "(data.crop_size set) has none: leave it False")
    return _open_stream(config, pathlib.Path(workdir), reuse)
  ds = setup.load_data(config)[0] if dataset is None else dataset
  mean, std = setup.normalization_constants(config, np.asarray(ds.train_images))
  return DeviceData(dataset=ds, mean=mean, std=std)
