"""ImageNet sources: random access to (encoded image, label, name) records, from tensorflow-datasets or a folder.

Two sources give the same records, with label ``i`` the ``i``-th wnid in sorted order in both:

* tensorflow-datasets ``imagenet2012`` (`tfds_source`), read through ``tfds.data_source`` (array_record
  files; no TensorFlow needed to read). ImageNet cannot be downloaded by tfds: the user downloads
  ``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` from image-net.org into
  ``<data_dir>/downloads/manual/`` and prepares them once with ``tfds build imagenet2012`` (which needs
  TensorFlow: ``pip install clr_optax[tfds-prepare]``).
* an image folder `{train,val}/<wnid>/*.JPEG` (`image_folder`), e.g. the ILSVRC2012 archives unpacked, the
  validation images moved into per-class folders.

`experiments.imagenet` streams them through Caffe's preprocessing.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np

__all__ = ["IMAGE_SUFFIXES", "ImageFolderSource", "TfdsSource", "image_folder", "open_source", "tfds_source"]

SPLITS = ("train", "val")
TFDS_NAME = "imagenet2012"
TFDS_SPLITS = {"train": "train", "val": "validation"}
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclasses.dataclass(frozen=True)
class ImageFolderSource:
  """The images of one split of an image folder ``<root>/<split>/<wnid>/<image>``, in sorted order.

  A grain random-access data source: ``len(source)`` records, ``source[i]`` is
  ``{"image": encoded bytes, "label": int, "name": "<split>/<wnid>/<file>"}``.

  Attributes:
    root: the folder holding ``train/`` and ``val/``.
    split: ``"train"`` or ``"val"``.
    class_names: the wnids, sorted; label ``i`` is ``class_names[i]``.
    files: the images' paths relative to ``root``.
    labels: int32, the label of each file.
  """

  root: str
  split: str
  class_names: tuple[str, ...]
  files: tuple[str, ...]
  labels: np.ndarray

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, index: int) -> dict[str, Any]:
    name = self.files[index]
    return {"image": pathlib.Path(self.root, name).read_bytes(), "label": int(self.labels[index]), "name": name}

  def __repr__(self) -> str:
    return f"ImageFolderSource({self.root!r}, {self.split!r}, {len(self)} images, {len(self.class_names)} classes)"


def _classes(split_dir: pathlib.Path) -> dict[str, list[str]]:
  """``{wnid: sorted file names}`` of one split folder; raises on an empty class or a non-image file."""
  if not split_dir.is_dir():
    raise FileNotFoundError(f"{str(split_dir)!r} is not a folder; expected the layout {{train,val}}/<wnid>/*.JPEG")
  classes = {}
  for class_dir in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
    if not class_dir.is_dir():
      raise ValueError(f"{str(class_dir)!r} is a file where a class folder was expected ({split_dir.name}/<wnid>/)")
    names = sorted(p.name for p in class_dir.iterdir() if not p.name.startswith("."))
    for name in names:
      if not name.lower().endswith(IMAGE_SUFFIXES) or not (class_dir / name).is_file():
        raise ValueError(f"{str(class_dir / name)!r} is not an image file (expected one of {IMAGE_SUFFIXES})")
    if not names:
      raise ValueError(f"class folder {str(class_dir)!r} holds no images")
    classes[class_dir.name] = names
  if not classes:
    raise ValueError(f"{str(split_dir)!r} holds no class folders; expected {split_dir.name}/<wnid>/*.JPEG")
  return classes


def image_folder(root: str | os.PathLike, split: str) -> ImageFolderSource:
  """Lists one split of an ImageNet-layout folder, checking the layout against the other split.

  Args:
    root: a folder holding ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``.
    split: ``"train"`` or ``"val"``.

  Returns:
    The `ImageFolderSource`; its labels index the sorted wnids of ``train/``.

  Raises:
    FileNotFoundError: ``root`` or one of its splits is missing.
    ValueError: an empty class folder, a file that is not an image, or ``val/`` and ``train/`` holding
      different classes; the message names the folder or file.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split=}")
  root_path = pathlib.Path(root).expanduser()
  if not root_path.is_dir():
    raise FileNotFoundError(f"ImageNet folder not found: {str(root_path)!r} (expected {{train,val}}/<wnid>/*.JPEG)")
  root_path = root_path.resolve()
  per_split = {s: _classes(root_path / s) for s in SPLITS}
  if set(per_split["train"]) != set(per_split["val"]):
    only_train = sorted(set(per_split["train"]) - set(per_split["val"]))
    only_val = sorted(set(per_split["val"]) - set(per_split["train"]))
    raise ValueError(f"{str(root_path)!r}: val/ and train/ hold different classes: only in train/ {only_train}, "
                     f"only in val/ {only_val}")
  class_names = tuple(sorted(per_split["train"]))
  files, labels = [], []
  for label, wnid in enumerate(class_names):
    for name in per_split[split][wnid]:
      files.append(f"{split}/{wnid}/{name}")
      labels.append(label)
  return ImageFolderSource(str(root_path), split, class_names, tuple(files), np.asarray(labels, np.int32))


class TfdsSource:
  """One split of tensorflow-datasets' ``imagenet2012``, its images left encoded for the workers.

  A grain random-access data source: ``source[i]`` is ``{"image": JPEG bytes, "label": int, "name": file}``.
  """

  def __init__(self, split: str, data_dir: str | os.PathLike | None = None):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    if split not in TFDS_SPLITS:
      raise ValueError(f"split must be one of {tuple(TFDS_SPLITS)}, got {split=}")
    self.split = split
    try:
      builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
      prepared = builder.is_prepared()
    except Exception as e:  # tfds raises several types for a missing or unreadable data_dir
      raise FileNotFoundError(_tfds_hint(data_dir, f"({type(e).__name__}: {e})")) from e
    if not prepared:
      raise FileNotFoundError(_tfds_hint(data_dir, f"(not prepared in {builder.data_dir!r})"))
    self._source = tfds.data_source(TFDS_NAME, split=TFDS_SPLITS[split], data_dir=data_dir, download=False,
                                    decoders={"image": tfds.decode.SkipDecoding()})
    self.class_names = tuple(builder.info.features["label"].names)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self._source[index]
    name = record.get("file_name", index)
    return {"image": bytes(record["image"]), "label": int(record["label"]),
            "name": name.decode() if isinstance(name, bytes) else str(name)}

  def __repr__(self) -> str:
    return f"TfdsSource({TFDS_NAME!r}, {self.split!r}, {len(self)} images)"


def _tfds_hint(data_dir: Any, why: str) -> str:
  where = data_dir or "~/tensorflow_datasets"
  return (f"tensorflow-datasets {TFDS_NAME!r} is not available {why}. ImageNet is a manual download: put "
          f"ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (image-net.org) in {where}/downloads/manual/ and "
          f"run `tfds build {TFDS_NAME} --data_dir {where}` once (needs TensorFlow: pip install "
          f"'clr_optax[tfds-prepare]'); or pass an image folder laid out as {{train,val}}/<wnid>/*.JPEG.")


def tfds_source(split: str, data_dir: str | os.PathLike | None = None) -> TfdsSource:
  """tensorflow-datasets' prepared ``imagenet2012`` split (``"train"`` or ``"val"``, tfds's ``validation``).

  Raises:
    FileNotFoundError: the dataset is not prepared in ``data_dir``; the message says how to prepare it.
  """
  return TfdsSource(split, data_dir)



def open_source(spec: str | os.PathLike, split: str, *, data_dir: str | os.PathLike | None = None):
  """``"imagenet2012"`` (tensorflow-datasets, in ``data_dir``) or the path of an ImageNet-layout folder."""
  if str(spec) == TFDS_NAME:
    return tfds_source(split, data_dir)
  return image_folder(spec, split)
