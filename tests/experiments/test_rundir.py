"""experiments.rundir: runs saved by earlier code are recognised, the one matching rule, metrics, atomic writes.

The fixtures were written by the code of commit a2c7216 (before experiments/ was split by concern):
``configs_a2c7216.json`` is `configs.to_dict` of every config, ``run_a2c7216/`` a 4-step run of
`_fixture_config` (its config.json, metrics.jsonl and metrics.csv). Long runs started by that code must be
resumed and counted as finished by this one.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest

from experiments import configs
from experiments import results
from experiments import rundir

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _fixture_config():
  """The config of ``fixtures/run_a2c7216`` (made with train.train_and_evaluate on synthetic 16x16 images)."""
  return configs.override(configs.get_config("table1_triangular2"), {
      "train.batch_size": 8, "train.num_steps": "4", "train.eval_every": "2", "train.checkpoint_every": "2",
      "train.log_every": 1, "train.eval_batch_size": 8, "train.num_devices": 1, "train.progress": False,
      "model.name": "cifar10_quick"})


# Configs changed on purpose since a2c7216 to follow the paper's text (experiments/reports/fidelity.md): the
# fields that now train differently. No run of their old settings was kept.
CHANGED_SINCE = {
    **{f"fig6_bn_sigmoid:{a}": ["train.eval_train: '<missing>' -> True"] for a in ("fixed", "clr")},
    **{f"table3_{m}:clr": ["schedule.step_size: '2000' -> '2500'"]
       for m in ("nesterov", "adam", "rmsprop", "adagrad", "adadelta")},
    **{f"table3_{m}:clr70k": ["schedule.step_size: '2000' -> '2500'"] for m in ("adam", "rmsprop")},
    **{f"table4_sd_resnet:{a}": ["data.train_size: None -> 45000"] for a in ("0.1", "0.2", "0.3", "clr")},
}
# Renamed: the Keras formula's exp_range, whose committed runs were moved to the new name's directory.
RENAMED = {"table1_exp_range": "table1_exp_range:keras"}
# Only the paper line (`RESUMABLE_CHANGES`) differs: the quoted result was corrected.
REQUOTED = {"one_cycle_resnet56", "table3_adam:fixed"}


def test_config_json_of_every_config_is_what_the_previous_code_wrote():
  saved = json.loads((FIXTURES / "configs_a2c7216.json").read_text())
  names = [n + (f":{a}" if a else "") for n in configs.list_configs() for a in (configs.config_args(n) or (None,))]
  assert {RENAMED.get(n, n) for n in saved} <= set(names)
  for old_name, want in saved.items():
    name = RENAMED.get(old_name, old_name)
    config = configs.get_config(name)
    if name in RENAMED.values():
      want = {**want, "name": name, "paper": config.paper}
    assert rundir.run_differences(want, config) == CHANGED_SINCE.get(name, []), name
    if name not in CHANGED_SINCE and name not in REQUOTED:
      # Byte for byte as the trainer writes it (Durations stay the strings they were written as).
      assert json.dumps(configs.to_dict(config), indent=2) == json.dumps(want, indent=2), name


def test_a_run_saved_by_the_previous_code_is_the_same_run(tmp_path):
  directory = tmp_path / "run"
  shutil.copytree(FIXTURES / "run_a2c7216", directory)
  config = _fixture_config()
  assert rundir.run_differences(rundir.read_json(directory / rundir.CONFIG), config) == []
  rundir.check_same_run(directory, config)
  with pytest.raises(ValueError, match=r"different config \(train.seed: 0 -> 1\)"):
    rundir.check_same_run(directory, configs.override(config, {"train.seed": 1}))
  metrics = rundir.read_metrics(directory)
  assert [r["step"] for r in metrics["train"]] == [1, 2, 3, 4] and [r["step"] for r in metrics["test"]] == [2, 4]
  steps, rates = results.lr_curve(directory)
  assert steps.tolist() == [0, 1, 2, 3]
  np.testing.assert_allclose(rates, [0.001, 0.0010025, 0.001005, 0.0010075], rtol=1e-5)
  # Resuming from its step-2 checkpoint keeps the rows up to step 2, in both files.
  rundir.MetricsWriter(directory, keep_until_step=2)
  assert [r["step"] for r in rundir.read_rows(directory / rundir.METRICS_JSONL)] == [1, 2, 2]
  assert len((directory / rundir.METRICS_CSV).read_text().splitlines()) == 1 + 3


def test_run_differences_names_every_field_and_ignores_logging_ones():
  config = _fixture_config()
  saved = json.loads(json.dumps(configs.to_dict(config)))
  assert not rundir.run_differences(saved, configs.override(config, {"train.log_every": 7, "train.eval_every": "3",
                                                                     "data.dataset": "/elsewhere/cifar10"}))
  assert rundir.run_differences(saved, configs.override(config, {"schedule.max_lr": 0.01, "train.seed": 1})) == [
      "schedule.max_lr: 0.006 -> 0.01", "train.seed: 0 -> 1"]
  workflow = configs.get_config("workflow")
  saved = json.loads(json.dumps(configs.to_dict(workflow)))
  del saved["workflow"]["val_size"]
  assert rundir.run_differences(saved, workflow) == ["workflow.val_size: '<missing>' -> 500"]


def test_atomic_path_leaves_the_old_file_on_error(tmp_path):
  path = tmp_path / "a.json"
  rundir.write_text(path, "old")
  with pytest.raises(RuntimeError):
    with rundir.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise RuntimeError("killed")
  assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
