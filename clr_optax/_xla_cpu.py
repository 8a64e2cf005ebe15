"""Where `range_test` runs differently on XLA:CPU: a step with a convolution is swept in compiled chunks of
unrolled steps (``method="chunked"``), because inside XLA:CPU's while loops the backward convolutions lose
their fast path."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def auto_method(train_step: Callable[..., Any], init: Callable[..., Any], given: Any, example: Any,
                key_shape: tuple[int, ...]) -> str:
  """What ``method="auto"`` runs: ``"chunked"`` on the CPU backend when the step contains a convolution,
  ``"scan"`` otherwise. ``given`` and ``example`` are the initial state (or None) and a batch, as arrays or
  ShapeDtypeStructs; ``key_shape`` is the shape of a run's raw key data."""
  if jax.default_backend() != "cpu":
    return "scan"
  probe_given = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), given)
  if _step_has_convolution(train_step, init, _Hashable(probe_given), _Hashable(example), key_shape):
    return "chunked"
  return "scan"


def contains_convolution(fn: Callable[..., Any], *args: Any) -> bool:
  """Whether ``fn(*args)`` traces to a convolution (anywhere, including nested jaxprs)."""
  def walk(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        return True
      for param in eqn.params.values():
        for sub in (param if isinstance(param, (tuple, list)) else (param,)):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns") and walk(inner):
            return True
    return False
  return walk(jax.make_jaxpr(fn)(*args).jaxpr)


@dataclasses.dataclass(frozen=True)
class _Hashable:
  """A pytree of ShapeDtypeStructs, hashable by its structure, shapes and dtypes."""
  tree: Any

  def _key(self):
    leaves, treedef = jax.tree.flatten(self.tree)
    return treedef, tuple((x.shape, str(x.dtype)) for x in leaves)

  def __hash__(self):
    return hash(self._key())

  def __eq__(self, other):
    return isinstance(other, _Hashable) and self._key() == other._key()


@functools.lru_cache(maxsize=64)
def _step_has_convolution(train_step, init, given: _Hashable, batch: _Hashable, key_shape) -> bool:
  """Whether the step contains a convolution (cached: tracing a large step takes a while)."""
  del key_shape  # part of the cache key only
  state = jax.eval_shape(lambda k, g: init(k, g, jnp.float32(0.0)), jax.random.key(0), given.tree)
  return contains_convolution(train_step, state, batch.tree, jnp.float32(0.0))
