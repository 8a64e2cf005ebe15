"""experiments.benchmarks.accelerator: the smoke run end to end, and a budget that runs out."""

import json
import sys

from experiments.benchmarks import accelerator


def test_smoke_run_writes_every_section(tmp_path):
  """The prepared GPU benchmark runs the same code on the CPU at tiny sizes, so that it cannot rot."""
  results = accelerator.main(["--smoke", "--out", str(tmp_path)])
  assert {k: v["status"] for k, v in results["status"].items()} == {
      "schedule": "ok", "range_test": "ok", "throughput": "ok", "trainer_cifar10_full_1": "ok",
      "trainer_cifar10_full_3": "ok", "table1_triangular2": "ok", "table1_together": "ok"}
  assert results["schedule"]["ratio"] > 0
  assert [x["steps"] for x in results["range_test"]["models"]["mlp"]["lengths"]] == [10, 30]
  assert results["range_test"]["models"]["mlp"]["seeds"]["k"] == 2
  assert [(r["model"], r["batch"]) for r in results["throughput"]["runs"]] == [("cifar10_full", 8)]
  for n in (1, 3):  # the trainer with one and with three steps per compiled call
    run = results["trainer"][f"trainer_cifar10_full_{n}"]
    assert run["steps_done"] == 6 and run["batch_size"] == 20 and run["images_per_sec"] > 0
  row = results["table1"]["table1_triangular2"]
  assert row["steps_done"] == 6 and [s for s, _ in row["test_curve"]] == [3, 6] and row["training_s"] > 0
  # All seven rows in one program (shrunk 5,000 times), each in its run directory.
  together = results["table1_together"]
  assert {r: together[r]["steps_done"] for r in accelerator.TABLE1_ROWS} == {
      "table2_staged": 5, "table1_triangular2": 5, "table1_fixed": 14, "table1_exp_range": 8,
      "table1_exp_range:keras": 8, "table1_decay": 5, "table1_exp": 14}
  assert [s for s, _ in together["table1_exp_range"]["test_curve"]] == [3, 6, 8]
  assert json.loads((tmp_path / "table1_together" / "table1_exp" / "seed0" / "summary.json").read_text())[
      "runs_together"] == 7
  summary = (tmp_path / "summary.md").read_text()
  assert "| schedule overhead: triangular2 / constant step time |" in summary and "| `table1_triangular2`: 6 iterations" in summary
  assert "| trainer cifar10_full, batch 20, 3 steps per call: images/s |" in summary
  assert "| Table 1, all rows as one vmapped program: training seconds; final test accuracies |" in summary
  assert json.loads((tmp_path / "results.json").read_text())["status"] == results["status"]


def test_a_section_past_the_budget_is_stopped_and_the_rest_skipped(tmp_path, monkeypatch):
  """Partial results survive a time-out: the summary is rewritten after every section."""
  sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
  monkeypatch.setattr(accelerator, "plan", lambda **kw: [("table1_triangular2", sleeper), ("table1_fixed", sleeper)])
  results = accelerator.main(["--out", str(tmp_path), "--data", "unused", "--budget-s", "3"])
  first, second = results["status"]["table1_triangular2"], results["status"]["table1_fixed"]
  assert first["status"].startswith("stopped at the budget") and 2 < first["seconds"] < 20
  assert second["status"] == "skipped: the budget was spent"
  assert "started" in (tmp_path / "table1_triangular2.log").read_text()
  assert "table1_fixed skipped: the budget was spent" in (tmp_path / "summary.md").read_text()
