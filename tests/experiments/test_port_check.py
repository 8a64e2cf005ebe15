"""experiments.benchmarks.port_check: its measures on synthetic runs, computed by hand, and its run configs."""

import json
import warnings

import pytest

from experiments import configs
from experiments import reproduce
from experiments.benchmarks import port_check

STEPS = range(1000, 10001, 1000)


def _write_run(report_dir, framework, policy, seed, accuracy_at):
  directory = reproduce.results_dir(report_dir, port_check.NAME, f"{framework}_{policy}", seed)
  directory.mkdir(parents=True)
  rows = [{"step": t, "split": "test", "accuracy": accuracy_at(t), "loss": 1.0} for t in STEPS]
  (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (directory / "config.json").write_text("{}")
  (directory / "summary.json").write_text(json.dumps({"steps": 10000, "train_images_per_sec": 1000.0 + seed}))


def test_measures_and_report_on_synthetic_runs(tmp_path):
  # JAX: 0.70 + 0.01 * seed everywhere; PyTorch 0.72 (seed 0) and 0.70 (seed 1), except 0.60 at 5,000.
  for seed in (0, 1):
    for policy in port_check.POLICIES:
      _write_run(tmp_path, "jax", policy, seed, lambda t, s=seed: 0.70 + 0.01 * s)
      _write_run(tmp_path, "pytorch", policy, seed, lambda t, s=seed: 0.60 if t == 5000 else 0.72 - 0.02 * s)
  curves = port_check.load_curves(tmp_path, seeds=(0, 1))
  c = port_check.compare(curves, "fixed")
  assert c["seeds"] == [0, 1] and c["window"]["steps"] == [8000, 9000, 10000]
  # Window means by hand: JAX (0.70 + 0.71) / 2, PyTorch (0.72 + 0.70) / 2.
  assert c["window"]["jax"] == pytest.approx(0.705) and c["window"]["pytorch"] == pytest.approx(0.71)
  assert c["window"]["difference"] == pytest.approx(-0.005)
  at = {p["step"]: p for p in c["per_step"]}
  # Spread: the larger of JAX's 0.01 and PyTorch's 0.02 (0 at 5,000, where both PyTorch seeds give 0.60).
  assert at[1000]["spread"] == pytest.approx(0.02) and at[1000]["gap"] == pytest.approx(-0.005)
  assert at[5000]["spread"] == pytest.approx(0.01) and at[5000]["gap"] == pytest.approx(0.105)
  assert port_check.compare(curves, "triangular2")["window"]["steps"] == [4000, 8000]

  path = port_check.write_report(report_dir=tmp_path, seeds=(0, 1), steps=10000, eval_every=1000)
  text = path.read_text()
  assert "| fixed | mean of the evaluations at 8,000, 9,000, 10,000 | 0, 1 | 70.50 | 71.00 | -0.50 | met |" in text
  assert "1 of 10 evaluations have a gap above the spread (iterations 5,000)." in text
  assert "JAX 1000-1001; PyTorch 1000-1001" in text and "Incomplete" not in text
  assert (tmp_path / "port_check" / "curves.png").stat().st_size > 1000
  assert "jax,fixed,1,10000,0.7100" in (tmp_path / "port_check" / "curves.csv").read_text()
  # A seed that has not finished is named.
  text = port_check.write_report(report_dir=tmp_path, seeds=(0, 1, 2), steps=10000, eval_every=1000).read_text()
  assert ("**Incomplete**: not finished yet: `jax_fixed` seed 2, `pytorch_fixed` seed 2, `jax_triangular2` seed 2, "
          "`pytorch_triangular2` seed 2.") in text


def test_run_configs_match_table1_without_its_step_downs():
  config = port_check.jax_config("fixed", 1, "data/cifar10-jpeg.tar.xz", 10000, 1000)
  table1 = configs.get_config("table1_fixed")
  assert (config.train.num_steps, config.train.eval_every, config.train.seed) == ("10000", "1000", 1)
  assert config.schedule.drop_at == () and table1.schedule.drop_at == ("60000", "65000")
  assert (config.model, config.optim, config.data.normalization) == (table1.model, table1.optim, "mean_image")
  args = port_check.torch_args("triangular2", 1, 10000, 1000)
  assert args == {"--policy": "triangular2", "--seed": "1", "--steps": "10000", "--eval-every": "1000",
                  "--base-lr": "0.001", "--max-lr": "0.006", "--step-size": "2000"}


def test_a_pytorch_run_with_other_settings_is_refused(tmp_path):
  (tmp_path / "summary.json").write_text("{}")
  (tmp_path / "config.json").write_text(json.dumps({"policy": "fixed", "seed": 0, "steps": 5000, "eval_every": 1000,
                                                    "base_lr": 0.001, "max_lr": 0.006, "step_size": 2000}))
  with pytest.raises(ValueError, match="other settings.*--steps"):
    port_check._torch_finished(tmp_path, port_check.torch_args("fixed", 0, 10000, 1000))
  assert not port_check._torch_finished(tmp_path / "none", port_check.torch_args("fixed", 0, 10000, 1000))


def test_curves_plot_of_a_policy_without_finished_runs_warns_nothing(tmp_path):
  curves = {"jax_fixed": {0: {1000: 0.5, 2000: 0.6}}}  # no triangular2 run, no PyTorch run
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
    port_check._plot(curves, tmp_path / "curves.png")
  assert (tmp_path / "curves.png").stat().st_size > 0
