"""A stream of host batches for `range_test`: read one batch per step, stacked into chunks on the host and
copied to the device ahead of their use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


class StreamEnded(Exception):
  """The iterator ran out (internal: `range_test` turns it into a ValueError, unless every run diverged)."""


def is_stream(data: Any) -> bool:
  """Whether ``data`` is an iterable of batches rather than a pytree of arrays (dicts, lists and tuples are
  pytrees: pass ``iter(batches)`` for a list of batches)."""
  if isinstance(data, (Mapping, list, tuple, np.ndarray, jax.Array)) or not jax.tree_util.all_leaves([data]):
    return False
  return hasattr(data, "__iter__") or hasattr(data, "__next__")


class Stream:
  """Batches from an iterable, stacked into chunks on the host and sent to the device ahead of their use."""

  def __init__(self, data: Any, num_steps: int, batch_size: int | None):
    self.iterator = iter(data)
    self.num_steps = num_steps
    self.consumed = 0
    try:
      first = next(self.iterator)
    except StopIteration:
      raise ValueError(f"data yielded no batch; num_steps={num_steps} needs {num_steps} batches") from None
    leaves, self.treedef = jax.tree.flatten(first)
    leaves = [np.asarray(x) for x in leaves]
    sizes = {x.shape[0] if x.ndim else None for x in leaves}
    if not leaves or None in sizes or len(sizes) != 1:
      raise ValueError("each batch of data must be a pytree of arrays with one common leading (example) axis, "
                       f"got sizes {sizes} in the first batch")
    self.batch_size = sizes.pop()
    if batch_size is not None and batch_size != self.batch_size:
      raise ValueError(f"batch_size={batch_size}, but the first batch of data holds {self.batch_size} examples "
                       "(a stream's batches set the batch size: leave batch_size out)")
    self.signature = [(x.shape, x.dtype) for x in leaves]
    self.example = self.treedef.unflatten(
        [jax.ShapeDtypeStruct(x.shape, jax.dtypes.canonicalize_dtype(x.dtype)) for x in leaves])
    self.first = leaves

  def _next(self) -> list[np.ndarray]:
    if self.first is not None:
      leaves, self.first = self.first, None
      return leaves
    try:
      batch = next(self.iterator)
    except StopIteration:
      raise StreamEnded() from None
    leaves, treedef = jax.tree.flatten(batch)
    leaves = [np.asarray(x) for x in leaves]
    if treedef != self.treedef or [(x.shape, x.dtype) for x in leaves] != self.signature:
      raise ValueError(f"batch {self.consumed} of data is {treedef} with (shape, dtype) "
                       f"{[(x.shape, str(x.dtype)) for x in leaves]}, the first was {self.treedef} with "
                       f"{[(s, str(d)) for s, d in self.signature]}: every batch must match (one compiled "
                       "program; drop a smaller last batch, e.g. drop_last=True or drop_remainder=True)")
    return leaves

  def ran_out(self) -> ValueError:
    return ValueError(f"data ran out after {self.consumed} batches, but num_steps={self.num_steps} needs "
                      f"{self.num_steps} (one batch per step; no run had diverged)")

  def chunk(self, start: int, length: int) -> Any:
    """The batches of steps ``start .. start + length - 1`` stacked, on the device (an asynchronous copy);
    steps past ``num_steps`` (the padding of the last chunk, never trained) repeat the last batch."""
    rows = []
    for t in range(start, start + length):
      if t < self.num_steps:
        rows.append(self._next())
        self.consumed += 1
      else:
        rows.append(rows[-1])
    return jax.device_put(self.treedef.unflatten([np.stack(column) for column in zip(*rows)]))
