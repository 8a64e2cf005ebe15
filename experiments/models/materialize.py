"""Values XLA:CPU reads from memory instead of recomputing: `materialized`, and a convolution built on it.

XLA fuses elementwise work into its consumers and recomputes it there, once per consumer and, inside a
strided or transposing read, once per element read. On XLA:CPU that is costly in the training steps
(figures in experiments/benchmarks/README.md): a convolution's kernel gradient transposes its input to a
batch-minor layout, and XLA:CPU fuses the whole chain that produced the input (BatchNorm's normalisation,
ReLU, the residual additions of several blocks) into that copy; a pooling layer's window maximum and tap
index are recomputed inside every layer that reads them.

`lax.optimization_barrier` does not stop this on XLA:CPU (it drops barriers before fusing); a conditional
does, because XLA does not fuse across one. So on the CPU `materialized` passes its arrays through a
`lax.cond` whose predicate (a value that is both NaN and infinite) is never true and which XLA cannot prove
false: its outputs are its inputs, in their own buffers. Its backward pass is the identity (a custom VJP),
so the gradients carry no conditional. On other backends, where a conditional costs a host round trip and
the recomputation was not seen, it returns its inputs unchanged.

Use the convolution as ``nn.Conv(..., conv_general_dilated=conv_general_dilated)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general_dilated", "materialized"]


@jax.custom_vjp
def _behind_conditional(arrays: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
  probe = next(a for a in arrays if jnp.issubdtype(a.dtype, jnp.floating)).reshape(-1)[0]
  return lax.cond(jnp.isnan(probe) & jnp.isinf(probe), lambda a: tuple(map(jnp.zeros_like, a)), lambda a: a,
                  arrays)


_behind_conditional.defvjp(lambda a: (_behind_conditional(a), None), lambda _, g: (g,))


def materialized(*arrays: jax.Array) -> Any:
  """The arrays, each written to its own buffer on the CPU: XLA does not fuse their computation into their
  consumers there. Elsewhere (and for empty arrays) the arrays themselves.

  Args:
    *arrays: one or more arrays, at least one of them floating-point (its first element is the probe).

  Returns:
    The one array, or a tuple of them, with the same values.
  """
  if not any(jnp.issubdtype(a.dtype, jnp.floating) for a in arrays):
    raise TypeError(f"materialized needs at least one floating-point array, got dtypes {[a.dtype for a in arrays]}")
  if jax.default_backend() == "cpu" and all(a.size for a in arrays):
    arrays = _behind_conditional(tuple(arrays))
  return arrays[0] if len(arrays) == 1 else tuple(arrays)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
  """`lax.conv_general_dilated` with its input `materialized` first (so only on the CPU)."""
  return lax.conv_general_dilated(materialized(lhs), rhs, *args, **kwargs)
