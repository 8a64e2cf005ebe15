"""Configs: every paper row builds, its schedule matches the paper's formulas, overrides are typed."""

import dataclasses
import inspect

import numpy as np
import pytest

from experiments import configs
from experiments import models
from experiments import setup
from experiments import train

ALL = [name + (f":{arg}" if arg else "") for name in configs.list_configs()
       for arg in (configs.config_args(name) or (None,))]


def _schedule(name, num_train=50_000, **updates):
  config = configs.override(configs.get_config(name), updates)
  plan = train.plan_run(config, num_train=num_train, num_global_devices=1)
  return setup.build_schedule(config.schedule, steps_per_epoch=plan.steps_per_epoch,
                              total_steps=plan.total_steps), plan


def _at(schedule, steps):
  return np.array([float(schedule(s)) for s in steps])


def test_every_paper_row_has_a_config():
  names = set(configs.list_configs())
  assert {"default", "table1_fixed", "table1_triangular2", "table1_decay", "table1_exp", "table1_exp_range",
          "table2_staged", "table3_nesterov", "table3_adam", "table3_rmsprop", "table3_adagrad",
          "table3_adadelta", "fig6_bn_sigmoid", "table4_resnet", "table4_sd_resnet", "table4_densenet",
          "one_cycle_resnet56"} <= names


@pytest.mark.parametrize("name", ALL)
def test_config_builds_schedule_optimizer_and_names_a_model(name):
  config = configs.get_config(name)
  assert config.model.name in models.MODELS
  assert config.paper, "every config says what the paper reports"
  schedule, plan = _schedule(name)
  values = _at(schedule, [0, plan.total_steps // 3, plan.total_steps - 1])
  assert np.all(np.isfinite(values)) and np.all(values > 0)
  tx = setup.build_optimizer(config.optim, config.model.name)
  params = {"conv1": {"kernel": np.ones((3, 3, 3, 2), np.float32), "bias": np.zeros(2, np.float32)}}
  state = tx.init(params)
  assert "learning_rate" in state.hyperparams


def test_table1_schedules_follow_the_paper():
  fixed, plan = _schedule("table1_fixed")
  assert plan.total_steps == 70_000 and plan.steps_per_epoch == 500
  np.testing.assert_allclose(_at(fixed, [0, 59_999, 60_000, 64_999, 65_000, 69_999]),
                             [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], rtol=1e-5)
  tri2, plan = _schedule("table1_triangular2")
  assert plan.total_steps == 25_000
  # Cycle 1 peaks at 0.006 at step 2000; cycle 2's amplitude is halved (peak 0.0035 at step 6000).
  np.testing.assert_allclose(_at(tri2, [0, 1000, 2000, 3000, 4000, 6000, 10_000]),
                             [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.0035, 0.001 + 0.005 / 4], rtol=1e-5)
  decay, plan = _schedule("table1_decay")
  np.testing.assert_allclose(_at(decay, [0, 2000, 4000, 20_000]), [0.007, 0.004, 0.001, 0.001], rtol=1e-5)
  exp, plan = _schedule("table1_exp")
  steps = np.array([0, 1000, 30_000, 69_999])
  np.testing.assert_allclose(_at(exp, steps), 0.001 * 0.99994 ** steps.astype(np.float64), rtol=1e-4)
  # exp_range as §3.1 defines it (line 99): both bounds decline by gamma**t; 42,000 ends the 12th cycle of 3,500.
  exp_range, plan = _schedule("table1_exp_range")
  assert plan.total_steps == 42_000
  steps = np.array([0, 1000, 1750, 5000, 30_000, 42_000])
  x = np.abs(steps / 1750 - 2 * np.floor(1 + steps / 3500) + 1)
  gamma_t = 0.99994 ** steps.astype(np.float64)
  np.testing.assert_allclose(_at(exp_range, steps), gamma_t * (0.001 + 0.005 * np.maximum(0, 1 - x)), rtol=1e-4)
  assert _at(exp_range, [42_000]) == pytest.approx(0.001 * 0.99994 ** 42_000, rel=1e-4)  # a cycle's end
  _, plan = _schedule("table1_exp_range:70k")
  assert plan.total_steps == 70_000 and 70_000 % 3500 == 0
  # The Keras / PyTorch formula (only the amplitude declines), step size 2,000, kept as an alternative.
  keras, plan = _schedule("table1_exp_range:keras")
  assert plan.total_steps == 42_000
  x = np.abs(steps / 2000 - 2 * np.floor(1 + steps / 4000) + 1)
  np.testing.assert_allclose(_at(keras, steps), 0.001 + 0.005 * np.maximum(0, 1 - x) * gamma_t, rtol=1e-4)


def _triangular(steps, base, peak, step_size):
  x = np.abs(steps / step_size - 2 * np.floor(1 + steps / (2 * step_size)) + 1)
  return base + (peak - base) * np.maximum(0, 1 - x)


def test_table3_readings_end_every_cycle_and_the_staged_one_drops_as_table2():
  # Reading 1: a plain triangular cycle of step size 2,500, which 25,000 and 70,000 both end at the lower bound.
  plain, plan = _schedule("table3_adam:clr")
  steps = np.array([0, 1250, 2500, 5000, 24_999])
  assert plan.total_steps == 25_000
  np.testing.assert_allclose(_at(plain, steps), _triangular(steps, 0.0005, 0.002, 2500), rtol=1e-5)
  _, plan = _schedule("table3_adam:clr70k")
  assert plan.total_steps == 70_000 and 70_000 % 5000 == 0 and 25_000 % 5000 == 0
  # Reading 2: Table 2's stages with the method's bounds, triangular within each (Table 3's policy).
  staged, plan = _schedule("table3_nesterov:clr_staged")
  assert plan.total_steps == 25_000
  steps = np.array([0, 2000, 6000, 16_000, 17_000, 22_000, 22_500, 24_999])
  want = np.where(steps < 16_000, _triangular(steps, 0.001, 0.006, 2000),
                  np.where(steps < 22_000, _triangular(steps - 16_000, 0.0001, 0.0006, 1000),
                           _triangular(steps - 22_000, 0.00001, 0.00006, 500)))
  np.testing.assert_allclose(_at(staged, steps), want, rtol=1e-5)
  staged70, plan = _schedule("table3_rmsprop:clr70k_staged")
  assert plan.total_steps == 70_000
  np.testing.assert_allclose(_at(staged70, [60_000, 61_250, 65_000, 66_250]), [1e-5, 3e-5, 1e-6, 3e-6], rtol=1e-5)
  # The fixed rows start at the lower bound with Caffe's two x0.1 drops.
  fixed, _ = _schedule("table3_adagrad:fixed")
  np.testing.assert_allclose(_at(fixed, [0, 60_000, 65_000]), [0.003, 0.0003, 0.00003], rtol=1e-5)


def test_rows_whose_paper_settings_are_not_the_schedule():
  assert configs.get_config("fig6_bn_sigmoid:fixed").train.eval_train  # Fig. 6 plots training accuracy
  assert configs.get_config("table4_sd_resnet:0.2").data.train_size == 45_000  # 5,000 held out, line 236
  assert configs.get_config("table4_resnet:0.2").data.train_size is None
  googlenet, _ = _schedule("table1_googlenet_fixed", num_train=1_281_167)
  np.testing.assert_allclose(_at(googlenet, [0, 200_000, 419_999]), [0.01] * 3)  # a best guess, no solver file


def test_table2_stages_restart_their_cycles():
  staged, plan = _schedule("table2_staged")
  assert plan.total_steps == 25_000
  np.testing.assert_allclose(
      _at(staged, [0, 2000, 4000, 16_000, 17_000, 18_000, 22_000, 22_500, 23_000]),
      [0.001, 0.005, 0.001, 0.0001, 0.0005, 0.0001, 0.00001, 0.00005, 0.00001], rtol=1e-5)


def test_one_cycle_resnet56_three_phases():
  schedule, plan = _schedule("one_cycle_resnet56")
  assert plan.steps_per_epoch == 50_000 // 512 and plan.total_steps == 95 * plan.steps_per_epoch
  total = plan.total_steps
  peak = round(total * 41 / 95)
  np.testing.assert_allclose(_at(schedule, [0, peak, 2 * peak, total]), [0.08, 0.8, 0.08, 0.008], rtol=2e-3)


@pytest.mark.parametrize("module,bounds", [("table4_resnet", (0.1, 0.3)), ("table4_sd_resnet", (0.1, 0.3)),
                                           ("table4_densenet", (0.1, 0.2))])
def test_table4_rows(module, bounds):
  for lr in ("0.1", "0.2", "0.3"):
    schedule, plan = _schedule(f"{module}:{lr}")
    drops = [configs.resolve_duration(d, steps_per_epoch=plan.steps_per_epoch) for d in
             configs.get_config(f"{module}:{lr}").schedule.drop_at]
    np.testing.assert_allclose(_at(schedule, [0, drops[0] - 1, drops[0], drops[1]]),
                               [float(lr), float(lr), float(lr) / 10, float(lr) / 100], rtol=1e-5)
  schedule, plan = _schedule(f"{module}:clr")
  half = plan.total_steps // 20  # a cycle is a tenth of the run
  np.testing.assert_allclose(_at(schedule, [0, half, 2 * half]), [bounds[0], bounds[1], bounds[0]], rtol=1e-4)


def test_override_types_follow_the_fields():
  config = configs.get_config("default")
  new = configs.override(config, configs.parse_overrides([
      "schedule.max_lr=0.01", "train.batch_size=64", "data.augment=false", "data.train_size=500",
      "schedule.drop_at=100,200", "schedule.stage_base_lrs=0.1,0.01", "train.num_devices=none",
      "train.num_steps=3ep"]))
  assert new.schedule.max_lr == 0.01 and isinstance(new.schedule.max_lr, float)
  assert new.train.batch_size == 64 and isinstance(new.train.batch_size, int)
  assert new.data.augment is False and new.data.train_size == 500
  assert new.schedule.drop_at == ("100", "200") and new.schedule.stage_base_lrs == (0.1, 0.01)
  assert new.train.num_devices is None and new.train.num_steps == "3ep"
  assert config.schedule.max_lr == 0.006, "the original is unchanged"
  assert configs.override(config, {"schedule.max_lr": 1}).schedule.max_lr == 1.0
  assert configs.override(config, {"schedule.drop_at": ""}).schedule.drop_at == ()


@pytest.mark.parametrize("updates,error,match", [
    ({"optim.max_lr": "0.1"}, KeyError, "OptimConfig has name, momentum"),
    ({"schedule": "x"}, KeyError, "is a section"),
    ({"schedule.max_lr": "fast"}, ValueError, "schedule.max_lr takes a number, got text='fast'"),
    ({"train.batch_size": "1.5"}, ValueError, "train.batch_size takes an integer"),
    ({"data.augment": "maybe"}, ValueError, "data.augment takes a boolean"),
    ({"train.batch_size": 1.5}, TypeError, "train.batch_size takes a int"),
])
def test_override_errors_name_the_field(updates, error, match):
  with pytest.raises(error, match=match):
    configs.override(configs.get_config("default"), updates)


def test_parse_overrides_requires_key_value():
  with pytest.raises(ValueError, match="key=value"):
    configs.parse_overrides(["train.num_steps"])


def test_unknown_config_lists_the_known_ones():
  with pytest.raises(ValueError, match="table1_exp"):
    configs.get_config("table9")
  with pytest.raises(ValueError, match="table4_resnet takes one of"):
    configs.get_config("table4_resnet:0.5")


@pytest.mark.parametrize("spec,want", [("2000", 2000), (2000, 2000), ("8ep", 4000), ("0.5ep", 250),
                                       ("8epochs", 4000), ("5%", 3500), ("2000steps", 2000)])
def test_resolve_duration(spec, want):
  assert configs.resolve_duration(spec, steps_per_epoch=500, total_steps=70_000) == want


@pytest.mark.parametrize("spec", ["soon", "-3", "5%%", "nan"])
def test_resolve_duration_rejects_nonsense(spec):
  with pytest.raises(ValueError, match="duration"):
    configs.resolve_duration(spec, steps_per_epoch=500, total_steps=100)


def test_plan_run_checks_batch_and_devices():
  config = configs.get_config("default")
  with pytest.raises(ValueError, match="divisible by the number of devices"):
    train.plan_run(config, num_train=1000, num_global_devices=3)
  with pytest.raises(ValueError, match="smaller than train.batch_size"):
    train.plan_run(config, num_train=50, num_global_devices=1)
  with pytest.raises(ValueError, match="train.eval_batch_size must be divisible by the 16 devices.*=1000"):
    train.plan_run(configs.override(config, {"train.batch_size": 80}), num_train=1000, num_global_devices=16)
  with pytest.raises(ValueError, match="train.num_steps"):
    train.plan_run(configs.override(config, {"train.num_steps": "5%"}), num_train=1000, num_global_devices=1)


def test_every_field_is_commented():
  for cls in (configs.DataConfig, configs.ModelConfig, configs.OptimConfig, configs.ScheduleConfig,
              configs.TrainConfig, configs.WorkflowConfig, configs.Config):
    lines = inspect.getsource(cls).splitlines()
    for field in dataclasses.fields(cls):
      index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{field.name}:"))
      above = lines[index - 1].strip()
      # A comment right above, or the field continues a commented group (e.g. b1/b2).
      assert above.startswith("#") or lines[index - 1].strip().split(":")[0].isidentifier(), field.name


def test_durations_are_checked_strings_found_by_their_type():
  config = configs.get_config("table2_staged")
  assert isinstance(config.train.num_steps, configs.Duration) and config.train.num_steps == "25000"
  assert set(configs.duration_fields(config)) == {
      "train.num_steps", "train.eval_every", "train.checkpoint_every", "schedule.step_size", "schedule.drop_at",
      "schedule.stage_starts", "schedule.stage_step_sizes"}
  assert "workflow.range_steps" in configs.duration_fields(configs.get_config("workflow"))
  assert configs.override(config, {"train.num_steps": 300}).train.num_steps == "300"
  with pytest.raises(ValueError, match="train.num_steps must be steps"):
    configs.override(config, {"train.num_steps": "soon"})
  with pytest.raises(ValueError, match="schedule.drop_at must be a non-negative duration"):
    configs.override(config, {"schedule.drop_at": "10,-5"})
  with pytest.raises(KeyError, match="this config has no 'workflow' section"):
    configs.override(config, {"workflow.rule": "valley"})
