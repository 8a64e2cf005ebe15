"""experiments.reproduce: sharding, resume after an interruption, reading finished runs back, the CLI."""

import json
import pathlib

import numpy as np
import pytest

from experiments import configs
from experiments import data
from experiments import reproduce
from experiments import results
from experiments import rundir
from experiments import setup
from experiments import train
from experiments.configs import tables
from tests.experiments.synthetic import crash_at_checkpoint


def test_shard_runs_partitions_every_run_once():
  runs = reproduce.build_configs(tables.get_experiment("table1"), seeds=(0, 1, 2), shrink=80)
  shards = [reproduce.shard_runs(runs, (k, 2)) for k in range(2)]
  keys = lambda rs: [(n, s) for n, s, _ in rs]  # noqa: E731
  assert sorted(keys(shards[0]) + keys(shards[1])) == sorted(keys(runs))
  cost = [sum(reproduce._run_cost(c) for _, _, c in sh) for sh in shards]
  assert abs(cost[0] - cost[1]) <= 875  # at most one run apart
  with pytest.raises(ValueError, match="shard"):
    reproduce.shard_runs(runs, (2, 2))


def test_build_configs_is_seed_major_and_sets_seeds():
  runs = reproduce.build_configs(tables.get_experiment("table1"), seeds=(3, 4), shrink=10,
                                 overrides={"data.test_size": "500"})
  assert [(n, s) for n, s, _ in runs[:8]] == [
      ("table1_fixed", 3), ("table2_staged", 3), ("table1_triangular2", 3), ("table1_decay", 3), ("table1_exp", 3),
      ("table1_exp_range", 3), ("table1_exp_range:keras", 3), ("table1_fixed", 4)]
  assert all(c.train.seed == s and c.data.test_size == 500 for _, s, c in runs)


def _tiny_dataset(seed=0, n_train=60, n_test=30, size=32):
  rng = np.random.default_rng(seed)

  def split(n):
    labels = (np.arange(n) % 10).astype(np.int32)
    images = rng.integers(0, 100, (n, size, size, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
      images[i, c * 3:c * 3 + 3, :, c % 3] += 150
    return images, labels

  return data.Dataset(*split(n_train), *split(n_test), tuple(f"c{i}" for i in range(10)), "synthetic")


_TINY = {"model.name": "cifar10_quick", "train.batch_size": "20", "train.num_steps": "6", "train.eval_every": "2",
         "train.checkpoint_every": "2", "train.num_devices": "1", "train.progress": "false",
         "train.eval_batch_size": "30", "train.log_every": "1"}


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
  experiment = tables.Experiment("tiny", "tiny", ("table1_fixed", "table1_triangular2"), "table1_fixed")
  ds = _tiny_dataset()
  # archive=False: the runs resume from their work directories only (and write nothing to experiments/reports).
  kw = dict(seeds=(0,), shrink=1.0, overrides=_TINY, dataset=ds, archive=False)
  reproduce.run_experiment(experiment, workdir=tmp_path / "a", **kw)

  # Interrupt the second run after its step-4 checkpoint (as a kill would).
  with crash_at_checkpoint(4, only=lambda manager, state: state.tx is not None
                           and "triangular2" in str(manager.directory)):
    reproduce.run_experiment(experiment, workdir=tmp_path / "b", **kw)
  first = rundir.run_dir(tmp_path / "b", "table1_fixed", 0) / rundir.SUMMARY
  assert first.exists() and not (rundir.run_dir(tmp_path / "b", "table1_triangular2", 0) / rundir.SUMMARY).exists()
  before = first.stat().st_mtime_ns

  reproduce.run_experiment(experiment, workdir=tmp_path / "b", **kw)  # continues
  assert first.stat().st_mtime_ns == before  # the finished run was read back, not rerun
  for name in experiment.configs:
    a = results.load_run(rundir.run_dir(tmp_path / "a", name, 0), name, 0)
    b = results.load_run(rundir.run_dir(tmp_path / "b", name, 0), name, 0)
    assert a.steps == b.steps == (2, 4, 6)
    np.testing.assert_allclose(b.accuracies, a.accuracies, atol=1e-6)

  # A different config in the same directory is refused, not silently mixed.
  with pytest.raises(ValueError, match="different config"):
    reproduce.run_experiment(experiment, workdir=tmp_path / "b", seeds=(0,), shrink=1.0,
                             overrides={**_TINY, "train.num_steps": "8"}, dataset=ds, archive=False)


def test_run_one_reads_finished_runs_back_and_refuses_other_configs(tmp_path, monkeypatch):
  """The fast part of resuming: a finished run is not trained again; a run of another config is refused."""
  config = configs.override(configs.get_config("table1_fixed"), _TINY)
  directory = tmp_path / "run"
  directory.mkdir()
  (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
  (directory / rundir.SUMMARY).write_text(json.dumps({"steps": 6, "test_accuracy": 0.25}))

  def fail(*args, **kwargs):
    raise AssertionError("a finished run was trained again")

  monkeypatch.setattr(train, "train_and_evaluate", fail)
  assert reproduce.run_one(config, directory)["test_accuracy"] == 0.25
  other = configs.override(config, {"train.seed": "1"})
  with pytest.raises(ValueError, match="different config"):
    reproduce.run_one(other, directory)


def test_cli_report_only_refuses_unfinished_runs(tmp_path):
  with pytest.raises(FileNotFoundError, match="has not finished"):
    reproduce.main(["table1", "--shrink", "80", "--workdir", str(tmp_path), "--report-only",
                    "--report-dir", str(tmp_path / "reports")])


def test_cli_report_only_from_run_directories(tmp_path):
  """--report-only reads finished runs (metrics.jsonl, summary.json) and writes the report and its files."""
  experiment = tables.get_experiment("table1")
  runs = reproduce.build_configs(experiment, seeds=(0, 1), shrink=80, overrides={"data.test_size": "2000"})
  for name, seed, config in runs:
    directory = rundir.run_dir(tmp_path / "runs", name, seed)
    directory.mkdir(parents=True)
    total = int(config.train.num_steps)
    rows = [{"step": s, "split": "test", "accuracy": 0.3 + 0.2 * s / total + 0.01 * seed, "loss": 1.0}
            for s in range(25, total + 1, 25)]
    if rows[-1]["step"] != total:
      rows.append({"step": total, "split": "test", "accuracy": 0.5 + 0.01 * seed, "loss": 1.0})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
    (directory / rundir.SUMMARY).write_text(json.dumps({"steps": total, "wall_time": 30.0,
                                                        "train_images_per_sec": 1000.0 + 200 * seed}))
  reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                  "--set", "data.test_size=2000", "--report-only", "--report-dir", str(tmp_path / "reports"),
                  "--command", "the command"])
  text = (tmp_path / "reports" / "table1.md").read_text()
  assert "| `table1_exp_range` | 2 | 525 |" in text
  assert "7.0 min summed over the 14 runs" in text and "throughput 1,000-1,200 images/s per run" in text
  assert "```\nthe command\n```" in text
  assert ("CIFAR10 from tensorflow-datasets; all 50,000 training images; evaluated on a stratified subset of "
          "2,000 test images (the same for every run)") in text
  assert (tmp_path / "reports" / "table1" / "accuracy.png").stat().st_size > 1000
  # --partial reports what finished and names what did not.
  (rundir.run_dir(tmp_path / "runs", "table1_exp", 1) / rundir.SUMMARY).unlink()
  with pytest.raises(FileNotFoundError, match="has not finished"):
    reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                    "--set", "data.test_size=2000", "--report-only", "--report-dir", str(tmp_path / "reports")])
  reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                  "--set", "data.test_size=2000", "--report-only", "--partial", "--report-dir",
                  str(tmp_path / "reports")])
  text = (tmp_path / "reports" / "table1.md").read_text()
  assert "**Incomplete**: 1 of 14 runs had not been run or not finished when this report was written: `table1_exp` seed 1." in text
  assert "| `table1_exp` | 1 | 875 |" in text


def _write_finished_runs(workdir, experiment, *, seeds, shrink, overrides):
  """Fake finished runs of `experiment` (metrics.jsonl, config.json, summary.json), as --report-only reads them."""
  for name, seed, config in reproduce.build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides):
    directory = rundir.run_dir(workdir, name, seed)
    directory.mkdir(parents=True)
    total = int(config.train.num_steps)
    rows = [{"step": s, "split": "test", "accuracy": 0.3 + 0.2 * s / total, "loss": 1.0}
            for s in (total // 2, total)]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
    (directory / rundir.SUMMARY).write_text(json.dumps({"steps": total, "wall_time": 30.0}))


@pytest.mark.parametrize("data_spec, column, paper_acc, header", [
    ("cifar10", "CIFAR-10", ("92.8", "93.3", "91.8", "93.6"), "its CIFAR-10 column, the data of these runs"),
    ("cifar100", "CIFAR-100", ("71.2", "71.6", "71.9", "72.5"), "its CIFAR-100 column, the data of these runs"),
    ("data/cifar100-jpeg.tar.xz", "CIFAR-100", ("71.2", "71.6", "71.9", "72.5"), "its CIFAR-100 column"),
    ("data/my_images", "CIFAR-10", ("92.8", "93.3", "91.8", "93.6"),
     "not identified as CIFAR-10 or CIFAR-100 (see Data below): the paper's numbers shown are its CIFAR-10 column"),
])
def test_table4_report_shows_the_paper_column_of_the_runs_data(tmp_path, data_spec, column, paper_acc, header):
  """A Table 4 report on CIFAR-100 quotes the paper's CIFAR-100 column, on CIFAR-10 its CIFAR-10 column."""
  experiment = tables.get_experiment("table4_resnet")
  _write_finished_runs(tmp_path / "runs", experiment, seeds=(0,), shrink=80, overrides={"data.dataset": data_spec})
  reproduce.main(["table4_resnet", "--shrink", "80", "--seeds", "0", "--workdir", str(tmp_path / "runs"),
                  "--data", data_spec, "--report-only", "--report-dir", str(tmp_path / "reports")])
  text = (tmp_path / "reports" / "table4_resnet.md").read_text()
  assert f"| paper acc. % ({column}) |" in text and header in text
  for arg, acc in zip(("0.1", "0.2", "0.3", "clr"), paper_acc):
    row = next(line for line in text.splitlines() if line.startswith(f"| `table4_resnet:{arg}` |"))
    assert [c.strip() for c in row.strip("|").split("|")][-2:] == [acc, "-"]


# ----------------------------------------------------------------------------------------------------------
# Committed results: a finished run kept under experiments/reports/<name>/runs counts as finished anywhere.

def _fake_training(monkeypatch, calls):
  """train_and_evaluate replaced by one that writes a finished run's files (and records that it ran)."""

  def fake(config, workdir, dataset=None, resume=False):
    calls.append(str(workdir))
    workdir = pathlib.Path(workdir)
    (workdir / "config.json").write_text(json.dumps(configs.to_dict(config)))
    rows = [{"step": s, "split": "train", "loss": 1.0} for s in range(1, 201)] + [
        {"step": 100, "split": "test", "accuracy": 0.4}, {"step": 6, "split": "test", "accuracy": 0.5}]
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"config": config.name, "steps": 6, "test_accuracy": 0.5, "state": None}

  monkeypatch.setattr(train, "train_and_evaluate", fake)


def test_finished_runs_are_copied_to_the_results_dir_and_count_as_finished_from_there(tmp_path, monkeypatch):
  """A fresh clone (no work directories) picks up committed runs instead of training them again."""
  calls = []
  _fake_training(monkeypatch, calls)
  config = configs.override(configs.get_config("table1_fixed"), {**_TINY, "data.dataset": "/old/place/cifar10-jpeg.tar.xz"})
  kept = reproduce.results_dir(tmp_path / "reports", "table1", "table1_fixed", 0)
  assert kept == tmp_path / "reports" / "table1" / "runs" / "table1_fixed" / "seed0"
  reproduce.run_one(config, tmp_path / "work" / "run", archive=kept)
  assert calls == [str(tmp_path / "work" / "run")]
  assert sorted(p.name for p in kept.iterdir()) == ["config.json", "metrics.jsonl", "summary.json"]
  assert json.loads((kept / "summary.json").read_text())["test_accuracy"] == 0.5
  # Every evaluation is kept, and the training rows of every 100th step.
  kept_rows = [json.loads(line) for line in (kept / "metrics.jsonl").read_text().splitlines()]
  assert [(r["split"], r["step"]) for r in kept_rows] == [("train", 100), ("train", 200), ("test", 100), ("test", 6)]

  # Another machine: no work directory, the archive elsewhere on disk; nothing is trained again.
  moved = configs.override(config, {"data.dataset": "/new/clone/shared/cifar10-jpeg.tar.xz"})
  assert reproduce.run_one(moved, tmp_path / "elsewhere" / "run", archive=kept)["test_accuracy"] == 0.5
  assert len(calls) == 1 and not (tmp_path / "elsewhere").exists()
  # A committed run of a different config is refused, naming what differs.
  with pytest.raises(ValueError, match=r"different config .*train.seed"):
    reproduce.run_one(configs.override(config, {"train.seed": "3"}), tmp_path / "x", archive=kept)
  with pytest.raises(ValueError, match=r"different config .*data.dataset"):
    reproduce.run_one(configs.override(config, {"data.dataset": "cifar100"}), tmp_path / "x", archive=kept)


def test_run_experiment_only_and_report_from_committed_results(tmp_path, monkeypatch):
  """--only runs a subset of an experiment's configs; the report reads runs from the results dir."""
  calls = []
  _fake_training(monkeypatch, calls)
  monkeypatch.setattr(setup, "load_data", lambda config: (None, None))
  experiment = reproduce.get_experiment("table1_full")
  assert experiment.configs == ("table2_staged", "table1_triangular2", "table1_fixed")
  assert experiment.reference == "table1_fixed"
  kw = dict(workdir=tmp_path / "work", seeds=(0,), overrides=_TINY, report_dir=tmp_path / "reports")
  with pytest.raises(ValueError, match="does not run.*table1_exp"):
    reproduce.run_experiment(experiment, only=("table1_exp",), **kw)
  reproduce.run_experiment(experiment, only=("table1_triangular2",), **kw)
  assert [pathlib.Path(c).parent.name for c in calls] == ["table1_triangular2"]
  (tmp_path / "work").rename(tmp_path / "gone")  # the work directories do not survive; the results do
  with pytest.raises(FileNotFoundError, match="table2_staged seed 0"):
    reproduce.report_experiment(experiment, workdir=tmp_path / "work", seeds=(0,), shrink=1.0, overrides=_TINY,
                                command="c", report_dir=tmp_path / "reports")
  path = reproduce.report_experiment(experiment, workdir=tmp_path / "work", seeds=(0,), shrink=1.0,
                                     overrides=_TINY, command="c", report_dir=tmp_path / "reports", partial=True)
  text = path.read_text()
  assert "`table1_fixed` seed 0" in text and "| `table1_triangular2` | 1 | 6 |" in text
  assert "`table2_staged` seed 0" in text


# ----------------------------------------------------------------------------------------------------------
# The ImageNet rows.

def test_the_imagenet_rows_are_experiments():
  assert tables.get_experiment("table1_alexnet").configs == (
      "table1_alexnet_fixed", "table1_alexnet_triangular2", "table1_alexnet_exp:300k", "table1_alexnet_exp:460k",
      "table1_alexnet_exp_range")
  assert tables.get_experiment("table1_googlenet").reference == "table1_googlenet_fixed"
  assert tables.get_experiment("fig7").configs == ("fig7_alexnet_range",)
  assert tables.get_experiment("fig11").configs == ("fig11_googlenet_range",)


def test_cost_prints_what_the_runs_would_cost_and_trains_nothing(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("--cost trained"))
  reproduce.main(["table1_googlenet", "fig7", "--cost", "--seeds", "0,1", "--workdir", str(tmp_path)])
  out = capsys.readouterr().out
  assert "the experiment runs 2 seeds (0, 1) of each config" in out
  assert "| `table1_googlenet_exp` | 240,000 | 128 | 30.7 M (24.0) |" in out
  assert "| `fig7_alexnet_range` | 20,016 | 256 | 5.1 M (4.0) |" in out  # 4 epochs of 5,004 iterations
  assert "not measured" in out and not (tmp_path / "reports").exists()


def test_imagenet_report_quotes_the_imagenet_column_claims_and_costs(tmp_path):
  """A report of finished (hand-made) GoogLeNet runs: the paper's ImageNet numbers (checked against its text), its
  triangular2-vs-fixed claim checked, the measured throughput per accelerator in the cost table."""
  experiment = tables.get_experiment("table1_googlenet")
  for name, seed, config in reproduce.build_configs(experiment, seeds=(0,), shrink=1000, overrides={}):
    directory = rundir.run_dir(tmp_path / "runs", name, seed)
    directory.mkdir(parents=True)
    total = int(config.train.num_steps)
    accuracy = 0.55 if name.endswith("triangular2") else 0.5
    (directory / "metrics.jsonl").write_text(json.dumps({"step": total, "split": "test", "accuracy": accuracy,
                                                         "loss": 2.0}) + "\n")
    (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
    (directory / rundir.SUMMARY).write_text(json.dumps({"steps": total, "wall_time": 30.0, "devices": 8,
                                                        "train_images_per_sec": 16000.0, "device_kind": "TPU v4"}))
  reproduce.main(["table1_googlenet", "--shrink", "1000", "--seeds", "0", "--workdir", str(tmp_path / "runs"),
                  "--report-only", "--report-dir", str(tmp_path / "reports")])
  text = (tmp_path / "reports" / "table1_googlenet.md").read_text()
  assert "| paper acc. % (ImageNet) |" in text and "its ImageNet column" in text
  row = next(line for line in text.splitlines() if line.startswith("| `table1_googlenet_triangular2` |"))
  assert row.rstrip(" |").endswith("64.4 | 420,000 (= 420 here)")
  assert ("triangular2 ends above fixed after as many iterations** (paper: 64.4% vs 63.0% at "
          "420,000): held here") in text
  assert "## What these runs cost" in text and "| `table1_googlenet_exp` | 240 | 128 |" in text
  assert "2,000 (TPU v4)" in text and "streamed from the host" in text
