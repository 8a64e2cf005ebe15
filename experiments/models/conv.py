"""A convolution whose input XLA:CPU reads from memory instead of recomputing it: `conv_general_dilated`.

XLA:CPU computes a convolution's kernel gradient with the input in a batch-minor layout, and fuses the
elementwise chain that produced the input (BatchNorm's normalisation, ReLU, the residual additions of several
blocks) into that transposing copy, recomputing the chain with strided reads instead of reading the
activation the forward pass already wrote. In ResNet-20's training step those copies took 37% of the step on
the 2-core CPU (experiments/benchmarks/README.md). `lax.optimization_barrier` does not stop it there (XLA:CPU
drops barriers before fusing); a conditional does, because XLA does not fuse across one. So on the CPU the
input first passes through a `lax.cond` whose predicate (a value that is both NaN and infinite) is never true
and which XLA cannot prove false: its output is the input, in its own buffer. Its backward pass is the
identity (a custom VJP), so the gradients carry no conditional. On other backends, where a conditional costs
a host round trip and the fusion problem was not seen, this is plain `lax.conv_general_dilated`.

Use it as ``nn.Conv(..., conv_general_dilated=conv_general_dilated)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general_dilated", "materialized"]


@jax.custom_vjp
def materialized(x: jax.Array) -> jax.Array:
  """``x``, written to its own buffer: XLA does not fuse the computation of ``x`` into its consumers."""
  probe = x.reshape(-1)[0]
  return lax.cond(jnp.isnan(probe) & jnp.isinf(probe), jnp.zeros_like, lambda a: a, x)


materialized.defvjp(lambda x: (materialized(x), None), lambda _, g: (g,))


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
  """`lax.conv_general_dilated`, its input `materialized` first when the default backend is the CPU."""
  if jax.default_backend() == "cpu" and lhs.size:
    lhs = materialized(lhs)
  return lax.conv_general_dilated(lhs, rhs, *args, **kwargs)
