"""experiments.results: "first reached" and the summaries over seeds, on hand-made curves."""

import numpy as np
import pytest

from experiments import results
from tests.experiments.synthetic import synthetic_table1


def test_first_reached_hand_made_curve():
  steps = [10, 20, 30, 40, 50]
  acc = [0.30, 0.55, 0.52, 0.61, 0.60]
  assert results.first_reached(steps, acc, 0.60) == 40
  assert results.first_reached(steps, acc, 0.55) == 20
  assert results.first_reached(steps, acc, 0.62) is None
  assert results.first_reached(steps, acc, acc[-1]) == 40  # a run reaches its own final at the latest at the end


def test_summarize_first_reached_against_same_seed_fixed_run():
  by = {s.config: s for s in synthetic_table1()}
  assert by["table2_staged"].reached == (250, 500)
  assert by["table1_fixed"].reached == (1400, 1400)
  assert by["table1_decay"].reached == (None, None)
  assert by["table1_exp_range"].reached == (840, 840)
  assert by["table1_exp_range"].reference_at_end == (0.52, 0.55)  # fixed at 700, the last eval <= 840
  assert by["table1_decay"].reference_at_end == (0.40, 0.41)
  mean, std = by["table2_staged"].final
  assert mean == pytest.approx(0.635) and std == pytest.approx(np.std([0.64, 0.63], ddof=1))
  assert by["table2_staged"].runs[0].best_step == 500
