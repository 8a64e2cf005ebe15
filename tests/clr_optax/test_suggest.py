"""Bound suggestions on synthetic sweeps whose answers are known in closed form, with noise."""

import re

import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest

import clr_optax

matplotlib.use("Agg")


def _result(lr, loss, accuracy=None, masked=None, mode="exponential", eval_step=None, eval_accuracy=None):
  loss = np.atleast_2d(loss).astype(np.float32)
  runs, steps = loss.shape
  lr = np.broadcast_to(np.asarray(lr, np.float32), (runs, steps))
  masked = np.zeros((runs, steps), bool) if masked is None else np.broadcast_to(masked, (runs, steps))
  loss = np.where(masked, np.nan, loss)
  metrics = {"loss": loss}
  if accuracy is not None:
    metrics["accuracy"] = np.where(masked, np.nan, np.atleast_2d(accuracy).astype(np.float32))
  diverged = np.where(masked.any(-1), np.argmax(masked, -1), -1)
  if eval_step is None:
    eval_step, eval_metrics = np.zeros((runs, 0), np.int32), {}
  else:
    eval_step = np.broadcast_to(eval_step, (runs, len(eval_step)))
    eval_metrics = {"accuracy": np.atleast_2d(eval_accuracy)}
  return clr_optax.RangeTestResult(lr=lr, loss=loss, smooth_loss=loss, masked=masked, diverged_step=diverged,
                                   metrics=metrics, eval_step=eval_step, eval_metrics=eval_metrics, mode=mode)


def _sigmoid(z):
  return 1 / (1 + np.exp(-z))


# A logistic rise of accuracy in log(lr), centred at lr = C with width W (in e-folds):
#   acc = 0.1 + 0.6 * sigmoid((log lr - log C) / W)
# It is 10% of the way up at z = -log(9), and 95% of the way up at z = log(19).
C, W = 1e-2, 0.4
TRUE_BASE = C * np.exp(-np.log(9) * W)
TRUE_SLOW = C * np.exp(np.log(19) * W)


@pytest.mark.parametrize("seed", range(5))
def test_paper_accuracy_rule_on_noisy_logistic_rise(seed):
  rng = np.random.default_rng(seed)
  lr = np.geomspace(1e-4, 1.0, 400)
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(C)) / W) + rng.normal(0, 0.02, lr.size)
  loss = 2.3 - 2.0 * _sigmoid((np.log(lr) - np.log(C)) / W) + rng.normal(0, 0.05, lr.size)
  s = clr_optax.suggest_bounds(_result(lr, loss, acc))
  assert TRUE_BASE / 1.35 < s.base_lr < TRUE_BASE * 1.35, s
  # Looser: the smoothed peak of a noisy plateau sits about 0.01 above the true 0.7, and on the flat top that
  # moves the 95% level by up to a third.
  assert TRUE_SLOW / 1.4 < s.max_lr < TRUE_SLOW * 1.4, s
  assert "rise" in s.base_reason and "slows" in s.max_reason


def test_accuracy_that_falls_sets_max_lr_at_its_peak():
  lr = np.linspace(0.001, 0.02, 200)  # a linear sweep, like the paper's
  # Rises linearly from 0.1 to 0.5 at lr = 0.01, then falls linearly: the peak is where it "starts to fall".
  acc = np.where(lr < 0.01, 0.1 + 0.4 * (lr - 0.001) / 0.009, 0.5 - 30 * (lr - 0.01))
  s = clr_optax.suggest_bounds(_result(lr, 2 - acc, acc, mode="linear"), window=11)
  # Smoothing (twice, for the slope) rounds the tent's top off: the rise "slows" up to a window early.
  assert s.max_lr == pytest.approx(0.01, abs=11 * (lr[1] - lr[0]))
  # 10% of the rise: 0.001 + 0.1 * 0.009.
  assert s.base_lr == pytest.approx(0.0019, abs=0.0003)


def test_held_out_accuracy_is_preferred():
  lr = np.geomspace(1e-4, 1.0, 200)
  train_acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(1e-3)) / W)  # rises 10x earlier
  steps = np.arange(4, 200, 5)
  held_out = 0.1 + 0.6 * _sigmoid((np.log(lr[steps]) - np.log(C)) / W)
  s = clr_optax.suggest_bounds(_result(lr, 2 - train_acc, train_acc, eval_step=steps, eval_accuracy=held_out))
  assert "held-out" in s.base_reason
  assert TRUE_BASE / 1.5 < s.base_lr < TRUE_BASE * 1.5


@pytest.mark.parametrize("seed", range(3))
def test_loss_rules_on_noisy_sigmoid_descent(seed):
  rng = np.random.default_rng(seed)
  lr = np.geomspace(1e-5, 10.0, 300)
  z = (np.log(lr) - np.log(1e-2)) / 0.5
  # Falls steepest at lr = 1e-2 (against log lr), bottoms out, then rises again past lr = 1.
  clean = 2.3 - 2.0 * _sigmoid(z) + 0.3 * np.maximum(np.log(lr), 0) ** 2
  s = clr_optax.suggest_bounds(_result(lr, clean + rng.normal(0, 0.08, lr.size)))
  steep, _ = s.candidates["steepest"]
  assert 1e-2 / 1.4 < steep < 1e-2 * 1.4
  lowest, _ = s.candidates["min_loss"]
  assert 0.2 < lowest < 2.0  # the clean curve's minimum is at lr = 0.98
  # No accuracy: max_lr from the steepest descent, base_lr from the rule of thumb.
  assert s.max_lr == steep
  assert s.base_lr == pytest.approx(s.max_lr / 4)
  assert "rule of thumb" in s.base_reason


def test_masked_region_is_ignored():
  lr = np.geomspace(1e-4, 10.0, 100)
  loss = 2.3 - 2.0 * _sigmoid((np.log(lr) - np.log(1e-2)) / 0.5)
  masked = lr > 0.5
  # Garbage after divergence must not matter: the suggestion equals that of the truncated sweep.
  poisoned = np.where(masked, -1e9, loss)
  s = clr_optax.suggest_bounds(_result(lr, poisoned, masked=masked))
  t = clr_optax.suggest_bounds(_result(lr[~masked], loss[~masked]))
  assert np.isfinite(s.bounds).all() and s.max_lr < 0.5
  assert s.bounds == t.bounds


def test_mean_curve_of_several_runs():
  rng = np.random.default_rng(0)
  lr = np.geomspace(1e-4, 1.0, 200)
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(C)) / W)
  runs = acc + rng.normal(0, 0.05, (4, lr.size))
  runs -= runs.mean(0) - acc  # the runs' mean is exactly the clean curve
  masked = np.zeros((4, lr.size), bool)
  masked[2, 190:] = True  # one run diverged late: every run's curve stops there
  s = clr_optax.suggest_bounds(_result(lr, 2 - runs, runs, masked=masked))
  clean = clr_optax.suggest_bounds(_result(lr[:190], 2 - acc[:190], acc[:190]))
  assert s.base_lr == pytest.approx(clean.base_lr, rel=0.1)
  assert s.max_lr == pytest.approx(clean.max_lr, rel=0.1)


def test_bounds_feed_a_schedule():
  lr = np.geomspace(1e-4, 1.0, 200)
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(C)) / W)
  s = clr_optax.suggest_bounds(_result(lr, 2 - acc, acc))
  schedule = clr_optax.triangular2(*s.bounds, step_size=10)
  assert float(schedule(0)) == pytest.approx(s.base_lr, rel=1e-6)
  assert float(schedule(10)) == pytest.approx(s.max_lr, rel=1e-6)
  assert "base_lr" in str(s) and "max_lr" in str(s)


def test_rule_choice_and_errors():
  lr = np.geomspace(1e-4, 1.0, 100)
  loss = 2.3 - 2.0 * _sigmoid((np.log(lr) - np.log(1e-2)) / 0.5)
  result = _result(lr, loss)
  assert result.suggest(rule="steepest").max_lr == result.suggest().candidates["steepest"][0]
  assert result.suggest(factor=3).base_lr == pytest.approx(result.suggest().max_lr / 3)
  with pytest.raises(ValueError, match="accuracy"):
    result.suggest(rule="accuracy")
  with pytest.raises(ValueError, match="rule"):
    result.suggest(rule="median")
  short = np.zeros(100, bool)
  short[5:] = True
  with pytest.raises(ValueError, match="8 unmasked steps"):
    _result(lr, loss, masked=short).suggest()


def test_plot_marks_bounds_divergence_and_bands():
  rng = np.random.default_rng(1)
  lr = np.geomspace(1e-4, 1.0, 100)
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(C)) / W) + rng.normal(0, 0.02, (3, lr.size))
  masked = np.zeros((3, lr.size), bool)
  masked[:, 90:] = True
  result = _result(lr, 2 - acc, acc, masked=masked)
  fig = result.plot(title="test")
  assert len(fig.axes) == 2 and fig.axes[1].get_xscale() == "log"
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert any(label.startswith("suggested bounds") for label in labels)
  assert any(label.startswith("diverged at lr=") for label in labels)
  assert any("mean of 3" in label for label in labels)
  assert fig.axes[0].collections  # the bands
  linear = _result(np.linspace(0.0, 1.0, 50), np.linspace(2, 1, 50), mode="linear").plot()
  assert len(linear.axes) == 1 and linear.axes[0].get_xscale() == "linear"


def test_bad_arguments_are_named():
  lr = np.geomspace(1e-4, 1.0, 100)
  result = _result(lr, 2.3 - 2.0 * _sigmoid((np.log(lr) - np.log(1e-2)) / 0.5))
  for bad in (-5, 0, 2.5, True, "7", 99):  # each refused before use, naming the argument
    with pytest.raises(ValueError, match="window"):
      result.suggest(window=bad)
  for bad in (1.0, 0.5, float("nan"), "4"):
    with pytest.raises(ValueError, match="factor"):
      result.suggest(factor=bad)
  assert result.suggest(window=1).max_lr > 0 and result.suggest(window=97).max_lr > 0


def test_loss_not_finite_from_the_first_step_is_not_a_max_lr_problem():
  lr = np.geomspace(1e-4, 1.0, 50)
  masked = np.ones(50, bool)  # the range test masks from step 0 when the first loss is NaN
  with pytest.raises(ValueError, match="not finite at the smallest learning rate") as e:
    _result(lr, np.full(50, np.nan), masked=masked).suggest()
  assert "lower max_lr" not in str(e.value)


def test_staircase_levels_are_read_as_one_point_each():
  # The same noisy curve per level, each level held for 4 steps: the suggestion equals that of the level
  # means swept one step per level.
  rng = np.random.default_rng(0)
  levels = np.geomspace(1e-5, 10.0, 60)
  clean = 2.3 - 2.0 * _sigmoid((np.log(levels) - np.log(1e-2)) / 0.5) + 0.3 * np.maximum(np.log(levels), 0) ** 2
  steps = np.repeat(clean, 4) + rng.normal(0, 0.05, 240)
  stair = _result(np.repeat(levels, 4), steps).suggest()
  means = _result(levels, steps.reshape(60, 4).mean(1)).suggest()
  assert stair.bounds == pytest.approx(means.bounds, rel=1e-6)
  assert 1e-2 / 1.5 < stair.candidates["steepest"][0] < 1e-2 * 1.5


def _descent(lr, centre=1e-2, width=0.5):
  """A loss that falls steepest at ``centre`` (against log lr) and rises again past lr = 1."""
  return 2.3 - 2.0 * _sigmoid((np.log(lr) - np.log(centre)) / width) + 0.3 * np.maximum(np.log(lr), 0) ** 2


@pytest.mark.parametrize("seed", range(3))
def test_a_loss_that_does_not_move_has_no_bounds(seed):
  # A step that ignores lr, a frozen model, a range far too low: per-batch noise about a constant.
  rng = np.random.default_rng(seed)
  lr = np.geomspace(1e-4, 10.0, 300)
  with pytest.raises(ValueError, match="barely moves over the whole sweep"):
    _result(lr, 1.61 + rng.normal(0, 0.15, lr.size)).suggest()
  with pytest.raises(ValueError, match="barely moves"):  # drifting down by 0.5%: not a descent either
    _result(lr, np.linspace(1.613, 1.605, lr.size) + rng.normal(0, 0.005, lr.size)).suggest()


def test_a_loss_that_only_rises_says_lower_min_lr():
  lr = np.geomspace(1e-1, 10.0, 100)
  with pytest.raises(ValueError, match="never descends.*lower min_lr"):
    _result(lr, 1.0 + lr).suggest()


def test_a_loss_that_only_rises_from_lr_0_says_lower_max_lr():
  # A linear sweep from 0 cannot start lower: its rates that train got too few steps (mlp_b16 of issue 26).
  lr = np.linspace(0.0, 1.0, 600)
  loss = 2.26 - 0.2 * np.minimum(lr / 0.15, 1.0) + 4.0 * np.maximum(lr - 0.15, 0.0) ** 2
  with pytest.raises(ValueError, match="never descends clearly") as raised:
    _result(lr, loss + np.random.default_rng(0).normal(0, 0.6, lr.size), mode="linear").suggest()
  lowest = re.search(r"lower max_lr \(the smoothed loss is lowest at lr ([0-9.e-]+)\) or raise num_steps",
                     str(raised.value))
  assert lowest and float(lowest.group(1)) < 0.4 and "min_lr" not in str(raised.value)


def test_a_clear_descent_under_heavy_noise_is_still_read():
  rng = np.random.default_rng(0)
  lr = np.geomspace(1e-5, 10.0, 300)
  s = _result(lr, _descent(lr) + rng.normal(0, 0.3, lr.size)).suggest()
  assert 1e-3 < s.max_lr < 0.5 and not s.notes


def test_the_range_test_of_a_step_that_ignores_lr_has_no_bounds():
  x = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
  data = {"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32)}
  loss_fn = lambda w, b: jnp.mean((b["x"] @ w - b["y"]) ** 2)
  kw = dict(loss_fn=loss_fn, params=jnp.zeros(3), batch_size=16, num_steps=100, min_lr=1e-3, max_lr=10.0,
            mode="exponential", progress=False)
  assert clr_optax.range_test(data, optimizer=optax.sgd, **kw).suggest().max_lr < 1.0  # 2 / lambda_max ~ 1
  for ignores_lr in (lambda lr: optax.sgd(0.0), lambda lr: optax.sgd(lr * 1e-9)):
    with pytest.raises(ValueError, match="barely moves"):
      clr_optax.range_test(data, optimizer=ignores_lr, **kw).suggest()


def _small_batch_sweep(seed, batch):
  """Accuracy measured on batches of ``batch`` examples (binomial noise) rising 0.2 -> 0.5, and its loss."""
  rng = np.random.default_rng(seed)
  lr = np.geomspace(1e-4, 1.0, 250)
  rise = _sigmoid((np.log(lr) - np.log(3e-3)) / 0.6)
  fall = _sigmoid((np.log(lr) - np.log(0.3)) / 0.3)
  accuracy = rng.binomial(batch, 0.2 + 0.3 * rise - 0.3 * fall) / batch
  loss = 1.6 - 0.6 * rise + 2.0 * fall + rng.normal(0, 0.05, lr.size)
  return lr, loss, accuracy


@pytest.mark.parametrize("seed", range(3))
def test_noisy_small_batch_accuracy_falls_back_to_the_loss(seed):
  lr, loss, accuracy = _small_batch_sweep(seed, 16)
  s = _result(lr, loss, accuracy).suggest()
  assert any("training accuracy is too noisy to read" in note for note in s.notes), s
  assert s.bounds == _result(lr, loss).suggest().bounds  # the loss's reading
  with pytest.raises(ValueError, match="too noisy"):
    _result(lr, loss, accuracy).suggest(rule="accuracy")


def test_noisy_held_out_accuracy_asks_for_more_held_out_data():
  # A held-out set of 16 images per evaluation: more evaluations or a larger set cure it, not an eval_fn.
  lr, loss, _ = _small_batch_sweep(0, 16)
  steps = np.arange(9, 250, 10)
  held_out = _small_batch_sweep(1, 16)[2][steps]
  s = _result(lr, loss, eval_step=steps, eval_accuracy=held_out).suggest()
  note = next(note for note in s.notes if "held-out accuracy is too noisy to read" in note)
  assert "a larger held-out set or more evaluations" in note and "eval_fn" not in note
  assert s.bounds == _result(lr, loss).suggest().bounds


def test_large_batch_accuracy_is_read():
  lr, loss, accuracy = _small_batch_sweep(0, 1024)
  s = _result(lr, loss, accuracy).suggest()
  assert "training accuracy" in s.max_reason and not s.notes


def test_all_nan_held_out_accuracy_is_not_read():
  lr = np.geomspace(1e-4, 1.0, 200)
  steps = np.arange(4, 200, 5)
  result = _result(lr, _descent(lr), eval_step=steps, eval_accuracy=np.full(steps.size, np.nan))
  s = result.suggest()
  assert s.max_lr == result.suggest(rule="steepest").max_lr
  assert any("held-out accuracy is not finite" in note for note in s.notes)


def test_a_sweep_that_ended_while_the_loss_fell_says_extend_max_lr():
  lr = np.geomspace(1e-4, 3e-3, 100)  # ends before the descent centred at 1e-2 flattens, without diverging
  s = _result(lr, _descent(lr)).suggest()
  assert "extend max_lr" in s.max_reason and any("extend max_lr" in note for note in s.notes)
  assert not any("extend" in note for note in _result(lr, _descent(lr, centre=3e-4)).suggest().notes)  # flattened
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(3e-4)) / W)  # an accuracy read inside the sweep
  s = _result(lr, _descent(lr), acc).suggest()
  assert "training accuracy" in s.max_reason and any("extend max_lr" in note for note in s.notes)
  assert "extend max_lr" in str(s)


def test_short_sweeps_that_did_not_diverge_say_so():
  lr = np.geomspace(1e-4, 1.0, 7)
  with pytest.raises(ValueError, match="has 7 steps \\(it did not diverge\\).*raise num_steps") as e:
    _result(lr, _descent(lr)).suggest()
  assert "diverged after" not in str(e.value)
  stairs = np.repeat(np.geomspace(1e-4, 1.0, 2), 10)  # staircase=10 of 20 steps
  with pytest.raises(ValueError, match="2 staircase levels \\(it did not diverge\\).*lower staircase"):
    _result(stairs, _descent(stairs)).suggest()


def test_an_accuracy_still_rising_at_the_end_says_sweep_higher():
  lr = np.geomspace(1e-4, 1e-2, 200)
  # Rising over the whole sweep: the rise is centred past its end, at lr = 3e-2.
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(3e-2)) / 1.0)
  s = _result(lr, 2 - acc, acc).suggest()
  assert "training accuracy" in s.max_reason, s
  assert any("may still be rising, sweep to a higher max_lr" in note for note in s.notes), s
  # The same curve read over a sweep that reaches the plateau and falls: no such note.
  lr = np.geomspace(1e-4, 1.0, 200)
  acc = 0.1 + 0.6 * _sigmoid((np.log(lr) - np.log(3e-2)) / 0.5) - 0.5 * np.maximum(np.log(lr / 0.5), 0)
  assert not any("still be rising" in note for note in _result(lr, 2 - acc, acc).suggest().notes)
