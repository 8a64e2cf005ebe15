"""The trainer on the ImageNet stream, on a generated ImageNet-layout folder of JPEGs: evaluation over every
validation image once, Caffe's mean image and mean_value, resume equal to the uninterrupted run, AlexNet and
GoogLeNet at reduced resolution, the command line, settings the stream refuses, and two processes each reading
its own shard (`--multihost`).

The references are computed here from the JPEG files with PIL and numpy (decode, resize to 256x256, centre
crop, mean, softmax cross-entropy), not with `experiments.imagenet`. Most tests run the stream with the small
`cifar10_quick` network on 32x32 crops (about 20 s for the run); AlexNet at 67x67 (20-35 s), GoogLeNet at
80x80 (about 90 s, most of it compiling), the resume (about 60 s) and the two-process run (about 50 s) are
marked slow.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from experiments import configs
from experiments import feed
from experiments import imagenet
from experiments import imagenet_sources
from experiments import models
from experiments import multihost
from experiments import parallel
from experiments import rundir
from experiments import setup
from experiments import train
from tests.experiments.synthetic import crash_at_checkpoint
from tests.experiments.test_imagenet import CLASSES
from tests.experiments.test_imagenet import make_folder

RESIZE = 256  # Caffe's resize, as the trainer uses it

# A streamed run in miniature: 27 training images (3 classes), batch 8 (3 steps an epoch), 9 validation images in
# global evaluation batches of 4 (the last holds one image and three masked pads), two devices.
SMALL = {"model.name": "cifar10_quick", "data.crop_size": 32, "data.workers": 0, "train.batch_size": 8,
         "train.num_steps": "3", "train.eval_every": "3", "train.checkpoint_every": "3", "train.log_every": 1,
         "train.eval_batch_size": 4, "train.num_devices": 2, "train.progress": False, "schedule.step_size": "2"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return make_folder(tmp_path_factory.mktemp("imagenet") / "folder")


def _config(name, folder, **updates):
  return configs.override(configs.get_config(name), {**SMALL, "data.dataset": str(folder), **updates})


def _resized(path):
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB").resize((RESIZE, RESIZE), Image.BILINEAR), np.float64)


def _split(folder, split):
  """(resized images float64 [N, 256, 256, 3], labels) of a split, read with PIL."""
  images, labels = [], []
  for label, wnid in enumerate(CLASSES):
    for path in sorted((folder / split / wnid).iterdir()):
      images.append(_resized(path))
      labels.append(label)
  return np.stack(images), np.asarray(labels)


def _params(workdir, step):
  with ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints") as manager:
    return manager.restore(step, args=ocp.args.StandardRestore())["params"]


def _reference_evaluation(folder, config, params, mean):
  """Loss and accuracy of `params` on every validation image: centre crop of the 256x256 image minus `mean`
  (the mean image cropped there, or per channel), the network in test mode, softmax cross-entropy."""
  images, labels = _split(folder, "val")
  crop = config.data.crop_size
  centre = slice((RESIZE - crop) // 2, (RESIZE - crop) // 2 + crop)
  x = images[:, centre, centre] - (mean[centre, centre] if mean.ndim == 3 else mean)
  model = models.create_model(config.model.name, num_classes=len(CLASSES), **setup.model_options(config.model))
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False))
  logits = np.asarray(apply(params, jnp.asarray(x, jnp.float32)), np.float64)
  top_logit = logits.max(1, keepdims=True)
  log_z = top_logit[:, 0] + np.log(np.exp(logits - top_logit).sum(1))
  return np.mean(log_z - logits[np.arange(len(labels)), labels]), np.mean(logits.argmax(1) == labels)


def _rows(workdir, split):
  return [r for r in rundir.read_rows(pathlib.Path(workdir) / rundir.METRICS_JSONL) if r["split"] == split]


def test_a_streamed_run_subtracts_the_mean_image_and_evaluates_every_validation_image_once(folder, tmp_path):
  config = _config("table1_alexnet_triangular2", folder)
  summary = train.train_and_evaluate(config, tmp_path)
  # Caffe's mean_file: the mean of the training images resized to 256x256, kept in the work directory.
  train_images, _ = _split(folder, "train")
  mean = np.load(tmp_path / feed.MEAN_IMAGE)
  np.testing.assert_allclose(mean, train_images.mean(0), atol=1e-4)
  # 9 validation images in batches of 4: the padding of the last batch is not counted, no image twice.
  loss, accuracy = _reference_evaluation(folder, config, _params(tmp_path, 3), train_images.mean(0))
  np.testing.assert_allclose(summary["test_loss"], loss, rtol=1e-5)
  assert summary["test_accuracy"] == pytest.approx(accuracy)
  assert [r["step"] for r in _rows(tmp_path, "test")] == [3]
  # triangular2 from 0.01 to 0.015 over step size 2, as logged.
  np.testing.assert_allclose([r["lr"] for r in _rows(tmp_path, "train")], [0.01, 0.0125, 0.015], rtol=1e-6)
  assert summary["steps"] == 3 and summary["devices"] == 2


@pytest.mark.slow
def test_a_resumed_streamed_run_trains_on_the_uninterrupted_runs_batches(folder, tmp_path):
  """4 steps of 3 an epoch (the fourth batch holds the end of epoch 0 and the start of epoch 1) with GoogLeNet's
  mean_value, interrupted after the checkpoint of step 2 and resumed: the parameters, the logged losses and the
  evaluation equal the uninterrupted run's bitwise."""
  config = _config("table1_googlenet_triangular2", folder, **{"train.num_steps": "4", "train.checkpoint_every": "2",
                                                             "train.eval_every": "4"})
  assert config.data.normalization == "mean_value"
  whole = train.train_and_evaluate(config, tmp_path / "whole")
  with crash_at_checkpoint(2):
    train.train_and_evaluate(config, tmp_path / "cut")
  resumed = train.train_and_evaluate(config, tmp_path / "cut", resume=True)
  jax.tree.map(np.testing.assert_array_equal, _params(tmp_path / "cut", 4), _params(tmp_path / "whole", 4))
  losses = lambda d: [(r["step"], r["loss"]) for r in _rows(d, "train")]  # noqa: E731
  assert losses(tmp_path / "cut") == losses(tmp_path / "whole") and len(losses(tmp_path / "cut")) == 4
  assert resumed["test_loss"] == whole["test_loss"]


@pytest.mark.parametrize("updates, match", [
    ({"data.normalization": "channel"}, r"normalises with one of \('mean_image', 'mean_value'\).*'channel'"),
    ({"data.augment": True}, "data.augment is the CIFAR pad-and-crop.*data.augment=false"),
    ({"data.train_size": 10}, "data.train_size and data.test_size.*data.train_size=10"),
    ({"data.normalization": "mean_value", "data.mean_value": (1.0, 2.0)}, r"data.mean_value per channel.*\(1.0, 2.0\)"),
    ({"model.pool5_window": 3}, "model.pool5_window is GoogLeNet's pool5 kernel; 'cifar10_quick' has none"),
    ({"train.steps_per_call": 2}, "the ImageNet stream feeds every step's batch.*one step per call.*"
                                  "train.steps_per_call=2"),
])
def test_settings_the_stream_does_not_take_fail_naming_them(folder, tmp_path, updates, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(_config("table1_alexnet_fixed", folder, **updates), tmp_path)


def test_the_stream_refuses_a_device_dataset_and_names_a_missing_folder(folder, tmp_path):
  with pytest.raises(ValueError, match="reads data.dataset itself"):
    train.train_and_evaluate(_config("table1_alexnet_fixed", folder), tmp_path, dataset=object())
  with pytest.raises(FileNotFoundError, match="ImageNet folder not found: .*nowhere"):
    train.train_and_evaluate(_config("table1_alexnet_fixed", tmp_path / "nowhere"), tmp_path / "run")


@pytest.mark.slow
def test_alexnet_from_the_command_line_at_reduced_resolution(folder, tmp_path, capsys):
  """``python -m experiments.train --config table1_alexnet_triangular2 --data FOLDER``, 67x67 crops (the
  smallest AlexNet's pool5 takes), 3 steps; its evaluation against the reference."""
  workdir = tmp_path / "alexnet"
  overrides = {**SMALL, "model.name": "alexnet", "data.crop_size": 67}
  train.main(["--config", "table1_alexnet_triangular2", "--workdir", str(workdir), "--data", str(folder),
              "--set", *(f"{k}={v}" for k, v in overrides.items())])
  summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  config = configs.override(configs.get_config("table1_alexnet_triangular2"), {**overrides, "data.dataset": str(folder)})
  loss, accuracy = _reference_evaluation(folder, config, _params(workdir, 3), np.load(workdir / feed.MEAN_IMAGE))
  np.testing.assert_allclose(summary["test_loss"], loss, rtol=1e-5)
  assert summary["test_accuracy"] == pytest.approx(accuracy)
  assert all(np.isfinite(r["loss"]) for r in _rows(workdir, "train"))


@pytest.mark.slow
def test_googlenet_trains_with_its_auxiliary_classifiers_at_reduced_resolution(folder, tmp_path):
  """80x80 crops (the auxiliary heads' 5x5 pool needs a 5x5 map at inception 4a) and pool5 over the 2x2 final
  map, 2 steps; the logged training loss includes the auxiliary classifiers (1.6 x ln 3 at chance)."""
  config = _config("table1_googlenet_triangular2", folder, **{
      "model.name": "googlenet", "data.crop_size": 80, "model.pool5_window": 2, "train.num_steps": "2",
      "train.eval_every": "2", "train.checkpoint_every": "2"})
  summary = train.train_and_evaluate(config, tmp_path)
  loss, accuracy = _reference_evaluation(folder, config, _params(tmp_path, 2), np.asarray(config.data.mean_value))
  np.testing.assert_allclose(summary["test_loss"], loss, rtol=1e-5)
  assert summary["test_accuracy"] == pytest.approx(accuracy)
  first = _rows(tmp_path, "train")[0]["loss"]
  assert np.isfinite(first) and first > 1.5 * np.log(3)  # loss3 + 0.3 (loss1 + loss2), each about ln 3 or more


@pytest.mark.slow
def test_two_processes_read_disjoint_shards_and_evaluate_every_image_once(folder, tmp_path):
  """`--multihost`: 2 processes x 2 CPU devices (jax.distributed, gloo), each streaming its half of the training
  and validation images. Against one process emulating both hosts: the same mean image (each host summed its
  half), the same parameters after 6 steps when each step's global batch is host 0's batch then host 1's, and
  the evaluation of the final parameters over every validation image once.

  Tolerance: parameters atol 1e-5 (the cross-process all-reduce may sum in another order).
  """
  overrides = {**SMALL, "train.num_devices": None, "train.num_steps": "6", "train.checkpoint_every": "6",
               "train.eval_every": "6"}
  workdir = tmp_path / "two"
  outputs = multihost.run(["--config", "table1_alexnet_triangular2", "--workdir", str(workdir), "--data", str(folder),
                           "--set", *(f"{k}={v}" for k, v in overrides.items())],
                          num_processes=2, devices_per_process=2, timeout=500)
  assert "checkpoint saved at step 6" in outputs[0]
  config = _config("table1_alexnet_triangular2", folder, **{**overrides, "train.num_devices": 4})
  train_images, _ = _split(folder, "train")
  mean = np.load(workdir / feed.MEAN_IMAGE)
  np.testing.assert_allclose(mean, train_images.mean(0), atol=1e-4)
  # The reference: 4 devices of this process, devices 0-1 fed host 0's batches and 2-3 host 1's.
  source = imagenet_sources.image_folder(folder, "train")
  hosts = [imagenet.batches(source, batch_size=4, crop_size=32, train=True, seed=0, mean=mean, process_index=i,
                            process_count=2, stop=6) for i in range(2)]
  state = setup.create_train_state(config, num_classes=3, mean=np.zeros(3), std=np.ones(3), image_shape=(32, 32, 3),
                                   axis_name=parallel.AXIS)
  devices = jax.local_devices()[:4]
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=3, total_steps=6)
  step = parallel.make_pmapped_batch_train_step(schedule, devices=devices)
  state_r = parallel.replicate(state, devices)
  for first, second in zip(*hosts):
    batch = {k: np.concatenate([first[k], second[k]]) for k in first}
    state_r, _ = step(state_r, next(imagenet.prefetch_to_device([batch], devices=devices)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), _params(workdir, 6),
               jax.device_get(parallel.unreplicate(state_r).params))
  summary_loss = _rows(workdir, "test")[-1]["loss"]
  loss, _ = _reference_evaluation(folder, config, _params(workdir, 6), mean)
  np.testing.assert_allclose(summary_loss, loss, rtol=1e-5)
