"""experiments.workflow: the whole workflow on a tiny CIFAR-10 subset, and its report on hand-made runs."""

import json

import numpy as np
import pytest

from experiments import reproduce
from experiments import workflow


def test_workflow_end_to_end_tiny(cifar10_archive, tmp_path, capsys):
  """Range test, bounds, both runs and the report, on 200 training images and a few steps."""
  result = workflow.run_workflow(
      tmp_path, data=str(cifar10_archive), train_size=200, val_size=50, test_size=100, batch_size=40, steps=8,
      step_size="2", eval_every=4, range_steps="12", range_max_lr=0.05, num_devices=1, progress=False,
      command="python -m experiments.workflow --workdir X")
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
  assert saved["base_lr"] == result.base_lr and saved["max_lr"] == result.max_lr
  with np.load(tmp_path / "range_test.npz") as z:
    np.testing.assert_allclose(z["lr"][0], np.linspace(0.0, 0.05, 12), rtol=1e-6, atol=1e-9)
    assert z["eval_accuracy"].shape[-1] >= 2  # held-out accuracy measured during the sweep
  # The two runs share seed, data and length and differ only in the schedule.
  fixed = json.loads((tmp_path / "fixed" / "config.json").read_text())
  clr = json.loads((tmp_path / "triangular2" / "config.json").read_text())
  assert fixed["train"] == clr["train"] and fixed["data"] == clr["data"]
  assert clr["schedule"]["name"] == "triangular2" and clr["schedule"]["base_lr"] == result.base_lr

  # Running again reuses the range test and the finished runs.
  again = workflow.run_workflow(
      tmp_path, data=str(cifar10_archive), train_size=200, val_size=50, test_size=100, batch_size=40, steps=8,
      step_size="2", eval_every=4, range_steps="12", range_max_lr=0.05, num_devices=1, progress=False)
  assert "reusing" in capsys.readouterr().err
  assert again.clr.accuracies == result.clr.accuracies and again.timings == {}


def test_prepare_data_disjoint_stratified():
  from experiments import data  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10, dtype=np.int32), 30)
  images = rng.integers(0, 255, (300, 8, 8, 3)).astype(np.uint8)
  images[:, 0, 0, 0] = np.arange(300) % 256  # an id in each image
  images[:, 0, 0, 1] = np.arange(300) // 256
  ds = data.Dataset(images, labels, images[::6], labels[::6], tuple(str(i) for i in range(10)), "synthetic")
  train_ds, (val_images, val_labels) = workflow.prepare_data("unused", train_size=100, val_size=40, test_size=20,
                                                             seed=0, dataset=ds)
  ids = lambda im: set((im[:, 0, 0, 0].astype(int) + 256 * im[:, 0, 0, 1].astype(int)).tolist())  # noqa: E731
  assert len(train_ds.train_labels) == 100 and len(val_labels) == 40 and len(train_ds.test_labels) == 20
  assert not ids(train_ds.train_images) & ids(val_images)  # disjoint
  assert len(ids(train_ds.train_images) | ids(val_images)) == 140
  with pytest.raises(ValueError, match="exceeds"):
    workflow.prepare_data("unused", train_size=290, val_size=40, test_size=20, seed=0, dataset=ds)


def test_workflow_report_first_reached(tmp_path):
  """The report's table and sentence, from hand-made curves."""
  (tmp_path / "suggestion.json").write_text(json.dumps(
      {"base_lr": 0.002, "max_lr": 0.008, "base_reason": "b", "max_reason": "m",
       "candidates": {"steepest": [0.005, "why"]}}))
  fixed = reproduce.RunResult("fixed", 0, (100, 200, 300, 400), (0.40, 0.50, 0.55, 0.56), 400)
  clr = reproduce.RunResult("triangular2", 0, (100, 200, 300, 400), (0.45, 0.57, 0.52, 0.60), 400)
  path, reached = workflow.write_workflow_report(
      tmp_path, fixed=fixed, clr=clr, fixed_lr=0.001, base_lr=0.002, max_lr=0.008, base_reason="b",
      max_reason="m", step_size=50, setup={"network": "n"}, command="cmd", timings={"fixed": 1.0})
  text = path.read_text()
  assert reached == 200
  assert "| fixed | 0.001 | 400 | 56.00 | 56.00 (step 400) | 400 |" in text
  assert "| triangular2 | 0.002 to 0.008, step size 50 | 400 | 60.00 | 60.00 (step 400) | 200 |" in text
  assert "at step 200; the fixed run itself first got there at step 400 (2.0x as many steps)" in text
  assert "`steepest`: 0.005 (why)" in text
  assert (tmp_path / "accuracy_curves.png").exists()
