"""The compiled sweep of `range_test` and `make_range_test`: the learning rates, the traced step (loss
smoothing, the divergence test, masking), the loops over it, and the cached programs that run them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from clr_optax import _checks
from clr_optax import _optax_step
from clr_optax import _result

TrainStep = Callable[[Any, Any, jax.Array], tuple[Any, Mapping[str, jax.Array]]]
BatchAt = Callable[[jax.Array, Any], Any]  # (step of the sweep, index in the chunk) -> batch


def learning_rates(min_lr: float, max_lr: float, num_steps: int, mode: str = "linear",
                   staircase: int | None = None) -> np.ndarray:
  """The learning rate of each sweep step: ``min_lr`` at step 0 rising to ``max_lr`` at the last step.

  With ``staircase=k`` the rate rises in ``ceil(num_steps / k)`` levels, each held for ``k`` steps (the
  last level for what remains), from ``min_lr`` for the first ``k`` steps to ``max_lr`` for the last ones:
  DeepSpeed's staircase range test. Each level then trains long enough for its loss to settle.

  Args:
    min_lr: the first learning rate (> 0 for an exponential sweep).
    max_lr: the last learning rate.
    num_steps: number of steps.
    mode: ``"linear"`` (the paper: equal increments) or ``"exponential"`` (fastai: equal ratios).
    staircase: steps per level, an int in ``[1, num_steps - 1]``; None (or 1) rises every step.

  Returns:
    A float64 numpy array of shape ``[num_steps]``.

  Examples:
    >>> import clr_optax
    >>> clr_optax.learning_rates(1e-3, 1e-1, 3, mode="exponential").round(6).tolist()
    [0.001, 0.01, 0.1]
    >>> clr_optax.learning_rates(0.0, 1.0, 5, staircase=2).tolist()
    [0.0, 0.0, 0.5, 0.5, 1.0]
  """
  _checks.check_sweep(min_lr, max_lr, num_steps, mode, staircase)
  k = staircase or 1
  levels = -(-num_steps // k)
  frac = np.arange(levels, dtype=np.float64) / (levels - 1)
  if mode == "linear":
    values = min_lr + (max_lr - min_lr) * frac
  else:
    values = min_lr * (max_lr / min_lr) ** frac
  return values[np.arange(num_steps) // k]


def padded_lrs(min_lr, max_lr, num_steps, mode, padded, staircase) -> np.ndarray:
  lrs = learning_rates(min_lr, max_lr, num_steps, mode, staircase)
  return np.concatenate([lrs, np.full(padded - num_steps, lrs[-1])]).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Init:
  """Makes a run's initial state from its key: ``fn(key)`` when given, else the ``state`` argument."""
  fn: Callable[[jax.Array], Any] | None
  optax_step: _optax_step.OptaxStep | None

  def __call__(self, key, given, lr0):
    state = self.fn(key) if self.fn is not None else given
    return self.optax_step.init(state, lr0) if self.optax_step is not None else state


def identity(state):
  return state


class _Carry(NamedTuple):
  """The loop state; few, packed scalars (each loop-carried value costs time on XLA:CPU)."""
  state: Any
  counters: jax.Array        # int32 [2]: steps taken (masked and padding ones included); diverged step or -1
  stats: jax.Array           # float32 [2]: un-corrected moving average of the loss; lowest smoothed loss

  @property
  def step(self) -> jax.Array:
    return self.counters[..., 0]

  @property
  def diverged_step(self) -> jax.Array:
    return self.counters[..., 1]

  @property
  def diverged(self) -> jax.Array:
    return self.counters[..., 1] >= 0


def _init_carry(state: Any) -> _Carry:
  return _Carry(state, jnp.array([0, -1], jnp.int32), jnp.array([0.0, jnp.inf], jnp.float32))


def _select(keep: jax.Array, new: Any, old: Any) -> Any:
  def sel(n, o):
    return lax.select(keep, jnp.asarray(n, o.dtype) if n.dtype != o.dtype else n, o)
  return jax.tree.map(sel, new, old)


def batch_indices(key: jax.Array, num_examples: int, batch_size: int, num_steps: int) -> jax.Array:
  """``[num_steps, batch_size]`` example indices: a fresh permutation per epoch, the remainder dropped."""
  per_epoch = num_examples // batch_size
  num_epochs = -(-num_steps // per_epoch)
  keys = jax.random.split(key, num_epochs)
  perms = jax.vmap(lambda k: jax.random.permutation(k, num_examples)[:per_epoch * batch_size])(keys)
  return perms.reshape(num_epochs * per_epoch, batch_size)[:num_steps].astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class Sweep:
  """Everything static about a sweep; its methods are the traced pieces."""
  train_step: TrainStep
  num_steps: int
  padded: int                # num_steps rounded up to whole chunks; the extra steps are masked
  batch_size: int
  smoothing: float
  divergence_factor: float | None
  eval_fn: Callable[[Any], Any] | None
  eval_arg: Callable[[Any], Any]
  axis_name: str | None

  def step(self, carry: _Carry, batch: Any, lr: jax.Array, freeze: bool):
    """One sweep step. ``freeze``: a masked step keeps the old state (selected per leaf); without it
    the caller must stop at divergence instead."""
    out = self.train_step(carry.state, batch, lr)
    if not (isinstance(out, tuple) and len(out) == 2):
      raise ValueError(f"train_step must return (state, metrics), got {_checks.describe(out)}")
    new_state, metrics = out
    _checks.check_same_state(carry.state, new_state)
    if not (isinstance(metrics, Mapping) and "loss" in metrics):
      raise ValueError(f"train_step must return (state, metrics) with a 'loss' in metrics, got {metrics=}")
    metrics = _checks.as_metrics(metrics, "the metrics of train_step (or of loss_fn's (loss, metrics))")
    loss = metrics["loss"]
    if self.axis_name is not None:
      loss = lax.pmean(loss, self.axis_name)
    beta = self.smoothing
    t = carry.step
    ema = beta * carry.stats[0] + (1.0 - beta) * loss
    best = carry.stats[1]
    smooth = ema / (1.0 - jnp.float32(beta) ** (t + 1).astype(jnp.float32))
    bad = ~(jnp.isfinite(loss) & jnp.isfinite(smooth))
    if self.divergence_factor is not None:
      bad |= (t > 0) & (smooth - best > (self.divergence_factor - 1.0) * jnp.abs(best))
    live = (t < self.num_steps) & ~carry.diverged
    keep = live & ~bad
    newly = live & bad
    nan = jnp.float32(jnp.nan)
    new_carry = _Carry(
        state=_select(keep, new_state, carry.state) if freeze else new_state,
        counters=jnp.stack([t + 1, jnp.where(newly, t, carry.diverged_step)]),
        stats=jnp.where(keep, jnp.stack([ema, jnp.minimum(best, smooth)]), carry.stats))
    # One vector per step (masked, loss, smoothed loss, the metrics by name): on XLA:CPU every output of a
    # loop body costs a few microseconds, as much as a whole step of a small model.
    names = sorted(metrics)
    values = jnp.where(keep, jnp.stack([loss, smooth] + [metrics[k] for k in names]), nan)
    record = jnp.concatenate([(~keep).astype(jnp.float32)[None], values])
    return new_carry, (record, names)

  def chunk(self, carry: _Carry, lrs_all: jax.Array, batch_at: BatchAt, length: int, unroll: bool):
    """``length`` steps from ``carry.step`` on: a while loop, or when ``unroll`` straight-line code.

    ``batch_at(t, j)`` is the batch of step ``t``, the ``j``-th of this chunk. The while loop stops at
    divergence (or at ``num_steps``), so the steps after it cost nothing and the state needs no freezing:
    selecting between the old and new state of every leaf each step, and the buffer copies that forces,
    would make a small model's sweep markedly slower than plain steps. Steps it does not run keep NaN
    records and count as masked. Straight-line code cannot stop, so there every masked step keeps the old
    state.
    """
    start = carry.step
    lrs = lax.dynamic_slice_in_dim(lrs_all, start, length)
    names = []

    def step(c, j, freeze):
      c, (record, step_names) = self.step(c, batch_at(start + j, j), lrs[j], freeze)
      names[:] = step_names
      return c, record

    if unroll:
      # A Python loop, not lax.scan(unroll=True): a scan of length 1 still lowers to a while loop, which is
      # what costs XLA:CPU's convolutions their fast path.
      steps = []
      for j in range(length):
        carry, record = step(carry, j, freeze=True)
        steps.append(record)
      records = jnp.stack(steps)
    else:
      width = jax.eval_shape(lambda c: step(c, 0, freeze=False)[1], carry).shape[0]
      stop = jnp.minimum(start + length, self.num_steps)

      def cond(loop):
        return (loop[0].step < stop) & ~loop[0].diverged

      def body(loop):
        c, records = loop
        j = c.step - start
        c, record = step(c, j, freeze=False)
        return c, lax.dynamic_update_index_in_dim(records, record, j, 0)

      carry, records = lax.while_loop(cond, body, (carry, jnp.full((length, width), jnp.nan, jnp.float32)))
      carry = carry._replace(counters=carry.counters.at[0].set(start + length))
    return carry, {"lr": lrs, "masked": records[:, 0] != 0, "loss": records[:, 1],
                   "smooth_loss": records[:, 2], "metrics": {k: records[:, 3 + i] for i, k in enumerate(names)}}

  def evaluate(self, carry: _Carry):
    metrics = _checks.as_metrics(self.eval_fn(self.eval_arg(carry.state)), "what eval_fn returns")
    metrics = {k: jnp.where(carry.diverged, jnp.float32(jnp.nan), v) for k, v in metrics.items()}
    return jnp.minimum(carry.step, self.num_steps) - 1, metrics

  def result(self, carry_diverged_step, records, eval_step, eval_metrics, mode):
    cut = lambda x: x[..., :self.num_steps]  # noqa: E731
    return _result.RangeTestResult(
        lr=cut(records["lr"]), loss=cut(records["loss"]), smooth_loss=cut(records["smooth_loss"]),
        masked=cut(records["masked"]), diverged_step=carry_diverged_step,
        metrics={k: cut(v) for k, v in records["metrics"].items()},
        eval_step=eval_step, eval_metrics=eval_metrics, mode=mode)


def make_spec(train_step, *, batch_size, num_steps, min_lr, max_lr, mode, staircase, smoothing,
              divergence_factor, eval_fn, eval_every, axis_name, block, eval_arg) -> Sweep:
  _checks.check_settings(batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr, mode=mode,
                         staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                         eval_fn=eval_fn, eval_every=eval_every)
  _checks.check_int("batch_size", batch_size, 1)
  return Sweep(train_step=train_step, num_steps=num_steps, padded=-(-num_steps // block) * block,
               batch_size=int(batch_size), smoothing=float(smoothing),
               divergence_factor=None if divergence_factor is None else float(divergence_factor),
               eval_fn=eval_fn, eval_arg=eval_arg, axis_name=axis_name)


def count_examples(data: Any, batch_size: int) -> int:
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(data)}
  if not sizes or None in sizes or len(sizes) != 1:
    raise ValueError(f"data must be a pytree of arrays with one common leading (example) axis, got sizes {sizes}")
  n = sizes.pop()
  if n < batch_size:
    raise ValueError(f"batch_size must be <= the number of examples, got {batch_size=} for {n} examples")
  return n


def from_arrays(data: Any, idx: jax.Array) -> BatchAt:
  """Step ``t``'s batch: rows ``idx[t]`` of the device-resident ``data``."""
  return lambda t, j: jax.tree.map(lambda x: jnp.take(x, idx[t], axis=0), data)


def _from_chunk(batches: Any) -> BatchAt:
  """The ``j``-th batch of a chunk of stacked batches (from a stream)."""
  return lambda t, j: jax.tree.map(lambda x: x[j], batches)


def scan_sweep(spec: Sweep, block: int, mode: str, lrs: jax.Array, state: Any,
               batch_at: BatchAt) -> _result.RangeTestResult:
  carry = _init_carry(state)
  num_blocks = spec.padded // block
  if spec.eval_fn is None:
    carry, records = spec.chunk(carry, lrs, batch_at, spec.padded, unroll=False)
    eval_step, eval_metrics = jnp.zeros((0,), jnp.int32), {}
  else:
    def outer(c, _):
      c, r = spec.chunk(c, lrs, batch_at, block, unroll=False)
      return c, (r, spec.evaluate(c))
    carry, (records, (eval_step, eval_metrics)) = lax.scan(outer, carry, None, length=num_blocks)
    records = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), records)
  return spec.result(carry.diverged_step, records, eval_step, eval_metrics, mode)


# XLA options for a program that runs once per sweep (the initial states): compile fast rather than run
# fast. Random initializers compile several times faster at the lowest backend optimisation level and run
# only slightly slower, once.
_RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 0}


class Programs(NamedTuple):
  sweep: Callable[..., Any] | None
  start: Callable[..., Any] | None
  order: Callable[..., Any] | None
  chunk: Callable[..., Any] | None
  evaluate: Callable[..., Any] | None


def _over_runs(fn: Callable[..., Any], in_axes: tuple[int | None, ...], runs: str) -> Callable[..., Any]:
  """``fn`` over the leading run axis: ``runs`` is ``"one"`` (the axis kept, of size 1), ``"vmap"``, or
  ``"unrolled"`` (one copy of ``fn`` per run in straight-line code, then stacked)."""
  if runs == "vmap":
    return jax.vmap(fn, in_axes=in_axes)

  def run(i, args):
    return fn(*[a if ax is None else jax.tree.map(lambda x: x[i], a) for a, ax in zip(args, in_axes)])

  def mapped(*args):
    if runs == "one":
      return jax.tree.map(lambda x: x[None], run(0, args))
    size = next(jax.tree.leaves(a)[0].shape[0] for a, ax in zip(args, in_axes) if ax is not None)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[run(i, args) for i in range(size)])
  return mapped


@functools.lru_cache(maxsize=16)
def programs(spec: Sweep, method: str, block: int, several: bool, init: Init,
             options: tuple[tuple[str, Any], ...], host_driven: bool, stream: bool) -> Programs:
  """The jitted functions of a sweep, cached: a repeated range test with the same step, initializer and
  settings (the learning rates may differ) reuses them without compiling again. ``options`` are the XLA
  compiler options, as sorted items; ``host_driven``: chunks called from a host loop, not one sweep;
  ``stream``: the chunks take stacked batches instead of indices into device-resident data.

  Several runs are vmapped, except in the chunked method: vmapped parameters turn XLA:CPU's convolutions
  into grouped ones, several times slower per run, so there each run gets its own straight-line copy of the
  step inside the one compiled chunk (compile time grows with the number of runs instead).
  """
  runs = "one" if not several else "vmap" if method == "scan" else "unrolled"
  jit = functools.partial(jax.jit, compiler_options=dict(options) or None)
  jit_once = functools.partial(jax.jit, compiler_options={**dict(options), **_RUN_ONCE_OPTIONS})

  def start(keys, given, lrs):
    """Each run's initial state, computed one run after another (``lax.map``): vmapping the initializers'
    random number generation takes much longer to compile."""
    def one(k):
      return init(jax.random.split(k)[0], given, lrs[0])
    return lax.map(one, keys) if several else jax.tree.map(lambda x: x[None], one(keys[0]))

  def order(keys, num_examples):
    """Each run's batch order in device-resident data (compiled optimised: it sorts once per epoch)."""
    return jax.vmap(lambda k: batch_indices(jax.random.split(k)[1], num_examples, spec.batch_size,
                                             spec.padded))(keys)

  if not host_driven:
    def range_test_sweep(states, keys, data, lrs, mode):
      idx = order(keys, count_examples(data, spec.batch_size))
      return _over_runs(lambda s, i: scan_sweep(spec, block, mode, lrs, s, from_arrays(data, i)),
                        (0, 0), runs)(states, idx)
    return Programs(jit(range_test_sweep, static_argnums=4), jit_once(start), None, None, None)

  def range_test_start(keys, given, lrs):
    return _over_runs(_init_carry, (0,), runs)(start(keys, given, lrs))

  unroll = method == "chunked"

  def range_test_chunk(carry, source, lrs, idx):
    if stream:
      return _over_runs(lambda c: spec.chunk(c, lrs, _from_chunk(source), block, unroll), (0,), runs)(carry)
    return _over_runs(lambda c, i: spec.chunk(c, lrs, from_arrays(source, i), block, unroll), (0, 0),
                      runs)(carry, idx)

  evaluate = jit(_over_runs(spec.evaluate, (0,), runs)) if spec.eval_fn is not None else None
  return Programs(None, jit_once(range_test_start), None if stream else jit(order, static_argnums=1),
                   jit(range_test_chunk, donate_argnums=0), evaluate)
