"""The trainer: one step per config family, pmap equivalence, a real short run, resume after a kill, NaN guard, CLI."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import configs
from experiments import data
from experiments import train

REPO = pathlib.Path(__file__).resolve().parents[2]


def _dataset(n_train=40, n_test=20, size=16, seed=0):
  """Random images whose label is visible (class c brightens channel c % 3 in row band c): learnable."""
  rng = np.random.default_rng(seed)

  def split(n):
    labels = np.arange(n, dtype=np.int32) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 120, (n, size, size, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
      images[i, c * size // 10:(c + 1) * size // 10, :, c % 3] += 120
    return images, labels

  train_images, train_labels = split(n_train)
  test_images, test_labels = split(n_test)
  return data.Dataset(train_images, train_labels, test_images, test_labels, tuple(f"c{i}" for i in range(10)),
                      "synthetic")


def _small(name, **updates):
  """A config shrunk for tests: synthetic 16x16 data, tiny batches, no progress bar."""
  base = {"train.batch_size": 8, "train.num_steps": "6", "train.eval_every": "3", "train.checkpoint_every": "3",
          "train.log_every": 1, "train.eval_batch_size": 8, "train.num_devices": 1, "train.progress": False}
  return configs.override(configs.get_config(name), {**base, **updates})


def _state(config, ds, axis_name=None):
  mean, std = train.normalization_constants(config, ds.train_images)
  return train.create_train_state(config, num_classes=ds.num_classes, mean=mean, std=std,
                                  image_shape=ds.train_images.shape[1:], axis_name=axis_name)


def test_train_step_is_plain_sgd_on_the_normalised_cross_entropy():
  """Against an independent reference: params - lr * lr_mult * grad of the mean cross-entropy of (x - mean) / std."""
  ds = _dataset()
  config = _small("default", **{"model.name": "cifar10_quick", "optim.name": "sgd", "optim.momentum": 0.0,
                                "optim.weight_decay": 0.0, "data.normalization": "channel"})
  state = _state(config, ds)
  batch = {"image": jnp.asarray(ds.train_images[:8]), "label": jnp.asarray(ds.train_labels[:8])}
  lr = 0.05
  new_state, metrics = jax.jit(train.train_step)(state, batch, lr)

  mean = ds.train_images.reshape(-1, 3).astype(np.float64).mean(0)
  std = ds.train_images.reshape(-1, 3).astype(np.float64).std(0)
  x = jnp.asarray((ds.train_images[:8] - mean) / std, jnp.float32)
  y = ds.train_labels[:8]

  def loss(params):
    logits = state.apply_fn({"params": params}, x, train=True)
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[jnp.arange(8), y])

  want_loss, grads = jax.value_and_grad(loss)(state.params)
  # Caffe's cifar10_quick prototxt gives every bias lr_mult 2 (weights 1); the trainer applies it to any optimizer.
  want = jax.tree_util.tree_map_with_path(
      lambda path, p, g: p - lr * (2.0 if path[-1].key == "bias" else 1.0) * g, state.params, grads)
  np.testing.assert_allclose(metrics["loss"], want_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["lr"], lr)
  np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_state.params, want)
  assert int(new_state.step) == 1


FAST_FAMILIES = [
    ("table1_triangular2", {}),                       # cifar10_full, caffe_sgd with Caffe multipliers
    ("table3_adam:clr", {}),                          # an adaptive optimizer with Caffe multipliers
    ("fig6_bn_sigmoid:clr", {}),                      # Caffe BatchNorm
    ("table4_resnet:clr", {"model.name": "resnet20"}),  # BatchNorm ResNet, augmentation, per-channel stats
]
SLOW_FAMILIES = [(name, {}) for name in (
    "table3_nesterov:clr", "table3_rmsprop:clr", "table3_adagrad:clr", "table3_adadelta:clr",
    "table4_resnet:clr", "table4_sd_resnet:clr", "table4_densenet:clr", "one_cycle_resnet56")]


def _one_step_per_family(name, updates):
  ds = _dataset()
  config = _small(name, **updates)
  state = _state(config, ds)
  schedule = train.build_schedule(config.schedule, steps_per_epoch=5, total_steps=100)
  batch = {"image": jnp.asarray(ds.train_images[:8]), "label": jnp.asarray(ds.train_labels[:8])}
  step = jax.jit(train.train_step)
  s1, m1 = step(state, batch, schedule(state.step))
  s2, m2 = step(s1, batch, schedule(s1.step))
  for m in (m1, m2):
    assert all(np.isfinite(np.asarray(v)) for v in m.values()), m
  np.testing.assert_allclose(m2["lr"], schedule(1), rtol=1e-6)
  assert int(s2.step) == 2
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.params, s2.params)
  unmoved = [jax.tree_util.keystr(path) for path, moved in jax.tree_util.tree_flatten_with_path(changed)[0]
             if not moved]
  if config.model.name.startswith("sd_"):
    # Stochastic depth drops whole residual blocks: a block dropped in both steps gets no gradient, and
    # of its parameters only the weight-decayed ones move (its BatchNorm biases stay).
    assert all("_BasicBlock" in p and "BatchNorm" in p for p in unmoved), unmoved
    assert len(unmoved) < len(jax.tree.leaves(changed)) / 4, unmoved
  else:
    assert not unmoved, f"parameters that did not move: {unmoved}"
  if jax.tree.leaves(state.batch_stats):
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), state.batch_stats,
                         s2.batch_stats)
    assert any(jax.tree.leaves(moved)), "BatchNorm statistics were updated"


@pytest.mark.parametrize("name,updates", FAST_FAMILIES)
def test_one_step_per_config_family(name, updates):
  _one_step_per_family(name, updates)


@pytest.mark.slow
@pytest.mark.parametrize("name,updates", SLOW_FAMILIES)
def test_one_step_per_config_family_slow(name, updates):
  _one_step_per_family(name, updates)


def _trajectory_pmap(config, ds, num_devices, steps):
  devices = jax.local_devices()[:num_devices]
  gb = config.train.batch_size
  spe = len(ds.train_labels) // gb
  schedule = train.build_schedule(config.schedule, steps_per_epoch=spe, total_steps=steps)
  p_step = train.make_pmapped_train_step(schedule, global_batch=gb, local_batch=gb // num_devices,
                                         steps_per_epoch=spe, devices=devices)
  p_shuffle = train.make_pmapped_shuffle(len(ds.train_labels), devices)
  state_r = train.replicate(_state(config, ds, axis_name=train.AXIS), devices)
  images, labels = train.replicate((ds.train_images, ds.train_labels), devices)
  losses, perms = [], {}
  for step in range(steps):
    epoch = step // spe
    if epoch not in perms:
      perms[epoch] = p_shuffle(train.replicate(jax.random.fold_in(jax.random.key(7), epoch), devices))
    state_r, metrics = p_step(state_r, images, labels, perms[epoch])
    losses.append(metrics["loss"])
  return (np.array([float(l[0]) for l in losses]), train.unreplicate(state_r),
          {e: np.asarray(p[0]) for e, p in perms.items()}, schedule)


def test_pmap_on_1_2_4_devices_matches_one_device_with_the_same_global_batch():
  """BatchNorm statistics and gradients pmean-ed over devices: the split changes nothing but rounding.

  Tolerance: losses rtol 2e-5 and parameters atol 2e-5 after 7 steps (float32 summation order differs).
  The model has BatchNorm, random crop and flip augmentation, and 7 steps cross an epoch boundary.
  """
  ds = _dataset(n_train=40)
  config = _small("fig6_bn_sigmoid:clr", **{"train.batch_size": 8, "data.augment": True,
                                            "data.normalization": "channel", "schedule.base_lr": 0.01,
                                            "schedule.max_lr": 0.05, "schedule.step_size": "3"})
  steps = 7
  runs = {n: _trajectory_pmap(config, ds, n, steps) for n in (1, 2, 4)}

  # Reference: the plain single-device step (no pmap, no axis) on the same global batches.
  _, _, perms, schedule = runs[1]
  state = _state(config, ds)
  step_fn = jax.jit(train.train_step)
  want = []
  for step in range(steps):
    index = perms[step // 5][(step % 5) * 8:(step % 5 + 1) * 8]
    batch = {"image": jnp.asarray(ds.train_images[index]), "label": jnp.asarray(ds.train_labels[index])}
    state, metrics = step_fn(state, batch, schedule(step))
    want.append(float(metrics["loss"]))
  for n, (losses, final, run_perms, _) in runs.items():
    assert all(np.array_equal(run_perms[e], perms[e]) for e in perms)
    np.testing.assert_allclose(losses, want, rtol=2e-5, err_msg=f"{n} devices")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), final.params, state.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), final.batch_stats, state.batch_stats)


def test_pmapped_programs_compile_with_the_trainers_xla_options(monkeypatch, tmp_path):
  # XLA rejects an option it does not know: proof that the trainer's options reach its compiler.
  monkeypatch.setattr(train, "compiler_options", lambda devices: {"xla_no_such_option": "1"})
  ds = _dataset()
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
    train.train_and_evaluate(_small("table1_triangular2"), tmp_path, dataset=ds)
  devices = jax.local_devices()[:1]
  p_eval = train.make_pmapped_eval_step(local_batch=8, num_examples=20, devices=devices)
  state_r = train.replicate(_state(_small("table1_triangular2"), ds, axis_name=train.AXIS), devices)
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
    p_eval(state_r, *train.replicate((ds.test_images, ds.test_labels, np.int32(0)), devices))


def test_compiler_options_fall_back_to_xla_defaults_with_a_warning(monkeypatch):
  monkeypatch.setattr(train, "CPU_COMPILER_OPTIONS", {"xla_no_such_option": "1"})
  with pytest.warns(UserWarning, match="xla_no_such_option"):
    assert train.compiler_options(jax.local_devices()) is None


def test_train_and_evaluate_writes_metrics_and_checkpoints(tmp_path):
  ds = _dataset()
  config = _small("table1_triangular2", **{"train.num_devices": 2, "schedule.step_size": "2"})
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
    train.train_and_evaluate(_small("table1_triangular2", **{"train.num_devices": 2, "schedule.step_size": "2",
                                                             "schedule.max_lr": 0.01, "train.seed": 1}),
                             tmp_path, dataset=ds, resume=True)
  saved = json.loads((tmp_path / "config.json").read_text())
  train.check_resume_config(saved, configs.override(config, {"train.log_every": 7, "train.eval_every": "2"}))


def test_evaluation_covers_the_whole_test_set_once(tmp_path):
  """20 test images in global eval batches of 8 (the last one padded): compare with a host-side evaluation."""
  ds = _dataset(n_test=20)
  config = _small("fig6_bn_sigmoid:clr", **{"train.num_devices": 2, "train.num_steps": "2", "train.eval_every": "2"})
  summary = train.train_and_evaluate(config, tmp_path, dataset=ds)
  state = summary["state"]
  logits = np.asarray(jax.jit(train.eval_logits)(state.replace(axis_name=None), jnp.asarray(ds.test_images)),
                      np.float64)
  logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
  want_loss = -logp[np.arange(20), ds.test_labels].mean()
  want_acc = np.mean(logits.argmax(1) == ds.test_labels)
  np.testing.assert_allclose(summary["test_loss"], want_loss, rtol=1e-5)
  assert summary["test_accuracy"] == pytest.approx(want_acc)


def test_nan_guard_stops_with_the_metric_name_and_keeps_the_last_good_checkpoint(tmp_path):
  ds = _dataset()
  # A sane rate for 4 steps, then multiplied by 1e30: the parameters blow up at step 5.
  config = _small("default", **{"model.name": "cifar10_quick", "optim.name": "sgd", "schedule.base_lr": 0.01,
                                "schedule.drop_at": ("4",), "schedule.drop_factor": 1e30,
                                "train.num_steps": "12", "train.checkpoint_every": "2", "train.eval_every": "100"})
  with pytest.raises(FloatingPointError, match=r"non-finite train metric (loss|grad_norm)=(nan|inf) at step \d+; "
                                               r"stopped, the last good checkpoint is step 4"):
    train.train_and_evaluate(config, tmp_path, dataset=ds)
  import orbax.checkpoint as ocp
  with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
    assert manager.latest_step() == 4
    items = manager.restore(4, args=ocp.args.StandardRestore())
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(items["params"]))


def _write_image_folder(root: pathlib.Path, per_class=(6, 2), size=16):
  from PIL import Image
  ds = _dataset(n_train=10 * per_class[0], n_test=10 * per_class[1], size=size, seed=3)
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
  import orbax.checkpoint as ocp
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
  from experiments import multihost
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
