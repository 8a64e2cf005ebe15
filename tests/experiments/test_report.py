"""experiments.report: the report writer and the paper's claims on hand-made runs, the paper's columns."""

import csv
import dataclasses

import numpy as np
import pytest

from experiments import report
from experiments import results
from experiments.configs import tables
from tests.experiments.synthetic import synthetic_table1


@pytest.mark.parametrize("spec, expected", [
    ("cifar10", "cifar10"), ("cifar100", "cifar100"), ("data/cifar10-jpeg.tar.xz", "cifar10"),
    ("data/cifar100-jpeg.tar.xz", "cifar100"), ("/d/CIFAR-100/jpeg", "cifar100"), ("/d/cifar_10", "cifar10"),
    ("/d/cifar1000", None), ("/d/imagenette", None)])
def test_paper_dataset_from_data_spec(spec, expected):
  assert report.paper_dataset(spec) == expected


def test_write_report_contents(tmp_path):
  summaries = synthetic_table1()
  path = report.write_report(
      tables.get_experiment("table1"), summaries, path=tmp_path / "table1.md", shrink=50, seeds=(0, 1),
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
  by = {s.config: s for s in synthetic_table1()}
  # Swap: make decay the best and exp_range the worst.
  by["table1_decay"], by["table1_exp_range"] = (
      results.ConfigSummary("table1_decay", tuple(dataclasses.replace(r, accuracies=(0.7, 0.9)) for r in
                                                  by["table1_decay"].runs), (None, None)),
      results.ConfigSummary("table1_exp_range", tuple(dataclasses.replace(r, accuracies=(0.1, 0.2)) for r in
                                                      by["table1_exp_range"].runs), (None, None)))
  text = "\n".join(report.CLAIMS["table1"](by, 50))
  assert "exp_range beats exp** (paper: 82.2% at 42,000 vs 79.1% at 70,000): did not hold" in text
  assert "decay ends below triangular2** (paper: 78.5% vs 81.4%, both 25,000 iterations): did not hold" in text


def test_table1_report_on_cifar100_has_no_paper_number():
  """Table 1 has only a CIFAR-10 column: on CIFAR-100 the paper cell is "-", not the CIFAR-10 number."""
  assert report._paper_cell("table1_fixed", 50, "cifar100") == ("-", "70,000 (= 1400 here)")
  assert report._paper_cell("table1_fixed", 50, "cifar10") == ("81.4", "70,000 (= 1400 here)")
  assert report._paper_cell("one_cycle_resnet56", 1, "cifar10") == ("see the paper", "-")
