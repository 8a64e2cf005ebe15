"""CIFAR input: the `Dataset` of uint8 arrays, loaded from tensorflow-datasets or an image folder; subsets.

Two sources give the same `Dataset` of uint8 arrays:

* tensorflow-datasets (`load("cifar10")`, `load("cifar100")`), read through `tfds.data_source`
  (array_record files, no TensorFlow needed to *read*). *Preparing* a tfds dataset (the first
  download) does need TensorFlow: tfds encodes every image with `tf.image.encode_png` and extracts
  archives with `tf.io.gfile`. Without TensorFlow or without internet, use the second source.
* An image folder laid out as `{train,test}/<class>/<image>`, as a directory or a
  `.tar`/`.tar.gz`/`.tar.xz` archive (`load("path/to/cifar10-jpeg.tar.xz")`). It is decoded once and
  cached as an `.npz` file in `$CLR_OPTAX_CACHE` (default `~/.cache/clr_optax`); later loads read the
  cache, which is written atomically and rebuilt when it is stale or corrupt.

Reading and decoding image folders and the `.npz` cache are `experiments.datafiles`'s; normalisation
statistics and the on-device augmentation are `experiments.augment`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import pathlib
import socket
import sys
import threading
import urllib.parse

import numpy as np
import tqdm

from experiments import datafiles

TFDS_NAMES = ("cifar10", "cifar100")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """An image-classification dataset held in host memory as numpy arrays.

  Attributes:
    train_images: uint8 [N, H, W, 3].
    train_labels: int32 [N], in [0, num_classes).
    test_images: uint8 [M, H, W, 3].
    test_labels: int32 [M].
    class_names: the class names; label ``i`` is ``class_names[i]``.
    source: where the data came from (tfds name and directory, or image-folder path).
  """

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  source: str

  def __post_init__(self):
    for split in datafiles.SPLITS:
      images = getattr(self, f"{split}_images")
      labels = getattr(self, f"{split}_labels")
      if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{split}_images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
      if labels.dtype != np.int32 or labels.shape != images.shape[:1]:
        raise ValueError(f"{split}_labels must be int32 [{images.shape[0]}], got {labels.dtype} {labels.shape}")
      if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
        raise ValueError(f"{split}_labels must lie in [0, {len(self.class_names)}), "
                         f"got [{labels.min()}, {labels.max()}]")
    if self.train_images.shape[1:] != self.test_images.shape[1:]:
      raise ValueError(f"train and test images differ in shape: {self.train_images.shape[1:]} "
                       f"vs {self.test_images.shape[1:]}")

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def __repr__(self) -> str:
    return (f"Dataset(train={self.train_images.shape}, test={self.test_images.shape}, "
            f"num_classes={self.num_classes}, source={self.source!r})")


def load(spec: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
         data_dir: str | os.PathLike | None = None, download: bool = True,
         timeout_s: float = 900.0, progress: bool | None = None) -> Dataset:
  """Loads CIFAR-10/100 from tensorflow-datasets, or an image-folder dataset from a path.

  Args:
    spec: ``"cifar10"`` or ``"cifar100"`` (tensorflow-datasets), or the path of an image-folder
      dataset: a directory or ``.tar``/``.tar.gz``/``.tar.xz`` archive laid out as
      ``{train,test}/<class>/<image>``.
    cache_dir: where the decoded arrays are cached as ``.npz``; default ``$CLR_OPTAX_CACHE``,
      else ``~/.cache/clr_optax``.
    data_dir: the tensorflow-datasets data directory (tfds's default when None).
    download: whether tensorflow-datasets may download and prepare a dataset it lacks.
    timeout_s: time limit in seconds for that download and preparation.
    progress: show a progress bar; None shows one when stderr is a terminal.

  Returns:
    The `Dataset`.

  Examples:
    >>> ds = load("cifar10")                           # doctest: +SKIP
    >>> ds = load("/data/cifar10-jpeg.tar.xz")         # doctest: +SKIP
    >>> ds.train_images.shape, ds.class_names[:2]      # doctest: +SKIP
    ((50000, 32, 32, 3), ('airplane', 'automobile'))
  """
  if isinstance(spec, str) and spec in TFDS_NAMES:
    return load_tfds(spec, data_dir=data_dir, cache_dir=cache_dir, download=download,
                     timeout_s=timeout_s, progress=progress)
  return load_image_folder(spec, cache_dir=cache_dir, progress=progress)


# ----------------------------------------------------------------------------------------------
# tensorflow-datasets


def _image_folder_hint(name: str) -> str:
  return (f"Alternatively load an image folder laid out as {{train,test}}/<class>/<image> (a "
          f"directory or .tar/.tar.gz/.tar.xz archive) with experiments.data.load(path), e.g. "
          f"--data path/to/{name}-jpeg.tar.xz.")


def load_tfds(name: str, *, data_dir: str | os.PathLike | None = None,
              cache_dir: str | os.PathLike | None = None, download: bool = True,
              timeout_s: float = 900.0, progress: bool | None = None) -> Dataset:
  """Loads an image-classification dataset from tensorflow-datasets as uint8 arrays.

  Reads with ``tfds.data_source`` (array_record files; no TensorFlow needed). Decoding through tfds
  costs far more than reading a cache, so the arrays are cached as
  ``.npz`` like an image folder, keyed by the prepared files. When the dataset is not prepared in
  ``data_dir`` and ``download`` is true, tfds downloads and prepares it, which needs TensorFlow and
  internet; without either it fails at once, and otherwise runs under a time limit, because an
  offline tfds retries for minutes.

  Args:
    name: a tfds name with ``image`` and ``label`` features and ``train``/``test`` splits, e.g.
      ``"cifar10"``, ``"cifar100"``.
    data_dir: the tfds data directory (tfds's default when None).
    cache_dir: where the arrays are cached; default `datafiles.default_cache_dir()`.
    download: whether to download and prepare the dataset if it is not prepared yet.
    timeout_s: time limit in seconds for downloading and preparing.
    progress: show a progress bar; None shows one when stderr is a terminal.

  Returns:
    The `Dataset`; ``source`` names the tfds dataset, version and directory.

  Raises:
    FileNotFoundError: the dataset is not prepared and ``download`` is false.
    RuntimeError, TimeoutError: preparing is impossible here, failed, or ran past ``timeout_s``;
      the message names the image-folder alternative.
  """
  if timeout_s <= 0:
    raise ValueError(f"timeout_s must be positive, got {timeout_s=}")
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import, optional source)

  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  if not builder.is_prepared():
    if not download:
      raise FileNotFoundError(f"tfds dataset {name!r} is not prepared in {builder.data_dir} (array_record "
                              f"format) and {download=}. {_image_folder_hint(name)}")
    _prepare_tfds(builder, name, timeout_s)
  source = f"tfds:{name}:{builder.info.version} ({builder.data_dir})"

  def build():
    arrays = {}
    for split in datafiles.SPLITS:
      src = builder.as_data_source(split=split)
      n = len(src)
      images, labels = None, np.empty((n,), np.int32)
      for i in tqdm.tqdm(range(n), desc=f"reading {name}/{split}", unit="img", disable=_no_bar(progress)):
        example = src[i]
        if images is None:
          images = np.empty((n, *np.shape(example["image"])), np.uint8)
        images[i] = example["image"]
        labels[i] = example["label"]
      arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return Dataset(**arrays, class_names=tuple(builder.info.features["label"].names), source=source)

  data_path = pathlib.Path(os.fspath(builder.data_dir))
  if not data_path.is_dir():  # nothing on disk to key a cache on (tfds.testing.mock_data)
    return build()
  blob = json.dumps({"source": source, "files": datafiles.file_stats(data_path),
                     "loader_version": datafiles.LOADER_VERSION})
  key = hashlib.sha256(blob.encode()).hexdigest()
  return datafiles.cached(datafiles.cache_root(cache_dir) / f"tfds-{name}-{builder.info.version}-{key[:16]}.npz",
                          key, build, Dataset)


def _prepare_tfds(builder, name: str, timeout_s: float) -> None:
  """Runs ``builder.download_and_prepare`` under a time limit, failing fast where it cannot work.

  Without TensorFlow, or when a download host is unreachable, it fails at once rather than after
  tfds's minutes of retries (whose worker threads would also keep Python from exiting). The
  preparation itself runs in a daemon thread, abandoned after ``timeout_s``.
  """
  if not _have_tensorflow():
    raise RuntimeError(_NEEDS_TF.format(name=name) + " " + _image_folder_hint(name))
  if not any(os.environ.get(v) for v in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY",
                                         "all_proxy", "ALL_PROXY")):  # behind a proxy only tfds can tell
    for url in builder.url_infos or {}:
      parsed = urllib.parse.urlsplit(url)
      port = parsed.port or (443 if parsed.scheme == "https" else 80)
      try:
        socket.create_connection((parsed.hostname, port), timeout=10).close()
      except OSError as e:
        raise RuntimeError(f"tensorflow-datasets cannot download {name!r}: {parsed.hostname}:{port} is "
                           f"unreachable ({e}). {_image_folder_hint(name)}") from e
  outcome: list[BaseException | None] = []

  def prepare():
    try:
      builder.download_and_prepare()
      outcome.append(None)
    except BaseException as e:  # handed to the caller's thread
      outcome.append(e)

  thread = threading.Thread(target=prepare, name=f"tfds-prepare-{name}", daemon=True)
  thread.start()
  thread.join(timeout_s)
  if thread.is_alive():
    raise TimeoutError(f"tensorflow-datasets did not download and prepare {name!r} within {timeout_s=} "
                       f"(pass a larger timeout_s on a slow connection). {_image_folder_hint(name)}")
  error = outcome[0]
  if error is None:
    return
  if isinstance(error, ModuleNotFoundError) or "No module named 'tensorflow'" in str(error):
    raise RuntimeError(_NEEDS_TF.format(name=name) + " " + _image_folder_hint(name)) from error
  raise RuntimeError(f"tensorflow-datasets could not download and prepare {name!r}: {error}. "
                     f"{_image_folder_hint(name)}") from error


def _have_tensorflow() -> bool:
  return importlib.util.find_spec("tensorflow") is not None


_NEEDS_TF = ("Preparing {name!r} with tensorflow-datasets needs TensorFlow (tfds encodes the images "
             "with tf.image and extracts the download with tf.io.gfile): pip install tensorflow-cpu "
             "and prepare it once; reading it afterwards needs no TensorFlow.")


# ----------------------------------------------------------------------------------------------
# Image folders


def load_image_folder(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                      progress: bool | None = None) -> Dataset:
  """Loads an image-folder dataset, decoding it once and caching the arrays as ``.npz``.

  The layout is ``{train,test}/<class>/<image>``, optionally below one common folder (as in
  ``cifar10-jpeg/train/cat/0001.jpg``), as a directory or a ``.tar``/``.tar.gz``/``.tar.xz``
  archive. Labels number the class folders in alphabetical order (CIFAR-10's label order); train
  and test must hold the same classes, and a class folder without images is refused (dropping it
  would shift every later class's label). Every image must be RGB and of one size. Files that are
  not images (by suffix) and hidden files and folders are ignored. Images are ordered by split,
  class and file name, whatever the order inside an archive. An archive must be complete: its tar
  end-of-archive marker must follow the last member, and a gzip or xz stream must pass the
  decompressor's end-of-stream and checksum checks; nothing is cached otherwise.

  The cache file in ``cache_dir`` is keyed by a hash of the path, its size and modification time
  (every file's, for a directory) and `datafiles.LOADER_VERSION`; it is written to a temporary file and
  renamed, so a crash never leaves a partial cache, and a corrupt cache is rebuilt. When the cache
  cannot be written (a read-only folder, a full disk), a warning says so and the decoded arrays are
  returned uncached.

  Args:
    path: the directory or archive.
    cache_dir: default `datafiles.default_cache_dir()`.
    progress: show a progress bar while decoding; None shows one when stderr is a terminal.

  Returns:
    The `Dataset`; ``source`` is the resolved path.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: an unsupported path, a wrong layout (an empty class folder included), an
      unreadable, truncated or corrupt archive, or an image that cannot be decoded or has the wrong
      size or mode; the message names the file.
  """
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"image-folder dataset not found: {str(path)!r} (expected a directory or "
                            f"a .tar/.tar.gz/.tar.xz archive laid out as {{train,test}}/<class>/<image>, "
                            f"or one of the tfds names {TFDS_NAMES})")
  path = path.resolve()
  if not path.is_dir() and not path.name.lower().endswith(ARCHIVE_SUFFIXES):
    raise ValueError(f"unsupported image-folder dataset {str(path)!r}: expected a directory or an "
                     f"archive ending in one of {ARCHIVE_SUFFIXES}")
  key = _cache_key(path)

  def build():
    return Dataset(**datafiles.read(path, show_progress=not _no_bar(progress)))

  return datafiles.cached(datafiles.cache_root(cache_dir) / f"{_stem(path)}-{key[:16]}.npz", key, build, Dataset)


def _stem(path: pathlib.Path) -> str:
  name = path.name
  for suffix in ARCHIVE_SUFFIXES:
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return name


def _cache_key(path: pathlib.Path) -> str:
  """Hash of the path, size and mtime (of each file, for a directory) and the loader version."""
  if path.is_dir():
    stats = datafiles.file_stats(path)
  else:
    st = path.stat()
    stats = [(st.st_size, st.st_mtime_ns)]
  blob = json.dumps({"path": str(path), "files": stats, "loader_version": datafiles.LOADER_VERSION})
  return hashlib.sha256(blob.encode()).hexdigest()


def _no_bar(progress: bool | None) -> bool:
  return not progress if progress is not None else not sys.stderr.isatty()


# ----------------------------------------------------------------------------------------------
# Subsets


def stratified_subset(ds: Dataset, *, train_size: int | None, test_size: int | None,
                      seed: int) -> Dataset:
  """A random class-balanced subset: the same number of images from each class, shuffled.

  When a size is not a multiple of the number of classes, the remainder goes to randomly chosen
  classes, one image each. Never take "the first N" of an image folder: it is grouped by class.

  Args:
    ds: the dataset.
    train_size: number of training images; None keeps the whole training split (shuffled).
    test_size: number of test images; None keeps the whole test split (shuffled).
    seed: seed of the numpy random generator.

  Returns:
    The subset, with ``source`` noting the sizes and seed.

  Raises:
    ValueError: a size is negative, or a class has fewer images than its share.
  """
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, size in (("train", train_size), ("test", test_size)):
    images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
    if size is None:
      idx = rng.permutation(len(labels))
    else:
      if size < 0 or size > len(labels):
        raise ValueError(f"{split}_size must lie in [0, {len(labels)}], got {split}_size={size}")
      counts = np.full(ds.num_classes, size // ds.num_classes)
      counts[rng.choice(ds.num_classes, size % ds.num_classes, replace=False)] += 1
      picks = []
      for c, count in enumerate(counts):
        members = np.flatnonzero(labels == c)
        if len(members) < count:
          raise ValueError(f"class {ds.class_names[c]!r} has {len(members)} {split} images, fewer "
                           f"than the {count} that a balanced {split}_size={size} needs")
        picks.append(rng.choice(members, count, replace=False))
      idx = rng.permutation(np.concatenate(picks))
    arrays[f"{split}_images"] = images[idx]
    arrays[f"{split}_labels"] = labels[idx]
  return Dataset(**arrays, class_names=ds.class_names,
                 source=f"{ds.source} [stratified subset {train_size=} {test_size=} {seed=}]")


def training_subsets(ds: Dataset, *, train_size: int | None, test_size: int | None, val_size: int = 0,
                     seed: int) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
  """A run's data: stratified subsets of `ds` and, disjoint from its training set, held-out training images.

  With no size set and nothing held out, `ds` itself. Otherwise one `stratified_subset` of
  ``train_size + val_size`` training images (all of them when `train_size` is None) and `test_size` test
  images (all when None), whose first `val_size` training images (a random, stratified-subset order) are
  held out.

  Args:
    ds: the dataset.
    train_size: training images to train on (None: all but the held-out ones).
    test_size: test images (None: all).
    val_size: training images to hold out (the workflow's range test measures accuracy on them).
    seed: seed of the subsets.

  Returns:
    ``(dataset, (held_out_images, held_out_labels))``; the dataset's ``source`` says what was held out.

  Raises:
    ValueError: a size is not positive, or ``train_size + val_size`` exceeds the training images.
  """
  if train_size is not None and train_size <= 0:
    raise ValueError(f"train_size must be positive (or None for all), got {train_size=}")
  if val_size < 0:
    raise ValueError(f"val_size must be non-negative, got {val_size=}")
  n_train = len(ds.train_labels)
  held_out = (ds.train_images[:0], ds.train_labels[:0])
  if train_size is None and test_size is None and not val_size:
    return ds, held_out
  want = n_train if train_size is None else train_size + val_size
  if want > n_train:
    raise ValueError(f"train_size + val_size ({want}) exceeds the {n_train} training images of {ds.source}")
  sub = stratified_subset(ds, train_size=want, test_size=len(ds.test_labels) if test_size is None else test_size,
                          seed=seed)
  if not val_size:
    return sub, held_out
  train = dataclasses.replace(sub, train_images=sub.train_images[val_size:], train_labels=sub.train_labels[val_size:],
                              source=f"{sub.source}; {val_size} held out for the range test")
  return train, (sub.train_images[:val_size], sub.train_labels[:val_size])
