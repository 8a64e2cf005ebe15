"""The robustness benchmark on its cheap setup: it writes its JSON report seed by seed and re-reads kept sweeps."""

import json

import numpy as np
import pytest

from experiments.benchmarks import suggest_robustness


def test_quadratic_setup_reports_each_rule_and_reuses_its_records(tmp_path, capsys):
  suggest_robustness.main(["--setups", "quadratic", "--seeds", "2", "--out", str(tmp_path)])
  report = json.loads((tmp_path / "quadratic.json").read_text())
  assert [row["seed"] for row in report["seeds"]] == [0, 1]
  assert sorted(p.name for p in (tmp_path / "quadratic").glob("seed*.npz")) == ["seed0.npz", "seed1.npz"]
  # The known answer is SGD's stability limit 2 / lambda_max, computed here independently.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1024, 8)).astype(np.float64)
  limit = 2 / np.linalg.eigvalsh(2 * x.T @ x / len(x))[-1]
  assert report["known"]["max_lr"] == pytest.approx(limit, rel=1e-6)  # float32 data there
  default = report["rules"]["default max_lr"]
  assert len(default["values"]) == 2 and default["spread"] >= 1.0
  assert all(v < limit for v in default["values"])
  assert default["vs_known"][1] == pytest.approx(max(default["values"]) / limit, rel=1e-6)
  assert "| quadratic | default max_lr |" in capsys.readouterr().out
  # A second run re-reads the kept sweeps (their recorded durations come back unchanged) and adds a seed.
  suggest_robustness.main(["--setups", "quadratic", "--seeds", "3", "--out", str(tmp_path)])
  again = json.loads((tmp_path / "quadratic.json").read_text())
  assert [row["seconds"] for row in again["seeds"][:2]] == [row["seconds"] for row in report["seeds"]]
  assert len(again["seeds"]) == 3


def test_report_only_reads_the_kept_settings_and_needs_no_data(tmp_path):
  # Kept sweeps of a CIFAR setup (records of the cheap quadratic setup stand in for them).
  suggest_robustness.main(["--setups", "quadratic", "--seeds", "2", "--out", str(tmp_path)])
  (tmp_path / "quadratic").rename(tmp_path / "cifar10_full")
  settings = {"made": "elsewhere", "num_steps": 100}
  (tmp_path / "cifar10_full" / "settings.json").write_text(json.dumps(settings))
  suggest_robustness.main(["--setups", "cifar10_full", "--seeds", "3", "--report-only", "--out", str(tmp_path),
                           "--data", str(tmp_path / "no-such-data")])
  report = json.loads((tmp_path / "cifar10_full.json").read_text())
  assert report["settings"] == settings and [row["seed"] for row in report["seeds"]] == [0, 1]
  assert report["known"] == {"max_lr": 0.006, "base_lr": 0.001}
  assert report["rules"]["default max_lr"]["vs_known"][0] == pytest.approx(
      min(report["rules"]["default max_lr"]["values"]) / 0.006)
  with pytest.raises(SystemExit, match="no sweep of cifar10_quick"):
    suggest_robustness.main(["--setups", "cifar10_quick", "--report-only", "--out", str(tmp_path)])
