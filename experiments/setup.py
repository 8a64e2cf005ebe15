"""From a config to what a run needs: its data, learning-rate schedule, optimizer and initial `TrainState`.

Each choice a config names is looked up in a table (`SCHEDULES`, `OPTIMIZERS`, `NORMALIZATIONS`) whose keys
are the valid names; an unknown name fails listing them.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import clr_optax
from experiments import augment
from experiments import configs as config_lib
from experiments import data as data_lib
from experiments import models
from experiments import optim as optim_lib
from experiments.step import TrainState

# A Duration resolver: (spec, field name) -> steps.
_Steps = Callable[[str, str], int]

# The model's initializer runs once per run, so it is compiled for compiling fast (as clr_optax.range_test
# compiles its initial states): a random initializer is slow to compile optimised and gains little from it.
# Its weights may differ by a few ulps from an optimised compile's (another instruction order).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def load_data(config: config_lib.Config, dataset: data_lib.Dataset | None = None
              ) -> tuple[data_lib.Dataset, tuple[np.ndarray, np.ndarray]]:
  """Loads `config.data.dataset` (or takes `dataset`) and draws the configured subsets: the one data path.

  Returns:
    ``(dataset, (held_out_images, held_out_labels))``: the training and test sets, and the training images
    the workflow holds out for its range test (``workflow.val_size``; none outside the workflow).
  """
  if dataset is None:
    kwargs = {"cache_dir": config.data.cache_dir} if config.data.cache_dir else {}
    dataset = data_lib.load(config.data.dataset, **kwargs)
  return data_lib.training_subsets(dataset, train_size=config.data.train_size, test_size=config.data.test_size,
                                   val_size=config.workflow.val_size if config.workflow else 0,
                                   seed=config.data.subset_seed)


def _staged(s: config_lib.ScheduleConfig, steps: _Steps, total_steps: int) -> optax.Schedule:
  n = len(s.stage_starts)
  if not n or {len(s.stage_base_lrs), len(s.stage_max_lrs), len(s.stage_step_sizes)} != {n}:
    raise ValueError("schedule.stage_starts, stage_base_lrs, stage_max_lrs and stage_step_sizes must have the "
                     f"same non-zero length, got {s.stage_starts=}, {s.stage_base_lrs=}, {s.stage_max_lrs=}, "
                     f"{s.stage_step_sizes=}")
  starts = [steps(x, "schedule.stage_starts") for x in s.stage_starts]
  if starts[0] != 0 or starts != sorted(starts):
    raise ValueError(f"schedule.stage_starts must start at 0 and increase, got {s.stage_starts=}")
  policies = {"triangular": clr_optax.triangular, "triangular2": clr_optax.triangular2}
  if s.stage_policy not in policies:
    raise ValueError(f"schedule.stage_policy must be one of {', '.join(policies)}, got {s.stage_policy!r}")
  stages = [policies[s.stage_policy](b, m, steps(x, "schedule.stage_step_sizes"))
            for b, m, x in zip(s.stage_base_lrs, s.stage_max_lrs, s.stage_step_sizes)]
  return optax.join_schedules(stages, starts[1:])


# schedule.name -> (section, Duration resolver, run length) -> schedule of the step.
SCHEDULES: dict[str, Callable[[config_lib.ScheduleConfig, _Steps, int], optax.Schedule]] = {
    "fixed": lambda s, steps, total: optax.constant_schedule(s.base_lr),
    "triangular": lambda s, steps, total: clr_optax.triangular(
        s.base_lr, s.max_lr, steps(s.step_size, "schedule.step_size")),
    "triangular2": lambda s, steps, total: clr_optax.triangular2(
        s.base_lr, s.max_lr, steps(s.step_size, "schedule.step_size")),
    "exp_range": lambda s, steps, total: clr_optax.exp_range(
        s.base_lr, s.max_lr, steps(s.step_size, "schedule.step_size"), s.gamma, scale_bounds=s.scale_bounds),
    "decay": lambda s, steps, total: clr_optax.decay(s.base_lr, s.max_lr, steps(s.step_size, "schedule.step_size")),
    "exp": lambda s, steps, total: clr_optax.exponential(s.base_lr, s.gamma),
    "staged": _staged,
    "one_cycle": lambda s, steps, total: clr_optax.one_cycle(
        s.max_lr, total, pct_start=s.pct_start, div_factor=s.div_factor, final_div_factor=s.final_div_factor,
        anneal=s.anneal, three_phase=s.three_phase),
}


def build_schedule(sched: config_lib.ScheduleConfig, *, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """The learning-rate policy of `sched` as a function of the step (jnp only: runs inside the step).

  Args:
    sched: the config's schedule section.
    steps_per_epoch: steps in one epoch (for Durations in epochs).
    total_steps: length of the run (for Durations in percent, and one_cycle).

  Returns:
    An `optax.Schedule`: `SCHEDULES[sched.name]`, times the step drops of ``sched.drop_at``.

  Raises:
    ValueError: an unknown ``schedule.name`` (the message lists `SCHEDULES`) or a bad value.
  """
  if sched.name not in SCHEDULES:
    raise ValueError(f"unknown schedule.name {sched.name!r}; one of {', '.join(SCHEDULES)}")

  def steps(spec, name):
    return config_lib.resolve_duration(spec, steps_per_epoch=steps_per_epoch, total_steps=total_steps, name=name)

  steps(sched.step_size, "schedule.step_size")  # checked for every policy, as the field always exists
  schedule = SCHEDULES[sched.name](sched, steps, total_steps)
  if sched.drop_at:
    drops = sorted(steps(d, "schedule.drop_at") for d in sched.drop_at)
    scale = optax.piecewise_constant_schedule(1.0, {d: sched.drop_factor for d in drops})
    inner = schedule
    schedule = lambda count: inner(count) * scale(count)
  return schedule


# optim.name -> (learning rate, section) -> optax optimizer; "caffe_sgd" (Caffe's solver) is `optim.caffe_sgd`.
OPTIMIZERS: dict[str, Callable[[float, config_lib.OptimConfig], optax.GradientTransformation]] = {
    "sgd": lambda lr, o: optax.sgd(lr, momentum=o.momentum or None),
    "nesterov": lambda lr, o: optax.sgd(lr, momentum=o.momentum, nesterov=True),
    "adam": lambda lr, o: optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps),
    "rmsprop": lambda lr, o: optax.rmsprop(lr, decay=o.rms_decay, eps=o.eps),
    "adagrad": lambda lr, o: optax.adagrad(lr, initial_accumulator_value=0.0, eps=o.eps),
    "adadelta": lambda lr, o: optax.adadelta(lr, rho=o.rms_decay, eps=o.eps),
}


def build_optimizer(optim: config_lib.OptimConfig, model_name: str | None = None) -> optax.GradientTransformation:
  """The config's optimizer with an injectable learning rate (``opt_state.hyperparams["learning_rate"]``).

  For the Caffe networks (`experiments.models.is_caffe_net`) every optimizer gets Caffe's per-layer
  learning-rate and weight-decay multipliers (`experiments.models.caffe_multipliers`), as Caffe's solvers
  apply them; the other networks use one weight decay for all parameters (PyTorch's convention).

  Args:
    optim: the config's optimizer section.
    model_name: the network, to look up Caffe multipliers.

  Returns:
    An `optax.inject_hyperparams` transformation; `train_step` sets its learning rate every step.

  Raises:
    ValueError: an unknown ``optim.name`` (the message lists the valid ones).
  """
  if optim.name != "caffe_sgd" and optim.name not in OPTIMIZERS:
    raise ValueError(f"unknown optim.name {optim.name!r}; one of caffe_sgd, {', '.join(OPTIMIZERS)}")
  wd = optim.weight_decay
  caffe = model_name is not None and models.is_caffe_net(model_name)
  lr_mult, decay_mult = models.caffe_multipliers(model_name) if caffe else (None, None)

  def factory(learning_rate):
    if optim.name == "caffe_sgd":
      return optim_lib.caffe_sgd(learning_rate, momentum=optim.momentum, weight_decay=wd, lr_mult=lr_mult,
                                 decay_mult=decay_mult)
    tx = OPTIMIZERS[optim.name](learning_rate, optim)
    if caffe:
      parts = [optim_lib.caffe_regularize(wd, decay_mult)] if wd else []
      return optax.chain(*parts, tx, optim_lib.scale_by_lr_mult(lr_mult))
    return optax.chain(optax.add_decayed_weights(wd), tx) if wd else tx

  return optax.inject_hyperparams(factory)(learning_rate=0.0)


def mean_value(data: config_lib.DataConfig) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) of Caffe's per-channel ``mean_value`` (``data.mean_value``, RGB) and std 1."""
  if len(data.mean_value) != 3:
    raise ValueError(f"data.normalization 'mean_value' needs data.mean_value per channel (R, G, B), got "
                     f"{data.mean_value=}")
  return np.asarray(data.mean_value, np.float32), np.ones((3,), np.float32)


# data.normalization -> (data section, training images) -> (mean, std) for `experiments.augment.normalize`.
NORMALIZATIONS: dict[str, Callable[[config_lib.DataConfig, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "channel": lambda data, images: tuple(np.asarray(x, np.float32) for x in augment.channel_stats(images)),
    "mean_image": lambda data, images: (np.asarray(augment.mean_image(images), np.float32),
                                        np.ones((3,), np.float32)),
    "mean_value": lambda data, images: mean_value(data),
}


def normalization_constants(config: config_lib.Config, train_images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) for `experiments.augment.normalize`: per channel, the mean image with std 1 (Caffe's mean_file)
  or Caffe's per-channel mean_value with std 1."""
  if config.data.normalization not in NORMALIZATIONS:
    raise ValueError(f"data.normalization must be one of {', '.join(map(repr, NORMALIZATIONS))}, got "
                     f"{config.data.normalization=}")
  return NORMALIZATIONS[config.data.normalization](config.data, train_images)


def model_options(model: config_lib.ModelConfig) -> dict[str, int]:
  """The module attributes the config sets beyond the network's name (GoogLeNet's ``pool5_window``).

  Raises:
    ValueError: ``model.pool5_window`` is set for a network without GoogLeNet's pool5.
  """
  if model.pool5_window is None:
    return {}
  if model.name != "googlenet":
    raise ValueError(f"model.pool5_window is GoogLeNet's pool5 kernel; {model.name!r} has none (leave it None)")
  return {"pool5_window": model.pool5_window}


def state_initializer(config: config_lib.Config, *, num_classes: int, mean: np.ndarray, std: np.ndarray,
                      image_shape: Sequence[int] = (32, 32, 3), axis_name: str | None = None
                      ) -> Callable[[jax.Array], TrainState]:
  """``key -> TrainState``: the initial states of `config`, one per key (`create_train_state` of that key).

  The model, the optimizer and the compiled initializer are made once and shared by every state it makes: many
  states (a grid of runs, several range tests) compile one initializer, and a step jitted for one state serves
  them all. Arguments as for `create_train_state`.
  """
  model = models.create_model(config.model.name, num_classes=num_classes, bn_axis_name=axis_name,
                              **model_options(config.model))
  dummy = jnp.zeros((2, *image_shape), jnp.float32)
  init = jax.jit(functools.partial(model.init, train=False), compiler_options=INIT_COMPILER_OPTIONS)
  tx = build_optimizer(config.optim, config.model.name)

  def initial_state(rng: jax.Array) -> TrainState:
    init_key, state_key = jax.random.split(rng)
    variables = init({"params": init_key, "dropout": init_key, "stochastic_depth": init_key}, dummy)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), rng=state_key, mean=jnp.asarray(mean), std=jnp.asarray(std),
                      apply_fn=model.apply, tx=tx, augment=config.data.augment, pad=config.data.pad,
                      axis_name=axis_name)

  return initial_state


def create_train_state(config: config_lib.Config, *, num_classes: int, mean: np.ndarray, std: np.ndarray,
                       image_shape: Sequence[int] = (32, 32, 3), axis_name: str | None = None,
                       rng: jax.Array | None = None) -> TrainState:
  """Initialises the model and optimizer of `config`.

  Args:
    config: the experiment config.
    num_classes: classes of the dataset.
    mean, std: normalisation constants (see `normalization_constants`).
    image_shape: (H, W, C) of the images.
    axis_name: the pmap axis name when the state will be used under pmap (BatchNorm and gradients are
      then averaged over it); None for a single-device step.
    rng: the run's key (default: ``jax.random.key(config.train.seed)``).

  Returns:
    A single-device (unreplicated) `TrainState` at step 0.
  """
  initial_state = state_initializer(config, num_classes=num_classes, mean=mean, std=std, image_shape=image_shape,
                                    axis_name=axis_name)
  return initial_state(jax.random.key(config.train.seed) if rng is None else rng)
