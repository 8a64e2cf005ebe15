"""experiments.workflow: the whole workflow on a tiny CIFAR-10 subset, and its report on hand-made runs."""

import json

import numpy as np
import pytest

from experiments import configs
from experiments import results
from experiments import workflow


def _flags(workdir, archive, *extra):
  return ["--workdir", str(workdir), "--data", str(archive), "--train-size", "200", "--val-size", "50", "--test-size",
          "100", "--batch-size", "40", "--steps", "8", "--step-size", "2", "--eval-every", "4", "--range-steps", "12",
          "--range-max-lr", "0.05", "--num-devices", "1", "--no-progress", *extra]


def test_workflow_end_to_end_tiny(cifar10_archive, tmp_path, capsys):
  """Range test, bounds, both runs and the report, on 200 training images and a few steps."""
  result = workflow.main(_flags(tmp_path, cifar10_archive))
  err = capsys.readouterr().err
  for phase in ("[0/4]", "[1/4]", "[2/4]", "[3/4]", "[4/4]"):  # one line per phase
    assert phase in err
  assert 0 < result.base_lr < result.max_lr <= 0.05
  assert result.base_reason and result.max_reason
  assert result.fixed.steps == result.clr.steps == (4, 8)
  report = (tmp_path / "report.md").read_text()
  assert f"**base_lr = {result.base_lr:.4g}**" in report and f"**max_lr = {result.max_lr:.4g}**" in report
  assert "| fixed | 0.001 | 8 |" in report
  assert f"{100 * result.clr.final:.2f}" in report and f"{100 * result.fixed.final:.2f}" in report
  for png in ("range_test.png", "accuracy_curves.png"):
    assert (tmp_path / png).stat().st_size > 1000
  saved = json.loads((tmp_path / "suggestion.json").read_text())
  # The range test's suggestion is kept; triangular2 starts at the fixed rate (workflow.base="fixed").
  assert saved["max_lr"] == result.max_lr and result.base_lr == result.fixed_lr == 0.001
  assert f"the range test suggested {saved['base_lr']:.4g}" in result.base_reason
  with np.load(tmp_path / "range_test.npz") as z:
    np.testing.assert_allclose(z["lr"][0], np.linspace(0.0, 0.05, 12), rtol=1e-6, atol=1e-9)
    assert z["eval_accuracy"].shape[-1] >= 2  # held-out accuracy measured during the sweep
  # The two runs share seed, data and length and differ only in the schedule.
  fixed = json.loads((tmp_path / "fixed" / "config.json").read_text())
  clr = json.loads((tmp_path / "triangular2" / "config.json").read_text())
  assert fixed["train"] == clr["train"] and fixed["data"] == clr["data"]
  assert clr["schedule"]["name"] == "triangular2" and clr["schedule"]["base_lr"] == result.base_lr
  # Their config.json says what they trained on: the subsets and the images held out for the range test.
  assert (fixed["data"]["train_size"], fixed["data"]["test_size"], fixed["workflow"]["val_size"]) == (200, 100, 50)
  assert json.loads((tmp_path / "config.json").read_text())["workflow"]["range_max_lr"] == 0.05

  # Running again reuses the range test and the finished runs.
  again = workflow.main(_flags(tmp_path, cifar10_archive))
  assert "reusing" in capsys.readouterr().err
  assert again.clr.accuracies == result.clr.accuracies
  # Nothing ran again: the phases keep the times of the first call, and the re-rendered report shows them.
  assert again.timings == result.timings and set(result.timings) == {"range_test", "fixed", "triangular2"}
  assert (tmp_path / "report.md").read_text() == report


def test_flags_set_config_fields():
  """Every flag sets one config field; a flag left out keeps the workflow config's value; --set sets any field."""
  config = workflow.config_from_args(workflow.parse_args([
      "--workdir", "w", "--config", "table4_resnet:0.1", "--model", "resnet20", "--train-size", "0", "--steps", "640",
      "--range-mode", "exponential", "--seed", "3", "--set", "optim.momentum=0.8", "--set", "workflow.range_eval_points=5"]))
  assert config.name == "workflow:table4_resnet:0.1" and config.optim.name == "sgd" and config.optim.momentum == 0.8
  assert (config.model.name, config.data.train_size, config.data.test_size) == ("resnet20", None, 2000)
  assert (config.train.num_steps, config.train.eval_every, config.train.checkpoint_every) == ("640", "20", "320")
  assert (config.train.seed, config.data.subset_seed, config.workflow.range_mode) == (3, 3, "exponential")
  assert config.workflow.range_eval_points == 5 and config.workflow.val_size == 500
  assert config.schedule.drop_at == ()
  default = workflow.config_from_args(workflow.parse_args(["--workdir", "w"]))
  assert default == configs.override(configs.get_config("workflow:default"), {"data.dataset": "cifar10"})


def test_workflow_report_first_reached(tmp_path):
  """The report's table and sentence, from hand-made curves."""
  (tmp_path / "suggestion.json").write_text(json.dumps(
      {"base_lr": 0.002, "max_lr": 0.008, "base_reason": "b", "max_reason": "m",
       "candidates": {"steepest": [0.005, "why"]}, "notes": ["the held-out accuracy is too noisy to read"]}))
  fixed = results.RunResult("fixed", 0, (100, 200, 300, 400), (0.40, 0.50, 0.55, 0.56), 400)
  clr = results.RunResult("triangular2", 0, (100, 200, 300, 400), (0.45, 0.57, 0.52, 0.60), 400)
  path, reached = workflow.write_workflow_report(
      tmp_path, fixed=fixed, clr=clr, fixed_lr=0.001, base_lr=0.002, max_lr=0.008, base_reason="b",
      max_reason="m", step_size=50, setup={"network": "n"}, command="cmd", timings={"fixed": 1.0})
  text = path.read_text()
  assert reached == 200
  assert "| fixed | 0.001 | 400 | 56.00 | 56.00 (step 400) | 400 |" in text
  assert "| triangular2 | 0.002 to 0.008, step size 50 | 400 | 60.00 | 60.00 (step 400) | 200 |" in text
  assert "at step 200; the fixed run itself first got there at step 400 (2.0x as many steps)" in text
  assert "`steepest`: 0.005 (why)" in text
  assert "What the rules could not read:\n\n- the held-out accuracy is too noisy to read" in text
  assert (tmp_path / "accuracy_curves.png").exists()


def test_clr_bounds_take_the_fixed_rate_as_base_lr_by_default():
  """triangular2 starts at the network's own rate, as the paper's Table 1 comparison does."""
  suggestion = {"base_lr": 0.0015, "max_lr": 0.0052, "base_reason": "accuracy starts to rise",
                "max_reason": "accuracy turns ragged", "candidates": {}}
  config = configs.get_config("workflow")
  assert (config.model.name, config.data.train_size, config.workflow.base) == ("cifar10_full", None, "fixed")
  bounds = workflow.clr_bounds(config, suggestion)
  assert (bounds["base_lr"], bounds["max_lr"]) == (0.001, 0.0052)
  assert "own fixed rate" in bounds["base_reason"] and "0.0015 (accuracy starts to rise)" in bounds["base_reason"]
  suggested = configs.override(config, {"workflow.base": "suggested"})
  assert workflow.clr_bounds(suggested, suggestion) == suggestion
  with pytest.raises(ValueError, match=r"max_lr=0.0008, not above the fixed rate 0.001.*--base suggested"):
    workflow.clr_bounds(config, {**suggestion, "max_lr": 0.0008})
  with pytest.raises(ValueError, match="workflow.base must be one of"):
    workflow.run_workflow("unused", configs.override(config, {"workflow.base": "lowest"}))
