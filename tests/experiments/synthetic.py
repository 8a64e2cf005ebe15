"""Synthetic data and small configs the experiments tests share."""

import contextlib

import numpy as np
import pytest

from experiments import configs
from experiments import data
from experiments import results
from experiments import rundir
from experiments import setup
from experiments.configs import tables


def synthetic_dataset(n_train=40, n_test=20, size=16, seed=0):
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


def small_config(name, **updates):
  """A config shrunk for tests: synthetic 16x16 data, tiny batches, no progress bar."""
  base = {"train.batch_size": 8, "train.num_steps": "6", "train.eval_every": "3", "train.checkpoint_every": "3",
          "train.log_every": 1, "train.eval_batch_size": 8, "train.num_devices": 1, "train.progress": False}
  return configs.override(configs.get_config(name), {**base, **updates})


def initial_state(config, ds, axis_name=None):
  mean, std = setup.normalization_constants(config, ds.train_images)
  return setup.create_train_state(config, num_classes=ds.num_classes, mean=mean, std=std,
                                  image_shape=ds.train_images.shape[1:], axis_name=axis_name)


def synthetic_run(config, seed, steps, accs, total=None):
  return results.RunResult(config=config, seed=seed, steps=tuple(steps), accuracies=tuple(accs),
                           total_steps=total or steps[-1], wall_time=60.0, images_per_sec=500.0)


def synthetic_table1():
  # fixed: ends at 0.60 (seed 0) / 0.62 (seed 1) after 1400 steps.
  runs = [synthetic_run("table1_fixed", 0, [350, 700, 1050, 1400], [0.40, 0.52, 0.58, 0.60]),
          synthetic_run("table1_fixed", 1, [350, 700, 1050, 1400], [0.41, 0.55, 0.61, 0.62]),
          # triangular2 (Table 1's row: Table 2's stages) reaches 0.60 at 250 (seed 0) and 0.62 at 500 (seed 1).
          synthetic_run("table2_staged", 0, [125, 250, 375, 500], [0.50, 0.60, 0.58, 0.64]),
          synthetic_run("table2_staged", 1, [125, 250, 375, 500], [0.52, 0.59, 0.61, 0.63]),
          # decay never reaches the fixed run's accuracy.
          synthetic_run("table1_decay", 0, [250, 500], [0.50, 0.55]),
          synthetic_run("table1_decay", 1, [250, 500], [0.51, 0.57]),
          synthetic_run("table1_exp", 0, [700, 1400], [0.50, 0.56]),
          synthetic_run("table1_exp", 1, [700, 1400], [0.52, 0.58]),
          synthetic_run("table1_exp_range", 0, [420, 840], [0.55, 0.61]),
          synthetic_run("table1_exp_range", 1, [420, 840], [0.56, 0.63])]
  return results.summarize(tables.get_experiment("table1"), runs)


class Crash(BaseException):
  """Stands for a kill: a BaseException, so that no ``except Exception`` in the code under test catches it."""


@contextlib.contextmanager
def crash_at_checkpoint(step, *, after_saving=True, only=lambda manager, state: True):
  """A block in which `rundir.save_checkpoint` raises `Crash` at the checkpoint of `step` (right after writing
  it, as a kill just after it would; with ``after_saving=False`` instead of writing it), and which must end
  in that crash. `only(manager, state)` limits it to some checkpoints (e.g. one run's)."""
  real = rundir.save_checkpoint

  def save(manager, state):
    crash = int(state.step) == step and only(manager, state)
    if crash and not after_saving:
      raise Crash
    real(manager, state)
    if crash:
      raise Crash

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(rundir, "save_checkpoint", save)
    with pytest.raises(Crash):
      yield
