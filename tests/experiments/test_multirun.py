"""Several runs in one vmapped program (experiments.multirun): equal to the runs trained alone, grouping,
resume, and its use by experiments.reproduce."""

import json

import jax
import numpy as np
import pytest

from experiments import configs
from experiments import multirun
from experiments import reproduce
from experiments import results
from experiments import rundir
from experiments import train
from experiments.configs import tables
from tests.experiments.synthetic import crash_at_checkpoint
from tests.experiments.synthetic import small_config
from tests.experiments.synthetic import synthetic_dataset

_COMMON = {"model.name": "cifar10_quick", "train.num_devices": 2}


def _configs(steps_per_call):
  """Three policies (one with step drops), two seeds and three lengths: 5 steps an epoch on 40 images,
  evaluations and checkpoints every 3 steps and at each run's end."""
  common = {**_COMMON, "train.steps_per_call": steps_per_call}
  return [small_config("table1_triangular2", **common, **{"train.num_steps": "7", "schedule.step_size": "3"}),
          small_config("table1_exp", **common, **{"train.num_steps": "9", "train.seed": 1, "schedule.gamma": 0.9}),
          small_config("table1_fixed", **common, **{"train.num_steps": "5", "schedule.drop_at": ("2",)})]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The three runs trained alone (one step per call), and together (3 steps per call: the epoch boundary
  at step 5 falls inside a call; the fixed run ends at step 5, inside the others' third call)."""
  ds = synthetic_dataset(n_train=40)
  root = tmp_path_factory.mktemp("runs")
  alone = [train.train_and_evaluate(c, root / f"alone{i}", dataset=ds) for i, c in enumerate(_configs(1))]
  dirs = [root / f"together{i}" for i in range(3)]
  together = multirun.train_and_evaluate_together(_configs(3), dirs, dataset=ds)
  return {"ds": ds, "alone": alone, "together": together, "alone_dirs": [root / f"alone{i}" for i in range(3)],
          "together_dirs": dirs}


def _assert_same_run(got_dir, want_dir, got_state, want_state):
  """Tolerance: the vmapped steps compute the same numbers with other (batched) kernels, which round
  differently: measured here 2.4e-7 on losses (1e-7 relative), 1.2e-7 on gradient norms and at most 7e-9
  on parameters after 9 steps. The learning rate is each run's own schedule, selected by lax.switch, and is
  compared exactly."""
  got, want = rundir.read_metrics(got_dir), rundir.read_metrics(want_dir)
  for split in ("train", "test"):
    assert [r["step"] for r in got[split]] == [r["step"] for r in want[split]], split
  assert [r["lr"] for r in got["train"]] == [r["lr"] for r in want["train"]]
  for split, names in (("train", ("loss", "accuracy", "grad_norm", "epoch")), ("test", ("loss", "accuracy"))):
    for name in names:
      np.testing.assert_allclose([r[name] for r in got[split]], [r[name] for r in want[split]], rtol=1e-5,
                                 err_msg=f"{split} {name}")
  assert int(got_state.step) == int(want_state.step)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), got_state.params,
               want_state.params)


def test_runs_trained_together_equal_the_runs_trained_alone(runs):
  for i, config in enumerate(_configs(3)):
    directory = runs["together_dirs"][i]
    _assert_same_run(directory, runs["alone_dirs"][i], runs["together"][i]["state"], runs["alone"][i]["state"])
    assert rundir.read_json(directory / rundir.CONFIG) == json.loads(json.dumps(configs.to_dict(config)))
    alone_checkpoints = sorted(p.name for p in (runs["alone_dirs"][i] / rundir.CHECKPOINTS).iterdir())
    assert sorted(p.name for p in (directory / rundir.CHECKPOINTS).iterdir()) == alone_checkpoints
    summary = runs["together"][i]
    assert summary["runs_together"] == 3 and summary["steps_per_call"] == 3
    assert summary["steps"] == int(config.train.num_steps)
    assert summary["train_images"] == runs["alone"][i]["train_images"] == 40  # what the report's Data line states
    assert summary["test_accuracy"] == rundir.read_metrics(directory)["test"][-1]["accuracy"]
  assert (sorted(p.name for p in (runs["together_dirs"][0] / rundir.CHECKPOINTS).iterdir()) == ["6", "7"])


def test_runs_trained_together_resume_from_their_own_checkpoints(runs, tmp_path):
  """Killed at step 6: the fixed run had finished at step 5, the others resume from step 3 as a group of
  two, and all three end as the runs trained alone (one step per call: one program per group to compile)."""
  dirs = [tmp_path / f"run{i}" for i in range(3)]
  with crash_at_checkpoint(6, after_saving=False):
    multirun.train_and_evaluate_together(_configs(1), dirs, dataset=runs["ds"])
  assert [sorted(p.name for p in (d / rundir.CHECKPOINTS).iterdir()) for d in dirs] == [["3"], ["3"], ["3", "5"]]
  resumed = multirun.train_and_evaluate_together(_configs(1), dirs, dataset=runs["ds"], resume=True)
  assert [s.get("runs_together") for s in resumed] == [2, 2, None]
  for i in range(3):
    _assert_same_run(dirs[i], runs["alone_dirs"][i], resumed[i]["state"], runs["alone"][i]["state"])
  assert resumed[2]["test_accuracy"] == runs["together"][2]["test_accuracy"]


def test_only_runs_that_share_a_program_train_together():
  tri, exp, fixed = _configs(3)
  other_net = configs.override(tri, {"model.name": "cifar10_full"})
  assert multirun.group_runs([tri, exp, other_net, fixed]) == [[0, 1, 3], [2]]
  with pytest.raises(ValueError, match=r"table1_triangular2 differs from table1_exp in model.name "
                                       r"\('cifar10_quick' -> 'cifar10_full'\)"):
    multirun.train_and_evaluate_together([exp, other_net], ["a", "b"])
  with pytest.raises(ValueError, match="one work directory per run is needed, got 2 configs and 1 workdirs"):
    multirun.train_and_evaluate_together([tri, exp], ["a"])
  assert not multirun.gains("cpu") and multirun.gains("gpu") and multirun.gains("tpu")


_TINY = {**{k: str(v) for k, v in _COMMON.items()}, "train.batch_size": "8", "train.num_steps": "4",
         "train.eval_every": "2", "train.checkpoint_every": "4", "train.progress": "false",
         "train.eval_batch_size": "10", "train.log_every": "1"}
_EXPERIMENT = tables.Experiment("tiny", "tiny", ("table1_fixed", "table1_triangular2"), "table1_fixed")


def test_reproduce_trains_runs_together_into_run_directories_it_reads_back(runs, tmp_path):
  kw = dict(workdir=tmp_path / "runs", seeds=(0, 1), overrides=_TINY, dataset=runs["ds"],
            report_dir=tmp_path / "reports")
  summaries = reproduce.run_experiment(_EXPERIMENT, together=True, **kw)
  assert [s["runs_together"] for s in summaries] == [4] * 4
  for name, seed, _ in reproduce.build_configs(_EXPERIMENT, seeds=(0, 1), overrides=_TINY):
    directory = rundir.run_dir(tmp_path / "runs", name, seed)
    summary = rundir.read_json(directory / rundir.SUMMARY)
    assert summary["runs_together"] == 4 and summary["process_wall_time"] > 0
    run = results.load_run(directory, name, seed)
    assert run.steps == (2, 4) and run.final == summary["test_accuracy"]
    assert (reproduce.results_dir(tmp_path / "reports", "tiny", name, seed) / rundir.SUMMARY).exists()
  report = reproduce.report_experiment(_EXPERIMENT, seeds=(0, 1), shrink=1.0, command="test", **{
      k: kw[k] for k in ("workdir", "overrides", "report_dir")})
  assert "table1_triangular2" in report.read_text()
  # Finished runs are read back, not trained again.
  again = reproduce.run_experiment(_EXPERIMENT, together=True, **kw)
  assert [s["test_accuracy"] for s in again] == [s["test_accuracy"] for s in summaries]


def test_reproduce_trains_runs_apart_on_the_cpu_by_default(tmp_path, monkeypatch):
  trained = []
  monkeypatch.setattr(reproduce, "run_one", lambda config, directory, **kw: trained.append(config.name) or {})
  monkeypatch.setattr(reproduce, "run_together", lambda *a, **k: pytest.fail("vmapped runs on XLA:CPU"))
  reproduce.run_experiment(_EXPERIMENT, workdir=tmp_path, seeds=(0,), overrides=_TINY, dataset=object(),
                           archive=False)
  assert trained == ["table1_fixed", "table1_triangular2"]
  assert reproduce.parse_args(["table1", "--vmap-runs", "on"]).vmap_runs == "on"
  with pytest.raises(SystemExit):
    reproduce.parse_args(["table1", "--vmap-runs", "sometimes"])
  assert reproduce.parse_args(["table1"]).vmap_runs == "auto"


def test_streamed_imagenet_runs_never_train_together(tmp_path, monkeypatch):
  """The ImageNet configs stream their batches from the host: multirun refuses them, and reproduce trains
  each alone even with --vmap-runs on, leaving its data to the trainer."""
  alexnet = [configs.get_config("table1_alexnet_fixed"), configs.get_config("table1_alexnet_triangular2")]
  with pytest.raises(ValueError, match="table1_alexnet_fixed streams ImageNet from the host .*; "
                                       "table1_alexnet_triangular2 streams .*train each on its own"):
    multirun.train_and_evaluate_together(alexnet, [tmp_path / "a", tmp_path / "b"])
  assert not (tmp_path / "a").exists()
  trained = []
  monkeypatch.setattr(reproduce, "run_one", lambda config, directory, **kw: trained.append(config.name) or {})
  monkeypatch.setattr(reproduce, "run_together", lambda *a, **k: pytest.fail("streamed runs trained together"))
  monkeypatch.setattr(reproduce.setup, "load_data", lambda *a, **k: pytest.fail("loaded the stream's data"))
  reproduce.run_experiment(tables.get_experiment("table1_alexnet"), workdir=tmp_path, seeds=(0, 1), together=True,
                           archive=False)
  assert len(trained) == 10 and set(trained) >= {"table1_alexnet_fixed", "table1_alexnet_triangular2"}
