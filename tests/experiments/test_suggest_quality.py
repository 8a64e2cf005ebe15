"""The ground-truth benchmark of the range test's suggestions: the peers' rules on hand-computed curves, the
grid's schedules and bands, and the benchmark end to end on its cheap setup (records kept, re-read)."""

import json

import numpy as np
import pytest

import clr_optax
import jax
from experiments import setup as setup_lib
from experiments.benchmarks import peer_rules
from experiments.benchmarks import suggest_quality
from experiments.benchmarks import suggest_verdicts
from experiments.benchmarks import suggest_robustness
from tests.experiments.synthetic import synthetic_dataset

LRS = 10.0 ** np.arange(8)


def test_fastai_valley_counts_its_start_as_end_minus_length():
  # Longest strictly decreasing subsequence: 5, 4, 3, 2, 1 (length 5, ending at index 6); fastai's start is
  # 6 - 5 = 1, a third of the 5 steps is 1.67: index 1 + 1 + 0 = 2.
  losses = np.array([5, 4, 6, 3, 2, 7, 1], np.float64)
  assert peer_rules.fastai_valley(LRS[:7], losses) == 100.0


def test_fastai_slide_stops_where_the_window_ends_have_close_slopes():
  # np.gradient: [0, 0, 0, 0.5, 1.5, 2.5, 3.5, 4]. Windows of 3 points from the end: |4 - 1.5|, |3.5 - 0.5|,
  # |2.5 - 0|, |1.5 - 0| exceed 0.5 and move the left end to indices 4, 3, 2, 1; |0.5 - 0| does not.
  losses = np.array([0, 0, 0, 0, 1, 3, 6, 10], np.float64)
  assert peer_rules.fastai_slide(LRS, losses, lr_diff=3, thresh=0.5) == 10.0
  assert np.isnan(peer_rules.fastai_slide(LRS[:3], losses[:3], lr_diff=3))


def test_fastai_minimum_and_steep():
  assert peer_rules.fastai_minimum(np.array([1.0, 2, 3, 4]), np.array([3.0, 1, 2, 0.5])) == pytest.approx(0.4)
  # Against log(lr) the finite differences are -0.5, -1.5, -0.2: the steepest starts at index 1.
  lrs = np.exp(np.arange(4.0))
  assert peer_rules.fastai_steep(lrs, np.array([4.0, 3.5, 2, 1.8])) == pytest.approx(np.e)


def test_steepest_per_point_skips_both_ends():
  # After skipping one point at each end: [5, 4, 2, 1.5], np.gradient [-1, -1.5, -1.25, -0.5]: index 1 + 1.
  losses = np.array([5, 5, 4, 2, 1.5, 1.4])
  assert peer_rules.steepest_per_point(LRS[:6], losses, 1, 1) == 100.0


def test_torch_lr_finder_smoothing_stops_after_divergence():
  # 1; 0.05*2 + 0.95*1 = 1.05; 0.005 + 0.9975 = 1.0025; 5 + 0.952375 = 5.952375 > 5 * 1: stop there.
  out = peer_rules.torch_lr_finder_smoothing(np.array([1.0, 2.0, 0.1, 100.0, 1.0]))
  np.testing.assert_allclose(out, [1.0, 1.05, 1.0025, 5.952375])


def test_paper_peak_reads_the_smoothed_accuracy():
  # A moving average over 3 points: 0.567 at index 5 beats the single spike at index 6 (0.467 there).
  acc = np.array([0, 0, 0.1, 0.2, 0.5, 0.3, 0.9, 0.2, 0.2, 0.2])
  assert peer_rules.paper_accuracy_peak(np.arange(10.0), acc) == 5.0


def test_peer_suggestions_read_the_unmasked_sweep_with_each_librarys_skips():
  n, diverged = 40, 30
  lr = np.geomspace(1e-4, 1.0, n)
  smooth = np.linspace(3.0, 1.0, n)
  smooth[27] = 0.1  # lowest inside fastai's last 5 unmasked points, which lr_find drops
  masked = np.arange(n) >= diverged
  smooth = np.where(masked, np.nan, smooth)
  result = clr_optax.RangeTestResult(lr=lr[None], loss=smooth[None], smooth_loss=smooth[None], masked=masked[None],
                                     diverged_step=np.array([diverged]), metrics={"loss": smooth[None]},
                                     eval_step=np.zeros((1, 0), np.int32), eval_metrics={}, mode="exponential")
  out = peer_rules.suggestions(result)
  # fastai reads points n // 10 = 4 to 30 - 5 = 25 (exclusive): the loss falls to the last of them.
  assert out["fastai minimum/10"] == pytest.approx(lr[24] / 10)
  # Lightning reads points 10 to 28 (one skipped at the end): the dip into 27 is its steepest point.
  assert out["lightning"] == pytest.approx(lr[26])
  assert np.isnan(out["paper: accuracy peak"])  # no accuracy recorded


def test_triangular_grid_schedule_is_one_cycle_from_a_quarter():
  lrs = suggest_quality.schedule("triangular", 0.8, 10)
  np.testing.assert_allclose(lrs, [0.2, 0.32, 0.44, 0.56, 0.68, 0.8, 0.68, 0.56, 0.44, 0.32], rtol=1e-6)
  np.testing.assert_array_equal(suggest_quality.schedule("fixed", 0.5, 3), [0.5, 0.5, 0.5])


def test_batch_order_visits_every_example_once_per_epoch():
  idx = suggest_quality.batch_order(7, 10, 3, 7)  # 3 batches per epoch, the 10th example dropped each epoch
  assert idx.shape == (7, 3)
  for epoch in range(2):
    assert len(set(idx[3 * epoch:3 * epoch + 3].ravel())) == 9


def test_ground_truth_band_is_the_run_around_the_best_widened_half_a_step():
  grid = [0.01, 0.02, 0.04, 0.08, 0.16]
  settings = {"grid": grid, "seeds": 1}
  acc = {0.01: 0.30, 0.02: 0.395, 0.04: 0.40, 0.08: 0.391, 0.16: 0.38}

  def key(kind, rate):
    return suggest_verdicts.key(kind, rate, suggest_verdicts.GRID_SEEDS)

  records = {key(kind, r): {"accuracy": a} for kind in suggest_verdicts.KINDS for r, a in acc.items()}
  truth = suggest_verdicts.ground_truth(settings, records, "accuracy")["triangular"]
  assert truth["best"] == 0.04 and truth["band_grid"] == [0.02, 0.08]
  assert truth["band"] == pytest.approx([0.02 / np.sqrt(2), 0.08 * np.sqrt(2)])
  judged = suggest_verdicts.judge([0.04, 0.012, 0.2], {"triangular": truth, "fixed": truth})
  assert judged["in_triangular"] == 1 and judged["within_2x"] == 1
  assert judged["ratio"] == pytest.approx([1.0, 0.3, 5.0])


@pytest.mark.slow  # compiles two convnets' initializers: about 13 s; CI's suite stays lean
def test_convnet_states_are_the_trainers_initial_states():
  # The grid and the sweeps start from what experiments.setup.create_train_state makes of the same key.
  ds = synthetic_dataset(n_train=60, n_test=20)
  size = dict(train=40, val=10, test=10, batch=8, sweep_steps=8, grid=(0.1, 2.0, 2), grid_steps=4, seeds=1)
  setup = suggest_quality.convnet("cifar10_quick", ds, size)
  problem = suggest_robustness.cifar10_problem("cifar10_quick", ds, train_size=40, val_size=10, test_size=10,
                                               overrides=suggest_quality.CONVNETS["cifar10_quick"][1])
  mean, std = setup_lib.normalization_constants(problem.config, problem.data["image"])
  key = jax.random.key(3)
  ours = setup.init(key)
  ref = setup_lib.create_train_state(problem.config, num_classes=ds.num_classes, mean=mean, std=std,
                                     image_shape=problem.data["image"].shape[1:], rng=key)
  for a, b in zip(jax.tree.leaves((ours.params, ours.batch_stats, ours.opt_state, ours.step)),
                  jax.tree.leaves((ref.params, ref.batch_stats, ref.opt_state, ref.step))):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(jax.random.key_data(ours.rng), jax.random.key_data(ref.rng))
  assert jax.tree.structure(setup.init(jax.random.key(4))) == jax.tree.structure(ours)  # one compiled step for all


def test_quadratic_quick_keeps_its_records_and_knows_the_limit(tmp_path, capsys):
  args = ["--quick", "--setups", "quadratic", "--out", str(tmp_path)]
  suggest_quality.main(args)
  folder = tmp_path / "quick" / "quadratic"
  assert sorted(p.name for p in folder.glob("sweep*.npz")) == ["sweep100.npz", "sweep101.npz"]
  report = json.loads((tmp_path / "quick" / "report.json").read_text())["setups"][0]
  grid = report["settings"]["grid"]
  # Fixed rates above SGD's stability limit 2 / lambda_max (computed here in float64) blow the loss up.
  _, _, limit = suggest_robustness.quadratic_problem()
  fixed = np.array(report["truth"]["fixed"]["values"])
  assert not any(fixed[np.array(grid) > limit] <= 1e3) and all(fixed[np.array(grid) < limit] < 1.0)  # NaN or huge
  assert report["truth"]["fixed"]["best"] < limit
  first = capsys.readouterr().out
  assert "| ours: default |" in first
  # --report-only re-reads the kept records (no data, no training) into the same tables.
  records = (folder / "grid.json").read_text()
  notes, markdown = tmp_path / "notes.md", tmp_path / "report.md"
  notes.write_text("## What the numbers say\n\nHand-written.\n")
  suggest_quality.main(args + ["--report-only", "--data", str(tmp_path / "no-such-data"), "--markdown",
                               str(markdown), "--notes", str(notes)])
  assert (folder / "grid.json").read_text() == records
  assert capsys.readouterr().out.split("Ground truth")[1] == first.split("Ground truth")[1]
  # The report: its title, the tables, then the notes' text.
  text = markdown.read_text()
  assert text.startswith(suggest_quality.TITLE + "\n") and text.endswith("## What the numbers say\n\nHand-written.\n")
  assert text.index("| ours: default |") < text.index("Hand-written")


@pytest.mark.slow
def test_every_setup_runs_quick(tmp_path, cifar10_archive):
  markdown = tmp_path / "table.md"
  suggest_quality.main(["--quick", "--data", str(cifar10_archive), "--out", str(tmp_path), "--markdown",
                        str(markdown)])
  report = json.loads((tmp_path / "quick" / "report.json").read_text())
  assert [r["setup"] for r in report["setups"]] == list(suggest_quality.SETUPS)
  for r in report["setups"]:
    assert set(r["rules"]) == set(suggest_verdicts.RULE_NAMES) and len(r["sweep_seeds"]) == 2
  assert markdown.read_text().count("| ours: default |") == 2
