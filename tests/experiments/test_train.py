"""The trainer: a real short run, metrics and checkpoints, resume after a kill, NaN guard, CLI."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from experiments import configs
from experiments import multihost
from experiments import rundir
from experiments import step as step_lib
from experiments import train
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


REPO = pathlib.Path(__file__).resolve().parents[2]


def test_train_and_evaluate_writes_metrics_and_checkpoints(tmp_path):
  ds = synthetic_dataset()
  config = small_config("table1_triangular2", **{"train.num_devices": 2, "schedule.step_size": "2"})
  summary = train.train_and_evaluate(config, tmp_path, dataset=ds)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_rows = [r for r in rows if r["split"] == "train"]
  test_rows = [r for r in rows if r["split"] == "test"]
  assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
  assert [r["step"] for r in test_rows] == [3, 6]
  # The logged learning rate is clr_optax.triangular2's value at the step taken (0.001 -> 0.006 over 2 steps).
  np.testing.assert_allclose([r["lr"] for r in train_rows], [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.00225],
                             rtol=1e-5)
  assert summary["test_accuracy"] == test_rows[-1]["accuracy"]
  assert 0 <= summary["test_accuracy"] <= 1
  csv_lines = (tmp_path / "metrics.csv").read_text().splitlines()
  assert csv_lines[0].startswith("step,epoch,split,loss") and len(csv_lines) == 1 + len(rows)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3", "6"]
  assert json.loads((tmp_path / "config.json").read_text())["schedule"]["name"] == "triangular2"
  with pytest.raises(FileExistsError, match="--resume"):
    train.train_and_evaluate(config, tmp_path, dataset=ds)
  # Resuming under settings that train differently is refused, naming them; logging settings may change.
  with pytest.raises(ValueError, match=r"schedule.max_lr: 0.006 -> 0.01.*train.seed: 0 -> 1"):
    train.train_and_evaluate(small_config("table1_triangular2", **{"train.num_devices": 2, "schedule.step_size": "2",
                                                             "schedule.max_lr": 0.01, "train.seed": 1}),
                             tmp_path, dataset=ds, resume=True)
  saved = json.loads((tmp_path / "config.json").read_text())
  assert not rundir.run_differences(saved, configs.override(config, {"train.log_every": 7, "train.eval_every": "2"}))


def test_evaluation_covers_the_whole_test_set_once(tmp_path):
  """20 test images in global eval batches of 8 (the last one padded): compare with a host-side evaluation."""
  ds = synthetic_dataset(n_test=20)
  config = small_config("fig6_bn_sigmoid:clr", **{"train.num_devices": 2, "train.num_steps": "2", "train.eval_every": "2"})
  summary = train.train_and_evaluate(config, tmp_path, dataset=ds)
  state = summary["state"]
  logits = np.asarray(jax.jit(step_lib.eval_logits)(state.replace(axis_name=None), jnp.asarray(ds.test_images)),
                      np.float64)
  logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
  want_loss = -logp[np.arange(20), ds.test_labels].mean()
  want_acc = np.mean(logits.argmax(1) == ds.test_labels)
  np.testing.assert_allclose(summary["test_loss"], want_loss, rtol=1e-5)
  assert summary["test_accuracy"] == pytest.approx(want_acc)


def test_nan_guard_stops_with_the_metric_name_and_keeps_the_last_good_checkpoint(tmp_path):
  ds = synthetic_dataset()
  # A sane rate for 4 steps, then multiplied by 1e30: the parameters blow up at step 5.
  config = small_config("default", **{"model.name": "cifar10_quick", "optim.name": "sgd", "schedule.base_lr": 0.01,
                                "schedule.drop_at": ("4",), "schedule.drop_factor": 1e30,
                                "train.num_steps": "12", "train.checkpoint_every": "2", "train.eval_every": "100"})
  with pytest.raises(FloatingPointError, match=r"non-finite train metric (loss|grad_norm)=(nan|inf) at step \d+; "
                                               r"stopped, the last good checkpoint is step 4"):
    train.train_and_evaluate(config, tmp_path, dataset=ds)
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    assert manager.latest_step() == 4
    items = manager.restore(4, args=ocp.args.StandardRestore())
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(items["params"]))


def _write_image_folder(root: pathlib.Path, per_class=(6, 2), size=16):
  ds = synthetic_dataset(n_train=10 * per_class[0], n_test=10 * per_class[1], size=size, seed=3)
  for split in ("train", "test"):
    images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
    for i, (image, label) in enumerate(zip(images, labels)):
      folder = root / split / f"class{label}"
      folder.mkdir(parents=True, exist_ok=True)
      Image.fromarray(image).save(folder / f"{i:04d}.png")
  return root


def _cli(workdir, folder, cache, *extra):
  return [sys.executable, "-m", "experiments.train", "--config", "table1_triangular2", "--workdir", str(workdir),
          "--data", str(folder), "--set", f"data.cache_dir={cache}", "model.name=cifar10_quick",
          "train.batch_size=10", "train.num_steps=300", "train.checkpoint_every=20", "train.log_every=10",
          "train.eval_every=150", "train.eval_batch_size=10", "train.num_devices=2", "train.progress=false",
          "schedule.step_size=25", *extra]


def _final_params(workdir, step):
  with ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints") as manager:
    return manager.restore(step, args=ocp.args.StandardRestore())


def test_resume_after_a_kill_gives_the_uninterrupted_parameters_bitwise(tmp_path):
  folder = _write_image_folder(tmp_path / "images")
  cache = tmp_path / "cache"
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  # The uninterrupted reference runs alongside (two cores), to keep the test's wall time down.
  whole = tmp_path / "whole"
  reference = subprocess.Popen(_cli(whole, folder, cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=REPO)
  # Run 1: killed (SIGKILL) right after its checkpoint at step 40 of 300.
  killed = tmp_path / "killed"
  proc = subprocess.Popen(_cli(killed, folder, cache), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          text=True, env=env, cwd=REPO)
  seen = []
  for line in proc.stderr:
    seen.append(line)
    if "checkpoint saved at step 40" in line:
      proc.send_signal(signal.SIGKILL)
      break
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
  steps = sorted(int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit())
  assert steps and steps[-1] < 300, steps
  # Run 2: --resume continues from the latest checkpoint; run 3: uninterrupted.
  subprocess.run(_cli(killed, folder, cache, "--resume"), check=True, capture_output=True, env=env, cwd=REPO,
                 timeout=300)
  _, err = reference.communicate(timeout=300)
  assert reference.returncode == 0, err[-3000:]
  resumed, uninterrupted = _final_params(killed, 300), _final_params(whole, 300)
  jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)
  # The resumed run's metrics have each step once and agree with the uninterrupted run's.
  def train_losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["split"] == "train"]
  assert train_losses(killed) == train_losses(whole)


def test_cli_help_lists_configs_and_overrides():
  out = subprocess.run([sys.executable, "-m", "experiments.train", "--help"], capture_output=True, text=True,
                       check=True, cwd=REPO, timeout=120).stdout
  for name in ("table1_triangular2", "table2_staged", "table4_densenet", "one_cycle_resnet56",
               "schedule.max_lr=", "train.num_steps=", "--resume", "--data"):
    assert name in out


def test_parse_args_collects_overrides():
  args, overrides = train.parse_args(["--config", "table1_exp", "--workdir", "/tmp/x", "--data", "cifar100",
                                      "--set", "train.num_steps=10", "schedule.gamma=0.9"])
  assert args.config == "table1_exp" and not args.resume
  assert overrides == {"train.num_steps": "10", "schedule.gamma": "0.9", "data.dataset": "cifar100"}


def test_short_real_cifar10_run_lowers_the_loss(cifar10_archive, tmp_path):
  """500 real CIFAR-10 images (stratified), 40 steps of the BatchNorm sigmoid net with a triangular CLR."""
  config = configs.override(configs.get_config("fig6_bn_sigmoid:clr"), {
      "data.dataset": str(cifar10_archive), "data.train_size": 500, "data.test_size": 200,
      "schedule.name": "triangular", "schedule.base_lr": 0.001, "schedule.max_lr": 0.01,
      "schedule.step_size": "20", "train.batch_size": 50, "train.num_steps": "40", "train.eval_every": "40",
      "train.checkpoint_every": "40", "train.log_every": 10, "train.eval_batch_size": 100,
      "train.num_devices": 1, "train.progress": False})
  summary = train.train_and_evaluate(config, tmp_path)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [r["loss"] for r in rows if r["split"] == "train"]
  assert np.mean(losses[-10:]) < np.mean(losses[:5]) - 0.1, losses
  assert summary["test_accuracy"] > 0.15  # chance is 0.1


@pytest.mark.slow
def test_two_processes_on_localhost_match_one_process_with_as_many_devices(tmp_path):
  """jax.distributed over 2 local processes x 2 CPU devices (gloo) == 1 process x 4 devices, same global batch.

  Tolerance: parameters atol 1e-5 after 30 steps (the cross-process all-reduce may sum in another order).
  """
  folder = _write_image_folder(tmp_path / "images")
  common = ["--data", str(folder), "--set", f"data.cache_dir={tmp_path / 'cache'}", "model.name=cifar10_quick",
            "train.batch_size=12", "train.num_steps=30", "train.checkpoint_every=10", "train.log_every=5",
            "train.eval_every=15", "train.eval_batch_size=12", "train.progress=false", "schedule.step_size=10",
            "data.augment=true", "data.normalization=channel"]
  outputs = multihost.run(["--config", "fig6_bn_sigmoid:clr", "--workdir", str(tmp_path / "two"), *common],
                          num_processes=2, devices_per_process=2, timeout=500)
  assert "checkpoint saved at step 30" in outputs[0]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  subprocess.run([sys.executable, "-m", "experiments.train", "--config", "fig6_bn_sigmoid:clr", "--workdir",
                  str(tmp_path / "one"), *common, "train.num_devices=4"], check=True, capture_output=True,
                 env=env, cwd=REPO, timeout=300)
  two, one = _final_params(tmp_path / "two", 30), _final_params(tmp_path / "one", 30)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), two["params"], one["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), two["batch_stats"], one["batch_stats"])
