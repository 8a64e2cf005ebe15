"""The pmapped programs: 1, 2 and 4 devices give one device's trajectory; the trainer's XLA options reach them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import parallel
from experiments import setup
from experiments import step as step_lib
from experiments import train
from tests.experiments.synthetic import initial_state
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


def _trajectory_pmap(config, ds, num_devices, steps):
  devices = jax.local_devices()[:num_devices]
  gb = config.train.batch_size
  spe = len(ds.train_labels) // gb
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=spe, total_steps=steps)
  p_step = parallel.make_pmapped_train_step(schedule, global_batch=gb, local_batch=gb // num_devices,
                                            steps_per_epoch=spe, devices=devices)
  p_shuffle = parallel.make_pmapped_shuffle(len(ds.train_labels), devices)
  state_r = parallel.replicate(initial_state(config, ds, axis_name=parallel.AXIS), devices)
  images, labels = parallel.replicate((ds.train_images, ds.train_labels), devices)
  losses, perms = [], {}
  for step in range(steps):
    epoch = step // spe
    if epoch not in perms:
      perms[epoch] = p_shuffle(parallel.replicate(jax.random.fold_in(jax.random.key(7), epoch), devices))
    state_r, metrics = p_step(state_r, images, labels, perms[epoch])
    losses.append(metrics["loss"])
  return (np.array([float(l[0]) for l in losses]), parallel.unreplicate(state_r),
          {e: np.asarray(p[0]) for e, p in perms.items()}, schedule)


def test_pmap_on_1_2_4_devices_matches_one_device_with_the_same_global_batch():
  """BatchNorm statistics and gradients pmean-ed over devices: the split changes nothing but rounding.

  Tolerance: losses rtol 2e-5 and parameters atol 2e-5 after 7 steps (float32 summation order differs).
  The model has BatchNorm, random crop and flip augmentation, and 7 steps cross an epoch boundary.
  """
  ds = synthetic_dataset(n_train=40)
  config = small_config("fig6_bn_sigmoid:clr", **{"train.batch_size": 8, "data.augment": True,
                                            "data.normalization": "channel", "schedule.base_lr": 0.01,
                                            "schedule.max_lr": 0.05, "schedule.step_size": "3"})
  steps = 7
  runs = {n: _trajectory_pmap(config, ds, n, steps) for n in (1, 2, 4)}

  # Reference: the plain single-device step (no pmap, no axis) on the same global batches.
  _, _, perms, schedule = runs[1]
  state = initial_state(config, ds)
  step_fn = jax.jit(step_lib.train_step)
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
  monkeypatch.setattr(parallel, "compiler_options", lambda devices: {"xla_no_such_option": "1"})
  ds = synthetic_dataset()
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
    train.train_and_evaluate(small_config("table1_triangular2"), tmp_path, dataset=ds)
  devices = jax.local_devices()[:1]
  p_eval = parallel.make_pmapped_eval_step(local_batch=8, num_examples=20, devices=devices)
  state_r = parallel.replicate(initial_state(small_config("table1_triangular2"), ds, axis_name=parallel.AXIS), devices)
  with pytest.raises(jax.errors.JaxRuntimeError, match="xla_no_such_option"):
    p_eval(state_r, *parallel.replicate((ds.test_images, ds.test_labels, np.int32(0)), devices))


def test_compiler_options_fall_back_to_xla_defaults_with_a_warning(monkeypatch):
  monkeypatch.setattr(parallel, "CPU_COMPILER_OPTIONS", {"xla_no_such_option": "1"})
  with pytest.warns(UserWarning, match="xla_no_such_option"):
    assert parallel.compiler_options(jax.local_devices()) is None
