"""Reliability of experiments/data.py and datafiles.py under bad input: damaged archives, empty class folders, caches.

Truncated and tampered archives of every supported kind (.tar, .tar.gz, .tar.xz) must fail with the
archive's name and what is wrong, and leave no cache; an empty class folder must not shift the labels
of the classes after it; a cache that cannot be written must not cost the decode. Each test says what it
guards. The archives are built here from a few tiny PNG images; one test cuts the real CIFAR-10 archive
inside a header ($CLR_TEST_CIFAR10). Which of these cases the loader once passed silently is told in
experiments/benchmarks/README.md.
"""

import errno
import gzip
import io
import lzma
import pathlib
import tarfile

import numpy as np
import pytest

from experiments import data
from experiments import datafiles
from tests.experiments.test_data import cache_files, expected_split, make_archive, make_folder

COMPRESS = {".tar": lambda raw: raw, ".tar.gz": gzip.compress, ".tar.xz": lzma.compress}


def tar_bytes(src: pathlib.Path) -> bytes:
  """An uncompressed tar of ``src`` under ``data/``; tarfile adds in sorted order, train/frog/003.png last."""
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w") as archive:
    archive.add(src, arcname="data")
  return buf.getvalue()


def last_member(raw: bytes) -> tarfile.TarInfo:
  with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
    member = archive.getmembers()[-1]
  assert member.name == "data/train/frog/003.png"  # removing it leaves a valid layout: only a check can tell
  return member


def flip(raw: bytes, index: int) -> bytes:
  damaged = bytearray(raw)
  damaged[index] ^= 0xFF
  return bytes(damaged)


def load_fails(path: pathlib.Path, tmp_path: pathlib.Path, must_contain: str) -> str:
  """Loads ``path``, which must fail with a ValueError naming it and containing ``must_contain``; no cache."""
  with pytest.raises(ValueError) as info:
    data.load(path, cache_dir=tmp_path / "cache")
  message = str(info.value)
  assert str(path.resolve()) in message
  assert must_contain in message, message
  assert cache_files(tmp_path / "cache") == []
  return message


@pytest.fixture
def tar(tmp_path):
  """The uncompressed tar of a small image folder (3 classes, 4 train and 2 test images each) as bytes."""
  make_folder(tmp_path / "src")
  return tar_bytes(tmp_path / "src")


# ----------------------------------------------------------------------------------------------
# Truncated and tampered tar streams, in every kind of archive


def _damage_tar(raw: bytes, damage: str) -> bytes:
  member = last_member(raw)
  end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE  # after its padding
  if damage == "at_member_boundary":
    return raw[:member.offset]
  if damage == "inside_header":
    return raw[:member.offset + 100]
  if damage == "inside_member_data":
    return raw[:member.offset_data + member.size // 2]
  if damage == "before_end_marker":
    return raw[:end]
  if damage == "inside_end_marker":
    return raw[:end + tarfile.BLOCKSIZE]
  if damage == "header_checksum":  # one byte of the member's name: the header checksum no longer matches
    return flip(raw, member.offset + 10)
  if damage == "header_zeroed":  # the header reads as an end-of-archive block, its data follows
    return raw[:member.offset] + bytes(tarfile.BLOCKSIZE) + raw[member.offset + tarfile.BLOCKSIZE:]
  raise AssertionError(damage)


# (damage, what the message must say)
TAR_DAMAGE = [
    ("at_member_boundary", "ends without the end-of-archive marker"),
    ("inside_header", "ends inside a member header (100 of 512 bytes)"),
    ("inside_member_data", "unexpected end of data"),  # tarfile itself refuses this one
    ("before_end_marker", "ends without the end-of-archive marker"),
    ("inside_end_marker", "ends without the end-of-archive marker"),
    ("header_checksum", "damaged member header"),
    ("header_zeroed", "damaged member header"),
]


@pytest.mark.parametrize("kind", list(COMPRESS))
@pytest.mark.parametrize("damage, must_contain", TAR_DAMAGE, ids=[d for d, _ in TAR_DAMAGE])
def test_damaged_tar_stream_fails_and_leaves_no_cache(tar, tmp_path, kind, damage, must_contain):
  """Guards the end-of-archive check: a tar stream cut short or with a damaged header, then compressed whole.

  Python's tarfile ends the member list quietly at a cut between members, inside a header or at a
  damaged header, so without the check the loader would return and cache the images before it (the
  last image is missing here, so the layout is still valid); only ``inside_member_data`` is refused by
  tarfile itself. The loader requires the end-of-archive marker where tarfile stopped. The compression
  is intact, so only that check can tell.
  """
  path = tmp_path / f"ds{kind}"
  path.write_bytes(COMPRESS[kind](_damage_tar(tar, damage)))
  message = load_fails(path, tmp_path, must_contain)
  assert "truncated" in message or "corrupt" in message


def test_first_member_header_damaged(tar, tmp_path):
  """Guards the first header (offset 0, where tarfile itself refuses a bad header)."""
  path = tmp_path / "ds.tar"
  path.write_bytes(flip(tar, 10))
  load_fails(path, tmp_path, "cannot read archive")


# ----------------------------------------------------------------------------------------------
# Truncated and corrupted compressed streams


def _damage_compressed(tar: bytes, kind: str, damage: str) -> bytes:
  if kind == ".tar.gz":
    if damage == "corrupt_data":
      # Stored (level 0) deflate blocks copy the tar verbatim: flip a byte of README.txt, which tar has
      # no checksum for and the loader ignores; only gzip's CRC-32 can tell.
      stored = gzip.compress(tar, compresslevel=0)
      return flip(stored, stored.index(b"not an image"))
    compressed = gzip.compress(tar)
    return {"cut_trailer": compressed[:-4], "cut_half": compressed[:len(compressed) // 2]}[damage]
  compressed = lzma.compress(tar)  # xz, with a CRC-64 of each block
  if damage == "corrupt_data":
    return flip(compressed, len(compressed) // 2)
  return {"cut_trailer": compressed[:-12], "cut_half": compressed[:len(compressed) // 2]}[damage]


# (kind, damage, what the message must say)
COMPRESSED_DAMAGE = [
    (".tar.gz", "cut_trailer", "end-of-stream marker"),  # the CRC-32 and length trailer
    (".tar.gz", "corrupt_data", "CRC check failed"),
    (".tar.gz", "cut_half", "cannot read archive"),      # the stream ends mid-archive
    (".tar.xz", "cut_trailer", "end-of-stream marker"),  # the stream footer
    (".tar.xz", "corrupt_data", "cannot read archive"),  # caught by xz's block check on the way
    (".tar.xz", "cut_half", "cannot read archive"),      # the stream ends mid-archive
]


@pytest.mark.parametrize("kind, damage, must_contain", COMPRESSED_DAMAGE,
                         ids=[f"{k[5:]}-{d}" for k, d, _ in COMPRESSED_DAMAGE])
def test_damaged_compressed_stream_fails_and_leaves_no_cache(tar, tmp_path, kind, damage, must_contain):
  """Guards the decompressor's checks: a gzip or xz stream cut short or with a corrupted byte.

  A reader that stops at tar's end-of-archive marker never reaches a gzip stream's CRC-32 and length
  trailer or an xz stream's footer, so a cut trailer or a corrupted gzip byte that tar cannot see would
  load silently. The stream is read to its end, where gzip and xz check their end-of-stream markers and
  checksums.
  """
  path = tmp_path / f"ds{kind}"
  path.write_bytes(_damage_compressed(tar, kind, damage))
  load_fails(path, tmp_path, must_contain)


@pytest.mark.parametrize("name, compress", [("gz-named-xz.tar.gz", lzma.compress),
                                            ("tar-named-gz.tar", gzip.compress),
                                            ("xz-named-tar.tar.xz", COMPRESS[".tar"])])
def test_compression_is_told_by_content_not_name(tmp_path, name, compress):
  """Guards the complete archive path: the compression comes from the first bytes, as tarfile's ``r|*`` did."""
  written = make_folder(tmp_path / "src")
  path = tmp_path / name
  path.write_bytes(compress(tar_bytes(tmp_path / "src")))
  ds = data.load(path, cache_dir=tmp_path / "cache")
  np.testing.assert_array_equal(ds.train_images, expected_split(written, "train")[0])
  assert len(cache_files(tmp_path / "cache")) == 1


def test_real_cifar10_archive_cut_inside_a_header(cifar10_archive, tmp_path):
  """Guards a real archive: the CIFAR-10 tar cut at byte 92,450,404 (inside a header), which tarfile reads
  as a complete archive of 9,850 test images."""
  raw = cifar10_archive.read_bytes()
  if raw.startswith(b"\xfd7zXZ\x00"):
    raw = lzma.decompress(raw)
  elif raw.startswith(b"\x1f\x8b"):
    raw = gzip.decompress(raw)
  path = tmp_path / "cut.tar"
  path.write_bytes(raw[:92450404])
  load_fails(path, tmp_path, "truncated")


# ----------------------------------------------------------------------------------------------
# Empty class folders


@pytest.mark.parametrize("kind", ["dir", ".tar", ".tar.xz"])
@pytest.mark.parametrize("splits", [("train", "test"), ("train",)], ids=["both_splits", "train_only"])
@pytest.mark.parametrize("content", ["nothing", "no_images"])
def test_empty_class_folder_is_refused(tmp_path, kind, splits, content):
  """Guards the labels: a class folder without images is refused, not dropped.

  Labels number the class folders in order, so dropping an empty ``bird/`` (first in order) would make
  the other classes' labels one lower than the folders say. A folder holding only files that are not
  images (here a text and a hidden file) is as empty.
  """
  src = tmp_path / "src"
  make_folder(src)
  for split in splits:
    (src / split / "bird").mkdir()
    if content == "no_images":
      (src / split / "bird" / "notes.txt").write_text("not an image")
      (src / split / "bird" / ".DS_Store").write_bytes(b"\0")
  path = src if kind == "dir" else make_archive(src, tmp_path / f"ds{kind}")
  prefix = "" if kind == "dir" else "data/"
  load_fails(path, tmp_path, f"class folder '{prefix}{splits[-1]}/bird' holds no images")


@pytest.mark.parametrize("kind", ["dir", ".tar"])
def test_hidden_and_non_class_folders_are_not_classes(tmp_path, kind):
  """Guards against refusing too much: empty hidden folders and folders beside the splits are no classes."""
  src = tmp_path / "src"
  written = make_folder(src)
  (src / "train" / ".ipynb_checkpoints").mkdir()
  (src / ".git" / "objects").mkdir(parents=True)
  (src / "notes").mkdir()
  path = src if kind == "dir" else make_archive(src, tmp_path / f"ds{kind}")
  ds = data.load(path, cache_dir=tmp_path / "cache")
  assert ds.class_names == ("cat", "dog", "frog")
  np.testing.assert_array_equal(ds.test_labels, expected_split(written, "test")[1])


# ----------------------------------------------------------------------------------------------
# A cache that cannot be written


def _unwritable(way: str, tmp_path: pathlib.Path, monkeypatch) -> pathlib.Path:
  """Makes the cache folder unwritable in one way; returns the cache_dir to load with."""
  cache = tmp_path / "cache"
  if way == "read_only_folder":
    cache.mkdir()
    cache.chmod(0o555)
    try:
      (cache / "probe").touch()
    except PermissionError:
      return cache
    (cache / "probe").unlink()
    pytest.skip("permissions do not stop this user (root) writing to a read-only folder; "
                "permission_denied simulates it")
  if way == "permission_denied":  # what a read-only folder gives any user but root
    def denied(**kwargs):
      raise PermissionError(errno.EACCES, "Permission denied", kwargs["dir"])
    monkeypatch.setattr(datafiles.tempfile, "mkstemp", denied)
    return cache
  if way == "file_in_the_way":
    (tmp_path / "blocker").write_text("a file, not a folder")
    return tmp_path / "blocker" / "cache"
  if way == "disk_full":  # fails while writing: the partial temporary file must go too
    def full(*args, **kwargs):
      raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(datafiles.np, "savez", full)
    return cache
  raise AssertionError(way)


@pytest.mark.parametrize("way", ["read_only_folder", "permission_denied", "file_in_the_way", "disk_full"])
def test_unwritable_cache_warns_and_keeps_the_decode(tmp_path, monkeypatch, capsys, way):
  """Guards the decode: a cache that cannot be written must not fail the load after the whole decode.

  The cache is only a shortcut: the loader warns, naming the cache file and the error, and returns the
  decoded arrays uncached (the next load decodes again).
  """
  written = make_folder(tmp_path / "src")
  cache = _unwritable(way, tmp_path, monkeypatch)
  for _ in range(2):
    with pytest.warns(UserWarning, match=r"cannot write the cache .*uncached") as record:
      ds = data.load(tmp_path / "src", cache_dir=cache)
    assert str(cache) in str(record[0].message)
    images, labels = expected_split(written, "train")
    np.testing.assert_array_equal(ds.train_images, images)
    np.testing.assert_array_equal(ds.train_labels, labels)
  assert "cached in" not in capsys.readouterr().err
  if cache.is_dir():
    assert cache_files(cache) == []  # no partial or temporary file either
