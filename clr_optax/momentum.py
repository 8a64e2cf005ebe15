"""Cyclical momentum: momentum that cycles opposite to a cyclical learning rate.

Momentum schedules are ordinary ``optax.Schedule`` objects. Optax's optimizers take their momentum (SGD's
``momentum``, Adam's ``b1``) as a number, so feed a schedule through ``optax.inject_hyperparams``, which
evaluates every callable hyper-parameter at the current step and keeps the values in the optimizer state,
where they can be read and logged::

  lr = clr_optax.triangular(0.1, 1.0, step_size=2000)
  momentum = clr_optax.cyclical_momentum(0.8, 0.9, step_size=2000)
  optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=momentum)
  state = optimizer.init(params)
  ...
  state.hyperparams["learning_rate"], state.hyperparams["momentum"]  # this step's values

  adam = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=momentum)

The first update applies ``schedule(0)`` on both paths: ``optax.sgd(learning_rate=schedule)`` and
``optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)`` (the tests check it).
"""

from typing import Any

import jax
import optax

from clr_optax import _checks
from clr_optax.cyclical import ScaleFn, _cyclic_fraction


def cyclical_momentum(
    base_momentum: Any,
    max_momentum: Any,
    step_size: Any,
    *,
    step_size_down: Any = None,
    window: str = "triangular",
    scale_fn: ScaleFn | None = None,
    scale_mode: str = "cycle",
) -> optax.Schedule:
  r"""Momentum that mirrors :func:`clr_optax.cyclical`: highest where the learning rate is lowest.

  .. math:: \mu_t = \mu_{max} - (\mu_{max} - \mu_{base})\, w(x_t)\, s

  with the window :math:`w`, the position :math:`x_t` and the scale :math:`s` of
  :func:`clr_optax.cyclical` for the same arguments, so pass the learning rate's ``step_size``,
  ``step_size_down``, ``window`` and ``scale_fn``. This is PyTorch ``CyclicLR``'s ``cycle_momentum``
  (defaults there: 0.8 to 0.9).

  Args:
    base_momentum: the momentum at the learning rate's peak.
    max_momentum: the momentum at the cycle's boundaries, in ``[base_momentum, 1]``.
    step_size: steps in the rising half of the learning rate's cycle.
    step_size_down: steps in its falling half; defaults to ``step_size``.
    window: ``"triangular"``, ``"welch"`` or ``"hann"``.
    scale_fn: as in :func:`clr_optax.cyclical`.
    scale_mode: as in :func:`clr_optax.cyclical`.

  Returns:
    An ``optax.Schedule``.

  Examples:
    >>> import clr_optax
    >>> momentum = clr_optax.cyclical_momentum(0.8, 0.9, step_size=2000)
    >>> [round(float(momentum(t)), 4) for t in (0, 1000, 2000, 4000)]
    [0.9, 0.85, 0.8, 0.9]
  """
  _checks.check_momenta("base_momentum", base_momentum, "max_momentum", max_momentum)
  base_momentum, max_momentum = _checks.widened(base_momentum), _checks.widened(max_momentum)
  fraction = _cyclic_fraction(step_size, step_size_down, window, scale_fn, scale_mode)

  def schedule(count: Any) -> jax.Array:
    dtype = _checks.float_dtype(base_momentum, max_momentum)
    return _checks.lerp(max_momentum, base_momentum, fraction(count, dtype)).astype(dtype)

  return schedule


__all__ = ["cyclical_momentum"]
