"""ImageNet input: a streaming pipeline with Caffe's preprocessing, decoded on the host in parallel workers.

ImageNet (1.28 M training images, ~140 GB of JPEGs) does not fit on the device, so unlike the CIFAR path
(`experiments.data`: the whole dataset as uint8 on the device) its images are decoded, resized and cropped
on the host while the device trains, and only the batches travel to the device.

The records (encoded image, label, name) come from `experiments.imagenet_sources` (tensorflow-datasets'
``imagenet2012`` or an image folder). `batches` runs them through grain (the JAX ecosystem's data loader,
``grain.python``): worker processes that each read, decode, crop and stack whole batches of this host's shard
of the records. Caffe's preprocessing
(``DataTransformer`` on an LMDB made by ``convert_imageset --resize_height=256 --resize_width=256``): every
image is resized to 256x256 (aspect ratio not kept), then a random ``crop_size`` square (227 for AlexNet, 224
for GoogLeNet) is cut and mirrored with probability 1/2 in training; evaluation takes the centre crop,
unmirrored. The mean is subtracted either on the device (a per-channel mean such as GoogLeNet's
``mean_value``: leave ``mean=None`` and normalise in the step, as the CIFAR path does) or here (``mean=``:
Caffe's ``mean_file``, a 256x256 mean image cropped at the image's offset before mirroring; `mean_image`
computes one). Every random choice is a function of the seed, the host and the image's place in the stream,
and a batch is made whole by one worker, so batch ``k`` of a run is the same every time for the same seed
and hosts, whatever the number of workers and wherever the stream starts (``batches(start=k)``: how a
resumed run continues its stream).

`prefetch_to_device` puts host batches on the local devices ahead of the step (pmap's layout), and
`batches(progress=True)` shows a progress bar.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import grain.python as grain
import jax
import numpy as np
import tqdm
from absl import flags
from jax.experimental import multihost_utils
from PIL import Image

__all__ = ["CAFFE_RESIZE", "batches", "decode_and_resize", "host_shard", "mean_image", "prefetch_to_device",
           "preprocess"]

# Caffe's convert_imageset --resize_height / --resize_width for ImageNet (examples/imagenet/create_imagenet.sh).
CAFFE_RESIZE = 256


# ----------------------------------------------------------------------------------------------------------
# Caffe's preprocessing of one image.


def decode_and_resize(data: bytes, name: str, size: int = CAFFE_RESIZE) -> np.ndarray:
  """Decodes an encoded image to RGB and resizes it to ``size x size`` (bilinear), as convert_imageset.

  Raises:
    ValueError: the bytes are not a decodable image (truncated, another format); the message names it.
  """
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      rgb = image.convert("RGB")  # grayscale and CMYK JPEGs exist in ImageNet; Caffe reads them as colour
  except (OSError, SyntaxError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
    raise ValueError(f"cannot decode image {name!r}: {e}") from e
  if rgb.size != (size, size):
    rgb = rgb.resize((size, size), Image.BILINEAR)
  return np.asarray(rgb, np.uint8)


def preprocess(image: np.ndarray, crop_size: int, *, train: bool, rng: np.random.Generator | None = None,
               mean: np.ndarray | None = None) -> np.ndarray:
  """Caffe's ``DataTransformer``: crop (random in training, centre otherwise), mirror, mean subtraction.

  Args:
    image: uint8 [S, S, 3], the resized image.
    crop_size: side of the square crop.
    train: random crop offset (uniform over ``S - crop_size + 1`` positions per axis) and mirror with
      probability 1/2; otherwise the centre crop, unmirrored.
    rng: the generator of the random choices (training only).
    mean: None (uint8 output), a per-channel mean [3] or a mean image [S, S, 3] (float32 output); the
      mean image is taken at the crop's offset before mirroring, as Caffe's ``mean_file``.

  Returns:
    The crop, [crop_size, crop_size, 3], uint8 without ``mean`` and float32 with it.
  """
  height, width = image.shape[:2]
  if crop_size > min(height, width):
    raise ValueError(f"crop_size {crop_size} exceeds the resized image ({height}x{width})")
  if train:
    top, left = int(rng.integers(height - crop_size + 1)), int(rng.integers(width - crop_size + 1))
    mirror = bool(rng.integers(2))
  else:
    top, left, mirror = (height - crop_size) // 2, (width - crop_size) // 2, False
  window = (slice(top, top + crop_size), slice(left, left + crop_size))
  crop = image[window]
  if mean is not None:
    mean = np.asarray(mean, np.float32)
    crop = crop.astype(np.float32) - (mean[window] if mean.ndim == 3 else mean)
  return np.ascontiguousarray(crop[:, ::-1] if mirror else crop)


class _Resize(grain.MapTransform):
  """Decode and resize one record (for the mean image)."""

  def __init__(self, resize: int):
    self.resize = resize

  def map(self, record: dict[str, Any]) -> np.ndarray:
    return decode_and_resize(record["image"], record["name"], self.resize)


# ----------------------------------------------------------------------------------------------------------
# Batches.


def _start_workers(worker_count: int) -> None:
  """Readies grain's worker processes: they read an absl flag, and outside an ``absl.app`` program (our CLIs,
  pytest, a notebook) absl's flags are never parsed, which grain's workers refuse; mark them parsed (with
  their defaults) unless a program parsed them already."""
  if worker_count and not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def host_shard(num_records: int, process_index: int, process_count: int) -> np.ndarray:
  """The record indices host ``process_index`` of ``process_count`` reads: a contiguous range, the ranges
  disjoint and together ``range(num_records)``, their lengths differing by at most one."""
  start, stop = (num_records * i // process_count for i in (process_index, process_index + 1))
  return np.arange(start, stop)


def _host(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if not 0 <= index < count:
    raise ValueError(f"process_index must lie in [0, process_count), got {process_index=}, {process_count=}")
  return index, count


class _Stream:
  """One host's stream of batches as a grain data source: record ``k`` is batch ``start + k``, decoded, cropped
  and stacked in whichever grain worker reads it, so that a batch depends on its index alone.

  In training, stream position ``p`` (batch ``p // batch_size``) holds record ``shard[perm_e[p % n]]`` of epoch
  ``e = p // n``, ``perm_e`` a permutation of the ``n`` records of the shard drawn from ``(seed, host, e)``; its
  crop and mirror come from ``(seed, host, p)``. In evaluation, position ``p`` holds ``shard[p]`` (the centre
  crop) while ``p < n``, and padding marked False in ``"mask"`` after it.
  """

  def __init__(self, source: Sequence[dict[str, Any]], shard: np.ndarray, *, batch_size: int, crop_size: int,
               train: bool, entropy: tuple[int, ...], mean: np.ndarray | None, resize: int, start: int, stop: int):
    self.source, self.shard, self.batch_size, self.crop_size = source, shard, batch_size, crop_size
    self.train, self.entropy, self.mean, self.resize = train, entropy, mean, resize
    self.start, self.stop = start, stop
    self._epoch: tuple[int, np.ndarray] | None = None  # the last epoch's permutation, in this worker

  def __len__(self) -> int:
    return self.stop - self.start

  def _permutation(self, epoch: int) -> np.ndarray:
    if self._epoch is None or self._epoch[0] != epoch:
      self._epoch = (epoch, np.random.default_rng([*self.entropy, 0, epoch]).permutation(len(self.shard)))
    return self._epoch[1]

  def _example(self, position: int) -> tuple[np.ndarray, int]:
    n = len(self.shard)
    if self.train:
      index, rng = self._permutation(position // n)[position % n], np.random.default_rng([*self.entropy, 1, position])
    else:
      index, rng = position, None
    record = self.source[int(self.shard[index])]
    image = decode_and_resize(record["image"], record["name"], self.resize)
    return preprocess(image, self.crop_size, train=self.train, rng=rng, mean=self.mean), int(record["label"])

  def __getitem__(self, k: int) -> dict[str, np.ndarray]:
    first = (self.start + k) * self.batch_size
    positions = range(first, first + self.batch_size)
    real = [p for p in positions if self.train or p < len(self.shard)]
    examples = [self._example(p) for p in real]
    dtype = np.uint8 if self.mean is None else np.float32
    images = np.zeros((self.batch_size, self.crop_size, self.crop_size, 3), dtype)
    labels = np.zeros((self.batch_size,), np.int32)
    for i, (image, label) in enumerate(examples):
      images[i], labels[i] = image, label
    batch = {"image": images, "label": labels}
    if not self.train:
      batch["mask"] = np.arange(self.batch_size) < len(real)
    return batch


def batches(source: Sequence[dict[str, Any]], *, batch_size: int, crop_size: int, train: bool, seed: int = 0,
            mean: np.ndarray | None = None, process_index: int | None = None, process_count: int | None = None,
            num_epochs: int | None = None, start: int = 0, stop: int | None = None, worker_count: int = 0,
            resize: int = CAFFE_RESIZE, progress: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """This host's batches of a source, preprocessed as Caffe does, decoded in grain worker processes.

  Training shuffles this host's shard of the records anew every epoch; the epochs run on into each other (a
  batch may hold the end of one and the start of the next, as Caffe's data layer cycles through its LMDB).
  Batch ``k`` is a function of ``seed``, the host (``process_index`` of ``process_count``) and ``k`` alone:
  the same whatever ``worker_count`` and wherever the stream starts, so a run resumed at step ``s`` reads
  ``batches(start=s)``, the batches an uninterrupted run reads from its step ``s`` on. Evaluation
  (``train=False``) reads this host's shard once in order and pads it to the same number of batches on every
  host, marking the padding in ``"mask"``.

  Args:
    source: an `ImageFolderSource`, a `TfdsSource` or any random-access sequence of such records.
    batch_size: images per batch on this host (the global batch divided by ``process_count``).
    crop_size: the crop (227 AlexNet, 224 GoogLeNet).
    train: training (random crop and mirror, shuffled, endless unless ``num_epochs`` or ``stop``) or
      evaluation.
    seed: seed of the shuffles, crops and mirrors.
    mean: subtract on the host (float32 output): per channel [3] or a mean image [resize, resize, 3]; None
      yields uint8 (subtract in the compiled step).
    process_index, process_count: this host and the number of hosts (default ``jax.process_index()``,
      ``jax.process_count()``); host ``i`` reads `host_shard`: the ``i``-th of ``process_count`` disjoint
      contiguous shards of the records, which together cover them all.
    num_epochs: training: read the batches that ``num_epochs`` whole epochs fill (the last partial batch
      dropped); None: endless, or up to ``stop``.
    start, stop: training: yield batches ``start, start + 1, ...`` up to ``stop`` (exclusive; None: as
      ``num_epochs`` says). ``stop`` and ``num_epochs`` exclude each other.
    worker_count: grain worker processes decoding in parallel, a batch each at a time (0: in this process).
    resize: the side images are resized to first (Caffe's 256).
    progress: show a tqdm progress bar (images of this host).

  Returns:
    An iterator of ``{"image": [B, crop, crop, 3], "label": int32 [B]}`` (evaluation adds ``"mask"``, bool
    [B], False on padding).

  Raises:
    ValueError: bad arguments, or (while iterating) an image that cannot be decoded, named in the message.
  """
  if batch_size < 1 or crop_size < 1 or crop_size > resize:
    raise ValueError(f"need batch_size >= 1 and 1 <= crop_size <= resize, got {batch_size=}, {crop_size=}, {resize=}")
  if mean is not None and np.shape(mean) not in ((3,), (resize, resize, 3)):
    raise ValueError(f"mean must be [3] or [{resize}, {resize}, 3], got shape {np.shape(mean)}")
  if num_epochs is not None and stop is not None:
    raise ValueError(f"pass num_epochs or stop, not both; got {num_epochs=}, {stop=}")
  index, count = _host(process_index, process_count)
  shard = host_shard(len(source), index, count)
  if not len(shard):
    raise ValueError(f"{len(source)} records leave host {index} of {count} none to read")
  if train:
    end = stop if stop is not None else (len(shard) * num_epochs // batch_size if num_epochs is not None
                                         else sys.maxsize // (2 * batch_size))
  else:  # every host the same number of batches: those of the largest shard
    start, end = 0, math.ceil(math.ceil(len(source) / count) / batch_size)
  if not 0 <= start <= end:
    raise ValueError(f"need 0 <= start <= the stream's end ({end} batches), got {start=}")
  stream_source = _Stream(source, shard, batch_size=batch_size, crop_size=crop_size, train=train,
                          entropy=(seed, index, count), mean=None if mean is None else np.asarray(mean, np.float32),
                          resize=resize, start=start, stop=end)
  _start_workers(worker_count)
  # One batch at a time per worker, read by one thread: a batch is already a worker's unit of parallel work.
  loader = grain.DataLoader(data_source=stream_source, worker_count=worker_count,
                            sampler=grain.IndexSampler(len(stream_source), shuffle=False, num_epochs=1),
                            read_options=grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
  stream = iter(loader)
  if not progress:
    return stream
  total = len(shard) if not train else (None if stop is None and num_epochs is None else len(stream_source) * batch_size)
  return _with_bar(stream, total, f"{getattr(source, 'split', 'imagenet')} images")


def _with_bar(stream: Iterator[dict[str, np.ndarray]], total: int | None, desc: str) -> Iterator[dict[str, np.ndarray]]:
  with tqdm.tqdm(total=total, desc=desc, unit="img") as bar:
    for batch in stream:
      bar.update(int(batch["mask"].sum()) if "mask" in batch else len(batch["label"]))
      yield batch


@dataclasses.dataclass(frozen=True)
class _Subset:
  """The records ``indices`` of a source, as a source."""

  source: Sequence[dict[str, Any]]
  indices: np.ndarray

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self.source[int(self.indices[index])]


def mean_image(source: Sequence[dict[str, Any]], *, num_images: int | None = None, seed: int = 0,
               resize: int = CAFFE_RESIZE, worker_count: int = 0, batch_size: int = 64,
               progress: bool = False) -> np.ndarray:
  """Caffe's ``compute_image_mean``: the mean of the resized training images, float32 [resize, resize, 3].

  With several processes (``jax.process_count() > 1``) each sums its `host_shard` of the images and the sums
  are exchanged (`jax.experimental.multihost_utils.process_allgather`): every host gets the same mean, each
  having decoded only its share. The sums of uint8 pixels are exact in float64, so the mean is the same
  whatever the number of hosts.

  Args:
    source: the training source.
    num_images: average a random subset of this many images (None: all, as Caffe does).
    seed: seed of the subset.
    resize: the side images are resized to.
    worker_count: grain worker processes.
    batch_size: images summed per batch.
    progress: show a progress bar.

  Returns:
    The mean image in [0, 255] units, RGB, for ``batches(mean=...)``.
  """
  n = len(source) if num_images is None else num_images
  if not 1 <= n <= len(source):
    raise ValueError(f"num_images must lie in [1, {len(source)}], got {num_images=}")
  indices = (np.arange(n) if num_images is None
             else np.sort(np.random.default_rng(seed).choice(len(source), n, replace=False)))
  mine = indices[host_shard(n, jax.process_index(), jax.process_count())]
  total = np.zeros((resize, resize, 3), np.float64)
  if len(mine):
    _start_workers(worker_count)
    loader = grain.DataLoader(data_source=_Subset(source, mine), worker_count=worker_count,
                              sampler=grain.IndexSampler(len(mine), num_epochs=1, shuffle=False),
                              operations=[_Resize(resize), grain.Batch(batch_size)])
    with tqdm.tqdm(total=len(mine), desc="mean image", unit="img", disable=not progress) as bar:
      for batch in loader:
        total += batch.sum(axis=0, dtype=np.float64)
        bar.update(len(batch))
  if jax.process_count() > 1:  # float64 travels as its bits (uint32 pairs): JAX holds no float64 by default
    gathered = multihost_utils.process_allgather(total.view(np.uint32))
    total = np.asarray(gathered).view(np.float64).sum(axis=0)
  return (total / n).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# To the devices.


def prefetch_to_device(stream: Iterable[dict[str, np.ndarray]], size: int = 2,
                       devices: Sequence[jax.Device] | None = None) -> Iterator[dict[str, jax.Array]]:
  """Host batches as device arrays in pmap's layout, ``size`` batches ahead of the consumer.

  Each array ``[B, ...]`` is split into ``[len(devices), B / len(devices), ...]``, one slice per device, and
  transferred asynchronously while the device works on the batches before it.

  Args:
    stream: host batches (dicts of numpy arrays whose leading axis is divisible by the number of devices).
    size: batches in flight (2 keeps one transferring while one is consumed).
    devices: this host's devices (default ``jax.local_devices()``).

  Returns:
    An iterator of dicts of ``jax.Array`` sharded over ``devices`` along their leading axis.
  """
  devices = list(jax.local_devices() if devices is None else devices)
  sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("_replica",)),
                                        jax.sharding.PartitionSpec("_replica"))

  def put(batch):
    out = {}
    for k, v in batch.items():
      if len(v) % len(devices):
        raise ValueError(f"batch field {k!r} of {len(v)} does not split over {len(devices)} devices")
      out[k] = jax.device_put(v.reshape((len(devices), len(v) // len(devices), *v.shape[1:])), sharding)
    return out

  queue = []
  for batch in stream:
    queue.append(put(batch))
    if len(queue) > size:
      yield queue.pop(0)
  yield from queue
