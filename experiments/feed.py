"""Where a run's batches come from: the dataset held on the devices (CIFAR) or a stream from the host (ImageNet).

`open_data(config)` is the one place the trainer chooses: ``data.crop_size`` set means the ImageNet stream of
`experiments.imagenet` (`StreamData`), None the whole dataset as uint8 on the devices (`DeviceData`,
`experiments.data`). Both tell the trainer the same things (``num_train``, ``num_classes``, ``image_shape``,
the normalisation constants of the `TrainState`) and give it a feeder (`DeviceFeeder`, `StreamFeeder`) that
supplies each step's device arguments to its compiled step and evaluates the state on the test or validation
set:

  feeder = data.feeder(config, plan, schedule, devices)
  args = feeder.train_args(start_step)
  state_r, metrics = feeder.step(state_r, *next(args))   # once per step
  feeder.evaluate(state_r)                               # {"loss", "accuracy"}

The CIFAR feeder passes the device-resident training set and the epoch's permutation (drawn on the devices
once per epoch), the step gathers its batch; the ImageNet feeder passes the host's batches, decoded by grain
workers and put on the devices ahead of the step. Batch ``k`` of the stream is a function of the seed, the
host and ``k`` (`experiments.imagenet.batches`), so a run resumed at step ``s`` trains on the batches an
uninterrupted run trains on from ``s``, as the CIFAR path's per-epoch permutations do.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
from typing import Any, Iterator, Sequence

import jax
import numpy as np
import optax

from experiments import configs as config_lib
from experiments import data as data_lib
from experiments import imagenet
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
  def num_classes(self) -> int:
    return int(self.dataset.num_classes)

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(np.shape(self.dataset.train_images)[1:])

  def feeder(self, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
             devices: Sequence[jax.Device]) -> DeviceFeeder:
    """The run's feeder (`plan`: its `experiments.train.RunPlan`)."""
    return DeviceFeeder(self.dataset, config, plan, schedule, devices)


class DeviceFeeder:
  """The CIFAR path: the whole dataset replicated on the devices, shuffled per epoch on the devices, each
  step's batch gathered inside the compiled step (`experiments.parallel.make_pmapped_train_step`)."""

  def __init__(self, ds: data_lib.Dataset, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
               devices: Sequence[jax.Device]):
    self.devices, self.steps_per_epoch = devices, plan.steps_per_epoch
    self.num_test, self.eval_batch = len(ds.test_labels), config.train.eval_batch_size
    self.images_r, self.labels_r, self.test_images_r, self.test_labels_r = parallel.replicate(
        (np.asarray(ds.train_images), np.asarray(ds.train_labels, np.int32), np.asarray(ds.test_images),
         np.asarray(ds.test_labels, np.int32)), devices)
    n_global = len(devices) * jax.process_count()
    self.step = parallel.make_pmapped_train_step(schedule, global_batch=plan.global_batch,
                                                 local_batch=plan.local_batch,
                                                 steps_per_epoch=plan.steps_per_epoch, devices=devices)
    self.p_eval = parallel.make_pmapped_eval_step(local_batch=self.eval_batch // n_global,
                                                  num_examples=self.num_test, devices=devices)
    self.p_shuffle = parallel.make_pmapped_shuffle(len(ds.train_labels), devices)
    self.shuffle_key = jax.random.fold_in(jax.random.key(config.train.seed), 1)

  def train_args(self, start_step: int) -> Iterator[tuple[Any, ...]]:
    """``(images, labels, perm)`` of every step from `start_step` on: the permutation of the step's epoch."""
    perm_r, perm_epoch = None, -1
    for step in itertools.count(start_step):
      epoch = step // self.steps_per_epoch
      if epoch != perm_epoch:
        perm_r = self.p_shuffle(parallel.replicate(jax.random.fold_in(self.shuffle_key, epoch), self.devices))
        perm_epoch = epoch
      yield self.images_r, self.labels_r, perm_r

  def evaluate(self, state_r) -> dict[str, float]:
    """Loss and accuracy over the whole device-resident test set."""
    return parallel.evaluate(self.p_eval, state_r, self.test_images_r, self.test_labels_r,
                             num_examples=self.num_test, global_batch=self.eval_batch, devices=self.devices)


@dataclasses.dataclass(frozen=True)
class StreamData:
  """The ImageNet training and validation sources, streamed from the host (`experiments.imagenet`).

  Attributes:
    train, val: the sources (`experiments.imagenet.open_source`).
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

  def feeder(self, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
             devices: Sequence[jax.Device]) -> StreamFeeder:
    """The run's feeder (`plan`: its `experiments.train.RunPlan`)."""
    return StreamFeeder(self, config, plan, schedule, devices)


def _workers(config: config_lib.Config) -> int:
  """``data.workers``, None meaning one grain worker process per CPU core of this host."""
  return (os.cpu_count() or 1) if config.data.workers is None else config.data.workers


class StreamFeeder:
  """The ImageNet path: this host's batches (its shard of the records, ``global batch / process_count``
  images a step) decoded by grain workers, put on the devices two steps ahead, fed to
  `experiments.parallel.make_pmapped_batch_train_step`'s program; evaluation over this host's shard of the
  validation images, padding masked."""

  def __init__(self, data: StreamData, config: config_lib.Config, plan: Any, schedule: optax.Schedule,
               devices: Sequence[jax.Device]):
    self.data, self.devices, self.total_steps = data, devices, plan.total_steps
    self.seed, self.workers = config.train.seed, _workers(config)
    self.train_batch = plan.global_batch // jax.process_count()
    self.eval_batch = config.train.eval_batch_size // jax.process_count()
    self.step = parallel.make_pmapped_batch_train_step(schedule, devices=devices)
    self.p_eval = parallel.make_pmapped_batch_eval_step(devices=devices)

  def train_args(self, start_step: int) -> Iterator[tuple[Any, ...]]:
    """``(batch,)`` of every step from `start_step` to the end of the run: the stream's batches from
    `start_step` on, the same as an uninterrupted run's. Dropping the iterator stops its grain workers."""
    stream = imagenet.batches(self.data.train, batch_size=self.train_batch, crop_size=self.data.crop_size,
                              train=True, seed=self.seed, mean=self.data.host_mean, start=start_step,
                              stop=self.total_steps, worker_count=self.workers)
    return ((batch,) for batch in imagenet.prefetch_to_device(stream, devices=self.devices))

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
  train, val = (imagenet.open_source(data.dataset, split) for split in ("train", "val"))
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
    return _open_stream(config, pathlib.Path(workdir), reuse)
  ds = setup.load_data(config)[0] if dataset is None else dataset
  mean, std = setup.normalization_constants(config, np.asarray(ds.train_images))
  return DeviceData(dataset=ds, mean=mean, std=std)
