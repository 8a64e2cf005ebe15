"""Tests for experiments.imagenet on a small generated ImageNet-layout folder of JPEGs of varied sizes:
layout checks, Caffe's crops and mirror against a reference, shapes and dtypes, per-host shards, determinism,
worker processes, prefetching, clear errors on bad input, and the LR range test fed by the stream."""

import io
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

import clr_optax
from experiments import imagenet
from experiments import imagenet_sources

CLASSES = ("n01440764", "n01443537", "n01484850")
PER_CLASS = {"train": 9, "val": 3}
RESIZE, CROP = 40, 32  # small stand-ins for Caffe's 256 and 227 / 224, to keep the tests fast


def _jpeg(rng, width, height, mode="RGB"):
  pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
  image = Image.fromarray(pixels).convert(mode)
  buf = io.BytesIO()
  image.save(buf, format="JPEG", quality=95)
  return buf.getvalue()


def make_folder(root: pathlib.Path, seed=0, per_class=None):
  """``root/{train,val}/<wnid>/*.JPEG``: 3 classes, 36 images of sizes 30-90 x 30-90 (some grayscale)."""
  rng = np.random.default_rng(seed)
  for split, count in (per_class or PER_CLASS).items():
    for wnid in CLASSES:
      folder = root / split / wnid
      folder.mkdir(parents=True)
      for i in range(count):
        mode = "L" if i == 1 else "RGB"
        data = _jpeg(rng, int(rng.integers(30, 90)), int(rng.integers(30, 90)), mode)
        (folder / f"{wnid}_{i}.JPEG").write_bytes(data)
  return root


@pytest.fixture
def folder(tmp_path):
  return make_folder(tmp_path / "imagenet")


def _all(stream):
  return list(stream)


# ---------------------------------------------------------------------------------------------------
# Layout.


def test_image_folder_lists_sorted_classes_and_labels(folder):
  train = imagenet_sources.image_folder(folder, "train")
  val = imagenet_sources.open_source(folder, "val")
  assert train.class_names == val.class_names == CLASSES
  assert len(train) == 27 and len(val) == 9
  np.testing.assert_array_equal(train.labels, np.repeat([0, 1, 2], 9))
  record = train[10]
  assert record["label"] == 1 and record["name"] == f"train/{CLASSES[1]}/{CLASSES[1]}_1.JPEG"
  assert record["image"] == (folder / record["name"]).read_bytes()


def test_bad_layouts_name_the_folder_or_file(tmp_path, folder):
  empty = folder / "train" / "n09999999"
  empty.mkdir()
  with pytest.raises(ValueError, match="n09999999.*holds no images"):
    imagenet_sources.image_folder(folder, "train")
  empty.rmdir()
  note = folder / "val" / CLASSES[0] / "notes.txt"
  note.write_text("not an image")
  with pytest.raises(ValueError, match="notes.txt.*not an image"):
    imagenet_sources.image_folder(folder, "train")
  note.unlink()
  other = make_folder(tmp_path / "other", per_class={"train": 1, "val": 1})
  (other / "val" / CLASSES[2]).rename(other / "val" / "n02000000")
  want = r"different classes: only in train/ \['n01484850'\], only in val/ \['n02000000'\]"
  with pytest.raises(ValueError, match=want):
    imagenet_sources.image_folder(other, "val")
  with pytest.raises(FileNotFoundError, match="missing"):
    imagenet_sources.image_folder(tmp_path / "missing", "train")
  with pytest.raises(ValueError, match="split"):
    imagenet_sources.image_folder(folder, "test")


@pytest.mark.parametrize("damage", ["truncated", "not_jpeg"])
def test_undecodable_images_name_the_file(folder, damage):
  path = folder / "train" / CLASSES[1] / f"{CLASSES[1]}_2.JPEG"
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"GIF89a but not really")
  source = imagenet_sources.image_folder(folder, "train")
  with pytest.raises(ValueError, match=f"cannot decode image 'train/{CLASSES[1]}/{CLASSES[1]}_2.JPEG'"):
    _all(imagenet.batches(source, batch_size=4, crop_size=CROP, resize=RESIZE, train=True, num_epochs=1))


def test_tfds_source_without_the_manual_download_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match="downloads/manual.*tfds build imagenet2012"):
    imagenet_sources.tfds_source("train", data_dir=tmp_path / "tfds")


# ---------------------------------------------------------------------------------------------------
# Caffe's preprocessing.


def test_preprocess_crops_in_range_and_mirrors():
  image = np.arange(RESIZE * RESIZE * 3, dtype=np.int64).reshape(RESIZE, RESIZE, 3) % 251
  image = image.astype(np.uint8)
  rng = np.random.default_rng(0)
  offsets, mirrors = set(), []
  for _ in range(200):
    crop = imagenet.preprocess(image, CROP, train=True, rng=rng)
    assert crop.shape == (CROP, CROP, 3) and crop.dtype == np.uint8
    # Find the crop in the image (or in its mirror): the offset lies in [0, RESIZE - CROP].
    for mirror in (False, True):
      c = crop[:, ::-1] if mirror else crop
      found = [(t, l) for t in range(RESIZE - CROP + 1) for l in range(RESIZE - CROP + 1)
               if np.array_equal(image[t:t + CROP, l:l + CROP], c)]
      if found:
        offsets.add(found[0])
        mirrors.append(mirror)
        break
    else:
      raise AssertionError("the crop is not a window of the image")
  assert len(offsets) > 40 and all(0 <= t <= RESIZE - CROP and 0 <= l <= RESIZE - CROP for t, l in offsets)
  assert 0.35 < np.mean(mirrors) < 0.65
  centre = imagenet.preprocess(image, CROP, train=False)
  start = (RESIZE - CROP) // 2
  np.testing.assert_array_equal(centre, image[start:start + CROP, start:start + CROP])


def test_mean_image_is_cropped_before_the_mirror():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, size=(RESIZE, RESIZE, 3), dtype=np.uint8)
  mean = rng.normal(100, 20, size=(RESIZE, RESIZE, 3)).astype(np.float32)
  for seed in range(10):
    got = imagenet.preprocess(image, CROP, train=True, rng=np.random.default_rng(seed), mean=mean)
    assert got.dtype == np.float32
    # Caffe's DataTransformer: top[h, w'] = datum[h_off + h, w_off + w] - mean[h_off + h, w_off + w].
    diff = imagenet.preprocess((image.astype(np.float32) - mean), CROP, train=True, rng=np.random.default_rng(seed))
    np.testing.assert_allclose(got, diff, rtol=1e-6)
  per_channel = imagenet.preprocess(image, CROP, train=False, mean=np.array([123.0, 117.0, 104.0]))
  np.testing.assert_allclose(per_channel, imagenet.preprocess(image, CROP, train=False) - np.float32([123, 117, 104]))


def test_decode_resizes_to_a_square_rgb(folder):
  source = imagenet_sources.image_folder(folder, "train")
  gray = source[1]  # a grayscale JPEG: Caffe reads it as colour
  assert Image.open(io.BytesIO(gray["image"])).mode == "L"
  image = imagenet.decode_and_resize(gray["image"], gray["name"], RESIZE)
  assert image.shape == (RESIZE, RESIZE, 3) and image.dtype == np.uint8
  np.testing.assert_array_equal(image[..., 0], image[..., 2])


# ---------------------------------------------------------------------------------------------------
# Batches: shapes, shards, determinism.


def _batches(source, **kw):
  kw = {"batch_size": 4, "crop_size": CROP, "resize": RESIZE, "train": True, "seed": 0, **kw}
  return imagenet.batches(source, **kw)


def test_training_batches_shapes_and_epochs(folder):
  source = imagenet_sources.image_folder(folder, "train")
  batches = _all(_batches(source, num_epochs=2))
  # The epochs run on into each other, as in Caffe's data layer; only the last partial batch is dropped.
  assert len(batches) == 2 * 27 // 4
  for b in batches:
    assert set(b) == {"image", "label"}
    assert b["image"].shape == (4, CROP, CROP, 3) and b["image"].dtype == np.uint8
    assert b["label"].shape == (4,) and b["label"].dtype == np.int32
  epoch1 = np.concatenate([b["label"] for b in batches[:6]])
  assert len(set(epoch1.tolist())) == 3 and not np.array_equal(epoch1, np.sort(epoch1))  # shuffled
  with_mean = next(_batches(source, mean=np.zeros((RESIZE, RESIZE, 3), np.float32)))
  assert with_mean["image"].dtype == np.float32
  np.testing.assert_array_equal(with_mean["image"], batches[0]["image"].astype(np.float32))


def test_same_seed_same_batches_other_seed_others(folder):
  source = imagenet_sources.image_folder(folder, "train")
  a = _all(_batches(source, num_epochs=1))
  b = _all(_batches(source, num_epochs=1))
  c = _all(_batches(source, num_epochs=1, seed=1))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))


def _names(source, batches):
  """Which record each evaluation image came from (the centre crop identifies it)."""
  crops = {imagenet.preprocess(imagenet.decode_and_resize(source[i]["image"], "", RESIZE), CROP,
                               train=False).tobytes(): i for i in range(len(source))}
  out = []
  for b in batches:
    out += [crops[img.tobytes()] for img, m in zip(b["image"], b["mask"]) if m]
  return out


@pytest.mark.parametrize("hosts", [2, 4])
def test_evaluation_shards_are_disjoint_complete_and_equally_long(folder, hosts):
  source = imagenet_sources.image_folder(folder, "train")  # 27 images: shards of unequal size
  per_host = [_all(_batches(source, train=False, process_index=i, process_count=hosts)) for i in range(hosts)]
  assert len({len(b) for b in per_host}) == 1  # every host runs the same number of evaluation steps
  seen = [_names(source, b) for b in per_host]
  flat = [i for s in seen for i in s]
  assert sorted(flat) == list(range(len(source)))  # disjoint and complete
  for b in per_host[0]:
    assert b["image"].shape == (4, CROP, CROP, 3) and b["mask"].dtype == bool
    np.testing.assert_array_equal(b["label"][b["mask"]], source.labels[_names(source, [b])])


def test_training_shards_are_disjoint_and_cover_the_records(folder):
  source = imagenet_sources.image_folder(folder, "val")  # 9 images, batch 1: every record shows up once per epoch
  hosts = [_all(_batches(source, batch_size=1, num_epochs=1, process_index=i, process_count=2, train=True))
           for i in range(2)]
  crops_of = []
  for batches in hosts:
    crops_of.append({b["image"].tobytes() for b in batches})
  assert not crops_of[0] & crops_of[1]
  assert len(hosts[0]) + len(hosts[1]) == len(source)
  labels = sorted(int(b["label"][0]) for batches in hosts for b in batches)
  assert labels == sorted(source.labels.tolist())


def _assert_same(first, second):
  assert len(first) == len(second)
  for x, y in zip(first, second):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_worker_processes_give_the_inline_loaders_batches(folder):
  source = imagenet_sources.image_folder(folder, "train")
  # Each worker makes whole batches: batch k is the same whoever makes it.
  _assert_same(_all(_batches(source, num_epochs=2)), _all(_batches(source, num_epochs=2, worker_count=2)))


def test_a_stream_started_at_batch_k_continues_the_uninterrupted_stream(folder):
  """How a resumed run continues: batches(start=k) are the uninterrupted stream's batches from k on, across
  the end of an epoch (27 records, batches of 4: batch 6 holds records of epochs 0 and 1)."""
  source = imagenet_sources.image_folder(folder, "train")
  whole = _all(_batches(source, stop=12))
  assert len(whole) == 12
  _assert_same(_all(_batches(source, start=5, stop=12)), whole[5:])
  endless = _batches(source, start=11)
  _assert_same([next(endless), next(endless)], [whole[11], _all(_batches(source, stop=13))[12]])
  # Every record once in each epoch's 27 stream positions (batch size 1 shows them one by one).
  ones = np.concatenate([b["label"] for b in _all(_batches(source, batch_size=1, stop=54))])
  np.testing.assert_array_equal(np.bincount(ones[:27]), np.bincount(source.labels))
  np.testing.assert_array_equal(np.bincount(ones[27:]), np.bincount(source.labels))
  with pytest.raises(ValueError, match="num_epochs or stop, not both"):
    _batches(source, num_epochs=1, stop=3)
  with pytest.raises(ValueError, match=r"0 <= start <= the stream's end \(6 batches\), got start=7"):
    _batches(source, num_epochs=1, start=7)


@pytest.mark.slow
def test_worker_processes_are_deterministic(folder):
  source = imagenet_sources.image_folder(folder, "train")
  first, second = (_all(_batches(source, num_epochs=1, worker_count=2)) for _ in range(2))
  assert len(first) == len(second) == 27 // 4
  for x, y in zip(first, second):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])


def test_progress_bar_counts_images(folder, capsys):
  source = imagenet_sources.image_folder(folder, "val")
  batches = _all(_batches(source, train=False, progress=True))
  assert sum(int(b["mask"].sum()) for b in batches) == 9
  assert "9/9" in capsys.readouterr().err


def test_mean_image_matches_numpy(folder):
  source = imagenet_sources.image_folder(folder, "val")
  want = np.mean([imagenet.decode_and_resize(source[i]["image"], "", RESIZE).astype(np.float64)
                  for i in range(len(source))], axis=0)
  np.testing.assert_allclose(imagenet.mean_image(source, resize=RESIZE, batch_size=4), want, rtol=1e-6)
  subset = imagenet.mean_image(source, resize=RESIZE, num_images=4, seed=0)
  assert subset.shape == (RESIZE, RESIZE, 3) and not np.allclose(subset, want)


def test_prefetch_to_device_splits_over_local_devices(folder):
  devices = jax.local_devices()[:2]
  assert len(devices) == 2, "tests/conftest.py sets 4 fake CPU devices"
  source = imagenet_sources.image_folder(folder, "train")
  host = _all(_batches(source, num_epochs=1))
  on_device = _all(imagenet.prefetch_to_device(iter(host), size=2, devices=devices))
  assert len(on_device) == len(host)
  for h, d in zip(host, on_device):
    assert d["image"].shape == (2, 2, CROP, CROP, 3)
    assert {s.device for s in d["image"].addressable_shards} == set(devices)
    np.testing.assert_array_equal(np.asarray(d["image"]).reshape(h["image"].shape), h["image"])
  with pytest.raises(ValueError, match="split over 2 devices"):
    _all(imagenet.prefetch_to_device(iter([{"label": np.zeros(3, np.int32)}]), devices=devices))


# ---------------------------------------------------------------------------------------------------
# The LR range test over the stream (the library's iterator path, fed by the ImageNet pipeline).


def _softmax_loss(w, batch):
  x = batch["image"].reshape(batch["image"].shape[0], -1).astype(jnp.float32) / 255.0
  logits = x @ w
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), batch["label"][:, None], axis=1))


def test_range_test_over_the_stream_equals_a_loop_of_plain_steps(folder):
  source = imagenet_sources.image_folder(folder, "train")
  steps, low, high = 12, 1e-3, 1.0
  w0 = jnp.zeros((CROP * CROP * 3, len(CLASSES)), jnp.float32)
  result = clr_optax.range_test(_batches(source, worker_count=1), loss_fn=_softmax_loss, params=w0,
                                optimizer=optax.sgd, num_steps=steps, min_lr=low, max_lr=high,
                                mode="exponential", chunk_size=4, divergence_factor=None, progress=False)
  # The reference: the same batches (batch k depends on the seed and k alone), one jitted SGD step each.
  grad = jax.jit(jax.value_and_grad(_softmax_loss))
  lrs = np.geomspace(low, high, steps)
  w, want = w0, []
  for batch, lr in zip(_batches(source), lrs):
    loss, g = grad(w, batch)
    want.append(float(loss))
    w = w - lr * g
  np.testing.assert_allclose(np.asarray(result.lr[0]), lrs, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(result.loss[0]), want, rtol=1e-4)
  assert not np.asarray(result.masked).any()
