"""experiments.setup: the one data path (subsets and the held-out split), the name tables."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs
from experiments import data
from experiments import models
from experiments import setup


def _ids_dataset():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10, dtype=np.int32), 30)
  images = rng.integers(0, 255, (300, 8, 8, 3)).astype(np.uint8)
  images[:, 0, 0, 0] = np.arange(300) % 256  # an id in each image
  images[:, 0, 0, 1] = np.arange(300) // 256
  return data.Dataset(images, labels, images[::6], labels[::6], tuple(str(i) for i in range(10)), "synthetic")


def test_held_out_split_is_disjoint_from_the_stratified_training_set():
  ds = _ids_dataset()
  config = configs.override(configs.get_config("workflow"), {"data.train_size": 100, "workflow.val_size": 40,
                                                             "data.test_size": 20})
  train_ds, (val_images, val_labels) = setup.load_data(config, dataset=ds)
  ids = lambda im: set((im[:, 0, 0, 0].astype(int) + 256 * im[:, 0, 0, 1].astype(int)).tolist())  # noqa: E731
  assert len(train_ds.train_labels) == 100 and len(val_labels) == 40 and len(train_ds.test_labels) == 20
  assert not ids(train_ds.train_images) & ids(val_images)  # disjoint
  assert len(ids(train_ds.train_images) | ids(val_images)) == 140
  with pytest.raises(ValueError, match="exceeds"):
    setup.load_data(configs.override(config, {"data.train_size": 290}), dataset=ds)


def test_outside_the_workflow_nothing_is_held_out_and_the_subsets_are_the_old_ones():
  """A trainer config holds nothing out, and draws exactly the subset `stratified_subset` drew before the
  data path was shared with the workflow (resumed runs must see the same images)."""
  ds = _ids_dataset()
  config = configs.override(configs.get_config("table1_fixed"), {"data.test_size": 20, "data.subset_seed": 3})
  got, (val_images, _) = setup.load_data(config, dataset=ds)
  want = data.stratified_subset(ds, train_size=300, test_size=20, seed=3)
  assert len(val_images) == 0
  np.testing.assert_array_equal(got.train_images, want.train_images)
  np.testing.assert_array_equal(got.test_labels, want.test_labels)
  assert setup.load_data(configs.get_config("table1_fixed"), dataset=ds)[0] is ds  # no subset: the data itself


@pytest.mark.parametrize("updates, match", [
    ({"schedule.name": "cosine"}, "unknown schedule.name 'cosine'; one of fixed, triangular, triangular2"),
    ({"optim.name": "lion"}, "unknown optim.name 'lion'; one of caffe_sgd, sgd, nesterov, adam"),
    ({"data.normalization": "zca"}, "data.normalization must be one of 'channel', 'mean_image'"),
])
def test_unknown_names_list_the_table(updates, match):
  config = configs.override(configs.get_config("default"), updates)
  with pytest.raises(ValueError, match=match):
    setup.build_schedule(config.schedule, steps_per_epoch=10, total_steps=100)
    setup.build_optimizer(config.optim, config.model.name)
    setup.normalization_constants(config, np.zeros((2, 4, 4, 3), np.uint8))


def test_the_initial_weights_are_the_models_initializer_draws_with_the_configs_seed():
  """The initializer is compiled for compiling fast (`INIT_COMPILER_OPTIONS`): its weights are still the
  model's own initializer's, drawn from the run's seed (op by op, uncompiled), to within a few ulps."""
  config = configs.override(configs.get_config("table1_fixed"), {"train.seed": 5})
  state = setup.create_train_state(config, num_classes=10, mean=np.zeros(3), std=np.ones(3))
  init_key, _ = jax.random.split(jax.random.key(5))
  with jax.disable_jit():
    want = models.create_model("cifar10_full", num_classes=10).init(
        {"params": init_key, "dropout": init_key, "stochastic_depth": init_key}, jnp.zeros((2, 32, 32, 3)),
        train=False)["params"]
  got = jax.tree.map(np.asarray, state.params)
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, np.asarray(w), rtol=1e-6, atol=1e-9)
  assert np.std(got["conv1"]["kernel"]) > 1e-5  # drawn, not zeros
