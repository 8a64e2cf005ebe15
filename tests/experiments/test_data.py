"""Tests for experiments/data.py, datafiles.py and augment.py: image folders and their cache, tfds (mocked), subsets,
augmentation."""

import io
import os
import pathlib
import tarfile
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import augment
from experiments import data
from experiments import datafiles

CLASSES = ("frog", "cat", "dog")  # created in this order; labels must follow the sorted order
SIZE = (6, 5)  # height, width: not square, so a transposed image would be caught


def _image(rng, size=SIZE, mode="RGB"):
  channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
  pixels = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
  return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)


def make_folder(root: pathlib.Path, *, n_train=4, n_test=2, fmt="PNG", seed=0) -> dict[str, np.ndarray]:
  """Writes {train,test}/<class>/<i>.<ext> under root; returns the pixels by relative path."""
  rng = np.random.default_rng(seed)
  ext = {"PNG": "png", "JPEG": "jpg"}[fmt]
  written = {}
  for split, n in (("train", n_train), ("test", n_test)):
    for cls in CLASSES:
      (root / split / cls).mkdir(parents=True)
      for i in reversed(range(n)):  # write out of order: loading must sort
        path = root / split / cls / f"{i:03d}.{ext}"
        _image(rng).save(path, fmt)
        written[f"{split}/{cls}/{path.name}"] = np.asarray(Image.open(path).convert("RGB"))
  (root / "README.txt").write_text("not an image: ignored")
  return written


def make_archive(folder: pathlib.Path, dest: pathlib.Path, arcname="data") -> pathlib.Path:
  mode = {".tar": "w", ".gz": "w:gz", ".xz": "w:xz"}[dest.suffix]
  with tarfile.open(dest, mode) as archive:
    archive.add(folder, arcname=arcname)
  return dest


def expected_split(written, split):
  """The images of a split and their labels in the order the loader promises: class, then file name."""
  names = sorted(n for n in written if n.startswith(split + "/"))
  classes = sorted(CLASSES)
  images = np.stack([written[n] for n in names])
  labels = np.array([classes.index(n.split("/")[1]) for n in names], np.int32)
  return images, labels


def cache_files(cache_dir: pathlib.Path) -> list[str]:
  return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


@pytest.fixture
def folder(tmp_path):
  written = make_folder(tmp_path / "src")
  return tmp_path / "src", written


# ----------------------------------------------------------------------------------------------
# Image folders


@pytest.mark.parametrize("kind, arcname", [("dir", None), (".tar", "data"), (".tar.gz", "data"),
                                           (".tar.xz", "data"), (".tar", "."), (".tar.gz", "")])
def test_image_folder_loads_every_layout_exactly(folder, tmp_path, kind, arcname):
  src, written = folder
  path = src if kind == "dir" else make_archive(src, tmp_path / f"ds{kind}", arcname)
  ds = data.load(str(path), cache_dir=tmp_path / "cache")
  assert ds.class_names == ("cat", "dog", "frog")
  assert ds.num_classes == 3
  for split in ("train", "test"):
    images, labels = expected_split(written, split)
    np.testing.assert_array_equal(getattr(ds, f"{split}_images"), images)
    np.testing.assert_array_equal(getattr(ds, f"{split}_labels"), labels)
    assert getattr(ds, f"{split}_images").dtype == np.uint8
    assert getattr(ds, f"{split}_labels").dtype == np.int32
  assert ds.train_images.shape == (12, *SIZE, 3) and ds.test_images.shape == (6, *SIZE, 3)
  assert ds.source == str(path.resolve())


def test_archive_without_root_folder_and_jpeg(tmp_path):
  written = make_folder(tmp_path / "src", fmt="JPEG")
  archive = tmp_path / "flat.tar"
  with tarfile.open(archive, "w") as tar:
    for split in ("train", "test"):
      tar.add(tmp_path / "src" / split, arcname=split)
  ds = data.load(archive, cache_dir=tmp_path / "cache")
  images, labels = expected_split(written, "test")  # written holds PIL's decoding of each JPEG file
  np.testing.assert_array_equal(ds.test_images, images)
  np.testing.assert_array_equal(ds.test_labels, labels)


def test_cache_hit_miss_and_env_default(folder, tmp_path, monkeypatch, capsys):
  src, written = folder
  archive = make_archive(src, tmp_path / "ds.tar.gz")
  monkeypatch.setenv(datafiles.CACHE_ENV, str(tmp_path / "envcache"))
  first = data.load(archive)  # cache_dir from $CLR_OPTAX_CACHE
  err = capsys.readouterr().err
  assert "Decoded 18 images" in err and str(tmp_path / "envcache") in err
  assert len(cache_files(tmp_path / "envcache")) == 1
  cache_file = tmp_path / "envcache" / cache_files(tmp_path / "envcache")[0]
  assert cache_file.suffix == ".npz"

  second = data.load(archive)  # hit: nothing decoded, nothing printed
  assert capsys.readouterr().err == ""
  np.testing.assert_array_equal(second.train_images, first.train_images)
  np.testing.assert_array_equal(second.test_labels, first.test_labels)
  assert second.class_names == first.class_names and second.source == first.source

  # A changed archive (new mtime) is a miss: decoded again under a new key.
  stat = archive.stat()
  os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  data.load(archive)
  assert "Decoded 18 images" in capsys.readouterr().err
  assert len(cache_files(tmp_path / "envcache")) == 2


def test_directory_cache_sees_changed_file(folder, tmp_path, capsys):
  src, written = folder
  data.load(src, cache_dir=tmp_path / "cache")
  capsys.readouterr()
  replacement = np.full((*SIZE, 3), 7, np.uint8)
  Image.fromarray(replacement).save(src / "train" / "cat" / "000.png")
  ds = data.load(src, cache_dir=tmp_path / "cache")
  assert "Decoded" in capsys.readouterr().err
  np.testing.assert_array_equal(ds.train_images[0], replacement)  # cat is class 0, 000.png first


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "garbage", "empty"])
def test_corrupt_cache_is_rebuilt(folder, tmp_path, capsys, damage):
  src, written = folder
  cache = tmp_path / "cache"
  data.load(src, cache_dir=cache)
  (name,) = cache_files(cache)
  cache_file = cache / name
  raw = bytearray(cache_file.read_bytes())
  if damage == "truncate":  # a half-written file
    raw = raw[:len(raw) // 2]
  elif damage == "flip_byte":  # inside the train_images array: only the zip CRC-32 can tell
    raw[400] ^= 0xFF
  elif damage == "garbage":
    raw = bytearray(b"not a zip file" * 10)
  else:
    raw = bytearray()
  cache_file.write_bytes(bytes(raw))
  capsys.readouterr()
  ds = data.load(src, cache_dir=cache)
  err = capsys.readouterr().err
  assert "rebuilding" in err and "Decoded 18 images" in err
  images, labels = expected_split(written, "train")
  np.testing.assert_array_equal(ds.train_images, images)
  assert cache_files(cache) == [name]
  data.load(src, cache_dir=cache)  # and the rebuilt cache is good
  assert capsys.readouterr().err == ""


def test_progress_bar_on_request(folder, tmp_path, capsys):
  src, _ = folder
  data.load(src, cache_dir=tmp_path / "cache", progress=True)
  assert "decoding src" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Bad input: a clear error naming the file, and no cache left behind


def _truncated(src, tmp_path, suffix):
  archive = make_archive(src, tmp_path / f"ds{suffix}")
  raw = archive.read_bytes()
  archive.write_bytes(raw[:len(raw) // 2])
  return archive, str(archive)


def _bad_case(case, src: pathlib.Path, tmp_path):
  """Damages the folder for one bad-input case; returns (path to load, text the error must contain)."""
  if case == "missing":
    return tmp_path / "nope.tar.xz", "nope.tar.xz"
  if case == "unsupported":
    (tmp_path / "ds.zip").write_bytes(b"PK")
    return tmp_path / "ds.zip", "ds.zip"
  if case == "image_outside_class":
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(src / "train" / "loose.png")
    return src, "train/loose.png"
  if case == "no_split":
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(src / "cat.png")
    return src, "cat.png"
  if case == "two_roots":
    (src / "extra" / "train" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(src / "extra" / "train" / "cat" / "x.png")
    return src, "extra/train/cat/x.png"
  if case == "missing_test":
    for p in (src / "test").rglob("*.png"):
      p.unlink()
    return src, "no images under test/"
  if case == "class_mismatch":
    (src / "test" / "dog").rename(src / "test" / "horse")
    return src, "only in train ['dog'], only in test ['horse']"
  if case == "empty":
    empty = tmp_path / "empty"
    empty.mkdir()
    return empty, "no images"
  if case == "wrong_size":
    Image.fromarray(np.zeros((7, 5, 3), np.uint8)).save(src / "test" / "frog" / "001.png")
    return src, "test/frog/001.png"
  if case == "wrong_mode":
    _image(np.random.default_rng(1), mode="L").save(src / "train" / "dog" / "002.png")
    return src, "train/dog/002.png' is a L image, expected RGB"
  if case == "rgba":
    _image(np.random.default_rng(1), mode="RGBA").save(src / "train" / "dog" / "002.png")
    return src, "train/dog/002.png' is a RGBA image"
  if case == "undecodable":
    (src / "train" / "frog" / "001.png").write_bytes(b"\x89PNG not really")
    return src, "cannot decode image 'train/frog/001.png'"
  if case == "truncated_image":
    path = src / "train" / "frog" / "001.png"
    path.write_bytes(path.read_bytes()[:60])
    return src, "train/frog/001.png"
  if case in ("truncated.tar", "truncated.tar.gz", "truncated.tar.xz"):
    return _truncated(src, tmp_path, case.removeprefix("truncated"))
  raise AssertionError(case)


BAD_CASES = ["missing", "unsupported", "image_outside_class", "no_split", "two_roots", "missing_test",
             "class_mismatch", "empty", "wrong_size", "wrong_mode", "rgba", "undecodable",
             "truncated_image", "truncated.tar", "truncated.tar.gz", "truncated.tar.xz"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_the_file_and_leaves_no_cache(folder, tmp_path, case):
  src, _ = folder
  path, must_contain = _bad_case(case, src, tmp_path)
  error = FileNotFoundError if case == "missing" else ValueError
  with pytest.raises(error) as info:
    data.load(path, cache_dir=tmp_path / "cache")
  assert must_contain in str(info.value)
  assert cache_files(tmp_path / "cache") == []


def test_truncated_archive_message(folder, tmp_path):
  src, _ = folder
  archive, _ = _truncated(src, tmp_path, ".tar.xz")
  with pytest.raises(ValueError, match=r"cannot read archive .*ds\.tar\.xz.*truncated or corrupt"):
    data.load(archive, cache_dir=tmp_path / "cache")


def test_dataset_validates_its_arrays():
  images = np.zeros((2, 4, 4, 3), np.uint8)
  labels = np.array([0, 1], np.int32)
  ok = dict(train_images=images, train_labels=labels, test_images=images, test_labels=labels,
            class_names=("a", "b"), source="test")
  data.Dataset(**ok)
  with pytest.raises(ValueError, match="train_images must be uint8"):
    data.Dataset(**{**ok, "train_images": images.astype(np.float32)})
  with pytest.raises(ValueError, match="test_labels must be int32"):
    data.Dataset(**{**ok, "test_labels": labels.astype(np.int64)})
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
    data.Dataset(**{**ok, "train_labels": np.array([0, 2], np.int32)})
  with pytest.raises(ValueError, match="differ in shape"):
    data.Dataset(**{**ok, "test_images": np.zeros((2, 5, 4, 3), np.uint8)})


# ----------------------------------------------------------------------------------------------
# tensorflow-datasets


@pytest.fixture
def online_with_tensorflow(monkeypatch):
  """Pretends that TensorFlow is installed and the download hosts answer (nothing is downloaded)."""
  monkeypatch.setattr(data, "_have_tensorflow", lambda: True)
  monkeypatch.setattr(data.socket, "create_connection", lambda address, timeout: io.BytesIO())
  for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
    monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("name, num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_tfds_source_under_mock_data(tmp_path, name, num_classes, online_with_tensorflow):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=5):  # mocks download_and_prepare and the array_record files
    ds = data.load(name, data_dir=tmp_path)
    reference = tfds.data_source(name, split="test", data_dir=tmp_path)
    expected = [reference[i] for i in range(5)]
  assert ds.train_images.shape == (5, 32, 32, 3) and ds.test_images.shape == (5, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.num_classes == num_classes
  assert ds.source.startswith(f"tfds:{name}:3.0.2")
  np.testing.assert_array_equal(ds.test_images, np.stack([e["image"] for e in expected]))
  np.testing.assert_array_equal(ds.test_labels, [e["label"] for e in expected])


@pytest.fixture(scope="session")
def prepared_tfds(tmp_path_factory):
  """A real tfds dataset with cifar10's features, prepared as array_record without TensorFlow.

  (The official builder hands tfds numpy images, which tfds encodes with TensorFlow; this one hands
  it PNG bytes.) Returns the data_dir and the examples per split, to compare with what is read.
  """
  pytest.importorskip("tensorflow_datasets")
  from tensorflow_datasets.image_classification import cifar  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(5)
  examples = {split: [(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), int(rng.integers(10)))
                      for _ in range(n)] for split, n in (("train", 13), ("test", 7))}

  class ClrTestCifar10(cifar.Cifar10):  # registered with tfds as "clr_test_cifar10"

    def _split_generators(self, dl_manager):
      self.info.features["label"].names = [f"class{i}" for i in range(10)]

      def generate(split):
        for i, (image, label) in enumerate(examples[split]):
          png = io.BytesIO()
          Image.fromarray(image).save(png, "PNG")
          yield i, {"id": f"{split}{i}", "image": png.getvalue(), "label": label}

      return {split: generate(split) for split in examples}

  data_dir = tmp_path_factory.mktemp("tfds")
  ClrTestCifar10(data_dir=data_dir, file_format="array_record").download_and_prepare()
  return data_dir, examples


def _sorted_by_pixels(images, labels):
  order = sorted(range(len(labels)), key=lambda i: (bytes(images[i]), labels[i]))
  return np.stack([images[i] for i in order]), np.array([labels[i] for i in order])


def test_tfds_reads_prepared_array_record_and_caches(prepared_tfds, tmp_path, capsys):
  data_dir, examples = prepared_tfds
  ds = data.load_tfds("clr_test_cifar10", data_dir=data_dir, cache_dir=tmp_path / "cache")
  assert "cached in" in capsys.readouterr().err
  assert ds.class_names == tuple(f"class{i}" for i in range(10))
  assert ds.source.startswith("tfds:clr_test_cifar10:3.0.2")
  for split in ("train", "test"):
    # tfds shuffles examples when it prepares them: compare as multisets.
    got = _sorted_by_pixels(getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels"))
    want = _sorted_by_pixels(*zip(*examples[split]))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
  again = data.load_tfds("clr_test_cifar10", data_dir=data_dir, cache_dir=tmp_path / "cache")
  assert capsys.readouterr().err == ""  # read from the cache
  np.testing.assert_array_equal(again.train_images, ds.train_images)
  np.testing.assert_array_equal(again.test_labels, ds.test_labels)
  assert again.class_names == ds.class_names


@pytest.fixture
def hanging_prepare(monkeypatch):
  """Makes tfds's download_and_prepare hang like an offline download; released after the test."""
  tfds = pytest.importorskip("tensorflow_datasets")
  release = threading.Event()
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", lambda self, **kw: release.wait(60))
  yield
  release.set()


def test_tfds_without_tensorflow_fails_at_once(tmp_path, monkeypatch, hanging_prepare):
  monkeypatch.setattr(data, "_have_tensorflow", lambda: False)
  start = time.monotonic()
  with pytest.raises(RuntimeError, match=r"needs TensorFlow(.|\n)*load\(path\)"):
    data.load("cifar10", data_dir=tmp_path, timeout_s=600)
  assert time.monotonic() - start < 5


def test_tfds_offline_fails_at_once(tmp_path, monkeypatch, online_with_tensorflow, hanging_prepare):
  def unreachable(address, timeout):
    raise OSError(f"no route to {address} (test)")

  monkeypatch.setattr(data.socket, "create_connection", unreachable)
  start = time.monotonic()
  with pytest.raises(RuntimeError, match=r"www\.cs\.toronto\.edu:443 is unreachable(.|\n)*load\(path\)"):
    data.load("cifar10", data_dir=tmp_path, timeout_s=600)
  assert time.monotonic() - start < 5


def test_tfds_prepare_time_limit(tmp_path, online_with_tensorflow, hanging_prepare):
  start = time.monotonic()
  with pytest.raises(TimeoutError, match=r"within timeout_s=1(.|\n)*load\(path\)"):
    data.load("cifar10", data_dir=tmp_path, timeout_s=1)
  assert time.monotonic() - start < 10


def test_tfds_prepare_error_without_tensorflow_module(tmp_path, monkeypatch, online_with_tensorflow):
  tfds = pytest.importorskip("tensorflow_datasets")

  def fails(self, **kw):
    raise ModuleNotFoundError("No module named 'tensorflow'")

  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fails)
  with pytest.raises(RuntimeError, match="pip install tensorflow-cpu"):
    data.load("cifar10", data_dir=tmp_path)


def test_tfds_not_prepared_and_no_download(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(FileNotFoundError, match=r"not prepared(.|\n)*load\(path\)"):
    data.load("cifar10", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------
# Stratified subsets


def grouped_dataset(counts=(30, 25, 40, 35), test_counts=(10, 10, 12, 11)) -> data.Dataset:
  """Grouped by class like the archive; pixel [0, 0, 0..2] encodes the index, to trace picks back."""
  def split(counts):
    labels = np.repeat(np.arange(len(counts)), counts).astype(np.int32)
    images = np.zeros((len(labels), 2, 2, 3), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(len(labels)) % 256, np.arange(len(labels)) // 256
    return images, labels
  (tri, trl), (tei, tel) = split(counts), split(test_counts)
  return data.Dataset(tri, trl, tei, tel, class_names=("a", "b", "c", "d"), source="grouped")


def _indices(images):
  return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


@pytest.mark.parametrize("train_size, test_size", [(80, 40), (83, 38), (4, 0)])
def test_stratified_subset_is_balanced_random_and_traceable(train_size, test_size):
  ds = grouped_dataset()
  sub = data.stratified_subset(ds, train_size=train_size, test_size=test_size, seed=1)
  for split, size in (("train", train_size), ("test", test_size)):
    images, labels = getattr(sub, f"{split}_images"), getattr(sub, f"{split}_labels")
    assert len(labels) == size
    counts = np.bincount(labels, minlength=4)
    assert counts.max() - counts.min() <= 1 and counts.sum() == size
    idx = _indices(images)
    assert len(set(idx)) == size  # no image twice
    np.testing.assert_array_equal(getattr(ds, f"{split}_labels")[idx], labels)  # labels follow images
  assert np.any(np.diff(sub.train_labels) < 0)  # shuffled, not grouped by class
  assert sub.class_names == ds.class_names


def test_stratified_subset_seeds():
  ds = grouped_dataset()
  a = data.stratified_subset(ds, train_size=40, test_size=8, seed=0)
  b = data.stratified_subset(ds, train_size=40, test_size=8, seed=0)
  c = data.stratified_subset(ds, train_size=40, test_size=8, seed=1)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  assert set(_indices(a.train_images)) != set(_indices(c.train_images))


def test_stratified_subset_none_keeps_split_and_errors():
  ds = grouped_dataset()
  sub = data.stratified_subset(ds, train_size=None, test_size=8, seed=0)
  assert sorted(_indices(sub.train_images)) == list(range(len(ds.train_labels)))
  with pytest.raises(ValueError, match="train_size must lie in"):
    data.stratified_subset(ds, train_size=1000, test_size=8, seed=0)
  with pytest.raises(ValueError, match="test_size must lie in"):
    data.stratified_subset(ds, train_size=10, test_size=-1, seed=0)
  with pytest.raises(ValueError, match="class 'a' has 10 test images"):
    data.stratified_subset(ds, train_size=10, test_size=43, seed=0)


# ----------------------------------------------------------------------------------------------
# Statistics and on-device ops


def crop_flip_reference(images, out, pad):
  """For each output, every (dy, dx, flip) whose crop of the zero-padded input equals it (numpy)."""
  b, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  matches = []
  for dy in range(2 * pad + 1):
    for dx in range(2 * pad + 1):
      crop = padded[:, dy:dy + h, dx:dx + w]
      for flip in (False, True):
        candidate = crop[:, :, ::-1] if flip else crop
        matches.append(((dy, dx, flip), np.all(candidate == out, axis=(1, 2, 3))))
  found = np.stack([m for _, m in matches], axis=1)  # [B, candidates]
  return [key for key, _ in matches], found


def test_random_crop_flip_against_numpy_reference():
  rng = np.random.default_rng(0)
  b, pad = 4000, 2
  images = rng.integers(1, 256, (b, 7, 6, 3), dtype=np.uint8)  # no zeros: padding is recognisable
  out = np.asarray(jax.jit(augment.random_crop_flip, static_argnames="pad")(jax.random.key(3), images, pad=pad))
  assert out.dtype == np.uint8 and out.shape == images.shape
  keys, found = crop_flip_reference(images, out, pad)
  assert np.all(found.sum(axis=1) == 1)  # each output is exactly one crop (and maybe flip) of its input
  chosen = [keys[j] for j in found.argmax(axis=1)]
  flips = np.mean([f for _, _, f in chosen])
  assert abs(flips - 0.5) < 4 * np.sqrt(0.25 / b)
  offsets = np.bincount([dy * 5 + dx for dy, dx, _ in chosen], minlength=25)
  expected = b / 25  # uniform over 25 offsets: 160 each, sd about 12.5
  assert np.all(np.abs(offsets - expected) < 5 * np.sqrt(expected))


def test_random_crop_flip_cifar_shape_keys_and_pad_zero():
  images = np.random.default_rng(1).integers(1, 256, (64, 32, 32, 3), dtype=np.uint8)
  key = jax.random.key(0)
  out = np.asarray(augment.random_crop_flip(key, images))
  np.testing.assert_array_equal(out, np.asarray(augment.random_crop_flip(key, images)))
  assert not np.array_equal(out, np.asarray(augment.random_crop_flip(jax.random.key(1), images)))
  _, found = crop_flip_reference(images, out, 4)
  assert np.all(found.sum(axis=1) == 1)
  flipped_only = np.asarray(augment.random_crop_flip(key, images, pad=0))
  same = np.all(flipped_only == images, axis=(1, 2, 3))
  mirrored = np.all(flipped_only == images[:, :, ::-1], axis=(1, 2, 3))
  assert np.all(same ^ mirrored) and 0 < same.sum() < 64
  with pytest.raises(ValueError, match="pad must be non-negative"):
    augment.random_crop_flip(key, images, pad=-1)
  with pytest.raises(ValueError, match=r"must be \[B, H, W, C\]"):
    augment.random_crop_flip(key, images[0])


def test_normalize_against_float64():
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, (8, 5, 4, 3), dtype=np.uint8)
  mean, std = np.array([125.3, 123.0, 113.9]), np.array([63.0, 62.1, 66.7])
  out = jax.jit(augment.normalize)(images, mean, std)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, (images.astype(np.float64) - mean) / std, rtol=1e-6, atol=1e-6)
  mean_img = rng.uniform(0, 255, (5, 4, 3))
  np.testing.assert_allclose(augment.normalize(images, mean_img, 1.0), images.astype(np.float64) - mean_img,
                             rtol=1e-6, atol=1e-4)


def test_channel_stats_and_mean_image_against_float64():
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (5000, 3, 2, 3), dtype=np.uint8)  # more than one 4096-image chunk
  images[:, :, :, 2] //= 4  # channels differ
  mean, std = augment.channel_stats(images)
  as64 = images.astype(np.float64)
  np.testing.assert_allclose(mean, as64.mean(axis=(0, 1, 2)), rtol=1e-6)
  np.testing.assert_allclose(std, as64.std(axis=(0, 1, 2)), rtol=1e-6)
  assert mean.dtype == np.float32 and std.dtype == np.float32
  img = augment.mean_image(images)
  assert img.shape == (3, 2, 3) and img.dtype == np.float32
  np.testing.assert_allclose(img, as64.mean(axis=0), rtol=1e-6)
  with pytest.raises(ValueError, match="train_images must be a non-empty uint8"):
    augment.channel_stats(as64)
  with pytest.raises(ValueError, match="train_images must be a non-empty uint8"):
    augment.mean_image(images[:0])


def test_epoch_permutation():
  perm = np.asarray(jax.jit(augment.epoch_permutation, static_argnums=1)(jax.random.key(0), 1000))
  np.testing.assert_array_equal(np.sort(perm), np.arange(1000))
  assert not np.array_equal(perm, np.arange(1000))


# ----------------------------------------------------------------------------------------------
# The real CIFAR-10 archive ($CLR_TEST_CIFAR10)


@pytest.fixture(scope="session")
def cifar10(cifar10_archive) -> data.Dataset:
  """CIFAR-10 from the archive, cached in the default cache dir ($CLR_OPTAX_CACHE or ~/.cache/clr_optax)
  so that later sessions, and other tests loading the same archive, read the cache (~2 s, not ~15 s)."""
  return data.load(cifar10_archive)


def test_real_cifar10_archive(cifar10, cifar10_archive):
  assert cifar10.train_images.shape == (50000, 32, 32, 3)
  assert cifar10.test_images.shape == (10000, 32, 32, 3)
  assert cifar10.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                 "horse", "ship", "truck")
  np.testing.assert_array_equal(np.bincount(cifar10.train_labels), [5000] * 10)
  np.testing.assert_array_equal(np.bincount(cifar10.test_labels), [1000] * 10)
  # Published CIFAR-10 channel means (125.31, 122.95, 113.87); the JPEG copy shifts them a little.
  mean, std = augment.channel_stats(cifar10.train_images)
  np.testing.assert_allclose(mean, [125.31, 122.95, 113.87], atol=0.5)
  np.testing.assert_allclose(std, [62.99, 62.09, 66.70], atol=1.0)
  # The first training image is the archive's first airplane, decoded independently here.
  with tarfile.open(cifar10_archive, "r|*") as archive:
    for member in archive:
      if member.isfile() and member.name.endswith("train/airplane/0000.jpg"):
        first = np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())))
        break
  np.testing.assert_array_equal(cifar10.train_images[0], first)


def test_real_cifar10_stratified_subset(cifar10):
  sub = data.stratified_subset(cifar10, train_size=1000, test_size=500, seed=0)
  np.testing.assert_array_equal(np.bincount(sub.train_labels), [100] * 10)
  np.testing.assert_array_equal(np.bincount(sub.test_labels), [50] * 10)
  assert sub.train_images.shape == (1000, 32, 32, 3)
