"""clr_optax: cyclical learning rates for JAX, as Optax schedules.

The policies of Smith, "Cyclical Learning Rates for Training Neural Networks" (arXiv 1506.01186), and their
successors (one-cycle, cyclical momentum, SGDR, warmup-stable-decay, staircases), each a pure function of
the step that fuses into a compiled train step, and learning rates per parameter group (``discriminative``)::

  optimizer = optax.sgd(learning_rate=clr_optax.triangular2(0.001, 0.006, step_size=2000), momentum=0.9)
"""

from clr_optax._result import RangeTestProgress
from clr_optax._result import RangeTestResult
from clr_optax._sweep import learning_rates
from clr_optax.cyclical import cyclical
from clr_optax.cyclical import decay
from clr_optax.cyclical import exp_range
from clr_optax.cyclical import exponential
from clr_optax.cyclical import SCALE_MODES
from clr_optax.cyclical import shifted
from clr_optax.cyclical import staircase
from clr_optax.cyclical import triangular
from clr_optax.cyclical import triangular2
from clr_optax.cyclical import WINDOWS
from clr_optax.discriminative import discriminative
from clr_optax.discriminative import DiscriminativeState
from clr_optax.momentum import cyclical_momentum
from clr_optax.one_cycle import one_cycle
from clr_optax.one_cycle import one_cycle_momentum
from clr_optax.plotting import plot_range_test
from clr_optax.plotting import plot_schedules
from clr_optax.range_test import make_range_test
from clr_optax.range_test import range_test
from clr_optax.restarts import sgdr
from clr_optax.rules import base_lr_from_max
from clr_optax.rules import step_size_from_epochs
from clr_optax.suggest import suggest_bounds
from clr_optax.suggest import Suggestion
from clr_optax.wsd import cyclic_wsd
from clr_optax.wsd import wsd
from clr_optax.wsd import WSD_SHAPES

__version__ = "0.1.0"

__all__ = [
    "base_lr_from_max",
    "cyclic_wsd",
    "cyclical",
    "cyclical_momentum",
    "decay",
    "discriminative",
    "DiscriminativeState",
    "exp_range",
    "exponential",
    "learning_rates",
    "make_range_test",
    "one_cycle",
    "one_cycle_momentum",
    "plot_range_test",
    "plot_schedules",
    "range_test",
    "RangeTestProgress",
    "RangeTestResult",
    "SCALE_MODES",
    "sgdr",
    "shifted",
    "staircase",
    "step_size_from_epochs",
    "suggest_bounds",
    "Suggestion",
    "triangular",
    "triangular2",
    "WINDOWS",
    "wsd",
    "WSD_SHAPES",
]
