"""The ImageNet configs (Table 1's AlexNet and GoogLeNet rows, the range tests of Figs. 7 and 11): the paper's
settings, their schedules against the formulas, their paper results, and the JSON of the earlier configs left
exactly as it was."""

import json

import numpy as np
import pytest

from experiments import configs
from experiments import rundir
from experiments import setup
from experiments import train
from experiments.configs import paper_results
from experiments.models import IMAGENET_MODELS

IMAGENET_TRAIN = 1_281_167  # ILSVRC 2012 training images

ROWS = ["table1_alexnet_fixed", "table1_alexnet_triangular2", "table1_alexnet_exp:300k", "table1_alexnet_exp:460k",
        "table1_alexnet_exp_range", "table1_googlenet_fixed", "table1_googlenet_triangular2", "table1_googlenet_exp",
        "table1_googlenet_exp_range"]
RANGE_TESTS = ["fig7_alexnet_range", "fig11_googlenet_range"]

# configs.to_dict(get_config("table1_fixed")) as saved before the ImageNet fields existed (saved runs'
# config.json are matched against this form).
TABLE1_FIXED_JSON = (
    '{"name": "table1_fixed", "paper": "Table 1, CIFAR-10 fixed: 81.4% at 70,000 iterations", "data": {"dataset": '
    '"cifar10", "train_size": null, "test_size": null, "subset_seed": 0, "normalization": "mean_image", "augment": '
    'false, "pad": 4, "cache_dir": null}, "model": {"name": "cifar10_full"}, "optim": {"name": "caffe_sgd", '
    '"momentum": 0.9, "weight_decay": 0.004, "b1": 0.9, "b2": 0.999, "rms_decay": 0.98, "eps": 1e-08}, "schedule": '
    '{"name": "fixed", "base_lr": 0.001, "max_lr": 0.006, "step_size": "2000", "gamma": 0.99994, "drop_at": '
    '["60000", "65000"], "drop_factor": 0.1, "stage_starts": [], "stage_base_lrs": [], "stage_max_lrs": [], '
    '"stage_step_sizes": [], "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 10000.0, "anneal": "cos", '
    '"three_phase": false}, "train": {"batch_size": 100, "num_steps": "70000", "eval_every": "1000", "log_every": '
    '100, "checkpoint_every": "5000", "max_checkpoints": 2, "seed": 0, "num_devices": null, "eval_batch_size": '
    '1000, "progress": true}}')

NEW_FIELDS = {"crop_size", "mean_value", "workers"}


def test_earlier_configs_serialise_exactly_as_before():
  assert json.dumps(configs.to_dict(configs.get_config("table1_fixed"))) == TABLE1_FIXED_JSON
  for name in configs.list_configs():
    for arg in configs.config_args(name) or (None,):
      config = configs.get_config(name + (f":{arg}" if arg else ""))
      data = configs.to_dict(config)["data"]
      if config.data.crop_size is None:
        assert not NEW_FIELDS & set(data), name
      else:
        assert data["crop_size"] == config.data.crop_size, name


def test_added_fields_serialise_once_set_and_round_trip():
  config = configs.override(configs.get_config("table1_fixed"), {"data.workers": "8"})
  data = configs.to_dict(config)["data"]
  assert data["workers"] == 8 and "crop_size" not in data
  googlenet = configs.to_dict(configs.get_config("table1_googlenet_triangular2"))["data"]
  assert googlenet["crop_size"] == 224 and googlenet["mean_value"] == (123.0, 117.0, 104.0)
  # A saved config.json compares equal to the config it came from, through JSON (as resuming does).
  saved = json.loads(json.dumps(configs.to_dict(configs.get_config("table1_googlenet_triangular2"))))
  assert rundir.run_differences(saved, configs.get_config("table1_googlenet_triangular2")) == []


def test_every_imagenet_row_and_range_test_has_a_config():
  names = set(configs.list_configs())
  assert {n.partition(":")[0] for n in ROWS + RANGE_TESTS} <= names
  assert configs.config_args("table1_alexnet_exp") == ("300k", "460k")


@pytest.mark.parametrize("name", ROWS + RANGE_TESTS)
def test_imagenet_configs_follow_the_caffe_setups(name):
  config = configs.get_config(name)
  alexnet = "alexnet" in name
  assert config.model.name == ("alexnet" if alexnet else "googlenet")
  assert config.data.crop_size == IMAGENET_MODELS[config.model.name] == (227 if alexnet else 224)
  assert config.data.dataset == "imagenet2012" and not config.data.augment
  assert config.optim.name == "caffe_sgd" and config.optim.momentum == 0.9
  assert config.train.batch_size == (256 if alexnet else 128)
  assert config.optim.weight_decay == (0.0005 if alexnet else 0.0002)  # the BVLC solvers
  if alexnet:
    assert config.data.normalization == "mean_image"
  else:
    assert config.data.normalization == "mean_value" and config.data.mean_value == (123.0, 117.0, 104.0)


def test_paper_results_of_the_imagenet_rows():
  for name in ROWS:
    r = paper_results.get(name)
    assert r is not None and r.source == "Table 1" and r.verified and 126 <= r.line <= 134
    assert r.accuracy is None and r.accuracy_on("imagenet2012") == r.imagenet_accuracy
    config = configs.get_config(name)
    # The config's "paper" line and docstring quote the same numbers.
    assert f"{r.imagenet_accuracy}% at {r.iterations:,}" in config.paper, name
    assert configs.resolve_duration(config.train.num_steps, steps_per_epoch=1) == r.iterations
  # One table of the paper's numbers: the ImageNet rows are those with an ImageNet number, and only it.
  imagenet_rows = {n for n, r in paper_results.PAPER_RESULTS.items() if r.imagenet_accuracy is not None}
  assert imagenet_rows == set(ROWS)
  # The paper's headline ImageNet claims: triangular2 beats fixed for both networks at the same length.
  for net in ("alexnet", "googlenet"):
    assert paper_results.get(f"table1_{net}_triangular2").imagenet_accuracy > paper_results.get(
      f"table1_{net}_fixed").imagenet_accuracy


def _schedule(name):
  config = configs.get_config(name)
  plan = train.plan_run(config, num_train=IMAGENET_TRAIN, num_global_devices=1)
  schedule = setup.build_schedule(config.schedule, steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps)
  return (lambda steps: np.array([float(schedule(s)) for s in steps])), plan


def _triangular(steps, base, top, step_size, scale=lambda cycle, t: 1.0):
  steps = np.asarray(steps, np.float64)
  cycle = np.floor(1 + steps / (2 * step_size))
  x = np.abs(steps / step_size - 2 * cycle + 1)
  return base + (top - base) * np.maximum(0, 1 - x) * scale(cycle, steps)


def test_alexnet_schedules_follow_the_paper():
  fixed, plan = _schedule("table1_alexnet_fixed")
  assert plan.steps_per_epoch == IMAGENET_TRAIN // 256 == 5004 and plan.total_steps == 400_000
  np.testing.assert_allclose(fixed([0, 99_999, 100_000, 200_000, 300_000, 399_999]),
                             [0.01, 0.01, 0.001, 1e-4, 1e-5, 1e-5], rtol=1e-5)
  tri2, plan = _schedule("table1_alexnet_triangular2")
  steps = np.array([0, 15_000, 30_000, 60_000, 90_000, 150_000, 399_999])
  want = _triangular(steps, 0.01, 0.015, 30_000, lambda cycle, t: 1 / 2 ** (cycle - 1))
  np.testing.assert_allclose(tri2(steps), want, rtol=1e-5)
  assert tri2([30_000])[0] == pytest.approx(0.015) and tri2([90_000])[0] == pytest.approx(0.0125)
  exp, plan = _schedule("table1_alexnet_exp:460k")
  assert plan.total_steps == 460_000
  steps = np.array([0, 100_000, 459_999])
  np.testing.assert_allclose(exp(steps), 0.01 * 0.999995 ** steps.astype(np.float64), rtol=1e-4)
  # exp_range as §3.1 defines it (both bounds decline by gamma**t), and the Keras formula beside it.
  exp_range, plan = _schedule("table1_alexnet_exp_range")
  steps = np.array([0, 15_000, 30_000, 45_000, 210_000, 299_999])
  np.testing.assert_allclose(exp_range(steps), _triangular(steps, 0.006, 0.014, 30_000) * 0.999995 ** steps,
                             rtol=1e-4)
  keras, _ = _schedule("table1_alexnet_exp_range:keras")
  want = _triangular(steps, 0.006, 0.014, 30_000, lambda cycle, t: 0.999995 ** t)
  np.testing.assert_allclose(keras(steps), want, rtol=1e-4)


def test_googlenet_schedules_follow_the_paper():
  # No solver file for the baseline (line 293): the best-guess rate 0.01 (line 302) throughout.
  fixed, plan = _schedule("table1_googlenet_fixed")
  assert plan.steps_per_epoch == IMAGENET_TRAIN // 128 == 10_009 and plan.total_steps == 420_000
  np.testing.assert_allclose(fixed([0, 80_072, 419_999]), [0.01] * 3, rtol=1e-6)
  tri2, _ = _schedule("table1_googlenet_triangular2")
  steps = np.array([0, 30_000, 60_000, 90_000, 419_999])
  np.testing.assert_allclose(tri2(steps), _triangular(steps, 0.01, 0.026, 30_000, lambda c, t: 1 / 2 ** (c - 1)),
                             rtol=1e-5)
  exp, plan = _schedule("table1_googlenet_exp")
  assert plan.total_steps == 240_000
  np.testing.assert_allclose(exp([0, 100_000]), [0.01, 0.01 * 0.99998 ** 100_000], rtol=1e-4)
  exp_range, _ = _schedule("table1_googlenet_exp_range")
  steps = np.array([0, 30_000, 75_000, 239_999])
  np.testing.assert_allclose(exp_range(steps), _triangular(steps, 0.01, 0.026, 30_000) * 0.99998 ** steps,
                             rtol=1e-4)


@pytest.mark.parametrize("name,low,high", [("fig11_googlenet_range", 0.001, 0.065),
                                           ("fig7_alexnet_range", 0.001, 0.02)])
def test_range_tests_rise_linearly_over_four_epochs(name, low, high):
  schedule, plan = _schedule(name)
  assert plan.total_steps == 4 * plan.steps_per_epoch
  steps = np.linspace(0, plan.total_steps - 1, 9).round()
  np.testing.assert_allclose(schedule(steps), low + (high - low) * steps / plan.total_steps, rtol=1e-5)
  assert plan.eval_every == round(0.1 * plan.steps_per_epoch)
