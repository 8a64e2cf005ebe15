"""experiments.configs.shrink and .tables: shrink arithmetic, the named groups, the paper's numbers."""

import numpy as np
import pytest

from experiments import configs
from experiments import setup
from experiments.configs import paper_results
from experiments.configs import shrink
from experiments.configs import tables


@pytest.mark.parametrize("spec, factor, expected", [
    ("70000", 50, "1400"), ("2000", 80, "25"), ("25000", 80, "312"), ("1", 80, "1"), ("0", 10, "0"),
    ("8ep", 4, "2ep"), ("95ep", 10, "9.5ep"), ("5%", 10, "5%"),
])
def test_shrink_duration(spec, factor, expected):
  assert configs.Duration(spec).shrink(factor) == expected


def test_shrink_config_table1_exp_range():
  full = configs.get_config("table1_exp_range")
  small = shrink.shrink_config(full, 50)
  # Iteration counts divided by 50 (42,000 -> 840, stepsize 1,750 -> 35, eval 1,000 -> 20, ckpt 5,000 -> 100).
  assert (small.train.num_steps, small.schedule.step_size) == ("840", "35")
  assert (small.train.eval_every, small.train.checkpoint_every) == ("20", "100")
  # gamma**50: the decay over the shrunk run equals the decay over the full run.
  assert small.schedule.gamma == pytest.approx(0.99994 ** 50, rel=1e-12)
  assert small.schedule.gamma ** 840 == pytest.approx(0.99994 ** 42000, rel=1e-9)
  # Untouched: bounds, batch, network, optimizer.
  assert (small.schedule.base_lr, small.schedule.max_lr) == (full.schedule.base_lr, full.schedule.max_lr)
  assert (small.train.batch_size, small.model, small.optim) == (full.train.batch_size, full.model, full.optim)


def test_shrink_config_drops_stages_and_one_factor():
  fixed = shrink.shrink_config(configs.get_config("table1_fixed"), 50)
  assert fixed.schedule.drop_at == ("1200", "1300") and fixed.schedule.gamma == 0.99994  # not an exp policy
  staged = shrink.shrink_config(configs.get_config("table2_staged"), 10)
  assert staged.schedule.stage_starts == ("0", "1600", "2200")
  assert staged.schedule.stage_step_sizes == ("200", "100", "50")
  assert shrink.shrink_config(fixed, 1) is fixed
  with pytest.raises(ValueError, match="factor"):
    shrink.shrink_config(fixed, 0.5)


def test_shrunk_schedule_is_the_full_schedule_compressed():
  """The shrunk triangular2 at step t equals the full one at step F*t (F divides every count)."""
  f = 50
  full = configs.get_config("table1_triangular2")
  small = shrink.shrink_config(full, f)
  s_full = setup.build_schedule(full.schedule, steps_per_epoch=500, total_steps=25000)
  s_small = setup.build_schedule(small.schedule, steps_per_epoch=500, total_steps=500)
  t = np.arange(0, 500, 7)
  np.testing.assert_allclose(np.asarray(s_small(t)), np.asarray(s_full(f * t)), rtol=1e-6)


def test_get_experiment_names():
  assert tables.get_experiment("table1").reference == "table1_fixed"
  assert tables.get_experiment("table4_resnet:clr").configs == ("table4_resnet:clr",)
  with pytest.raises(ValueError, match="unknown experiment"):
    tables.get_experiment("table9")
  for e in tables.EXPERIMENTS.values():
    for name in e.configs:
      configs.get_config(name)  # every named config exists


def test_paper_results_match_config_names_and_docstrings():
  known = set()
  for e in tables.EXPERIMENTS.values():
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
