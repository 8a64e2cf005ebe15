"""Caffe's SGD solver as an Optax transformation.

Caffe's ``SGDSolver`` applies the learning rate *before* the momentum accumulation, per parameter blob
with its ``lr_mult`` and ``decay_mult``::

  diff = g + weight_decay * decay_mult * w            # Regularize (L2)
  v    = momentum * v + lr * lr_mult * diff           # ComputeUpdateValue
  w    = w - v                                        # Net::Update

``optax.sgd(lr, momentum)`` applies it *after* (``t = momentum * t + g; w -= lr * t``). The two agree
step for step while the learning rate is constant (then ``v = lr * t``) or the momentum is zero, and
differ as soon as a schedule changes the rate under momentum: Caffe's velocity remembers the rates at
which past gradients were taken, Optax's rescales all of history by today's rate. The paper's
cyclical runs were Caffe runs, so the Caffe rows use this form.

References:
  BVLC/caffe ``src/caffe/solvers/sgd_solver.cpp`` (``ApplyUpdate``, ``Regularize``,
  ``ComputeUpdateValue``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

__all__ = ["CaffeSGDState", "Multiplier", "caffe_regularize", "caffe_sgd", "path_names", "scale_by_lr_mult"]

# A pytree of floats matching the parameters, or a function (path, param) -> float where path is the
# parameter's key path as a tuple of strings, e.g. ("params", "conv1", "bias").
Multiplier = Union[Any, Callable[[Sequence[str], jax.Array], float]]


class CaffeSGDState(NamedTuple):
  """State of :func:`caffe_sgd`: the step count (for schedules) and Caffe's ``history_`` blobs."""

  count: jax.Array
  velocity: Any


def path_names(path: Sequence[Any]) -> tuple[str, ...]:
  """A jax key path as a tuple of strings: ``(DictKey('conv1'), DictKey('bias'))`` -> ``('conv1', 'bias')``."""
  names = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        names.append(str(getattr(key, attr)))
        break
    else:
      names.append(str(key))
  return tuple(names)


def _resolve(mult: Multiplier | None, updates: Any, params: Any, what: str) -> Any:
  """Multiplier pytree matching ``updates`` (all ones for None)."""
  if mult is None:
    return jax.tree.map(lambda _: 1.0, updates)
  if callable(mult):
    if params is None:
      raise ValueError(f"{what} given as a function needs the params in update(updates, state, params)")
    return jax.tree_util.tree_map_with_path(lambda path, p: float(mult(path_names(path), p)), params)
  try:
    return jax.tree.map(lambda _, m: m, updates, mult)
  except ValueError as e:
    raise ValueError(f"{what} must be a function or a pytree with the parameters' structure: {e}") from None


def _regularized(updates: Any, params: Any, weight_decay: float, decay_mult: Multiplier | None, what: str) -> Any:
  """Caffe's Regularize: ``g + weight_decay * decay_mult * w`` per parameter."""
  if params is None:
    raise ValueError(f"{what} with weight decay needs the params in update(updates, state, params)")
  decay_mults = _resolve(decay_mult, updates, params, "decay_mult")
  return jax.tree.map(lambda g, w, m: g + (weight_decay * m) * w, updates, params, decay_mults)


def caffe_regularize(weight_decay: float, decay_mult: Multiplier | None = None) -> optax.GradientTransformation:
  """Caffe's Regularize for any solver, as a transformation: ``g + weight_decay * decay_mult * w``.

  Caffe applies it before every solver's update (`caffe_sgd` has it built in); chain it before an optax
  optimizer to give Adam, RMSprop, ... Caffe's L2 decay with its per-layer multipliers.
  """
  return optax.GradientTransformation(
      lambda params: optax.EmptyState(),
      lambda updates, state, params=None: (_regularized(updates, params, weight_decay, decay_mult,
                                                        "caffe_regularize"), state))


def scale_by_lr_mult(lr_mult: Multiplier | None) -> optax.GradientTransformation:
  """Caffe's per-blob local rate for any solver: the update times ``lr_mult`` (chained after an optimizer)."""

  def update(updates, state, params=None):
    mults = _resolve(lr_mult, updates, params, "lr_mult")
    return jax.tree.map(lambda u, m: u * m, updates, mults), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def caffe_sgd(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float = 0.9,
  *,
  lr_mult: Multiplier | None = None,
  decay_mult: Multiplier | None = None,
  weight_decay: float = 0.0,
) -> optax.GradientTransformation:
  """Caffe's ``SGDSolver``: L2 weight decay, then momentum on learning-rate-scaled gradients.

  .. math::
    d_t = g_t + \\lambda \\, m^{decay} w_t, \\quad
    v_{t+1} = \\mu v_t + \\eta_t \\, m^{lr} d_t, \\quad
    w_{t+1} = w_t - v_{t+1}

  with ``eta_t = learning_rate(t)`` counted from 0 like Optax schedules (Caffe's ``iter_``).

  Args:
    learning_rate: a float or an Optax schedule of the step count. Works inside
      ``optax.inject_hyperparams`` (pass ``static_args=("lr_mult", "decay_mult")`` when those are
      functions, or ``inject_hyperparams`` would take them for schedules).
    momentum: Caffe's ``momentum`` (``mu``).
    lr_mult: Caffe's per-parameter ``lr_mult``: None (all 1), a pytree of floats with the
      parameters' structure, or a function ``(path, param) -> float`` with ``path`` a tuple of strings.
    decay_mult: Caffe's per-parameter ``decay_mult``, in the same forms (all 1 when None).
    weight_decay: Caffe's solver ``weight_decay`` (``lambda``, L2).

  Returns:
    An ``optax.GradientTransformation`` whose updates are ``-v``. ``update`` needs ``params`` when
    ``weight_decay`` is nonzero or a multiplier is a function.

  Examples:
    >>> import jax.numpy as jnp
    >>> opt = caffe_sgd(0.1, momentum=0.9)
    >>> params = {"w": jnp.ones(2)}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": jnp.ones(2)}, state, params)
    >>> updates["w"].tolist()
    [-0.10000000149011612, -0.10000000149011612]
  """
  if not callable(learning_rate) and not isinstance(learning_rate, jax.Array) and learning_rate < 0:
    raise ValueError(f"learning_rate must be non-negative, got {learning_rate=}")
  if not isinstance(momentum, jax.Array) and not 0.0 <= momentum < 1.0:
    raise ValueError(f"momentum must be in [0, 1), got {momentum=}")
  if not isinstance(weight_decay, jax.Array) and weight_decay < 0:
    raise ValueError(f"weight_decay must be non-negative, got {weight_decay=}")

  def init_fn(params):
    return CaffeSGDState(
      count=jnp.zeros([], jnp.int32),
      velocity=jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    rate = learning_rate(state.count) if callable(learning_rate) else learning_rate
    lr_mults = _resolve(lr_mult, updates, params, "lr_mult")
    diff = updates
    if decay_mult is not None or not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
      diff = _regularized(updates, params, weight_decay, decay_mult, "caffe_sgd")
    velocity = jax.tree.map(
      lambda v, d, m: (momentum * v + (rate * m) * d).astype(v.dtype), state.velocity, diff, lr_mults)
    new_updates = jax.tree.map(lambda v: -v, velocity)
    return new_updates, CaffeSGDState(count=optax.safe_increment(state.count), velocity=velocity)

  return optax.GradientTransformation(init_fn, update_fn)
