"""Datasets on disk: image folders read and decoded into arrays, and the `.npz` cache of decoded arrays.

An image folder is laid out as ``{train,test}/<class>/<image>``, as a directory or a
``.tar``/``.tar.gz``/``.tar.xz`` archive; `read` returns the fields of an `experiments.data.Dataset`.
`cached` keeps any dataset (an image folder's or tensorflow-datasets') as an `.npz` file, written
atomically and rebuilt when stale or corrupt. The `Dataset` type and loading are `experiments.data`'s.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import pathlib
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import tqdm
from PIL import Image

# Bump when the decoding, what is accepted, or the cache format changes: old caches are then rebuilt.
# 2: incomplete archives and empty class folders are refused (version 1 cached them, files missing or
# labels shifted).
LOADER_VERSION = 2
CACHE_ENV = "CLR_OPTAX_CACHE"
_CACHE_FIELDS = ("train_images", "train_labels", "test_images", "test_labels", "class_names",
                 "source", "cache_key")
SPLITS = ("train", "test")
T = TypeVar("T")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".gif", ".webp", ".tif", ".tiff")


def read(path: pathlib.Path, *, show_progress: bool) -> dict:
  """Reads and decodes the image folder at ``path`` (a directory or tar archive).

  Args:
    path: the resolved directory or archive.
    show_progress: show progress bars while reading and decoding.

  Returns:
    The `experiments.data.Dataset` fields: ``train_images``, ``train_labels``, ``test_images``,
    ``test_labels``, ``class_names`` and ``source`` (the path).

  Raises:
    ValueError: a wrong layout, an unreadable, truncated or corrupt archive, or an image that cannot
      be decoded or has the wrong size or mode; the message names the file.
  """
  files, folders = _read_dir(path, show_progress) if path.is_dir() else _read_archive(path, show_progress)
  return _decode(files, folders, source=str(path), show_progress=show_progress)


def _visible(relpath: str) -> bool:
  return not any(part.startswith(".") for part in relpath.split("/"))


def _is_image(relpath: str) -> bool:
  return _visible(relpath) and relpath.lower().endswith(IMAGE_SUFFIXES)


def _read_dir(path: pathlib.Path, show_progress: bool) -> tuple[dict[str, bytes], set[str]]:
  """The image files (relative path: bytes) and the visible folders (relative paths) below ``path``."""
  files, folders = {}, set()
  with tqdm.tqdm(desc=f"reading {path.name}", unit="file", disable=not show_progress) as bar:
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


def _read_archive(path: pathlib.Path, show_progress: bool) -> tuple[dict[str, bytes], set[str]]:
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
      for member in tqdm.tqdm(archive, desc=f"reading {path.name}", unit="file", disable=not show_progress):
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


def _decode(files: dict[str, bytes], folders: set[str], *, source: str, show_progress: bool) -> dict:
  class_names, by_split = _layout(list(files), folders, source)
  label_of = {name: i for i, name in enumerate(class_names)}
  total = sum(len(items) for items in by_split.values())
  arrays = {}
  first = None
  with tqdm.tqdm(total=total, desc=f"decoding {pathlib.Path(source).name}", unit="img",
                 disable=not show_progress) as bar:
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
  return {**arrays, "class_names": class_names, "source": source}


def default_cache_dir() -> pathlib.Path:
  """``$CLR_OPTAX_CACHE`` if set, else ``~/.cache/clr_optax``."""
  return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "clr_optax")


def cache_root(cache_dir: str | os.PathLike | None) -> pathlib.Path:
  return pathlib.Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def file_stats(folder: pathlib.Path) -> list[tuple[str, int, int]]:
  """(relative path, size, mtime) of every file below ``folder``, in a fixed order."""
  stats = []
  for root, dirs, names in os.walk(folder, followlinks=True):
    dirs.sort()
    for name in sorted(names):
      st = os.stat(os.path.join(root, name))
      stats.append((os.path.relpath(os.path.join(root, name), folder), st.st_size, st.st_mtime_ns))
  return stats


def cached(cache_file: pathlib.Path, key: str, build: Callable[[], T], make: Callable[..., T]) -> T:
  """The dataset in ``cache_file`` if it holds ``key``, else ``build()``, cached atomically.

  Args:
    cache_file: the ``.npz`` file.
    key: what the cache must hold to be used (a hash of the source and `LOADER_VERSION`).
    build: reads the dataset from its source.
    make: makes the dataset from the cached fields (``train_images`` ... ``source``), raising ValueError
      for invalid ones; a cache it refuses is rebuilt.

  Returns:
    The dataset: anything with the attributes ``train_images`` ... ``source``.
  """
  if cache_file.exists():
    ds = _read_cache(cache_file, key, make)
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


def _write_cache(cache_file: pathlib.Path, ds, key: str) -> None:
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


def _read_cache(cache_file: pathlib.Path, key: str, make: Callable[..., T]) -> T | None:
  """Returns the cached dataset, or None (with a message) when the cache is stale or corrupt."""
  try:
    with np.load(cache_file, allow_pickle=False) as z:
      if sorted(z.files) != sorted(_CACHE_FIELDS):
        raise ValueError(f"fields {sorted(z.files)}")
      if str(z["cache_key"]) != key:
        raise ValueError("cache key mismatch")
      # Reading every array in full makes zipfile check each member's CRC-32.
      return make(train_images=z["train_images"], train_labels=z["train_labels"],
                  test_images=z["test_images"], test_labels=z["test_labels"],
                  class_names=tuple(str(c) for c in z["class_names"]), source=str(z["source"]))
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    print(f"Cache {cache_file} is unreadable ({type(e).__name__}: {e}); rebuilding it.",
          file=sys.stderr, flush=True)
    return None
