"""Flax models given to `range_test`, recognised without importing flax (it is not a dependency).

A Flax NNX module is swept as its split state: ``nnx.split(model, nnx.Param, ...)`` gives the parameters,
which the optimizer trains, and the rest (BatchNorm statistics, Dropout's random stream), which the
forward pass updates. Each step merges a fresh module from both, so the caller's module is never touched.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, NamedTuple

import jax
import optax


def _loaded(name: str) -> Any:
  """The module ``name`` if something has imported it, else None: a model of it cannot exist otherwise."""
  return sys.modules.get(name)


def is_nnx_module(value: Any) -> bool:
  nnx = _loaded("flax.nnx")
  return nnx is not None and isinstance(value, nnx.Module)


def is_linen_module(value: Any) -> bool:
  linen = _loaded("flax.linen")
  return linen is not None and isinstance(value, linen.Module)


class NnxState(NamedTuple):
  """The state of a sweep of an NNX module: its parameters, the rest of its state, the optimizer's state."""
  params: Any
  rest: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class NnxStep:
  """``train_step(state, batch, lr)`` for ``loss_fn(model, batch)``: the optax step of ``optax_step``
  (an `_optax_step.OptaxStep`, which builds the optimizer and sets its rate) applied to the module's
  parameters, with the rest of its state as the forward pass left it."""
  optax_step: Any
  graphdef: Any

  def init(self, given: tuple[Any, Any], lr: jax.Array) -> NnxState:
    params, rest = given
    return NnxState(params, rest, self.optax_step.build(lr).init(params))

  def __call__(self, state: NnxState, batch: Any, lr: jax.Array):
    from flax import nnx  # pylint: disable=g-import-not-at-top

    def loss_fn(params):
      model = nnx.merge(self.graphdef, params, state.rest)
      out = self.optax_step.loss_fn(model, batch)
      loss, aux = out if isinstance(out, tuple) else (out, {})
      return loss, (aux, nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param))))

    (loss, (aux, rest)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    opt_state = self.optax_step.set_lr(state.opt_state, lr)
    updates, opt_state = self.optax_step.build(lr).update(grads, opt_state, state.params)
    return NnxState(optax.apply_updates(state.params, updates), rest, opt_state), {"loss": loss, **aux}


@dataclasses.dataclass(frozen=True)
class Merge:
  """The module an `NnxState` holds, for ``eval_fn``. A value, as `NnxStep` is: equal sweeps (the same
  module structure, loss and optimizer) then share their compiled programs."""
  graphdef: Any

  def __call__(self, state: NnxState) -> Any:
    from flax import nnx  # pylint: disable=g-import-not-at-top
    return nnx.merge(self.graphdef, state.params, state.rest)


def split(model: Any, optax_step: Any) -> tuple[NnxStep, Merge, tuple[Any, Any]]:
  """The step that trains ``model`` with ``optax_step``'s loss and optimizer, the function that makes the
  module of a state, and the model's initial (parameters, rest) as plain arrays."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return NnxStep(optax_step, graphdef), Merge(graphdef), (nnx.as_pure(params), nnx.as_pure(rest))
