"""experiments.report and experiments.claims: the report writer and the paper's claims on hand-made runs, the paper's
columns."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from experiments import claims
from experiments import configs
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
  table = [line for line in text.splitlines() if line.startswith("| `table")]
  assert len(table) == 5
  tri = next(line for line in table if "table2_staged" in line)
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
  assert ("triangular2 (Table 2's stages) reaches the fixed policy's final accuracy in fewer iterations** (paper: "
          "81.4% at 25,000 vs 81.4% at 70,000): held") in text
  # exp_range's finals 0.61, 0.63 against exp's best (its final here) 0.56, 0.58: +5 points on both seeds.
  assert "exp_range ends above exp's best** (paper: 82.2% at 42,000 vs exp's best 79.1%, line 182): held" in text
  # decay's +9 and +6 points below triangular2 on two seeds: a 95% interval of ±19 points includes 0.
  assert ("decay ends below triangular2 (Table 2's stages)** (paper: 78.5% vs 81.4%, both 25,000 iterations): "
          "not shown here") in text
  assert "Ablation" not in text  # no plain-bounds or Keras runs here
  assert "includes 0, so 2 seeds do not resolve it; the mean is for the claim)." in text
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
  # The plain-bounds run, judged as a labelled ablation: here it never reaches the fixed accuracy.
  by["table1_triangular2"] = results.ConfigSummary(
      "table1_triangular2", tuple(dataclasses.replace(r, config="table1_triangular2", accuracies=(0.3, 0.4, 0.5, 0.55))
                                  for r in by["table2_staged"].runs), (None, None))
  text = "\n".join(claims.CLAIMS["table1"](by, 50))
  assert "exp_range ends above exp's best** (paper: 82.2% at 42,000 vs exp's best 79.1%, line 182): did not hold" in text
  assert ("decay ends below triangular2 (Table 2's stages)** (paper: 78.5% vs 81.4%, both 25,000 iterations): did not "
          "hold") in text
  assert ("Ablation, the §4.1.1 bounds alone, without Table 2's stages: triangular2 reaches the fixed policy's final "
          "accuracy in fewer iterations** (paper: 81.4% at 25,000 vs 81.4% at 70,000): did not hold here. triangular2 "
          "reached the same-seed fixed run's final accuracy in 0 of 2 seeds") in text
  assert ("Ablation, the §4.1.1 bounds alone, without Table 2's stages: decay ends below triangular2** (paper: 78.5% "
          "vs 81.4%, both 25,000 iterations): did not hold") in text


def test_table1_report_on_cifar100_has_no_paper_number():
  """Table 1 has only a CIFAR-10 column: on CIFAR-100 the paper cell is "-", not the CIFAR-10 number."""
  assert report._paper_cell("table1_fixed", 50, "cifar100") == ("-", "70,000 (= 1400 here)")
  assert report._paper_cell("table1_fixed", 50, "cifar10") == ("81.4", "70,000 (= 1400 here)")
  assert report._paper_cell("one_cycle_resnet56", 1, "cifar10") == ("91.3 (one-cycle blog)", "-")
  assert report._paper_cell("table1_exp", 1, "cifar10") == ("79.1 (best)", "70,000")


# ----------------------------------------------------------------------------------------------------------
# What a run costs.

def _alexnet_forward_multiply_adds(side=227):
  """AlexNet's convolutions and inner products in multiply-adds, from the prototxt's layer shapes (every kernel
  tap, padding included): (output side, kernel, input channels per group, outputs) per layer."""
  def out(n, k, s, p):
    return (n + 2 * p - k) // s + 1
  c1 = out(side, 11, 4, 0)                       # 55
  p1 = -(-(c1 - 3) // 2) + 1                     # 27 (ceil-mode pooling)
  p2 = -(-(p1 - 3) // 2) + 1                     # 13
  p5 = -(-(p2 - 3) // 2) + 1                     # 6
  convs = [(c1, 11, 3, 96), (p1, 5, 48, 256), (p2, 3, 256, 384), (p2, 3, 192, 384), (p2, 3, 192, 256)]
  fcs = [(256 * p5 * p5, 4096), (4096, 4096), (4096, 1000)]
  return sum(o * o * k * k * c * n for o, k, c, n in convs) + sum(i * n for i, n in fcs)


def test_training_compute_of_the_imagenet_networks_matches_their_published_size():
  """3x the forward FLOPs XLA counts, against 2 x the multiply-adds: AlexNet's from its layer shapes (0.72 G),
  GoogLeNet's as Szegedy et al. 2015 give it (1.5 G). Within 10%: XLA leaves out the kernel taps that fall on
  padding (AlexNet's conv2-5) and adds the pooling, LRN and ReLU arithmetic."""
  alexnet = report.training_flops_per_image(configs.get_config("table1_alexnet_fixed"))
  assert _alexnet_forward_multiply_adds() == pytest.approx(0.724e9, rel=0.01)
  assert alexnet == pytest.approx(3 * 2 * _alexnet_forward_multiply_adds(), rel=0.1)
  googlenet = report.training_flops_per_image(configs.get_config("table1_googlenet_fixed"))
  assert googlenet == pytest.approx(3 * 2 * 1.5e9, rel=0.1)


def _cells(table, config):
  row = next(line for line in table.splitlines() if line.startswith(f"| `{config}` |"))
  return [c.strip() for c in row.strip("|").split("|")][1:]


def test_cost_table_on_paper_and_measured():
  names = ["table1_alexnet_triangular2", "fig11_googlenet_range"]
  pairs = [(n, configs.get_config(n)) for n in names]
  # 4,000 images/s over 2 devices: 2,000 per accelerator.
  measured = results.RunResult("table1_alexnet_triangular2", 0, (400000,), (0.5,), 400000, images_per_sec=4000.0,
                               devices=2, device_kind="TPU v5 lite")
  table = report.cost_table(pairs, [measured])
  alexnet = _cells(table, "table1_alexnet_triangular2")
  assert alexnet[:3] == ["400,000", "256", f"{400000 * 256 / 1e6:.1f} M ({400000 * 256 / 1281167:.1f})"]
  assert alexnet[4:] == ["2,000 (TPU v5 lite)", f"{400000 * 256 / 2000 / 3600:.1f} h (measured)"]
  # The range test: 4 epochs of the 1,281,167 images at batch 128 (10,009 iterations an epoch), on paper.
  googlenet = _cells(table, "fig11_googlenet_range")
  assert googlenet[:3] == ["40,036", "128", f"{40036 * 128 / 1e6:.1f} M (4.0)"]
  flops = 40036 * 128 * report.training_flops_per_image(pairs[1][1])
  assert googlenet[3] == f"{flops:.2g} FLOP".replace("e+", "e") and googlenet[4] == "not measured"
  assert googlenet[5] == f"{flops / report.ON_PAPER_FLOP_PER_S / 60:.1f} min on paper"
  assert "an assumption" in table


def test_describe_elapsed_names_one_run_and_one_throughput_as_such():
  run = lambda seed, wall, rate: results.RunResult(  # noqa: E731
      "table1_fixed", seed, (100,), (0.5,), 100, wall_time=wall, images_per_sec=rate)
  one = report.describe_elapsed([run(0, 2298.0, 1117.2)])
  assert one.startswith("38.3 min summed over the run (") and "throughput 1,117 images/s per run" in one
  two = report.describe_elapsed([run(0, 60.0, 980.0), run(1, 120.0, 1263.4)])
  assert two.startswith("3.0 min summed over the 2 runs (") and "throughput 980-1,263 images/s per run" in two
  assert "throughput" not in report.describe_elapsed([run(0, 60.0, None)])


def test_table1_claims_give_the_same_seed_differences_and_whether_the_seeds_resolve_them():
  by = {s.config: s for s in synthetic_table1()}
  text = "\n".join(claims.CLAIMS["table1"](by, 50))
  # exp_range 0.61/0.63 against exp's best 0.56/0.58 (its last evaluations): +5.0 both seeds, no spread.
  assert ("exp_range 62.0 ± 1.4% vs exp's best 57.0 ± 1.4% (same-seed differences +5.0, +5.0 points, mean +5.0; its 95% "
          "interval over the seeds, ±0.0, excludes 0)") in text
  # triangular2 0.64/0.63 against decay 0.55/0.57: +9 and +6, mean 7.5, standard error 1.5; t(1) = 12.706.
  assert "same-seed differences +9.0, +6.0 points, mean +7.5; its 95% interval over the seeds, ±19.1, includes 0, " in text
  # The other way round: fixed (0.40, 0.52, 0.58, 0.60 / 0.41, 0.55, 0.61, 0.62) never reaches 0.64 or 0.63.
  assert "the same-seed fixed runs first reached triangular2's final accuracy at iterations never, never." in text
  # Differences that the seeds cannot tell from noise are said to be so.
  noisy = dict(by)
  noisy["table1_exp"] = results.ConfigSummary("table1_exp", tuple(
      dataclasses.replace(r, accuracies=(0.5, a)) for r, a in zip(by["table1_exp"].runs, (0.70, 0.56))), (None, None))
  text = "\n".join(claims.CLAIMS["table1"](noisy, 50))
  assert ("exp_range ends above exp's best** (paper: 82.2% at 42,000 vs exp's best 79.1%, line 182): not shown here: "
          "exp_range 62.0 ± 1.4% vs exp's best 63.0 ± 9.9% (same-seed differences -9.0, +7.0 points, mean -1.0; its 95% interval over the seeds, "
          "±101.6, includes 0, so 2 seeds do not resolve it; the mean is against the claim).") in text
  fixed = by["table1_fixed"]
  lower = results.ConfigSummary("table1_triangular2", tuple(
      dataclasses.replace(r, accuracies=(0.5, 0.53)) for r in by["table2_staged"].runs), (None, None))
  assert claims._fixed_reaching(fixed, lower) == (
      "; the other way round, the same-seed fixed runs first reached triangular2's final accuracy at "
      "iterations 1,050, 700")


def test_paired_verdict_uses_students_t_for_the_seeds_it_has():
  run = lambda config, seed, final: results.RunResult(config, seed, (100,), (final,), 100)  # noqa: E731
  a = results.ConfigSummary("a", tuple(run("a", s, f) for s, f in enumerate((0.73, 0.74, 0.75))), ())
  b = results.ConfigSummary("b", tuple(run("b", s, 0.70) for s in range(3)), ())
  # +3, +4, +5 points: standard error 1 / sqrt(3); t(0.975, 2 degrees of freedom) = 4.303 (tables).
  assert claims._paired_verdict(a, b) == (
      "held", "same-seed differences +3.0, +4.0, +5.0 points, mean +4.0; its 95% interval over the seeds, ±2.5, "
      "excludes 0")
  assert claims._paired_verdict(b, a)[0] == "did not hold"
  # Against b's best accuracy (exp's 79.1% is its best, paper line 182): b peaked at 0.80 before ending at 0.70.
  peaked = results.ConfigSummary("b", tuple(results.RunResult("b", s, (50, 100), (0.80, 0.70), 100) for s in range(3)),
                                 ())
  assert claims._paired_verdict(a, peaked)[0] == "held"
  assert claims._paired_verdict(a, peaked, b_best=True)[0] == "did not hold"
  # Only the seeds both have pair up; one common seed has no spread.
  c = results.ConfigSummary("c", (run("c", 2, 0.70), run("c", 7, 0.71)), ())
  assert claims._paired_verdict(a, c) == (
      "held", "difference +5.0 points on 1 common seed: no seed spread to judge it by")


def test_accuracy_figure_keeps_a_long_title_inside_the_figure():
  import matplotlib
  matplotlib.use("Agg")
  title = tables.EXPERIMENTS["table1_full"].title
  assert len(title) > 70
  runs = {s.config: s.runs for s in synthetic_table1()[:2]}
  fig = report.plot_accuracy_curves(runs, title=title)
  fig.canvas.draw()
  shown = fig.axes[0].title
  assert shown.get_text().replace("\n", " ") == title
  # The drawn title lies within the figure's width.
  box = shown.get_window_extent(fig.canvas.get_renderer())
  assert 0 <= box.x0 and box.x1 <= fig.bbox.width


def test_one_seed_report_gives_plain_accuracies_without_a_spread(tmp_path):
  experiment = tables.get_experiment("table1")
  one = results.summarize(experiment, [r for s in synthetic_table1() for r in s.runs if r.seed == 0])
  text = report.write_report(
      experiment, one, path=tmp_path / "t.md", shrink=50, seeds=(0,), command="c",
      data="synthetic data", hardware={"cpu": "c", "cores": "2", "jax": "0", "devices": "cpu:0", "python": "3",
                                       "platform": "x"}, elapsed="1 min").read_text()
  assert "seed 0; test accuracies are those of one run per config." in text
  tri = next(line for line in text.splitlines() if line.startswith("| `table2_staged`"))
  cells = [c.strip() for c in tri.strip("|").split("|")]
  assert cells[1] == "1" and cells[3] == "64.0" and cells[4] == "64.0" and cells[6] == "40.0"  # fixed at 500: 0.40
  assert "±" not in text.split("## What these runs cost")[0].replace("mean ± sample std", "")


def test_a_seed_without_a_fixed_run_is_left_out_of_the_headline_comparison(tmp_path):
  experiment = tables.get_experiment("table1")
  runs = [r for s in synthetic_table1() for r in s.runs]
  runs.append(results.RunResult("table2_staged", 2, (125, 250, 375, 500), (0.5, 0.55, 0.6, 0.65), 500))
  by = {s.config: s for s in results.summarize(experiment, runs)}
  text = "\n".join(claims.CLAIMS["table1"](by, 50))
  # Seeds 0 and 1 have fixed runs, and triangular2 reached their final accuracy at 250 and 500; seed 2 has none.
  assert "held here. triangular2 reached the same-seed fixed run's final accuracy in 2 of 2 seeds, at iterations " \
         "250, 500 (fixed: 1,400)" in text
  assert f"the fixed runs stood at {100 * np.mean([0.40, 0.41]):.1f} ± " in text
  table = report.write_report(
      experiment, list(by.values()), path=tmp_path / "t.md", shrink=50, seeds=(0, 1, 2), command="c",
      data="synthetic data", hardware={"cpu": "c", "cores": "2", "jax": "0", "devices": "cpu:0", "python": "3",
                                       "platform": "x"}, elapsed="1 min").read_text()
  tri = next(line for line in table.splitlines() if line.startswith("| `table2_staged`"))
  assert [c.strip() for c in tri.strip("|").split("|")][5] == "250, 500, -"


def _fig6_run(directory, rows):
  """A run directory whose metrics.jsonl holds `rows` of (step, test accuracy, training accuracy)."""
  directory.mkdir(parents=True)
  lines = []
  for step, test, train in rows:
    lines.append({"step": step, "split": "test", "accuracy": test, "loss": 1.0})
    lines.append({"step": step, "split": "train_eval", "accuracy": train, "loss": 1.0})
  (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
  return directory


def test_figure6_is_judged_on_training_accuracy(tmp_path):
  """The paper's Figure 6 numbers are training accuracies (line 184): the report shows ours and judges on them."""
  finals = {("fixed", 0): (0.60, 0.62), ("fixed", 1): (0.61, 0.64), ("clr", 0): (0.58, 0.70), ("clr", 1): (0.59, 0.73)}
  runs = [results.load_run(_fig6_run(tmp_path / f"{arg}{seed}", [(100, 0.3, 0.3), (200, test, train)]),
                           f"fig6_bn_sigmoid:{arg}", seed) for (arg, seed), (test, train) in finals.items()]
  assert [r.train_accuracy for r in runs] == [0.62, 0.64, 0.70, 0.73]
  experiment = tables.get_experiment("fig6")
  by = {s.config: s for s in results.summarize(experiment, runs)}
  table = report.results_table(list(by.values()), shrink=1, reference=experiment.reference)
  clr = next(line for line in table.splitlines() if line.startswith("| `fig6_bn_sigmoid:clr`"))
  cells = [c.strip() for c in clr.strip("|").split("|")]
  assert "final training acc. % (ours)" in table.splitlines()[0]
  assert cells[3] == f"71.5 ± {100 * np.std([0.70, 0.73], ddof=1):.1f}" and cells[4] == "58.5 ± 0.7"
  assert cells[-2:] == ["72.2 (training)", "-"]
  # CLR's training accuracy ends +8 and +9 points above fixed (its test accuracy 2 below); t(1) = 12.706: ±6.4.
  text = "\n".join(claims.CLAIMS["fig6"](by, 1))
  assert ("CLR ends above the fixed rate in training accuracy** (paper: 72.2% vs 60.8%, line 184): held here: "
          "CLR 71.5 ± 2.1% vs fixed 63.0 ± 1.4% training accuracy (same-seed differences +8.0, +9.0 points, mean "
          "+8.5; its 95% interval over the seeds, ±6.4, excludes 0)") in text
  assert "test accuracy 58.5 ± 0.7% vs 60.5 ± 0.7%." in text
  import matplotlib
  matplotlib.use("Agg")
  fig = report.plot_accuracy_curves({name: s.runs for name, s in by.items()})
  lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
  dashed = lines["fig6_bn_sigmoid:clr, training (mean of 2)"]
  assert dashed.get_linestyle() == "--" and list(dashed.get_ydata()) == pytest.approx([30.0, 71.5])
  assert dashed.get_color() == lines["fig6_bn_sigmoid:clr (mean of 2)"].get_color()
