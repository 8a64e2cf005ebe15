"""The learning-rate range test (Smith 2015, section 3.3) as one compiled sweep.

"Run your model for several epochs while letting the learning rate increase linearly between low and high
LR values ... plot the accuracy versus learning rate." Here the sweep is compiled: the batches are drawn
inside it from device-resident arrays (an on-device shuffle per epoch), or come from a stream of host
batches stacked into chunks; the learning rate is an input of each step, the loss is smoothed and watched
for divergence on the device (the sweep stops there), and the host never waits for a step. Nothing the
caller passes is modified: the sweep is a pure function, so there is nothing to "reset" afterwards.

Two ways to drive a sweep:

* ``range_test(data, loss_fn=..., params=..., optimizer=...)``: a plain ``loss_fn(params, batch)`` and an
  optax optimizer *factory* ``learning_rate -> GradientTransformation`` (``optax.adam``,
  ``functools.partial(optax.sgd, momentum=0.9)``, a factory built with ``optax.inject_hyperparams``...);
  ``params`` may be a Flax NNX module (BatchNorm and Dropout included), which the sweep splits itself.
* ``range_test(data, train_step=..., state=...)``: your own ``train_step(state, batch, lr) -> (state,
  metrics)`` (the step a trainer already has; this is how a Flax model with BatchNorm statistics plugs in).

Two ways to run it, chosen by backend (``method="auto"``):

* ``"scan"``: compiled loops (``lax.while_loop``s that stop at divergence): the whole sweep in one dispatch
  (after the one that computes the initial states), or, when the host drives it (a stream, or progress
  reports), one loop per chunk of ``chunk_size`` steps.
  Used on accelerators, and on CPU for steps without convolutions.
* ``"chunked"``: one compiled program of ``chunk_size`` fully unrolled steps, dispatched by a host loop
  that never waits for the device. Used on XLA:CPU for steps with convolutions: inside XLA:CPU's while
  loops the backward convolutions lose their fast path (an order of magnitude slower per step); unrolled,
  they keep it. An outer ``lax.scan`` over unrolled chunks is no remedy: the chunk is again a while-loop body.

A host-driven sweep keeps at most two chunks in flight: after dispatching one it collects the records of
the one before (the device has the next queued meanwhile) and reports progress from them, and it stops
once every run has diverged. A stream's next chunk is read and copied to the device while the device
trains on the current one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from clr_optax import _nnx
from clr_optax import suggest as suggest_lib

TrainStep = Callable[[Any, Any, jax.Array], tuple[Any, Mapping[str, jax.Array]]]
OptimizerFactory = Callable[[Any], optax.GradientTransformation]
BatchAt = Callable[[jax.Array, Any], Any]  # (step of the sweep, index in the chunk) -> batch

MODES = ("linear", "exponential")
METHODS = ("auto", "scan", "chunked")


# ----------------------------------------------------------------------------------------------------------
# The result.

@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["lr", "loss", "smooth_loss", "masked", "diverged_step", "metrics", "eval_step",
                 "eval_metrics"],
    meta_fields=["mode"])
@dataclasses.dataclass(frozen=True)
class RangeTestResult:
  """The records of one or several sweeps: arrays whose last axis is the step (or the evaluation).

  Any leading axes index runs: ``range_test`` returns ``[num_runs, num_steps]`` arrays (``num_runs`` is 1
  for a single run); under your own ``vmap``/``pmap`` of `make_range_test` the mapped axes lead. Masked
  steps (at and after divergence) hold NaN in every float record.

  Attributes:
    lr: the learning rate of each step.
    loss: the training loss each step reported (on the batch, before that step's update).
    smooth_loss: the bias-corrected exponential moving average of the loss (the divergence test's input).
    masked: True from the step that diverged on: its update and all later steps count for nothing (the
      scan method stops there; the chunked method discards their updates).
    diverged_step: index of the step that diverged, -1 where the run did not diverge.
    metrics: every scalar the step reported (``loss``, ``accuracy`` where reported, ...), per step.
    eval_step: the step after which each held-out evaluation ran (``[..., 0]`` without ``eval_fn``).
    eval_metrics: the held-out metrics per evaluation (NaN where the run had already diverged).
    mode: ``"linear"`` or ``"exponential"``, how the learning rate rose.
  """
  lr: Any
  loss: Any
  smooth_loss: Any
  masked: Any
  diverged_step: Any
  metrics: dict[str, Any]
  eval_step: Any
  eval_metrics: dict[str, Any]
  mode: str = "linear"

  @property
  def accuracy(self) -> Any:
    """The training accuracy per step, or None when the step reported none."""
    return self.metrics.get("accuracy")

  @property
  def num_runs(self) -> int:
    """How many runs the leading axes hold."""
    return int(np.prod(np.shape(self.loss)[:-1], dtype=np.int64))

  @property
  def diverged_lr(self) -> np.ndarray:
    """The learning rate of the step that diverged, per run (NaN where a run did not diverge)."""
    lr = np.asarray(self.lr, np.float64)
    step = np.asarray(self.diverged_step)
    out = np.take_along_axis(lr, np.maximum(step, 0)[..., None], axis=-1)[..., 0]
    return np.where(step >= 0, out, np.nan)

  @property
  def onset_step(self) -> np.ndarray:
    """Per run, the step where the loss began the rise that ended in divergence (-1 without divergence).

    It is the step of the lowest loss before ``diverged_step``: the update made at this step, with
    ``lr[onset_step]``, is the first of the final rise. On a deterministic problem whose loss is
    dominated by its unstable direction this is the first learning rate past the stability limit (for SGD
    on a quadratic, ``2 / lambda_max``); the divergence rule itself fires a few steps later, once the
    smoothed loss has grown ``divergence_factor``-fold.
    """
    loss = np.asarray(self.loss, np.float64)
    step = np.asarray(self.diverged_step)
    before = np.where(np.arange(loss.shape[-1]) < step[..., None], loss, np.inf)
    before = np.where(np.isnan(before), np.inf, before)
    return np.where(step > 0, np.argmin(before, axis=-1), -1)

  def suggest(self, **kwargs: Any) -> suggest_lib.Suggestion:
    """Suggested ``base_lr`` and ``max_lr`` with their reasons; see `clr_optax.suggest_bounds`."""
    return suggest_lib.suggest_bounds(self, **kwargs)

  def plot(self, **kwargs: Any) -> Any:
    """A matplotlib Figure of the sweep; see `clr_optax.plot_range_test`."""
    from clr_optax import plotting  # pylint: disable=g-import-not-at-top
    return plotting.plot_range_test(self, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# The pieces of the sweep.

class OptaxState(NamedTuple):
  """The state of the sweep when it is driven by a ``loss_fn`` and an optax optimizer factory."""
  params: Any
  opt_state: Any


@dataclasses.dataclass(frozen=True)
class _OptaxStep:
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
    out = _form(self.loss_fn, state.params, batch)
    aux = isinstance(out, tuple)
    loss = out[0] if aux and len(out) == 2 else out
    if aux and not (len(out) == 2 and isinstance(out[1], Mapping)) or not hasattr(loss, "dtype"):
      raise TypeError(f"loss_fn must return a scalar loss or (loss, metrics dict), got {_describe(out)}")
    if loss.shape != () or not jnp.issubdtype(loss.dtype, jnp.floating):
      raise ValueError(f"loss_fn must return a scalar loss (a float of shape ()), got {_describe(loss)}")
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


@dataclasses.dataclass(frozen=True)
class _Init:
  """Makes a run's initial state from its key: ``fn(key)`` when given, else the ``state`` argument."""
  fn: Callable[[jax.Array], Any] | None
  optax_step: _OptaxStep | None

  def __call__(self, key, given, lr0):
    state = self.fn(key) if self.fn is not None else given
    return self.optax_step.init(state, lr0) if self.optax_step is not None else state


def _identity(state):
  return state


def _params_of(state):
  return state.params


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
  _check_sweep(min_lr, max_lr, num_steps, mode, staircase)
  k = staircase or 1
  levels = -(-num_steps // k)
  frac = np.arange(levels, dtype=np.float64) / (levels - 1)
  if mode == "linear":
    values = min_lr + (max_lr - min_lr) * frac
  else:
    values = min_lr * (max_lr / min_lr) ** frac
  return values[np.arange(num_steps) // k]


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
  """A concrete real scalar: a Python or numpy number, or a 0-d numeric array (never a bool)."""
  if isinstance(value, (bool, np.bool_, jax.core.Tracer)) or np.ndim(value) != 0:
    return False
  if isinstance(value, (int, float, np.integer, np.floating)):
    return True
  return isinstance(value, (np.ndarray, jax.Array)) and np.issubdtype(value.dtype, np.number) \
      and not np.issubdtype(value.dtype, np.complexfloating)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
  if not (_is_int(value) and value >= low and (high is None or value <= high)):
    span = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name} must be an int {span}, got {name}={value!r}")


def _check_sweep(min_lr, max_lr, num_steps, mode, staircase=None):
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode=}")
  _check_int("num_steps", num_steps, 2)
  if not (_is_real(min_lr) and math.isfinite(min_lr) and min_lr >= 0):
    raise ValueError(f"min_lr must be a finite number >= 0, got {min_lr=}")
  if mode == "exponential" and min_lr <= 0:
    raise ValueError(f"an exponential sweep needs min_lr > 0, got {min_lr=}")
  if not (_is_real(max_lr) and math.isfinite(max_lr) and max_lr > min_lr):
    raise ValueError(f"max_lr must be a finite number > min_lr, got {min_lr=}, {max_lr=}")
  if staircase is not None:
    _check_int("staircase", staircase, 1, num_steps - 1)


def _batch_indices(key: jax.Array, num_examples: int, batch_size: int, num_steps: int) -> jax.Array:
  """``[num_steps, batch_size]`` example indices: a fresh permutation per epoch, the remainder dropped."""
  per_epoch = num_examples // batch_size
  num_epochs = -(-num_steps // per_epoch)
  keys = jax.random.split(key, num_epochs)
  perms = jax.vmap(lambda k: jax.random.permutation(k, num_examples)[:per_epoch * batch_size])(keys)
  return perms.reshape(num_epochs * per_epoch, batch_size)[:num_steps].astype(jnp.int32)


def _as_metrics(out: Any, what: str) -> dict[str, jax.Array]:
  if isinstance(out, Mapping):
    items = dict(out)
  else:
    items = {"value": out}
  metrics = {}
  for k, v in items.items():
    try:
      v = jnp.asarray(v)
    except (TypeError, ValueError):  # a string, None, an object
      v = None
    if v is None or not (jnp.issubdtype(v.dtype, jnp.number) or v.dtype == bool):
      raise TypeError(f"{what} must be a number or a dict of numbers, got {out!r}"
                      + ("" if not isinstance(out, Mapping) else f" (its {k!r} is not a number)"))
    if v.shape != ():
      raise ValueError(f"{what} must be scalars, got shape {v.shape} for {k!r}")
    metrics[k] = v.astype(jnp.float32)
  return metrics


def _form(fn: Callable[..., Any], *args: Any) -> Any:
  """What ``fn(*args)`` returns, each array as a ``ShapeDtypeStruct`` and anything else as it is (a string, a
  float), traced abstractly: nothing runs, so effects such as debug callbacks do not fire."""
  form = []

  def probe(*a):
    out = fn(*a)
    form.append(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x,
                             out))
    return ()

  jax.eval_shape(probe, *args)
  return form[0]


def _describe(value: Any) -> str:
  """A short description of a traced value: its pytree with each array as dtype[shape]."""
  return str(jax.tree.map(lambda x: f"{jnp.dtype(x.dtype).name}{list(x.shape)}" if hasattr(x, "dtype") else repr(x),
                          value))


def _check_same_state(old: Any, new: Any) -> None:
  """The state ``train_step`` returns must be a pytree of the structure, shapes and dtypes it received: the
  sweep carries it from step to step in one compiled loop."""
  if jax.tree.structure(old) != jax.tree.structure(new):
    raise ValueError(f"train_step must return a state of the structure it receives, got {_describe(new)} for "
                     f"{_describe(old)}")
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(old), jax.tree.leaves(new)):
    a, b = jax.typeof(a), jax.typeof(jnp.asarray(b))
    if a.shape != b.shape or a.dtype != b.dtype:
      raise ValueError(f"train_step must return a state of the shapes and dtypes it receives, got "
                       f"{b.str_short()} for {a.str_short()} at state{jax.tree_util.keystr(path)}")


@dataclasses.dataclass(frozen=True)
class _Sweep:
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
      raise ValueError(f"train_step must return (state, metrics), got {_describe(out)}")
    new_state, metrics = out
    _check_same_state(carry.state, new_state)
    if not (isinstance(metrics, Mapping) and "loss" in metrics):
      raise ValueError(f"train_step must return (state, metrics) with a 'loss' in metrics, got {metrics=}")
    metrics = _as_metrics(metrics, "the metrics of train_step (or of loss_fn's (loss, metrics))")
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
    metrics = _as_metrics(self.eval_fn(self.eval_arg(carry.state)), "what eval_fn returns")
    metrics = {k: jnp.where(carry.diverged, jnp.float32(jnp.nan), v) for k, v in metrics.items()}
    return jnp.minimum(carry.step, self.num_steps) - 1, metrics

  def result(self, carry_diverged_step, records, eval_step, eval_metrics, mode):
    cut = lambda x: x[..., :self.num_steps]  # noqa: E731
    return RangeTestResult(
        lr=cut(records["lr"]), loss=cut(records["loss"]), smooth_loss=cut(records["smooth_loss"]),
        masked=cut(records["masked"]), diverged_step=carry_diverged_step,
        metrics={k: cut(v) for k, v in records["metrics"].items()},
        eval_step=eval_step, eval_metrics=eval_metrics, mode=mode)


def _contains_convolution(fn: Callable[..., Any], *args: Any) -> bool:
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
  return _contains_convolution(train_step, state, batch.tree, jnp.float32(0.0))


# ----------------------------------------------------------------------------------------------------------
# Public entry points.

def make_range_test(
    train_step: TrainStep,
    *,
    batch_size: int,
    num_steps: int,
    min_lr: float,
    max_lr: float,
    mode: str = "linear",
    staircase: int | None = None,
    smoothing: float = 0.98,
    divergence_factor: float | None = 4.0,
    eval_fn: Callable[[Any], Any] | None = None,
    eval_every: int | None = None,
    axis_name: str | None = None,
) -> Callable[[Any, Any, jax.Array], RangeTestResult]:
  """A pure function ``sweep(state, data, key) -> RangeTestResult`` that runs one whole sweep as one loop.

  Use it to compose the sweep with your own transformations, e.g. ``jax.pmap`` across devices
  (`range_test` is the convenient driver and also picks the CPU-friendly path). The arguments are those
  of `range_test`; ``data`` is a pytree of arrays with a leading example axis, ``key`` drives the shuffle,
  ``state`` is the step's initial state.

  Args:
    train_step: ``train_step(state, batch, lr) -> (state, metrics)``, metrics with a scalar ``"loss"``.
    batch_size, num_steps, min_lr, max_lr, mode, staircase, smoothing, divergence_factor, eval_fn, eval_every:
      as in `range_test` (``eval_fn`` receives the state).
    axis_name: under ``pmap`` with data parallelism (each device a shard of every batch), the mapped axis:
      the loss is averaged over it before the divergence test, so that all devices stop together. Leave it
      None when the devices run independent sweeps.

  Returns:
    ``sweep(state, data, key)``, to be wrapped in ``jax.jit``, ``jax.vmap`` or ``jax.pmap``.

  Examples:
    >>> sweep = clr_optax.make_range_test(step, batch_size=32, num_steps=100,  # doctest: +SKIP
    ...                                   min_lr=1e-4, max_lr=1.0, mode="exponential")
    >>> results = jax.pmap(sweep)(states, data, keys)  # doctest: +SKIP
  """
  spec = _make_spec(train_step, batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr,
                    mode=mode, staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                    eval_fn=eval_fn, eval_every=eval_every, axis_name=axis_name, block=eval_every or num_steps,
                    eval_arg=_identity)
  lrs = _padded_lrs(min_lr, max_lr, num_steps, mode, spec.padded, staircase)

  def sweep(state: Any, data: Any, key: jax.Array) -> RangeTestResult:
    idx = _batch_indices(key, _num_examples(data, batch_size), batch_size, spec.padded)
    return _scan_sweep(spec, eval_every or num_steps, mode, jnp.asarray(lrs), state, _from_arrays(data, idx))

  return sweep


def _padded_lrs(min_lr, max_lr, num_steps, mode, padded, staircase) -> np.ndarray:
  lrs = learning_rates(min_lr, max_lr, num_steps, mode, staircase)
  return np.concatenate([lrs, np.full(padded - num_steps, lrs[-1])]).astype(np.float32)


def _check_settings(*, batch_size, num_steps, min_lr, max_lr, mode, staircase, smoothing, divergence_factor,
                    eval_fn, eval_every) -> None:
  """The checks of the numeric settings shared by `range_test` and `make_range_test` (``batch_size`` may
  be None: a stream's batches say it)."""
  _check_sweep(min_lr, max_lr, num_steps, mode, staircase)
  if batch_size is not None:
    _check_int("batch_size", batch_size, 1)
  if not (_is_real(smoothing) and 0.0 <= smoothing < 1.0):
    raise ValueError(f"smoothing must be a number in [0, 1) (0: no smoothing), got {smoothing=}")
  if divergence_factor is not None and not (_is_real(divergence_factor) and math.isfinite(divergence_factor)
                                            and divergence_factor > 1):
    raise ValueError(f"divergence_factor must be a finite number > 1 or None, got {divergence_factor=}")
  if (eval_fn is None) != (eval_every is None):
    raise ValueError(f"eval_fn and eval_every go together, got {eval_fn=}, {eval_every=}")
  if eval_fn is not None and not callable(eval_fn):
    raise TypeError(f"eval_fn must be a function of the state (or params) -> metrics, got {eval_fn=}")
  if eval_every is not None and not (_is_int(eval_every) and 1 <= eval_every <= num_steps):
    raise ValueError(f"eval_every must be an int in [1, num_steps], got {eval_every=}, {num_steps=}")


def _make_spec(train_step, *, batch_size, num_steps, min_lr, max_lr, mode, staircase, smoothing,
               divergence_factor, eval_fn, eval_every, axis_name, block, eval_arg) -> _Sweep:
  _check_settings(batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr, mode=mode,
                  staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor, eval_fn=eval_fn,
                  eval_every=eval_every)
  _check_int("batch_size", batch_size, 1)
  return _Sweep(train_step=train_step, num_steps=num_steps, padded=-(-num_steps // block) * block,
                batch_size=int(batch_size), smoothing=float(smoothing),
                divergence_factor=None if divergence_factor is None else float(divergence_factor),
                eval_fn=eval_fn, eval_arg=eval_arg, axis_name=axis_name)


def _num_examples(data: Any, batch_size: int) -> int:
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(data)}
  if not sizes or None in sizes or len(sizes) != 1:
    raise ValueError(f"data must be a pytree of arrays with one common leading (example) axis, got sizes {sizes}")
  n = sizes.pop()
  if n < batch_size:
    raise ValueError(f"batch_size must be <= the number of examples, got {batch_size=} for {n} examples")
  return n


def _from_arrays(data: Any, idx: jax.Array) -> BatchAt:
  """Step ``t``'s batch: rows ``idx[t]`` of the device-resident ``data``."""
  return lambda t, j: jax.tree.map(lambda x: jnp.take(x, idx[t], axis=0), data)


def _from_chunk(batches: Any) -> BatchAt:
  """The ``j``-th batch of a chunk of stacked batches (from a stream)."""
  return lambda t, j: jax.tree.map(lambda x: x[j], batches)


def _scan_sweep(spec: _Sweep, block: int, mode: str, lrs: jax.Array, state: Any, batch_at: BatchAt) -> RangeTestResult:
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


# ----------------------------------------------------------------------------------------------------------
# Progress.

class RangeTestProgress(NamedTuple):
  """What a ``progress`` callback of `range_test` receives, each time a chunk of steps has finished (and
  once more, at ``step == num_steps``, when the sweep stopped early because every run had diverged).

  Attributes:
    step: steps done (the same for every run).
    num_steps: steps in the sweep.
    lr: the learning rate of the last step done.
    smooth_loss: float ``[num_runs]``, each run's smoothed loss after that step (NaN once it diverged).
    diverged: bool ``[num_runs]``, whether each run has diverged.
  """
  step: int
  num_steps: int
  lr: float
  smooth_loss: np.ndarray
  diverged: np.ndarray


class _Bar:
  """The default display of ``progress=True``: a tqdm bar with the learning rate and the smoothed loss (the
  mean over the runs that have not diverged)."""

  def __init__(self, num_steps: int, num_runs: int):
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    self.bar = tqdm(total=num_steps, desc="LR range test", unit="step", dynamic_ncols=True)
    self.num_runs = num_runs

  def __call__(self, p: RangeTestProgress) -> None:
    live = ~p.diverged
    loss = float(np.mean(p.smooth_loss[live])) if live.any() else math.nan
    postfix = {"lr": f"{p.lr:.4g}", "smooth loss": f"{loss:.4g}"}
    if p.diverged.any():
      postfix["diverged"] = f"{int(p.diverged.sum())}/{self.num_runs}"
    self.bar.set_postfix(postfix, refresh=False)
    self.bar.update(max(p.step - self.bar.n, 0))

  def close(self) -> None:
    self.bar.close()


# ----------------------------------------------------------------------------------------------------------
# A stream of host batches.

class _StreamEnded(Exception):
  """The iterator ran out (internal: `range_test` turns it into a ValueError, unless every run diverged)."""


def _is_stream(data: Any) -> bool:
  """Whether ``data`` is an iterable of batches rather than a pytree of arrays (dicts, lists and tuples are
  pytrees: pass ``iter(batches)`` for a list of batches)."""
  if isinstance(data, (Mapping, list, tuple, np.ndarray, jax.Array)) or not jax.tree_util.all_leaves([data]):
    return False
  return hasattr(data, "__iter__") or hasattr(data, "__next__")


class _Stream:
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
      raise _StreamEnded() from None
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


def range_test(
    data: Any,
    *,
    batch_size: int | None = None,
    num_steps: int,
    min_lr: float,
    max_lr: float,
    key: jax.Array | int = 0,
    train_step: TrainStep | None = None,
    state: Any = None,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    params: Any = None,
    optimizer: OptimizerFactory | optax.GradientTransformation | None = None,
    mode: str = "linear",
    staircase: int | None = None,
    num_runs: int = 1,
    smoothing: float = 0.98,
    divergence_factor: float | None = 4.0,
    eval_fn: Callable[[Any], Any] | None = None,
    eval_every: int | None = None,
    method: str = "auto",
    chunk_size: int | None = None,
    progress: bool | Callable[[RangeTestProgress], Any] = True,
    compiler_options: Mapping[str, Any] | None = None,
) -> RangeTestResult:
  """Runs the LR range test: ``num_steps`` training steps while the LR rises from ``min_lr`` to ``max_lr``.

  Step ``i`` trains with ``learning_rates(min_lr, max_lr, num_steps, mode, staircase)[i]`` on a batch drawn
  on the device from ``data`` (a fresh permutation each epoch), or on the ``i``-th batch of a stream. Each
  step's loss enters a bias-corrected moving average (``smoothing`` is its decay, as in fastai); once that
  smoothed loss exceeds ``divergence_factor`` times the best so far (more exactly ``smooth - best > (factor
  - 1) * |best|``), or the loss is not finite, that step and all later ones are masked: their records are
  NaN and they do not train (the scan method stops there, so they cost nothing; the chunked method discards
  their updates within a chunk, and a host-driven sweep dispatches no chunk after the one in which every
  run was seen to diverge). ``result.diverged_step`` says where.

  Give either ``train_step`` and ``state``, or ``loss_fn``, ``params`` and ``optimizer``:

  * ``train_step(state, batch, lr) -> (state, metrics)``: any pure step; ``metrics`` is a dict of scalars
    with at least ``"loss"`` (``"accuracy"`` is used by the paper's rule in `suggest_bounds`).
  * ``loss_fn(params, batch) -> loss`` or ``-> (loss, metrics)``: with ``optimizer`` a factory
    ``learning_rate -> optax.GradientTransformation`` (``optax.adam``, ``functools.partial(optax.sgd,
    momentum=0.9)``) or a transformation built with ``optax.inject_hyperparams`` (its learning rate is set
    each step). ``eval_fn`` then receives the params.
  * The same with ``params`` a Flax NNX module: ``loss_fn(model, batch)`` and ``eval_fn(model)`` receive a
    module merged from the swept state; the optimizer trains its ``nnx.Param`` variables and the rest of
    its state (BatchNorm statistics, Dropout's random stream) is what the forward pass leaves. The caller's
    module is not modified; it trains in the mode it is in (``model.train()``), and every run starts from it.

  Gradient accumulation: with ``optax.MultiSteps`` (``lambda lr: optax.MultiSteps(optax.sgd(lr), k)``, or
  ``optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=0.0), k)``) each step of the sweep
  is one micro-batch and the update applied after ``k`` of them uses the rate of the last; ``staircase=k``
  holds one rate per accumulation window, and `suggest_bounds` then reads one point per window.

  A stream (``data`` an iterable of batches: a generator, a grain or tfds iterator, a PyTorch-style
  loader) is fed by chunks: the host stacks the batches of the next chunk and copies them to the device
  while the device trains on the current one, and never waits for a step. Every run trains on the same
  batches, in the stream's order (the runs differ by their initial state). The stream is read one batch per
  step and no further; once every run has diverged, reading stops within two chunks (divergence is seen
  chunk by chunk, a step later than the device sees it), and the steps not run are masked.

  Args:
    data: a pytree of arrays with a common leading example axis, e.g. ``{"image": uint8 [N, H, W, 3],
      "label": int32 [N]}``, copied to the device once (batches are ``jnp.take`` of it along that axis); or
      an iterable of batches, each a pytree of arrays (numpy, or anything ``np.asarray`` reads) of the same
      structure, shapes and dtypes, at least ``num_steps`` of them. A list or tuple is a pytree: pass
      ``iter(batches)`` for a list of batches.
    batch_size: examples per step, drawn from array ``data``; a stream's batches set it (when given, it must
      match them).
    num_steps: number of steps (>= 2), i.e. learning rates tried.
    min_lr: the learning rate of the first step.
    max_lr: the learning rate of the last step.
    key: PRNG key (or int seed) for the shuffles and, when ``state``/``params`` is a callable, the inits;
      split into one key per run. A batch of typed keys (``jax.random.split(jax.random.key(0), K)``) gives
      each run its key (and sets ``num_runs``): run ``i`` then equals a single run with ``key=keys[i:i+1]``.
    train_step: a step function, see above.
    state: the step's initial state, or a function ``key -> state`` (runs then start from different inits).
    loss_fn: a loss function, see above.
    params: the initial parameters, a function ``key -> params``, or a Flax NNX module (see above). A
      callable that holds arrays (a module of another library) or a Flax Linen module is refused.
    optimizer: an optax optimizer factory (or inject_hyperparams transformation, also inside
      ``optax.MultiSteps`` or ``optax.chain``).
    mode: ``"linear"`` (the paper) or ``"exponential"`` (fastai, pytorch-lr-finder).
    staircase: hold each learning rate for this many steps (DeepSpeed's staircase sweep; see
      `learning_rates`); None rises every step. `suggest_bounds` reads a staircase sweep level by level.
    num_runs: independent runs (different shuffles; different inits when ``state``/``params`` is a
      callable), in the same compiled program: vmapped, or with the chunked method one straight-line copy
      of the step per run (XLA:CPU runs vmapped convolutions several times slower).
    smoothing: decay of the loss's moving average, in [0, 1); 0 disables smoothing.
    divergence_factor: the "loss exploded" ratio (fastai uses 4); None keeps only the non-finite test.
    eval_fn: a held-out metric, ``eval_fn(state_or_params) -> scalar or dict of scalars``, run every
      ``eval_every`` steps (and after the last step) inside the compiled sweep.
    eval_every: steps between evaluations.
    method: ``"scan"`` (compiled while loops), ``"chunked"`` (compiled chunks of ``chunk_size`` unrolled
      steps), or ``"auto"``: chunked on the CPU backend when the step contains a convolution, scan
      otherwise.
    chunk_size: steps per compiled call when the host drives the sweep (always for the chunked method and
      for a stream; for the scan method when ``progress`` is on; otherwise the whole sweep is one call).
      Default: 1 for the chunked method (its compile time grows with the chunk), 16 otherwise. With
      ``eval_fn``, a divisor of ``eval_every`` is used: for the chunked method the largest not above
      ``chunk_size``, otherwise the nearest.
    progress: True shows a tqdm bar (steps, the current learning rate, the smoothed loss; the mean over the
      runs that have not diverged); a callable receives a `RangeTestProgress` instead; False shows nothing.
      It is updated from the records of each chunk as the device finishes it (the host has dispatched the
      chunks already, or with a stream the next one), so the device never waits for it.
    compiler_options: XLA options for compiling the sweep's programs, as in ``jax.jit(...,
      compiler_options=...)``. On jaxlib 0.10's XLA:CPU, ``{"xla_cpu_experimental_ynn_fusion_type":
      "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}`` runs convolutions on XLA's own kernels instead of YNNPACK's,
      the faster of the two for this project's convnets (docs: "Performance and benchmarks");
      `experiments.parallel.compiler_options` gives what the project's trainer uses. The program that
      computes the initial states runs once per sweep and is compiled with these options at XLA's lowest
      backend optimisation level (``xla_backend_optimization_level=0``): random initializers compile several
      times faster there.

  Returns:
    A `RangeTestResult` of numpy arrays (the records come back to the host once, at the end) with
    ``[num_runs, num_steps]`` records; ``.suggest()`` and ``.plot()`` read it.

  Raises:
    ValueError: a bad argument (named); a stream that ran out before ``num_steps`` batches (unless every
      run had diverged), or whose batches differ in structure, shape or dtype.

  Examples:
    >>> import clr_optax, optax, jax.numpy as jnp, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    >>> data = {"x": x, "y": x @ np.array([1.0, -2.0, 0.5], np.float32)}
    >>> loss_fn = lambda w, b: jnp.mean((b["x"] @ w - b["y"]) ** 2)
    >>> result = clr_optax.range_test(data, loss_fn=loss_fn, params=jnp.zeros(3), optimizer=optax.sgd,
    ...                               batch_size=32, num_steps=60, min_lr=1e-3, max_lr=10.0,
    ...                               mode="exponential", progress=False)
    >>> bool(result.masked[0, -1]), result.suggest().max_lr < 1.0  # 2 / lambda_max = 0.94 here
    (True, True)

    The same sweep over a stream of host batches (here a generator of numpy batches):

    >>> def batches(rng=np.random.default_rng(1)):
    ...   while True:
    ...     i = rng.integers(0, 256, 32)
    ...     yield {"x": data["x"][i], "y": data["y"][i]}
    >>> streamed = clr_optax.range_test(batches(), loss_fn=loss_fn, params=jnp.zeros(3), optimizer=optax.sgd,
    ...                                 num_steps=60, min_lr=1e-3, max_lr=10.0, mode="exponential",
    ...                                 progress=False)
    >>> bool(streamed.masked[0, -1]), streamed.suggest().max_lr < 1.0
    (True, True)
  """
  _check_settings(batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr, mode=mode,
                  staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor, eval_fn=eval_fn,
                  eval_every=eval_every)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method=}")
  _check_int("num_runs", num_runs, 1)
  if chunk_size is not None:
    _check_int("chunk_size", chunk_size, 1)
  if not (isinstance(progress, bool) or callable(progress)):
    raise ValueError(f"progress must be True, False or a callable taking a RangeTestProgress, got {progress=}")
  if (train_step is None) == (loss_fn is None):
    raise ValueError("give either train_step (with state) or loss_fn (with params and optimizer), got "
                     f"{train_step=}, {loss_fn=}")
  for name, fn, form in (("train_step", train_step, "(state, batch, lr) -> (state, metrics)"),
                         ("loss_fn", loss_fn, "(params, batch) -> loss or (loss, metrics)")):
    if fn is not None and not callable(fn):
      raise TypeError(f"{name} must be a function {form}, got {name}={fn!r}")
  if optimizer is not None and not (callable(optimizer) or isinstance(optimizer, optax.GradientTransformation)):
    raise TypeError("optimizer must be an optax optimizer factory learning_rate -> GradientTransformation "
                    f"(optax.sgd, functools.partial(optax.sgd, momentum=0.9)), got {optimizer=}")
  if train_step is not None:
    if state is None:
      raise ValueError("train_step needs state (an initial state, or a function key -> state), got state=None")
    if params is not None or optimizer is not None:
      raise ValueError("params and optimizer go with loss_fn; with train_step put them in state")
    if _nnx.is_nnx_module(state):
      raise ValueError(f"state is a Flax NNX module ({type(state).__name__}): give it as params= with loss_fn "
                       "and optimizer (range_test splits it), or give train_step the pure state of nnx.split "
                       "and merge the module inside it (docs/guides/nnx.md)")
    _check_init_fn("state", state)
    init = _Init(state if callable(state) else None, None)
    given = None if callable(state) else state
    eval_arg = _identity
  else:
    if params is None or optimizer is None:
      raise ValueError(f"loss_fn needs params and optimizer, got {params=}, {optimizer=}")
    if state is not None:
      raise ValueError("state goes with train_step; with loss_fn give params")
    train_step = _OptaxStep(loss_fn, optimizer)
    eval_arg = _params_of
    if _nnx.is_nnx_module(params):  # swept as its split state: the caller's module is never modified
      train_step, eval_arg, params = _nnx.split(params, train_step)
    _check_init_fn("params", params)
    init = _Init(params if callable(params) else None, train_step)
    given = None if callable(params) else params

  stream = _Stream(data, num_steps, batch_size) if _is_stream(data) else None
  if stream is not None:
    batch_size, num_examples, example = stream.batch_size, None, stream.example
  else:
    if batch_size is None:
      raise ValueError("batch_size is required when data is a pytree of arrays (a stream's batches set it)")
    data = jax.device_put(data)
    num_examples = _num_examples(data, batch_size)
    example = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype), data)
  run_keys, num_runs = _run_keys(key, num_runs)

  if method == "auto":
    method = "scan"
    if jax.default_backend() == "cpu":
      probe_given = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), given)
      if _step_has_convolution(train_step, init, _Hashable(probe_given), _Hashable(example),
                               jax.random.key_data(run_keys[0]).shape):
        method = "chunked"

  host_driven = stream is not None or progress is not False or method == "chunked"
  block = _block(method, host_driven, chunk_size, eval_every, num_steps)
  spec = _make_spec(train_step, batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr,
                    mode=mode, staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                    eval_fn=eval_fn, eval_every=eval_every, axis_name=None, block=block, eval_arg=eval_arg)
  lrs = _padded_lrs(min_lr, max_lr, num_steps, mode, spec.padded, staircase)
  options = tuple(sorted(dict(compiler_options or {}).items()))
  programs = _programs(spec, method, block, num_runs > 1, init, options, host_driven, stream is not None)

  if not host_driven:
    device_lrs = jnp.asarray(lrs)
    states = programs.start(run_keys, given, device_lrs)
    return jax.device_get(programs.sweep(states, run_keys, data, device_lrs, mode))

  listener = progress if callable(progress) else _Bar(num_steps, num_runs) if progress else None
  try:
    return _drive(spec, programs, block, mode, lrs, run_keys, given, data if stream is None else None, num_examples,
                  stream, eval_every, num_runs, listener)
  finally:
    if isinstance(listener, _Bar):
      listener.close()


def _check_init_fn(name: str, value: Any) -> None:
  """A callable ``params`` or ``state`` is called with a PRNG key: refuse the callables that are models."""
  if not callable(value):
    return
  if _nnx.is_linen_module(value):
    raise ValueError(f"{name} is a Flax Linen module ({type(value).__name__}), which holds no parameters: pass "
                     f"its variables (model.init(key, x)) or a function key -> variables, and call model.apply "
                     "in your loss_fn or train_step")
  if not isinstance(value, jax.tree_util.Partial) and any(isinstance(leaf, (jax.Array, np.ndarray))
                                                          for leaf in jax.tree.leaves(value)):
    raise ValueError(f"{name} is a callable that holds arrays ({type(value).__name__}), so not a function key -> "
                     f"{name}: pass the arrays themselves, or that function")


def _run_keys(key: Any, num_runs: int) -> tuple[jax.Array, int]:
  """The runs' keys and their number from `range_test`'s ``key``: an int seed, a key, or a batch of keys
  (typed, or raw ``uint32`` key data as ``jax.random.PRNGKey`` makes)."""
  if isinstance(key, (np.ndarray, jax.Array)) and not isinstance(key, jax.core.Tracer) and key.ndim == 0 \
      and jnp.issubdtype(key.dtype, jnp.integer):
    key = key.item()  # a 0-d integer array is a seed
  if _is_int(key):
    # jax.random.key keeps 32 bits of a seed without x64: a larger seed would silently repeat a smaller one.
    if not 0 <= key < 2**32:
      raise ValueError(f"an int key is a seed in [0, 2**32), got key={key!r}")
    key = jax.random.key(int(key))
  if not isinstance(key, (jax.Array, np.ndarray)) or isinstance(key, jax.core.Tracer):
    raise TypeError(f"key must be an int seed, a key (jax.random.key(seed)) or a batch of keys, got key={key!r}")
  typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
  raw_shape = jax.random.key_data(jax.random.key(0)).shape
  if not (typed and key.ndim <= 1 or key.dtype == np.uint32 and key.ndim in (1, 2) and key.shape[-1:] == raw_shape):
    raise TypeError(f"key must be an int seed, a key (jax.random.key(seed)) or a batch of keys, got key={key!r}")
  key = jnp.asarray(key)
  if key.ndim == (1 if typed else 2):  # a batch of keys
    if num_runs not in (1, key.shape[0]):
      raise ValueError(f"a batch of keys sets the number of runs, got {key.shape[0]} keys and {num_runs=}")
    return key, key.shape[0]
  return jax.random.split(key, num_runs), num_runs


def _block(method: str, host_driven: bool, chunk_size: int | None, eval_every: int | None, num_steps: int) -> int:
  """Steps per compiled call (see `range_test`'s ``chunk_size``)."""
  if not host_driven:  # the scan method in one call: evaluations split its loop
    return eval_every or num_steps
  if method == "chunked":
    size = chunk_size or 1
    return size if eval_every is None else max(d for d in range(1, min(size, eval_every) + 1) if eval_every % d == 0)
  size = min(chunk_size or 16, num_steps)
  if eval_every is None:
    return size
  divisors = [d for d in range(1, eval_every + 1) if eval_every % d == 0]
  return min(divisors, key=lambda d: (abs(math.log(d / size)), -d))


def _drive(spec: _Sweep, programs: _Programs, block: int, mode: str, lrs: np.ndarray, run_keys: jax.Array,
           given: Any, data: Any, num_examples: int | None, stream: _Stream | None, eval_every: int | None,
           num_runs: int, listener: Callable[[RangeTestProgress], Any] | None) -> RangeTestResult:
  """The sweep as a host loop of compiled chunks that never waits for a step.

  After dispatching a chunk the loop collects the records of the chunk before it (waiting for the device
  to finish that one while it already has the next queued) and reports progress from them, so at most two
  chunks are in flight and the display follows the device. Once every run has diverged in a collected
  chunk the loop stops: the chunks after it are neither run nor, with a stream, read, and count as masked.
  With a stream, the next chunk's batches are read and copied to the device while it trains on the
  current one.
  """
  device_lrs = jnp.asarray(lrs)
  carry = programs.start(run_keys, given, device_lrs)
  idx = None if programs.order is None else programs.order(run_keys, num_examples)
  evaluated = jax.eval_shape(programs.evaluate, carry) if programs.evaluate is not None else None
  num_chunks = spec.padded // block
  eval_after = [i for i in range(num_chunks)
                if eval_every is not None and ((i + 1) * block % eval_every == 0 or i == num_chunks - 1)]
  pending, records, evals = [], [], []

  def collect(upto: int) -> None:
    """Copies the records of the chunks before ``upto`` to the host (waiting for them) and reports them."""
    while len(records) < upto:
      i = len(records)
      records.append(jax.device_get(pending[i]))
      if listener is not None:
        last = min(block, spec.num_steps - i * block) - 1
        rec = records[i]
        listener(RangeTestProgress(step=i * block + last + 1, num_steps=spec.num_steps,
                                   lr=float(rec["lr"][0, last]), smooth_loss=rec["smooth_loss"][:, last],
                                   diverged=rec["masked"][:, last]))

  try:
    source = data if stream is None else stream.chunk(0, block)
  except _StreamEnded:
    raise stream.ran_out() from None
  ran = num_chunks
  for i in range(num_chunks):
    carry, rec = programs.chunk(carry, source, device_lrs, idx)
    pending.append(rec)
    if i in eval_after:
      evals.append(programs.evaluate(carry))
    if i > 0:
      collect(i)
      if records[i - 1]["masked"][:, -1].all():
        ran = i + 1
        break
    if stream is None or i + 1 == num_chunks:
      continue
    try:
      source = stream.chunk((i + 1) * block, block)
    except _StreamEnded:
      collect(i + 1)
      if records[i]["masked"][:, -1].all():
        ran = i + 1
        break
      raise stream.ran_out() from None
  collect(ran)
  evals, diverged_step = jax.device_get((evals, carry.diverged_step))
  if ran < num_chunks:  # stopped after divergence: the chunks not run are masked
    if listener is not None:
      listener(RangeTestProgress(step=spec.num_steps, num_steps=spec.num_steps, lr=float(lrs[spec.num_steps - 1]),
                                 smooth_loss=np.full((num_runs,), np.nan, np.float32),
                                 diverged=np.ones((num_runs,), bool)))
    nan = np.full((num_runs, block), np.nan, np.float32)
    for i in range(ran, num_chunks):
      records.append({"lr": np.broadcast_to(lrs[i * block:(i + 1) * block], (num_runs, block)),
                      "masked": np.ones((num_runs, block), bool), "loss": nan, "smooth_loss": nan,
                      "metrics": {k: nan for k in records[0]["metrics"]}})
    for i in eval_after[len(evals):]:
      step = np.full((num_runs,), min((i + 1) * block, spec.num_steps) - 1, np.int32)
      evals.append((step, {k: np.full((num_runs,), np.nan, np.float32) for k in evaluated[1]}))
  # Joined on the host: as eager jnp ops, each concatenation would compile a program of its own.
  records = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *records)
  if evals:
    eval_step, eval_metrics = jax.tree.map(lambda *xs: np.stack(xs, axis=1), *evals)
  else:
    eval_step, eval_metrics = np.zeros((num_runs, 0), np.int32), {}
  return spec.result(diverged_step, records, eval_step, eval_metrics, mode)


# XLA options for a program that runs once per sweep (the initial states): compile fast rather than run
# fast. Random initializers compile several times faster at the lowest backend optimisation level and run
# only slightly slower, once.
_RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 0}


class _Programs(NamedTuple):
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
def _programs(spec: _Sweep, method: str, block: int, several: bool, init: _Init,
              options: tuple[tuple[str, Any], ...], host_driven: bool, stream: bool) -> _Programs:
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
    return jax.vmap(lambda k: _batch_indices(jax.random.split(k)[1], num_examples, spec.batch_size,
                                             spec.padded))(keys)

  if not host_driven:
    def range_test_sweep(states, keys, data, lrs, mode):
      idx = order(keys, _num_examples(data, spec.batch_size))
      return _over_runs(lambda s, i: _scan_sweep(spec, block, mode, lrs, s, _from_arrays(data, i)),
                        (0, 0), runs)(states, idx)
    return _Programs(jit(range_test_sweep, static_argnums=4), jit_once(start), None, None, None)

  def range_test_start(keys, given, lrs):
    return _over_runs(_init_carry, (0,), runs)(start(keys, given, lrs))

  unroll = method == "chunked"

  def range_test_chunk(carry, source, lrs, idx):
    if stream:
      return _over_runs(lambda c: spec.chunk(c, lrs, _from_chunk(source), block, unroll), (0,), runs)(carry)
    return _over_runs(lambda c, i: spec.chunk(c, lrs, _from_arrays(source, i), block, unroll), (0, 0),
                      runs)(carry, idx)

  evaluate = jit(_over_runs(spec.evaluate, (0,), runs)) if spec.eval_fn is not None else None
  return _Programs(None, jit_once(range_test_start), None if stream else jit(order, static_argnums=1),
                   jit(range_test_chunk, donate_argnums=0), evaluate)
