"""The Optax adapter of `range_test`: ``loss_fn(params, batch)`` and an optimizer factory as a
``train_step(state, batch, lr)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from clr_optax import _checks

OptimizerFactory = Callable[[Any], optax.GradientTransformation]


class OptaxState(NamedTuple):
  """The state of the sweep when it is driven by a ``loss_fn`` and an optax optimizer factory."""
  params: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class OptaxStep:
  """``train_step(state, batch, lr)`` for a ``loss_fn(params, batch)`` and an optimizer factory.

  A hashable value (equal for equal ``loss_fn`` and ``optimizer``), so that repeated range tests reuse
  their compiled programs.
  """
  loss_fn: Callable[..., Any]
  optimizer: OptimizerFactory | optax.GradientTransformation

  def build(self, lr):
    if isinstance(self.optimizer, (optax.GradientTransformation, optax.MultiSteps)):
      return self.optimizer
    return self.optimizer(lr)

  def set_lr(self, opt_state, lr):
    # An inject_hyperparams state keeps its learning rate in the state, wherever it is nested (inside
    # optax.MultiSteps, optax.chain): overwrite it there.
    found = []

    def put(path, value):
      if not _is_injected_lr(path):
        return value
      found.append(path)
      return jnp.asarray(lr, jnp.asarray(value).dtype)

    opt_state = jax.tree_util.tree_map_with_path(put, opt_state)
    if found:
      return opt_state
    if isinstance(self.optimizer, (optax.GradientTransformation, optax.MultiSteps)):
      raise TypeError("optimizer must be a factory learning_rate -> GradientTransformation (optax.adam, "
                      "functools.partial(optax.sgd, momentum=0.9), lambda lr: optax.MultiSteps(optax.sgd(lr), "
                      "k)) or a GradientTransformation built with optax.inject_hyperparams whose state holds a "
                      "learning_rate (also inside optax.MultiSteps or optax.chain), got "
                      f"{self.optimizer=}")
    return opt_state

  def init(self, params, lr):
    return OptaxState(params, self.build(lr).init(params))

  def __call__(self, state, batch, lr):
    out = _checks.form(self.loss_fn, state.params, batch)
    aux = isinstance(out, tuple)
    loss = out[0] if aux and len(out) == 2 else out
    if aux and not (len(out) == 2 and isinstance(out[1], Mapping)) or not hasattr(loss, "dtype"):
      raise TypeError(f"loss_fn must return a scalar loss or (loss, metrics dict), got {_checks.describe(out)}")
    if loss.shape != () or not jnp.issubdtype(loss.dtype, jnp.floating):
      raise ValueError(f"loss_fn must return a scalar loss (a float of shape ()), got {_checks.describe(loss)}")
    if aux:
      (loss, aux), grads = jax.value_and_grad(self.loss_fn, has_aux=True)(state.params, batch)
    else:
      loss, grads = jax.value_and_grad(self.loss_fn)(state.params, batch)
      aux = {}
    opt_state = self.set_lr(state.opt_state, lr)
    updates, opt_state = self.build(lr).update(grads, opt_state, state.params)
    return OptaxState(optax.apply_updates(state.params, updates), opt_state), {"loss": loss, **aux}


def _is_injected_lr(path) -> bool:
  """Whether a leaf's path in an optimizer state is an ``inject_hyperparams`` state's learning rate."""
  return bool(path) and getattr(path[-1], "key", None) == "learning_rate" and any(
      getattr(k, "name", None) == "hyperparams" for k in path[:-1])


def params_of(state):
  return state.params
