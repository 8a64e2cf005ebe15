"""Bad input to the reproduction harness fails before anything trains, naming the field or flag: duplicate
seeds and work directories, seeds the PRNG cannot tell apart, fractional steps, an empty test set, bad step
drops, the report's data line and title, the workflow's work directory, and the command-line tools'
one-line errors (the defects these tests were written for: experiments/benchmarks/README.md).
"""

import json
import runpy
import sys
import warnings

import jax
import pytest

from experiments import configs
from experiments import multirun
from experiments import reproduce
from experiments import rundir
from experiments import train
from experiments import workflow
from experiments.configs import tables
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset


def _no_data(*args, **kwargs):
  pytest.fail("opened the data before refusing the input")


def _tiny(name, **updates):
  return small_config(name, **{"model.name": "cifar10_quick", "train.num_steps": "2", "train.eval_every": "2",
                               "train.checkpoint_every": "2", **updates})


# One run twice, or two runs in one directory.

def test_two_runs_trained_together_in_one_work_directory_are_refused(tmp_path, monkeypatch):
  """Two runs given one work directory are refused: they would write their rows into one metrics.jsonl."""
  monkeypatch.setattr(multirun.feed, "open_data", _no_data)
  seed0, seed1 = _tiny("table1_fixed"), _tiny("table1_fixed", **{"train.seed": 1})
  with pytest.raises(ValueError, match=r"runs 1 \(table1_fixed seed 0\) and 2 \(table1_fixed seed 1\) share the "
                                       r"work directory .*w: each run needs its own"):
    multirun.train_and_evaluate_together([seed0, seed1], [tmp_path / "w", tmp_path / "." / "w"])
  with pytest.raises(ValueError, match=r"table1_fixed seed 0 is planned twice \(runs 1 and 2\)"):
    multirun.train_and_evaluate_together([seed0, seed0], [tmp_path / "a", tmp_path / "b"])
  assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("extra", [["--vmap-runs", "on"], ["--vmap-runs", "off"], ["--report-only"], ["--cost"]])
def test_reproduce_refuses_a_seed_listed_twice(tmp_path, monkeypatch, extra):
  """--seeds 0,0 is refused: both copies would train into one seed0/, and the report would count "2 seeds",
  a ±0.0 spread and a 95% interval from one seed."""
  monkeypatch.setattr(reproduce.setup, "load_data", _no_data)
  with pytest.raises(ValueError, match=r"table1_fixed seed 0 is planned twice \(runs 8 and 15\)"):
    reproduce.main(["table1", "--only", "table1_triangular2", "--seeds", "1,0,0", "--shrink", "80", "--workdir",
                    str(tmp_path), "--report-dir", str(tmp_path / "reports"), *extra])
  assert not (tmp_path / "reports").exists()


# Seeds beyond what jax.random.key tells apart.

@pytest.mark.parametrize("seed", [2**32, 2**40, -1])
def test_a_seed_the_prng_would_alias_is_refused(seed):
  """jax.random.key keeps a seed's low 32 bits, so 2**32 and 2**40 would train as seed 0, -1 as 2**32 - 1."""
  key_data = lambda s: jax.random.key_data(jax.random.key(s)).tolist()  # noqa: E731
  assert key_data(seed) == key_data(seed % 2**32)
  with pytest.raises(ValueError, match=rf"train.seed must be an integer in \[0, 2\*\*32 - 1\].*got {seed}"):
    configs.override(configs.get_config("table1_fixed"), {"train.seed": str(seed)})
  with pytest.raises(ValueError, match=rf"train.seed .*got {seed}"):
    reproduce.build_configs(tables.get_experiment("table2"), seeds=(seed,))
  assert configs.override(configs.get_config("default"), {"train.seed": 2**32 - 1}).train.seed == 2**32 - 1


@pytest.mark.slow  # 10-30 s: compiles a vmapped program
def test_runs_with_seeds_above_int32_train_together(tmp_path):
  """Seeds in [2**31, 2**32) are valid and distinct, also for runs trained together (not an int32 array)."""
  ds = synthetic_dataset()
  runs = [_tiny("table1_fixed", **{"train.seed": seed}) for seed in (2**31, 2**32 - 1)]
  summaries = multirun.train_and_evaluate_together(runs, [tmp_path / "a", tmp_path / "b"], dataset=ds)
  assert [s["steps"] for s in summaries] == [2, 2] and [s["train_images"] for s in summaries] == [40, 40]
  losses = [[r["loss"] for r in rundir.read_metrics(tmp_path / d)["train"]] for d in "ab"]
  assert losses[0] != losses[1]


# Durations in steps are whole numbers.

@pytest.mark.parametrize("field, value", [("train.num_steps", "2.5"), ("schedule.step_size", "0.5"),
                                          ("train.eval_every", "10.25steps")])
def test_a_fractional_number_of_steps_is_refused(field, value):
  """train.num_steps=2.5 is refused, not trained as 2 steps."""
  with pytest.raises(ValueError, match=rf"{field} must be a whole number of steps .*got spec='{value}'"):
    configs.override(configs.get_config("table1_fixed"), {field: value})


def test_fractional_epochs_and_whole_steps_written_as_floats_are_kept():
  config = configs.override(configs.get_config("table1_fixed"), {"train.num_steps": "2.5ep", "train.eval_every": "2.0",
                                                                 "schedule.step_size": "12.5%"})
  assert configs.resolve_duration(config.train.num_steps, steps_per_epoch=10) == 25
  assert configs.resolve_duration(config.train.eval_every, steps_per_epoch=10) == 2


# An empty subset.

@pytest.mark.parametrize("field", ["data.test_size", "data.train_size"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_an_empty_or_negative_subset_is_refused_at_once(field, value):
  """data.test_size=0 is refused when the config is made, not at the first evaluation."""
  with pytest.raises(ValueError, match=rf"{field} must be a positive number of images, or None for all .*got "
                                       rf"{value}"):
    configs.override(configs.get_config("table1_fixed"), {field: value})


def test_the_workflows_size_flags_take_0_for_all():
  args = workflow.parse_args(["--workdir", "w", "--test-size", "0", "--train-size", "0"])
  config = workflow.config_from_args(args)
  assert (config.data.test_size, config.data.train_size) == (None, None)
  with pytest.raises(ValueError, match="data.test_size must be a positive number"):
    workflow.config_from_args(workflow.parse_args(["--workdir", "w", "--set", "data.test_size=0"]))


# Step drops and every other number of a config.

@pytest.mark.parametrize("field, value", [("schedule.drop_factor", "-1"), ("schedule.drop_factor", "nan"),
                                          ("schedule.drop_factor", "0")])
def test_a_bad_drop_factor_is_refused_naming_the_field(field, value):
  """schedule.drop_factor=-1 is refused naming the field, not left to optax's "expects non-negative scale
  factors"."""
  with pytest.raises(ValueError, match=rf"{field} must be a positive finite factor, got {float(value)}"):
    configs.override(configs.get_config("table4_resnet:0.1"), {field: value})


@pytest.mark.parametrize("field, value", [("schedule.max_lr", "nan"), ("optim.momentum", "inf"),
                                          ("schedule.stage_max_lrs", "0.006,nan"), ("workflow.fixed_lr", "-inf")])
def test_every_number_of_a_config_is_finite(field, value):
  with pytest.raises(ValueError, match=rf"{field} must be finite, got .*{value.split(',')[-1]}"):
    configs.override(configs.get_config("workflow"), {field: value})


# The report's data line and title.

def _finished_runs(root, experiment, overrides, summary_extra):
  for name, seed, config in reproduce.build_configs(experiment, seeds=(0,), shrink=80, overrides=overrides):
    directory = rundir.run_dir(root, name, seed)
    directory.mkdir(parents=True)
    rows = [{"step": 25, "split": "test", "accuracy": 0.4, "loss": 1.0},
            {"step": int(config.train.num_steps), "split": "test", "accuracy": 0.5, "loss": 1.0}]
    (directory / rundir.METRICS_JSONL).write_text("".join(json.dumps(r) + "\n" for r in rows))
    rundir.write_config(directory, config)
    (directory / rundir.SUMMARY).write_text(json.dumps({"steps": int(config.train.num_steps), "wall_time": 3.0,
                                                        **summary_extra}))


@pytest.mark.parametrize("summary_extra, says", [
    ({"train_images": 200}, "all 200 training images"),
    ({}, "every training image of the folder (how many was not recorded with these runs)")])
def test_report_states_the_training_images_of_a_folder_and_the_network_trained(tmp_path, summary_extra, says):
  """A 200-image folder without data.train_size is not reported as "all 50,000 training images", nor a
  model.name override under Table 1's title "CIFAR-10 with cifar10_full"."""
  experiment = tables.get_experiment("table2")
  overrides = {"data.dataset": str(tmp_path / "tiny-folder"), "model.name": "resnet20"}
  _finished_runs(tmp_path / "runs", experiment, overrides, summary_extra)
  path = reproduce.report_experiment(experiment, workdir=tmp_path / "runs", seeds=(0,), shrink=80,
                                     overrides=overrides, command="c", report_dir=tmp_path / "reports")
  text = path.read_text()
  assert f"the image-folder dataset `{tmp_path / 'tiny-folder'}`; {says};" in text
  assert "50,000" not in text
  title = text.splitlines()[0]
  assert title.startswith("# Table 2 / Figure 1") and title.endswith("(network: resnet20, model.name overridden)")


def test_report_title_names_the_overridden_network_in_place_of_the_papers(tmp_path):
  experiment = tables.get_experiment("table1")
  overrides = {"data.dataset": "cifar10", "model.name": "resnet20"}
  _finished_runs(tmp_path / "runs", experiment, overrides, {})
  text = reproduce.report_experiment(experiment, workdir=tmp_path / "runs", seeds=(0,), shrink=80,
                                     overrides=overrides, command="c", report_dir=tmp_path / "reports").read_text()
  assert text.splitlines()[0] == ("# Table 1, CIFAR-10 with resnet20: five learning-rate policies (network: resnet20, "
                                  "model.name overridden)")
  assert "all 50,000 training images" in text  # tensorflow-datasets' CIFAR-10, count known without a record


# The workflow's work directory.

def test_a_workflow_that_failed_on_a_bad_data_path_does_not_block_the_corrected_rerun(tmp_path):
  """The failed run writes no config.json, so the corrected rerun is not refused for "other settings"."""
  flags = ["--workdir", str(tmp_path / "w"), "--no-progress", "--data"]
  with pytest.raises(FileNotFoundError, match="image-folder dataset not found"):
    workflow.main([*flags, str(tmp_path / "cifar10-jpg.tar.xz")])
  assert not (tmp_path / "w" / rundir.CONFIG).exists()
  with pytest.raises(FileNotFoundError, match="cifar10-jpeg.tar.xz"):  # not "holds a workflow run with other settings"
    workflow.main([*flags, str(tmp_path / "cifar10-jpeg.tar.xz")])


def test_a_work_directory_that_is_a_file_is_named(tmp_path, monkeypatch):
  """--workdir naming an existing file is named in the error, not a raw FileExistsError."""
  monkeypatch.setattr(workflow.setup, "load_data", _no_data)
  (tmp_path / "f").write_text("")
  with pytest.raises(ValueError, match=rf"the directory {tmp_path / 'f'} cannot be made: {tmp_path / 'f'} is a "
                                       "file"):
    workflow.main(["--workdir", str(tmp_path / "f")])
  with pytest.raises(ValueError, match=rf"the directory {tmp_path / 'f' / 'run'} cannot be made: "
                                       rf"{tmp_path / 'f'} is a file"):
    train.train_and_evaluate(_tiny("table1_fixed"), tmp_path / "f" / "run", dataset=synthetic_dataset())
  monkeypatch.setattr(reproduce.setup, "load_data", lambda *a, **k: (synthetic_dataset(), None))
  with pytest.raises(ValueError, match=rf"cannot be made: {tmp_path / 'f'} is a file"):
    reproduce.main(["table2", "--seeds", "0", "--workdir", str(tmp_path / "f"), "--no-report", "--set",
                    "model.name=cifar10_quick"])
  _finished_runs(tmp_path / "runs", tables.get_experiment("table2"), {}, {})
  with pytest.raises(ValueError, match=rf"the directory {tmp_path / 'f' / 'table2'} cannot be made: "
                                       rf"{tmp_path / 'f'} is a file"):
    reproduce.main(["table2", "--seeds", "0", "--shrink", "80", "--workdir", str(tmp_path / "runs"), "--report-only",
                    "--report-dir", str(tmp_path / "f")])


def test_a_partial_report_of_no_finished_run_says_so(tmp_path):
  """--report-only --partial with no finished run says so, not an IndexError."""
  with pytest.raises(FileNotFoundError, match=rf"no run of table2 in {tmp_path} has finished: nothing to report"):
    reproduce.main(["table2", "--seeds", "0", "--workdir", str(tmp_path), "--report-only", "--partial",
                    "--report-dir", str(tmp_path / "reports")])


# One line for a user's mistake, the traceback for the unexpected.

def test_cli_run_prints_a_users_mistake_alone_and_keeps_the_traceback_of_the_unexpected(capsys):
  from experiments import cli  # pylint: disable=g-import-not-at-top

  def mistake():
    raise ValueError("train.seed must be an integer, got 'x'")

  with pytest.raises(SystemExit) as exit_info:
    cli.run(mistake)
  assert exit_info.value.code == 1
  assert capsys.readouterr().err == "error: train.seed must be an integer, got 'x'\n"
  with pytest.raises(SystemExit):
    cli.run(lambda: configs.override(configs.get_config("default"), {"train.num_step": "5"}))
  assert capsys.readouterr().err.startswith("error: no config field 'train.num_step': TrainConfig has batch_size")

  def bug():
    raise RuntimeError("a bug")

  with pytest.raises(RuntimeError, match="a bug"):
    cli.run(bug)


@pytest.mark.parametrize("tool, args", [
    ("train", ["--config", "default", "--workdir", "w", "--set", 'schedule.stage_starts=("0","4000")']),
    ("reproduce", ["table2", "--seeds", "0,0", "--cost"]),
    ("workflow", ["--workdir", "w", "--set", "train.num_step=5"]),
])
def test_command_line_tools_print_a_users_mistake_in_one_line(tmp_path, monkeypatch, capsys, tool, args):
  """A mistake on the command line prints one line, not a 20-line traceback before it."""
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "argv", [tool, *args])
  with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before it runs as __main__
    runpy.run_module(f"experiments.{tool}", run_name="__main__")
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  assert len(err.splitlines()) == 1 and err.startswith("error: "), err


def test_a_workflow_refused_for_its_bounds_reruns_with_the_base_its_error_names(tmp_path, monkeypatch):
  """The refusal of a max_lr below the fixed rate says "use --base suggested"; the rerun with it is not refused
  for "other settings" (workflow.base) when only the range test had run."""
  flags = ["--workdir", str(tmp_path)]
  (tmp_path / rundir.CONFIG).write_text(json.dumps(configs.to_dict(workflow.config_from_args(
      workflow.parse_args(flags)))))
  class DataOpened(Exception):
    pass

  def load_data(*args, **kwargs):
    raise DataOpened

  monkeypatch.setattr(workflow.setup, "load_data", load_data)
  with pytest.raises(DataOpened):  # past the check of the work directory
    workflow.main([*flags, "--base", "suggested", "--fixed-lr", "0.002", "--step-size", "10%"])
  with pytest.raises(ValueError, match=r"other settings \(workflow.range_max_lr: 0.02 -> 0.05\)"):
    workflow.main([*flags, "--base", "suggested", "--range-max-lr", "0.05"])
