"""The learning-rate range test (Smith 2015, section 3.3) as one compiled sweep.

The paper trains for a few epochs while the learning rate rises linearly from a low to a high value, and reads
the bounds off the accuracy plotted against the rate (line 111 of its text). Here the sweep is compiled: the
batches are drawn inside it from device-resident arrays (an on-device shuffle per epoch), or come from a
stream of host batches stacked into chunks; the learning rate is an input of each step, the loss is smoothed
and watched for divergence on the device (the sweep stops there), and the host never waits for a step. Nothing the
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

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clr_optax import _checks
from clr_optax import _nnx
from clr_optax import _optax_step
from clr_optax import _stream
from clr_optax import _sweep
from clr_optax import _xla_cpu
from clr_optax._result import ProgressBar
from clr_optax._result import RangeTestProgress
from clr_optax._result import RangeTestResult

METHODS = ("auto", "scan", "chunked")


def make_range_test(
    train_step: _sweep.TrainStep,
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
  spec = _sweep.make_spec(train_step, batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr,
                          mode=mode, staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                          eval_fn=eval_fn, eval_every=eval_every, axis_name=axis_name, block=eval_every or num_steps,
                          eval_arg=_sweep.identity)
  lrs = _sweep.padded_lrs(min_lr, max_lr, num_steps, mode, spec.padded, staircase)

  def sweep(state: Any, data: Any, key: jax.Array) -> RangeTestResult:
    idx = _sweep.batch_indices(key, _sweep.count_examples(data, batch_size), batch_size, spec.padded)
    return _sweep.scan_sweep(spec, eval_every or num_steps, mode, jnp.asarray(lrs), state,
                             _sweep.from_arrays(data, idx))

  return sweep


def range_test(
    data: Any,
    *,
    batch_size: int | None = None,
    num_steps: int,
    min_lr: float,
    max_lr: float,
    key: jax.Array | int = 0,
    train_step: _sweep.TrainStep | None = None,
    state: Any = None,
    loss_fn: Callable[[Any, Any], Any] | None = None,
    params: Any = None,
    optimizer: _optax_step.OptimizerFactory | optax.GradientTransformation | None = None,
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
  _checks.check_settings(batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr, mode=mode,
                         staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                         eval_fn=eval_fn, eval_every=eval_every)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method=}")
  _checks.check_int("num_runs", num_runs, 1)
  if chunk_size is not None:
    _checks.check_int("chunk_size", chunk_size, 1)
  if not (isinstance(progress, bool) or callable(progress)):
    raise ValueError(f"progress must be True, False or a callable taking a RangeTestProgress, got {progress=}")
  if (train_step is None) == (loss_fn is None):
    raise ValueError("give either train_step (with state) or loss_fn (with params and optimizer), got "
                     f"{train_step=}, {loss_fn=}")
  for name, fn, form in (("train_step", train_step, "(state, batch, lr) -> (state, metrics)"),
                         ("loss_fn", loss_fn, "(params, batch) -> loss or (loss, metrics)")):
    if fn is not None and not callable(fn):
      raise TypeError(f"{name} must be a function {form}, got {name}={fn!r}")
  if optimizer is not None and not (callable(optimizer) or
                                    isinstance(optimizer, (optax.GradientTransformation, optax.MultiSteps))):
    raise TypeError("optimizer must be an optax optimizer factory learning_rate -> GradientTransformation "
                    "(optax.sgd, functools.partial(optax.sgd, momentum=0.9)), or an optimizer built with "
                    f"optax.inject_hyperparams (also inside optax.MultiSteps), got {optimizer=}")
  if train_step is not None:
    if state is None:
      raise ValueError("train_step needs state (an initial state, or a function key -> state), got state=None")
    if params is not None or optimizer is not None:
      raise ValueError("params and optimizer go with loss_fn; with train_step put them in state")
    if _nnx.is_nnx_module(state):
      raise ValueError(f"state is a Flax NNX module ({type(state).__name__}): give it as params= with loss_fn "
                       "and optimizer (range_test splits it), or give train_step the pure state of nnx.split "
                       "and merge the module inside it (docs/guides/nnx.md)")
    _checks.check_init_fn("state", state)
    init = _sweep.Init(state if callable(state) else None, None)
    given = None if callable(state) else state
    eval_arg = _sweep.identity
  else:
    if params is None or optimizer is None:
      raise ValueError(f"loss_fn needs params and optimizer, got {params=}, {optimizer=}")
    if state is not None:
      raise ValueError("state goes with train_step; with loss_fn give params")
    train_step = _optax_step.OptaxStep(loss_fn, optimizer)
    eval_arg = _optax_step.params_of
    if _nnx.is_nnx_module(params):  # swept as its split state: the caller's module is never modified
      train_step, eval_arg, params = _nnx.split(params, train_step)
    _checks.check_init_fn("params", params)
    init = _sweep.Init(params if callable(params) else None, train_step)
    given = None if callable(params) else params

  stream = _stream.Stream(data, num_steps, batch_size) if _stream.is_stream(data) else None
  if stream is not None:
    batch_size, num_examples, example = stream.batch_size, None, stream.example
  else:
    if batch_size is None:
      raise ValueError("batch_size is required when data is a pytree of arrays (a stream's batches set it)")
    data = jax.device_put(data)
    num_examples = _sweep.count_examples(data, batch_size)
    example = jax.tree.map(lambda x: jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype), data)
  run_keys, num_runs = _checks.run_keys(key, num_runs)

  if method == "auto":
    method = _xla_cpu.auto_method(train_step, init, given, example, jax.random.key_data(run_keys[0]).shape)

  host_driven = stream is not None or progress is not False or method == "chunked"
  block = _block(method, host_driven, chunk_size, eval_every, num_steps)
  spec = _sweep.make_spec(train_step, batch_size=batch_size, num_steps=num_steps, min_lr=min_lr, max_lr=max_lr,
                          mode=mode, staircase=staircase, smoothing=smoothing, divergence_factor=divergence_factor,
                          eval_fn=eval_fn, eval_every=eval_every, axis_name=None, block=block, eval_arg=eval_arg)
  lrs = _sweep.padded_lrs(min_lr, max_lr, num_steps, mode, spec.padded, staircase)
  options = tuple(sorted(dict(compiler_options or {}).items()))
  programs = _sweep.programs(spec, method, block, num_runs > 1, init, options, host_driven, stream is not None)

  if not host_driven:
    device_lrs = jnp.asarray(lrs)
    states = programs.start(run_keys, given, device_lrs)
    return jax.device_get(programs.sweep(states, run_keys, data, device_lrs, mode))

  listener = progress if callable(progress) else ProgressBar(num_steps, num_runs) if progress else None
  try:
    return _drive(spec, programs, block, mode, lrs, run_keys, given, data if stream is None else None, num_examples,
                  stream, eval_every, num_runs, listener)
  finally:
    if isinstance(listener, ProgressBar):
      listener.close()


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


def _drive(spec: _sweep.Sweep, programs: _sweep.Programs, block: int, mode: str, lrs: np.ndarray,
           run_keys: jax.Array, given: Any, data: Any, num_examples: int | None, stream: _stream.Stream | None,
           eval_every: int | None, num_runs: int,
           listener: Callable[[RangeTestProgress], Any] | None) -> RangeTestResult:
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
  except _stream.StreamEnded:
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
    except _stream.StreamEnded:
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
