"""Reliability of the trainer and the workflow under bad input and interrupted runs.

Each test names the failure it guards against (the defects they were written for:
experiments/benchmarks/README.md).
"""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from experiments import configs
from experiments import rundir
from experiments import train
from experiments import workflow
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


@pytest.mark.parametrize("field, value", [
    ("train.batch_size", 0), ("train.batch_size", -100), ("train.eval_batch_size", 0), ("train.log_every", 0),
    ("train.max_checkpoints", 0), ("train.num_devices", 0), ("train.eval_every", "0"),
    ("train.checkpoint_every", "0ep"), ("train.num_steps", "0"), ("train.num_steps", "5%"),
    ("train.steps_per_call", 0),
])
def test_numeric_trainer_fields_fail_at_once_naming_field_and_value(field, value):
  """A zero, negative or malformed number fails when the config is made, naming the field, not deep inside
  the run after the data load (a ZeroDivisionError, a JAX slice error) or silently as "every step"."""
  with pytest.raises(ValueError, match=rf"{field} must be .*got {value!r}"):
    configs.override(configs.get_config("table1_fixed"), {field: value})


def _logged(directory):
  return [(r["step"], r["split"], r["loss"]) for r in rundir.read_rows(directory / rundir.METRICS_JSONL)]


def test_resume_tolerates_a_torn_last_line_of_metrics_jsonl(tmp_path):
  """A kill during a metrics write leaves a partial last line; --resume drops it and keeps every complete row,
  rather than failing on it with a JSONDecodeError and never resuming."""
  ds = synthetic_dataset()
  config = small_config("table1_triangular2")  # 6 steps, checkpoints at 3 and 6
  train.train_and_evaluate(config, tmp_path / "whole", dataset=ds)
  run = tmp_path / "killed"
  shutil.copytree(tmp_path / "whole", run)
  shutil.rmtree(run / "checkpoints" / "6")  # killed while writing step 5's row, after the step-3 checkpoint
  rows = (run / rundir.METRICS_JSONL).read_text().splitlines()
  kept = [r for r in rows if json.loads(r)["step"] <= 4]
  (run / rundir.METRICS_JSONL).write_text("\n".join(kept) + "\n" + rows[len(kept)][:25])
  assert rundir.read_rows(run / rundir.METRICS_JSONL) == [json.loads(r) for r in kept]
  summary = train.train_and_evaluate(config, run, dataset=ds, resume=True)
  assert _logged(run) == _logged(tmp_path / "whole")
  assert summary["test_accuracy"] is not None
  # Only the last line may be cut short: a bad line elsewhere is an error naming it.
  (run / "broken.jsonl").write_text(kept[0] + "\n{not json\n" + kept[1] + "\n")
  with pytest.raises(ValueError, match="line 2 of .*broken.jsonl is not a metrics row"):
    rundir.read_rows(run / "broken.jsonl")


def test_resume_of_a_finished_run_returns_its_test_accuracy(tmp_path):
  """--resume on a finished run trains nothing and returns the run's test accuracy, not null."""
  ds = synthetic_dataset()
  config = small_config("table1_triangular2")
  first = train.train_and_evaluate(config, tmp_path, dataset=ds)
  again = train.train_and_evaluate(config, tmp_path, dataset=ds, resume=True)
  assert again["test_accuracy"] == first["test_accuracy"] and again["test_loss"] == first["test_loss"]
  assert again["steps"] == first["steps"] == 6
  assert again["train_images"] == first["train_images"] == 40  # what the report's Data line states


def test_a_leftover_orbax_tmp_directory_does_not_keep_a_checkpoint_too_many(tmp_path):
  """A write killed inside orbax leaves ``<step>.orbax-checkpoint-tmp-*``; the resumed run removes it on start
  (it is never a complete checkpoint), so it keeps max_checkpoints checkpoints, not one more."""
  ds = synthetic_dataset()
  config = small_config("table1_triangular2", **{"train.num_steps": "12", "train.max_checkpoints": 2})
  train.train_and_evaluate(config, tmp_path, dataset=ds)  # checkpoints 9 and 12 kept
  shutil.rmtree(tmp_path / "checkpoints" / "12")
  shutil.copytree(tmp_path / "checkpoints" / "9", tmp_path / "checkpoints" / f"12{rundir.TMP_CHECKPOINT}1765000000")
  train.train_and_evaluate(config, tmp_path, dataset=ds, resume=True)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["12", "9"]


def test_workflow_checks_its_rule_before_the_range_test(tmp_path, monkeypatch):
  """An unknown --rule fails before the range test runs (minutes), not after."""
  monkeypatch.setattr(workflow.setup, "load_data", lambda *a, **k: pytest.fail("loaded data before checking"))
  with pytest.raises(ValueError, match="workflow.rule must be one of .*got 'fastest'"):
    workflow.main(["--workdir", str(tmp_path), "--rule", "fastest"])


def test_workflow_refuses_a_work_directory_of_other_settings(tmp_path, monkeypatch):
  """A second workflow in the same directory with another --range-max-lr, --range-mode or --rule is refused,
  naming the settings, rather than reusing the old range test and runs under a report of the new flags."""
  monkeypatch.setattr(workflow.setup, "load_data", lambda *a, **k: pytest.fail("the settings were not compared"))
  (tmp_path / rundir.CONFIG).write_text(json.dumps(configs.to_dict(
      workflow.config_from_args(workflow.parse_args(["--workdir", str(tmp_path)])))))
  with pytest.raises(ValueError, match=r"other settings \(workflow.range_max_lr: 0.02 -> 0.05, "
                                       r"workflow.range_mode: 'linear' -> 'exponential', "
                                       r"workflow.rule: 'auto' -> 'valley'\)"):
    workflow.main(["--workdir", str(tmp_path), "--range-max-lr", "0.05", "--range-mode", "exponential",
                   "--rule", "valley"])


class _Crash(Exception):
  """Stands for a kill: raised part-way through a write, leaving what a kill would leave."""


def _torn_metrics_write(real):
  def write(self, rows):
    if any(r["step"] == 4 and r["split"] == "train" for r in rows):
      with open(self.jsonl, "a") as f:  # half of the first row reaches the disk, then the process dies
        f.write(json.dumps(rows[0])[:20])
      raise _Crash
    real(self, rows)
  return write


def _torn_checkpoint_write(real):
  def save(manager, state):
    if int(state.step) == 6:  # orbax had begun its temporary directory when the process died
      (pathlib.Path(manager.directory) / f"6{rundir.TMP_CHECKPOINT}1765000000").mkdir()
      raise _Crash
    real(manager, state)
  return save


def _crash_between_evaluation_and_checkpoint(real):
  def save(manager, state):
    if int(state.step) == 6:  # step 6's metrics and evaluation are written, its checkpoint is not
      raise _Crash
    real(manager, state)
  return save


@pytest.mark.parametrize("target, crash", [
    ("MetricsWriter.write", _torn_metrics_write), ("save_checkpoint", _torn_checkpoint_write),
    ("save_checkpoint", _crash_between_evaluation_and_checkpoint)])
def test_a_run_killed_at_any_phase_resumes_to_the_uninterrupted_parameters(tmp_path, monkeypatch, target, crash):
  """A kill during a metrics write, during a checkpoint write, or between the evaluation and
  the checkpoint leaves a run that --resume finishes with bitwise the parameters and metrics of a run never
  interrupted (9 steps, checkpoints at 3, 6 and 9)."""
  ds = synthetic_dataset()
  config = small_config("table1_triangular2", **{"train.num_steps": "9"})
  whole = train.train_and_evaluate(config, tmp_path / "whole", dataset=ds)
  owner = rundir.MetricsWriter if target == "MetricsWriter.write" else rundir
  name = target.split(".")[-1]
  monkeypatch.setattr(owner, name, crash(getattr(owner, name)))
  with pytest.raises(_Crash):
    train.train_and_evaluate(config, tmp_path / "killed", dataset=ds)
  monkeypatch.undo()
  resumed = train.train_and_evaluate(config, tmp_path / "killed", dataset=ds, resume=True)
  for a, b in zip(jax.tree.leaves(whole["state"].checkpoint_items()), jax.tree.leaves(resumed["state"].checkpoint_items())):
    np.testing.assert_array_equal(a, b)
  assert _logged(tmp_path / "killed") == _logged(tmp_path / "whole")
  assert sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir()) == ["6", "9"]
