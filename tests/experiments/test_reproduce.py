"""experiments.reproduce: shrink arithmetic, "first reached", the report writer on synthetic runs, resume."""

import csv
import json
import pathlib

import numpy as np
import pytest

from experiments import configs
from experiments import data
from experiments import reproduce
from experiments import train
from experiments.configs import paper_results


# ----------------------------------------------------------------------------------------------------------
# Shrinking.

@pytest.mark.parametrize("spec, factor, expected", [
    ("70000", 50, "1400"), ("2000", 80, "25"), ("25000", 80, "312"), ("1", 80, "1"), ("0", 10, "0"),
    ("8ep", 4, "2ep"), ("95ep", 10, "9.5ep"), ("5%", 10, "5%"),
])
def test_shrink_duration(spec, factor, expected):
  assert reproduce.shrink_duration(spec, factor) == expected


def test_shrink_config_table1_exp_range():
  full = configs.get_config("table1_exp_range")
  small = reproduce.shrink_config(full, 50)
  # Iteration counts divided by 50 (42,000 -> 840, stepsize 2,000 -> 40, eval 1,000 -> 20, ckpt 5,000 -> 100).
  assert (small.train.num_steps, small.schedule.step_size) == ("840", "40")
  assert (small.train.eval_every, small.train.checkpoint_every) == ("20", "100")
  # gamma**50: the decay over the shrunk run equals the decay over the full run.
  assert small.schedule.gamma == pytest.approx(0.99994 ** 50, rel=1e-12)
  assert small.schedule.gamma ** 840 == pytest.approx(0.99994 ** 42000, rel=1e-9)
  # Untouched: bounds, batch, network, optimizer.
  assert (small.schedule.base_lr, small.schedule.max_lr) == (full.schedule.base_lr, full.schedule.max_lr)
  assert (small.train.batch_size, small.model, small.optim) == (full.train.batch_size, full.model, full.optim)


def test_shrink_config_drops_stages_and_one_factor():
  fixed = reproduce.shrink_config(configs.get_config("table1_fixed"), 50)
  assert fixed.schedule.drop_at == ("1200", "1300") and fixed.schedule.gamma == 0.99994  # not an exp policy
  staged = reproduce.shrink_config(configs.get_config("table2_staged"), 10)
  assert staged.schedule.stage_starts == ("0", "1600", "2200")
  assert staged.schedule.stage_step_sizes == ("200", "100", "50")
  assert reproduce.shrink_config(fixed, 1) is fixed
  with pytest.raises(ValueError, match="factor"):
    reproduce.shrink_config(fixed, 0.5)


def test_shrunk_schedule_is_the_full_schedule_compressed():
  """The shrunk triangular2 at step t equals the full one at step F*t (F divides every count)."""
  f = 50
  full = configs.get_config("table1_triangular2")
  small = reproduce.shrink_config(full, f)
  s_full = train.build_schedule(full.schedule, steps_per_epoch=500, total_steps=25000)
  s_small = train.build_schedule(small.schedule, steps_per_epoch=500, total_steps=500)
  t = np.arange(0, 500, 7)
  np.testing.assert_allclose(np.asarray(s_small(t)), np.asarray(s_full(f * t)), rtol=1e-6)


def test_shard_runs_partitions_every_run_once():
  runs = reproduce.build_configs(reproduce.get_experiment("table1"), seeds=(0, 1, 2), shrink=80)
  shards = [reproduce.shard_runs(runs, (k, 2)) for k in range(2)]
  keys = lambda rs: [(n, s) for n, s, _ in rs]  # noqa: E731
  assert sorted(keys(shards[0]) + keys(shards[1])) == sorted(keys(runs))
  cost = [sum(reproduce._run_cost(c) for _, _, c in sh) for sh in shards]
  assert abs(cost[0] - cost[1]) <= 875  # at most one run apart
  with pytest.raises(ValueError, match="shard"):
    reproduce.shard_runs(runs, (2, 2))


def test_build_configs_is_seed_major_and_sets_seeds():
  runs = reproduce.build_configs(reproduce.get_experiment("table1"), seeds=(3, 4), shrink=10,
                                 overrides={"data.test_size": "500"})
  assert [(n, s) for n, s, _ in runs[:6]] == [
      ("table1_fixed", 3), ("table1_triangular2", 3), ("table1_decay", 3), ("table1_exp", 3),
      ("table1_exp_range", 3), ("table1_fixed", 4)]
  assert all(c.train.seed == s and c.data.test_size == 500 for _, s, c in runs)


def test_get_experiment_names():
  assert reproduce.get_experiment("table1").reference == "table1_fixed"
  assert reproduce.get_experiment("table4_resnet:clr").configs == ("table4_resnet:clr",)
  with pytest.raises(ValueError, match="unknown experiment"):
    reproduce.get_experiment("table9")
  for e in reproduce.EXPERIMENTS.values():
    for name in e.configs:
      configs.get_config(name)  # every named config exists


def test_paper_results_match_config_names_and_docstrings():
  known = set()
  for e in reproduce.EXPERIMENTS.values():
    known.update(e.configs)
  assert set(paper_results.PAPER_RESULTS) <= known | {"table3_rmsprop:clr70k"}
  for name in ("table1_fixed", "table1_triangular2", "table1_decay", "table1_exp", "table1_exp_range"):
    r = paper_results.get(name)
    # The config's own "paper" line quotes the same accuracy and iterations.
    assert f"{r.accuracy}%" in configs.get_config(name).paper and f"{r.iterations:,}" in configs.get_config(name).paper
  for net in ("resnet", "sd_resnet", "densenet"):
    for arg in ("0.1", "0.2", "0.3", "clr"):
      name = f"table4_{net}:{arg}"
      r = paper_results.get(name)
      # Both of Table 4's columns, as the config's "paper" line quotes them.
      assert f"{r.accuracy}% (CIFAR-10; CIFAR-100 {r.cifar100_accuracy}%)" in configs.get_config(name).paper
      assert (r.accuracy_on("cifar10"), r.accuracy_on("cifar100")) == (r.accuracy, r.cifar100_accuracy)
  assert paper_results.get("table1_fixed").accuracy_on("cifar100") is None  # Table 1 has no CIFAR-100 column
  with pytest.raises(ValueError, match="not 'mnist'"):
    paper_results.get("table1_fixed").accuracy_on("mnist")


@pytest.mark.parametrize("spec, expected", [
    ("cifar10", "cifar10"), ("cifar100", "cifar100"), ("data/cifar10-jpeg.tar.xz", "cifar10"),
    ("data/cifar100-jpeg.tar.xz", "cifar100"), ("/d/CIFAR-100/jpeg", "cifar100"), ("/d/cifar_10", "cifar10"),
    ("/d/cifar1000", None), ("/d/imagenette", None)])
def test_paper_dataset_from_data_spec(spec, expected):
  assert reproduce.paper_dataset(spec) == expected


# ----------------------------------------------------------------------------------------------------------
# "First reached" and the report, on hand-made curves.

def test_first_reached_hand_made_curve():
  steps = [10, 20, 30, 40, 50]
  acc = [0.30, 0.55, 0.52, 0.61, 0.60]
  assert reproduce.first_reached(steps, acc, 0.60) == 40
  assert reproduce.first_reached(steps, acc, 0.55) == 20
  assert reproduce.first_reached(steps, acc, 0.62) is None
  assert reproduce.first_reached(steps, acc, acc[-1]) == 40  # a run reaches its own final at the latest at the end


def _run(config, seed, steps, accs, total=None):
  return reproduce.RunResult(config=config, seed=seed, steps=tuple(steps), accuracies=tuple(accs),
                             total_steps=total or steps[-1], wall_time=60.0, images_per_sec=500.0)


def _synthetic_table1():
  # fixed: ends at 0.60 (seed 0) / 0.62 (seed 1) after 1400 steps.
  runs = [_run("table1_fixed", 0, [350, 700, 1050, 1400], [0.40, 0.52, 0.58, 0.60]),
          _run("table1_fixed", 1, [350, 700, 1050, 1400], [0.41, 0.55, 0.61, 0.62]),
          # triangular2 reaches 0.60 at 250 (seed 0) and 0.62 at 500 (seed 1).
          _run("table1_triangular2", 0, [125, 250, 375, 500], [0.50, 0.60, 0.58, 0.64]),
          _run("table1_triangular2", 1, [125, 250, 375, 500], [0.52, 0.59, 0.61, 0.63]),
          # decay never reaches the fixed run's accuracy.
          _run("table1_decay", 0, [250, 500], [0.50, 0.55]),
          _run("table1_decay", 1, [250, 500], [0.51, 0.57]),
          _run("table1_exp", 0, [700, 1400], [0.50, 0.56]),
          _run("table1_exp", 1, [700, 1400], [0.52, 0.58]),
          _run("table1_exp_range", 0, [420, 840], [0.55, 0.61]),
          _run("table1_exp_range", 1, [420, 840], [0.56, 0.63])]
  return reproduce.summarize(reproduce.get_experiment("table1"), runs)


def test_summarize_first_reached_against_same_seed_fixed_run():
  by = {s.config: s for s in _synthetic_table1()}
  assert by["table1_triangular2"].reached == (250, 500)
  assert by["table1_fixed"].reached == (1400, 1400)
  assert by["table1_decay"].reached == (None, None)
  assert by["table1_exp_range"].reached == (840, 840)
  assert by["table1_exp_range"].reference_at_end == (0.52, 0.55)  # fixed at 700, the last eval <= 840
  assert by["table1_decay"].reference_at_end == (0.40, 0.41)
  mean, std = by["table1_triangular2"].final
  assert mean == pytest.approx(0.635) and std == pytest.approx(np.std([0.64, 0.63], ddof=1))
  assert by["table1_triangular2"].runs[0].best_step == 500


def test_write_report_contents(tmp_path):
  summaries = _synthetic_table1()
  path = reproduce.write_report(
      reproduce.get_experiment("table1"), summaries, path=tmp_path / "table1.md", shrink=50, seeds=(0, 1),
      command="python -m experiments.reproduce table1 --shrink 50", data="synthetic data",
      hardware={"cpu": "TestCPU", "cores": "2", "jax": "0.0", "devices": "cpu:0", "python": "3", "platform": "x"},
      elapsed="1 min", overrides={"data.test_size": "2000"}, notes="Hand-written notes.")
  text = path.read_text()
  table = [line for line in text.splitlines() if line.startswith("| `table1_")]
  assert len(table) == 5
  tri = next(line for line in table if "triangular2" in line)
  cells = [c.strip() for c in tri.strip("|").split("|")]
  # config, seeds, iterations, final, best, first reached, fixed at the same iteration, paper acc, paper iterations
  assert cells[1] == "2" and cells[2] == "500"
  assert cells[3] == f"63.5 ± {100 * np.std([0.64, 0.63], ddof=1):.1f}"
  assert cells[4] == "63.5 ± 0.7"  # best of each seed: 0.64 and 0.63
  assert cells[5] == "250, 500"
  assert cells[6] == f"{100 * np.mean([0.40, 0.41]):.1f} ± {100 * np.std([0.40, 0.41], ddof=1):.1f}"  # fixed at 350 <= 500
  assert cells[7] == "81.4" and cells[8] == "25,000 (= 500 here)"
  decay = next(line for line in table if "decay" in line)
  assert "never, never" in decay and "78.5" in decay
  # Claims: triangular2 reached the fixed accuracy (both seeds, before 1400); exp_range > exp; decay < tri.
  assert "fewer iterations** (paper: 25,000 vs 70,000): held" in text
  assert "exp_range beats exp** (paper: 82.2% at 42,000 vs 79.1% at 70,000): held" in text
  assert "decay ends below triangular2** (paper: 78.5% vs 81.4%, both 25,000 iterations): held" in text
  for needle in ("TestCPU", "2 cores", "synthetic data", "1 min", "python -m experiments.reproduce table1 --shrink 50",
                 "`data.test_size=2000`", "Hand-written notes.", "gamma**50", "No GPU"):
    assert needle in text, needle
  rows = list(csv.DictReader(open(tmp_path / "table1" / "results.csv")))
  assert len(rows) == 10 and rows[2]["first_reached_reference"] == "250"
  assert (tmp_path / "table1" / "accuracy.png").stat().st_size > 1000
  assert len((tmp_path / "table1" / "curves.csv").read_text().splitlines()) == 1 + 4 + 4 + 4 + 4 + 2 * 6


def test_claims_report_failures_honestly():
  by = {s.config: s for s in _synthetic_table1()}
  # Swap: make decay the best and exp_range the worst.
  by["table1_decay"], by["table1_exp_range"] = (
      reproduce.ConfigSummary("table1_decay", tuple(dataclass_replace(r, accuracies=(0.7, 0.9)) for r in
                                                    by["table1_decay"].runs), (None, None)),
      reproduce.ConfigSummary("table1_exp_range", tuple(dataclass_replace(r, accuracies=(0.1, 0.2)) for r in
                                                        by["table1_exp_range"].runs), (None, None)))
  text = "\n".join(reproduce.CLAIMS["table1"](by, 50))
  assert "exp_range beats exp** (paper: 82.2% at 42,000 vs 79.1% at 70,000): did not hold" in text
  assert "decay ends below triangular2** (paper: 78.5% vs 81.4%, both 25,000 iterations): did not hold" in text


def dataclass_replace(obj, **kw):
  import dataclasses  # pylint: disable=g-import-not-at-top
  return dataclasses.replace(obj, **kw)


# ----------------------------------------------------------------------------------------------------------
# Running: resume after an interruption gives the same result as an uninterrupted reproduction.

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
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
  experiment = reproduce.Experiment("tiny", "tiny", ("table1_fixed", "table1_triangular2"), "table1_fixed")
  ds = _tiny_dataset()
  kw = dict(seeds=(0,), shrink=1.0, overrides=_TINY, dataset=ds)
  reproduce.run_experiment(experiment, workdir=tmp_path / "a", **kw)

  # Interrupt the second run after its step-4 checkpoint (as a kill would).
  real_save = train.save_checkpoint

  def save_then_die(manager, state):
    real_save(manager, state)
    if int(state.step) == 4 and state.tx is not None and "triangular2" in str(manager.directory):
      raise KeyboardInterrupt

  monkeypatch.setattr(train, "save_checkpoint", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    reproduce.run_experiment(experiment, workdir=tmp_path / "b", **kw)
  monkeypatch.setattr(train, "save_checkpoint", real_save)
  first = reproduce.run_dir(tmp_path / "b", "table1_fixed", 0) / reproduce.SUMMARY
  assert first.exists() and not (reproduce.run_dir(tmp_path / "b", "table1_triangular2", 0) / reproduce.SUMMARY).exists()
  before = first.stat().st_mtime_ns

  reproduce.run_experiment(experiment, workdir=tmp_path / "b", **kw)  # continues
  assert first.stat().st_mtime_ns == before  # the finished run was read back, not rerun
  for name in experiment.configs:
    a = reproduce.load_run(reproduce.run_dir(tmp_path / "a", name, 0), name, 0)
    b = reproduce.load_run(reproduce.run_dir(tmp_path / "b", name, 0), name, 0)
    assert a.steps == b.steps == (2, 4, 6)
    np.testing.assert_allclose(b.accuracies, a.accuracies, atol=1e-6)

  # A different config in the same directory is refused, not silently mixed.
  with pytest.raises(ValueError, match="different config"):
    reproduce.run_experiment(experiment, workdir=tmp_path / "b", seeds=(0,), shrink=1.0,
                             overrides={**_TINY, "train.num_steps": "8"}, dataset=ds)


def test_run_one_reads_finished_runs_back_and_refuses_other_configs(tmp_path, monkeypatch):
  """The fast part of resuming: a finished run is not trained again; a run of another config is refused."""
  config = configs.override(configs.get_config("table1_fixed"), _TINY)
  directory = tmp_path / "run"
  directory.mkdir()
  (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
  (directory / reproduce.SUMMARY).write_text(json.dumps({"steps": 6, "test_accuracy": 0.25}))

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
  experiment = reproduce.get_experiment("table1")
  runs = reproduce.build_configs(experiment, seeds=(0, 1), shrink=80, overrides={"data.test_size": "2000"})
  for name, seed, config in runs:
    directory = reproduce.run_dir(tmp_path / "runs", name, seed)
    directory.mkdir(parents=True)
    total = int(config.train.num_steps)
    rows = [{"step": s, "split": "test", "accuracy": 0.3 + 0.2 * s / total + 0.01 * seed, "loss": 1.0}
            for s in range(25, total + 1, 25)]
    if rows[-1]["step"] != total:
      rows.append({"step": total, "split": "test", "accuracy": 0.5 + 0.01 * seed, "loss": 1.0})
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
    (directory / reproduce.SUMMARY).write_text(json.dumps({"steps": total, "wall_time": 30.0,
                                                           "train_images_per_sec": 400.0}))
  reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                  "--set", "data.test_size=2000", "--report-only", "--report-dir", str(tmp_path / "reports"),
                  "--command", "the command"])
  text = (tmp_path / "reports" / "table1.md").read_text()
  assert "| `table1_exp_range` | 2 | 525 |" in text
  assert "5.0 min summed over the 10 runs" in text and "400-400 images/s" in text
  assert "```\nthe command\n```" in text
  assert ("CIFAR10 from tensorflow-datasets; all 50,000 training images; evaluated on a stratified subset of "
          "2,000 test images (the same for every run)") in text
  assert (tmp_path / "reports" / "table1" / "accuracy.png").stat().st_size > 1000
  # --partial reports what finished and names what did not.
  (reproduce.run_dir(tmp_path / "runs", "table1_exp", 1) / reproduce.SUMMARY).unlink()
  with pytest.raises(FileNotFoundError, match="has not finished"):
    reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                    "--set", "data.test_size=2000", "--report-only", "--report-dir", str(tmp_path / "reports")])
  reproduce.main(["table1", "--shrink", "80", "--seeds", "0,1", "--workdir", str(tmp_path / "runs"),
                  "--set", "data.test_size=2000", "--report-only", "--partial", "--report-dir",
                  str(tmp_path / "reports")])
  text = (tmp_path / "reports" / "table1.md").read_text()
  assert "**Incomplete**: 1 of 10 runs had not finished when this report was written: `table1_exp` seed 1." in text
  assert "| `table1_exp` | 1 | 875 |" in text


def _write_finished_runs(workdir, experiment, *, seeds, shrink, overrides):
  """Fake finished runs of `experiment` (metrics.jsonl, config.json, summary.json), as --report-only reads them."""
  for name, seed, config in reproduce.build_configs(experiment, seeds=seeds, shrink=shrink, overrides=overrides):
    directory = reproduce.run_dir(workdir, name, seed)
    directory.mkdir(parents=True)
    total = int(config.train.num_steps)
    rows = [{"step": s, "split": "test", "accuracy": 0.3 + 0.2 * s / total, "loss": 1.0}
            for s in (total // 2, total)]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "config.json").write_text(json.dumps(configs.to_dict(config)))
    (directory / reproduce.SUMMARY).write_text(json.dumps({"steps": total, "wall_time": 30.0}))


@pytest.mark.parametrize("data_spec, column, paper_acc, header", [
    ("cifar10", "CIFAR-10", ("92.8", "93.3", "91.8", "93.6"), "its CIFAR-10 column, the data of these runs"),
    ("cifar100", "CIFAR-100", ("71.2", "71.6", "71.9", "72.5"), "its CIFAR-100 column, the data of these runs"),
    ("data/cifar100-jpeg.tar.xz", "CIFAR-100", ("71.2", "71.6", "71.9", "72.5"), "its CIFAR-100 column"),
    ("data/my_images", "CIFAR-10", ("92.8", "93.3", "91.8", "93.6"),
     "not identified as CIFAR-10 or CIFAR-100 (see Data below): the paper's numbers shown are its CIFAR-10 column"),
])
def test_table4_report_shows_the_paper_column_of_the_runs_data(tmp_path, data_spec, column, paper_acc, header):
  """A Table 4 report on CIFAR-100 quotes the paper's CIFAR-100 column, on CIFAR-10 its CIFAR-10 column."""
  experiment = reproduce.get_experiment("table4_resnet")
  _write_finished_runs(tmp_path / "runs", experiment, seeds=(0,), shrink=80, overrides={"data.dataset": data_spec})
  reproduce.main(["table4_resnet", "--shrink", "80", "--seeds", "0", "--workdir", str(tmp_path / "runs"),
                  "--data", data_spec, "--report-only", "--report-dir", str(tmp_path / "reports")])
  text = (tmp_path / "reports" / "table4_resnet.md").read_text()
  assert f"| paper acc. % ({column}) |" in text and header in text
  for arg, acc in zip(("0.1", "0.2", "0.3", "clr"), paper_acc):
    row = next(line for line in text.splitlines() if line.startswith(f"| `table4_resnet:{arg}` |"))
    assert [c.strip() for c in row.strip("|").split("|")][-2:] == [acc, "-"]


def test_table1_report_on_cifar100_has_no_paper_number():
  """Table 1 has only a CIFAR-10 column: on CIFAR-100 the paper cell is "-", not the CIFAR-10 number."""
  assert reproduce._paper_cell("table1_fixed", 50, "cifar100") == ("-", "70,000 (= 1400 here)")
  assert reproduce._paper_cell("table1_fixed", 50, "cifar10") == ("81.4", "70,000 (= 1400 here)")
  assert reproduce._paper_cell("one_cycle_resnet56", 1, "cifar10") == ("see the paper", "-")


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
  monkeypatch.setattr(train, "load_dataset", lambda config: None)
  experiment = reproduce.get_experiment("table1_full")
  assert experiment.configs == ("table1_triangular2", "table1_fixed") and experiment.reference == "table1_fixed"
  kw = dict(workdir=tmp_path / "work", seeds=(0,), overrides=_TINY, report_dir=tmp_path / "reports")
  with pytest.raises(ValueError, match="does not run.*table1_exp"):
    reproduce.run_experiment(experiment, only=("table1_exp",), **kw)
  reproduce.run_experiment(experiment, only=("table1_triangular2",), **kw)
  assert [pathlib.Path(c).parent.name for c in calls] == ["table1_triangular2"]
  (tmp_path / "work").rename(tmp_path / "gone")  # the work directories do not survive; the results do
  with pytest.raises(FileNotFoundError, match="table1_fixed seed 0"):
    reproduce.report_experiment(experiment, workdir=tmp_path / "work", seeds=(0,), shrink=1.0, overrides=_TINY,
                                command="c", report_dir=tmp_path / "reports")
  path = reproduce.report_experiment(experiment, workdir=tmp_path / "work", seeds=(0,), shrink=1.0,
                                     overrides=_TINY, command="c", report_dir=tmp_path / "reports", partial=True)
  text = path.read_text()
  assert "`table1_fixed` seed 0" in text and "| `table1_triangular2` | 1 | 6 |" in text
