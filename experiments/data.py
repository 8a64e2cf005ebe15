"""CIFAR input: uint8 arrays from tensorflow-datasets or an image folder, and on-device augmentation.

Two sources give the same `Dataset` of uint8 arrays:

* tensorflow-datasets (`load("cifar10")`, `load("cifar100")`), read through `tfds.data_source`
  (array_record files, no TensorFlow needed to *read*). *Preparing* a tfds dataset (the first
  download) does need TensorFlow: tfds encodes every image with `tf.image.encode_png` and extracts
  archives with `tf.io.gfile`. Without TensorFlow or without internet, use the second source.
* An image folder laid out as `{train,test}/<class>/<image>`, as a directory or a
  `.tar`/`.tar.gz`/`.tar.xz` archive (`load("path/to/cifar10-jpeg.tar.xz")`). It is decoded once and
  cached as an `.npz` file in `$CLR_OPTAX_CACHE` (default `~/.cache/clr_optax`); later loads read the
  cache, which is written atomically and rebuilt when it is stale or corrupt.

The whole training set then lives on the device(s); `random_crop_flip` and `normalize` run inside
the compiled train step as batched `jnp` ops, and `epoch_permutation` shuffles on device.

(Longer than the project's ~400 lines a module: its archive reading, decoding and caching were being
hardened (issue 13) while the rest of experiments/ was split; the subsets and on-device ops at its end
are the part to move to a module of their own next.)
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import io
import json
import lzma
import os
import pathlib
import socket
import sys
import tarfile
import tempfile
import threading
import urllib.parse
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm
from PIL import Image

# Bump when the decoding, what is accepted, or the cache format changes: old caches are then rebuilt.
# 2: incomplete archives and empty class folders are refused (version 1 cached them, files missing or
# labels shifted).
LOADER_VERSION = 2
CACHE_ENV = "CLR_OPTAX_CACHE"
TFDS_NAMES = ("cifar10", "cifar100")
SPLITS = ("train", "test")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff")
_CACHE_FIELDS = ("train_images", "train_labels", "test_images", "test_labels", "class_names",
                 "source", "cache_key")


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
    for split in SPLITS:
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
    cache_dir: where the arrays are cached; default `default_cache_dir()`.
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
    for split in SPLITS:
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
  blob = json.dumps({"source": source, "files": _file_stats(data_path), "loader_version": LOADER_VERSION})
  key = hashlib.sha256(blob.encode()).hexdigest()
  return _cached(_cache_root(cache_dir) / f"tfds-{name}-{builder.info.version}-{key[:16]}.npz", key, build)


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


def default_cache_dir() -> pathlib.Path:
  """``$CLR_OPTAX_CACHE`` if set, else ``~/.cache/clr_optax``."""
  return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "clr_optax")


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
  (every file's, for a directory) and `LOADER_VERSION`; it is written to a temporary file and
  renamed, so a crash never leaves a partial cache, and a corrupt cache is rebuilt. When the cache
  cannot be written (a read-only folder, a full disk), a warning says so and the decoded arrays are
  returned uncached.

  Args:
    path: the directory or archive.
    cache_dir: default `default_cache_dir()`.
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
    files, folders = _read_dir(path, progress) if path.is_dir() else _read_archive(path, progress)
    return _decode(files, folders, source=str(path), progress=progress)

  return _cached(_cache_root(cache_dir) / f"{_stem(path)}-{key[:16]}.npz", key, build)


def _stem(path: pathlib.Path) -> str:
  name = path.name
  for suffix in ARCHIVE_SUFFIXES:
    if name.lower().endswith(suffix):
      return name[:-len(suffix)]
  return name


def _cache_key(path: pathlib.Path) -> str:
  """Hash of the path, size and mtime (of each file, for a directory) and the loader version."""
  if path.is_dir():
    stats = _file_stats(path)
  else:
    st = path.stat()
    stats = [(st.st_size, st.st_mtime_ns)]
  blob = json.dumps({"path": str(path), "files": stats, "loader_version": LOADER_VERSION})
  return hashlib.sha256(blob.encode()).hexdigest()


def _visible(relpath: str) -> bool:
  return not any(part.startswith(".") for part in relpath.split("/"))


def _is_image(relpath: str) -> bool:
  return _visible(relpath) and relpath.lower().endswith(IMAGE_SUFFIXES)


def _read_dir(path: pathlib.Path, progress: bool | None) -> tuple[dict[str, bytes], set[str]]:
  """The image files (relative path: bytes) and the visible folders (relative paths) below ``path``."""
  files, folders = {}, set()
  with tqdm.tqdm(desc=f"reading {path.name}", unit="file", disable=_no_bar(progress)) as bar:
    for root, dirs, names in os.walk(path, followlinks=True):
      dirs[:] = [d for d in dirs if not d.startswith(".")]
      rel_root = pathlib.Path(root).relative_to(path).as_posix()
      if rel_root != ".":
        folders.add(rel_root)
      for name in names:
        full = os.path.join(root, name)
        rel = pathlib.Path(full).relative_to(path).as_posix()
        if _is_image(rel):
          files[rel] = pathlib.Path(full).read_bytes()
          bar.update()
  return files, folders


# The first bytes of a gzip and of an xz stream (a plain tar starts with a member's name).
_DECOMPRESSORS = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open))


def _open_tar_stream(path: pathlib.Path) -> io.IOBase:
  """The archive's tar stream: the file itself, or its gzip or xz decompression, told by its first bytes."""
  with open(path, "rb") as f:
    head = f.read(6)
  for magic, decompressor in _DECOMPRESSORS:
    if head.startswith(magic):
      return decompressor(path, "rb")
  return open(path, "rb")


def _read_archive(path: pathlib.Path, progress: bool | None) -> tuple[dict[str, bytes], set[str]]:
  """Reads the image files and folders of a tar archive in one forward pass, checking that it is complete.

  Python's tarfile ends the member list quietly when the stream ends at a member boundary or inside
  a header, or at a damaged header, so where it stopped must be the end-of-archive marker (two
  zero 512-byte blocks). A gzip or xz stream is then read to its end, where the decompressor checks
  its end-of-stream marker and its checksums (gzip's CRC-32 of all the data, xz's check of each
  block, CRC-64 by default). Returns the image files (name: bytes) and the visible folders, as `_read_dir` does.
  """
  files, folders = {}, set()
  where = f"archive {str(path)!r}"
  try:
    with _open_tar_stream(path) as stream, tarfile.open(fileobj=stream, mode="r:") as archive:
      last = None
      for member in tqdm.tqdm(archive, desc=f"reading {path.name}", unit="file", disable=_no_bar(progress)):
        name = last = member.name
        while name.startswith("./"):
          name = name[2:]
        if not _visible(name):
          continue
        parts = name.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if member.isdir():
          folders.add(name)
        elif member.isfile() and _is_image(name):
          files[name] = archive.extractfile(member).read()
      after = f"after {len(archive.members)} members (the last {last!r})" if last else "before any member"
      stream.seek(archive.offset)
      marker = stream.read(2 * tarfile.BLOCKSIZE)
      if marker != bytes(2 * tarfile.BLOCKSIZE):
        at = f"at byte {archive.offset} of its tar stream, {after}"
        if bytes(2 * tarfile.BLOCKSIZE).startswith(marker):
          problem = f"is truncated: {at}, it ends without the end-of-archive marker (two zero 512-byte blocks)"
        elif len(marker) < tarfile.BLOCKSIZE:
          problem = f"is truncated: {at}, it ends inside a member header ({len(marker)} of 512 bytes)"
        else:
          problem = (f"is corrupt or truncated: {at}, lies a damaged member header where the next member or "
                     f"the end-of-archive marker should be")
        raise ValueError(f"{where} {problem}")
      while stream.read(2**20):  # to the end, where gzip and xz check their end-of-stream marker
        pass
  except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as e:  # OSError: gzip's errors
    raise ValueError(f"cannot read {where} (truncated or corrupt?): {type(e).__name__}: {e}") from e
  return files, folders


def _layout(files: Sequence[str], folders: set[str],
            source: str) -> tuple[tuple[str, ...], dict[str, list[tuple[str, str]]]]:
  """Checks the {train,test}/<class>/<image> layout; returns class names and (file, class) per split."""
  if not files:
    raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {source!r}; expected the "
                     f"layout {{train,test}}/<class>/<image>")
  root = None  # (folders above {train,test}, first file below them)
  by_split: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
  for name in sorted(files):
    parts = name.split("/")
    if len(parts) < 3 or parts[-3] not in SPLITS:
      raise ValueError(f"{source}: {name!r} does not fit the layout {{train,test}}/<class>/<image>")
    if root is None:
      root = (parts[:-3], name)
    elif parts[:-3] != root[0]:
      raise ValueError(f"{source}: {name!r} and {root[1]!r} lie under different folders; expected one "
                       f"layout {{train,test}}/<class>/<image>")
    by_split[parts[-3]].append((name, parts[-2]))
  classes = {split: sorted({c for _, c in items}) for split, items in by_split.items()}
  for split in SPLITS:
    if not classes[split]:
      raise ValueError(f"{source}: no images under {split}/; expected the layout {{train,test}}/<class>/<image>")
  for folder in sorted(folders):
    parts = folder.split("/")
    if len(parts) >= 2 and parts[:-2] == root[0] and parts[-2] in SPLITS and parts[-1] not in classes[parts[-2]]:
      raise ValueError(f"{source}: class folder {folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); "
                       f"labels number the class folders in order, so skipping it would shift the labels "
                       f"of the classes after it. Add its images or remove the folder.")
  if classes["train"] != classes["test"]:
    only_train = sorted(set(classes["train"]) - set(classes["test"]))
    only_test = sorted(set(classes["test"]) - set(classes["train"]))
    raise ValueError(f"{source}: train and test hold different classes: only in train {only_train}, "
                     f"only in test {only_test}")
  return tuple(classes["train"]), by_split


def _decode_one(name: str, data: bytes, source: str) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if image.mode != "RGB":
        raise ValueError(f"{source}: {name!r} is a {image.mode} image, expected RGB")
      return np.asarray(image)
  except OSError as e:  # includes PIL.UnidentifiedImageError and truncated files
    raise ValueError(f"{source}: cannot decode image {name!r}: {e}") from e


def _decode(files: dict[str, bytes], folders: set[str], *, source: str, progress: bool | None) -> Dataset:
  class_names, by_split = _layout(list(files), folders, source)
  label_of = {name: i for i, name in enumerate(class_names)}
  total = sum(len(items) for items in by_split.values())
  arrays = {}
  first = None
  with tqdm.tqdm(total=total, desc=f"decoding {pathlib.Path(source).name}", unit="img",
                 disable=_no_bar(progress)) as bar:
    for split, items in by_split.items():
      images = labels = None
      for i, (name, cls) in enumerate(items):
        image = _decode_one(name, files[name], source)
        if first is None:
          first = (name, image.shape)
        elif image.shape != first[1]:
          raise ValueError(f"{source}: {name!r} has size {image.shape[1]}x{image.shape[0]}, but "
                           f"{first[0]!r} has {first[1][1]}x{first[1][0]} (width x height)")
        if images is None:
          images = np.empty((len(items), *image.shape), np.uint8)
          labels = np.empty((len(items),), np.int32)
        images[i] = image
        labels[i] = label_of[cls]
        bar.update()
      arrays[f"{split}_images"] = images
      arrays[f"{split}_labels"] = labels
  return Dataset(**arrays, class_names=class_names, source=source)


def _no_bar(progress: bool | None) -> bool:
  return not progress if progress is not None else not sys.stderr.isatty()


def _cache_root(cache_dir: str | os.PathLike | None) -> pathlib.Path:
  return pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def _file_stats(folder: pathlib.Path) -> list[tuple[str, int, int]]:
  """(relative path, size, mtime) of every file below ``folder``, in a fixed order."""
  stats = []
  for root, dirs, names in os.walk(folder, followlinks=True):
    dirs.sort()
    for name in sorted(names):
      st = os.stat(os.path.join(root, name))
      stats.append((os.path.relpath(os.path.join(root, name), folder), st.st_size, st.st_mtime_ns))
  return stats


def _cached(cache_file: pathlib.Path, key: str, build) -> Dataset:
  """The dataset from ``cache_file`` if it holds ``key``, else ``build()``, cached atomically."""
  if cache_file.exists():
    ds = _read_cache(cache_file, key)
    if ds is not None:
      return ds
  ds = build()
  try:
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    _write_cache(cache_file, ds, key)
  except OSError as e:  # the decode is kept: a cache is only a shortcut
    warnings.warn(f"cannot write the cache {cache_file} ({type(e).__name__}: {e}); using the decoded arrays "
                  f"uncached, so the next load decodes again. Set ${CACHE_ENV} or cache_dir= to a writable "
                  f"folder to cache them.", stacklevel=3)
    return ds
  size_mb = cache_file.stat().st_size / 2**20
  print(f"Decoded {len(ds.train_labels) + len(ds.test_labels)} images from {ds.source}; "
        f"cached in {cache_file} ({size_mb:.0f} MiB)", file=sys.stderr, flush=True)
  return ds


def _write_cache(cache_file: pathlib.Path, ds: Dataset, key: str) -> None:
  """Writes the arrays atomically: a temporary file in the same folder, then `os.replace`."""
  fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=f".{cache_file.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, train_images=ds.train_images, train_labels=ds.train_labels,
               test_images=ds.test_images, test_labels=ds.test_labels,
               class_names=np.array(ds.class_names, dtype=str), source=np.array(ds.source),
               cache_key=np.array(key))
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, cache_file)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise


def _read_cache(cache_file: pathlib.Path, key: str) -> Dataset | None:
  """Returns the cached dataset, or None (with a message) when the cache is stale or corrupt."""
  try:
    with np.load(cache_file, allow_pickle=False) as z:
      if sorted(z.files) != sorted(_CACHE_FIELDS):
        raise ValueError(f"fields {sorted(z.files)}")
      if str(z["cache_key"]) != key:
        raise ValueError("cache key mismatch")
      # Reading every array in full makes zipfile check each member's CRC-32.
      return Dataset(train_images=z["train_images"], train_labels=z["train_labels"],
                     test_images=z["test_images"], test_labels=z["test_labels"],
                     class_names=tuple(str(c) for c in z["class_names"]), source=str(z["source"]))
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    print(f"Cache {cache_file} is unreadable ({type(e).__name__}: {e}); rebuilding it.",
          file=sys.stderr, flush=True)
    return None


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


# ----------------------------------------------------------------------------------------------
# Statistics (host, once) and on-device ops (inside compiled steps)


def _chunks(images: np.ndarray, size: int = 2048) -> Iterator[np.ndarray]:
  for start in range(0, len(images), size):
    yield np.asarray(images[start:start + size], np.float64)


def _check_batch(name: str, images: np.ndarray) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or not len(images):
    raise ValueError(f"{name} must be a non-empty uint8 [N, H, W, C] array, got {images.dtype} {images.shape}")
  return images


def channel_stats(train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and (population) standard deviation, in [0, 255] units.

  Args:
    train_images: uint8 [N, H, W, C].

  Returns:
    ``(mean, std)``, float32 [C] each. The sums of values and of squares are exact (integers in
    float64, below 2^53 for any dataset under ~10^9 pixels).
  """
  train_images = _check_batch("train_images", train_images)
  channels = train_images.shape[-1]
  total, squares = np.zeros(channels), np.zeros(channels)
  for chunk in _chunks(train_images):
    pixels = chunk.reshape(-1, channels)
    total += np.ones(len(pixels)) @ pixels  # BLAS: much faster than pixels.sum(axis=0)
    squares += np.ones(len(pixels)) @ (pixels * pixels)
  count = train_images.size // channels
  mean = total / count
  return mean.astype(np.float32), np.sqrt(squares / count - mean**2).astype(np.float32)


def mean_image(train_images: np.ndarray) -> np.ndarray:
  """The mean training image, float32 [H, W, C] in [0, 255] units (Caffe's mean-image subtraction).

  Use it as ``normalize(images, mean_image(train_images), 1.0)``.
  """
  train_images = _check_batch("train_images", train_images)
  total = sum(chunk.sum(axis=0) for chunk in _chunks(train_images))
  return (total / len(train_images)).astype(np.float32)


def normalize(images_uint8: jax.Array, mean, std) -> jax.Array:
  """``(images - mean) / std`` in float32; ``mean``, ``std`` broadcast (per channel or per pixel)."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (jnp.asarray(images_uint8, jnp.float32) - mean) / std


def random_crop_flip(key: jax.Array, images_uint8: jax.Array, *, pad: int = 4) -> jax.Array:
  """Pads each image with ``pad`` zero pixels per side, crops it back at random, flips half.

  Every image gets its own crop offset (uniform over the ``(2 pad + 1)^2`` positions) and its own
  horizontal flip (probability 1/2): the standard CIFAR augmentation, as one gather on the batch.

  Args:
    key: a PRNG key.
    images_uint8: [B, H, W, C] (any dtype; the output has the same).
    pad: pixels of zero padding per side; 0 only flips.

  Returns:
    The augmented batch, same shape and dtype.
  """
  if images_uint8.ndim != 4:
    raise ValueError(f"images_uint8 must be [B, H, W, C], got shape {images_uint8.shape}")
  if pad < 0:
    raise ValueError(f"pad must be non-negative, got {pad=}")
  b, h, w, _ = images_uint8.shape
  crop_key, flip_key = jax.random.split(key)
  offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * pad + 1)
  flips = jax.random.bernoulli(flip_key, 0.5, (b,))
  padded = jnp.pad(images_uint8, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  rows = offsets[:, :1] + jnp.arange(h)                                             # [B, H]
  cols = offsets[:, 1:] + jnp.where(flips[:, None], jnp.arange(w)[::-1], jnp.arange(w))  # [B, W]
  return padded[jnp.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def epoch_permutation(key: jax.Array, n: int) -> jax.Array:
  """A random permutation of ``range(n)`` drawn on device: one epoch's order of the training set."""
  return jax.random.permutation(key, n)
