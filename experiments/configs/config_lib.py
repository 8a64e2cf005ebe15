"""Experiment configuration: nested frozen dataclasses, typed dotted overrides, named configs.

A config is a `Config` made of five sections (`data`, `model`, `optim`, `schedule`, `train`). Every
experiment module in this package has a `get_config(arg=None) -> Config` that starts from
`experiments.configs.default.get_config()` and changes only what differs, with `override`:

>>> from experiments import configs
>>> c = configs.get_config("table1_triangular2")
>>> c.schedule.name, c.schedule.max_lr
('triangular2', 0.006)
>>> configs.override(c, {"schedule.max_lr": "0.01", "train.num_steps": "200"}).schedule.max_lr
0.01

Values given as strings (from the command line) are converted to the type the field is declared with
(`int`, `float`, `bool`, `str`, an optional of those, or a tuple of them written comma-separated).

Durations (`train.num_steps`, `schedule.step_size`, ...) are `Duration` strings in one of three units,
resolved by `resolve_duration` once the number of steps per epoch is known: ``"2000"`` (steps), ``"8ep"``
(epochs) or ``"5%"`` (a percentage of the whole run). `duration_fields` finds them by their type.

The sections' types, the typed overrides and the durations stay in one module (a little over 450 lines): each
reads the others' field types, and a config is written against all three.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import math
import pathlib
import pkgutil
import types
import typing
from typing import Any, Mapping

from experiments.configs.duration import Duration

_OMIT_DEFAULT = "omit_default"
# jax.random.key keeps the low 32 bits of a seed: seeds outside [0, SEEDS) would train as one inside it.
SEEDS = 2**32


class FieldError(KeyError, ValueError):
  """A dotted path that names no config field: a KeyError (no such key) and a ValueError (a bad argument)."""

  def __str__(self) -> str:
    return str(self.args[0])


def _added_field(default: Any) -> Any:
  """A field added after runs were saved: `to_dict` leaves it out while it holds its default, so that every
  earlier config (and the ``config.json`` of every saved run, which resuming and reports match against)
  serialises exactly as before the field existed."""
  return dataclasses.field(default=default, metadata={_OMIT_DEFAULT: True})


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the images come from and how they enter the network."""
  # experiments.data.load spec: "cifar10", "cifar100" (tensorflow-datasets) or a path to an
  # image-folder directory / .tar[.gz|.xz] archive. With crop_size set (ImageNet) the experiments.imagenet
  # stream reads it instead: "imagenet2012" (tensorflow-datasets, a manual download) or the path of a
  # {train,val}/<wnid>/*.JPEG folder. The CLI's --data replaces it.
  dataset: str = "cifar10"
  # Train on a stratified random subset of this many training images (None: all). Shrinks a run.
  train_size: int | None = None
  # Evaluate on a stratified random subset of this many test images (None: all).
  test_size: int | None = None
  # Seed of the stratified subsets.
  subset_seed: int = 0
  # "channel": per-channel mean/std of the training set (ResNet, DenseNet);
  # "mean_image": subtract Caffe's mean image, no scaling (the Caffe networks; ImageNet: the mean of the
  # training images resized to 256x256, cropped with each image, as Caffe's mean_file);
  # "mean_value": subtract the per-channel mean_value below, no scaling (Caffe's bvlc_googlenet).
  normalization: str = "channel"
  # 4-pixel pad + random crop and horizontal flip inside the compiled step (off for the Caffe nets).
  augment: bool = True
  # Padding of the random crop, in pixels.
  pad: int = 4
  # Where decoded image-folder datasets are cached as .npz (None: experiments.data's default).
  cache_dir: str | None = None
  # ImageNet, streamed from the host by experiments.imagenet: the side of the random training crop and of
  # the centre evaluation crop, cut from the image resized to 256x256 as Caffe does (227 AlexNet, 224
  # GoogLeNet; mirrored at random in training). None: a dataset held on the device (CIFAR).
  crop_size: int | None = _added_field(None)
  # normalization "mean_value": Caffe's per-channel mean_value in RGB order (Caffe lists BGR: 104, 117, 123).
  mean_value: tuple[float, ...] = _added_field(())
  # Worker processes decoding the ImageNet stream on each host (None: one per CPU core of the host).
  workers: int | None = _added_field(None)

  def __post_init__(self):
    """Checks the subset sizes and seed at once, naming the field and the value (not after the data load)."""
    for name in ("train_size", "test_size"):
      value = getattr(self, name)
      if isinstance(value, int) and value < 1:
        raise ValueError(f"data.{name} must be a positive number of images, or None for all (the workflow's "
                         f"--{name.replace('_', '-')} 0 means all), got {value!r}")
    if isinstance(self.subset_seed, int) and self.subset_seed < 0:
      raise ValueError(f"data.subset_seed must be a non-negative integer, got {self.subset_seed!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """The network; built by experiments.models.create_model(name, num_classes=<from the data>)."""
  # One of experiments.models' names: cifar10_full, cifar10_quick, cifar10_bn_sigmoid, resnet20,
  # resnet56, resnet110, sd_resnet110, densenet40, densenet_bc100, alexnet, caffenet, googlenet.
  name: str = "cifar10_full"
  # GoogLeNet's pool5 kernel (None: Caffe's 7, the whole final map of a 224x224 crop); a smaller
  # data.crop_size needs one no larger than its final map (crop / 32, rounded up: 2 at 64 px, 3 at 96).
  pool5_window: int | None = _added_field(None)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """The optimizer; its learning rate is injected at every step from the schedule."""
  # "caffe_sgd" (Caffe's SGD: v = mu*v + lr*g, lr/decay multipliers per layer), "sgd", "nesterov",
  # "adam", "rmsprop", "adagrad", "adadelta".
  name: str = "caffe_sgd"
  # Momentum of caffe_sgd / sgd / nesterov.
  momentum: float = 0.9
  # L2 weight decay added to the gradient (Caffe's and PyTorch's weight_decay); 0 disables it.
  weight_decay: float = 0.004
  # Adam's b1 and b2; RMSprop's and AdaDelta's decay uses rms_decay.
  b1: float = 0.9
  b2: float = 0.999
  rms_decay: float = 0.98
  # Numerical epsilon of the adaptive methods (Caffe's `delta`).
  eps: float = 1e-8


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
  """The learning-rate policy (a clr_optax / optax schedule of the step)."""
  # "fixed" (base_lr), "triangular", "triangular2", "exp_range", "decay", "exp", "staged"
  # (Table 2: triangular2 stages joined with optax.join_schedules), "one_cycle".
  name: str = "fixed"
  # Lower bound of the cycle, or the fixed learning rate.
  base_lr: float = 0.001
  # Upper bound of the cycle (one_cycle: its peak).
  max_lr: float = 0.006
  # Half a cycle (Duration): iterations from base_lr to max_lr.
  step_size: Duration = Duration("2000")
  # exp / exp_range: the per-iteration decay factor.
  gamma: float = 0.99994
  # exp_range: True shrinks both bounds by gamma**iteration (the paper's definition), False only the amplitude
  # (the Keras / PyTorch CyclicLR form); clr_optax.exp_range's scale_bounds.
  scale_bounds: bool = _added_field(False)
  # Step drops applied on top of any policy (Durations): the learning rate is multiplied by
  # drop_factor at each of these points (Caffe's "multistep", the ResNet/DenseNet schedules).
  drop_at: tuple[Duration, ...] = ()
  # Factor of each drop.
  drop_factor: float = 0.1
  # staged: per stage (same length each) the start (Duration), bounds and step size.
  stage_starts: tuple[Duration, ...] = ()
  stage_base_lrs: tuple[float, ...] = ()
  stage_max_lrs: tuple[float, ...] = ()
  stage_step_sizes: tuple[Duration, ...] = ()
  # staged: the cyclical policy within each stage, "triangular2" (Table 2's) or "triangular".
  stage_policy: str = _added_field("triangular2")
  # one_cycle: fraction of the run spent rising, initial lr = max_lr/div_factor, final
  # lr = initial/final_div_factor, the shape of the ramps, and whether to add a final annihilation phase.
  pct_start: float = 0.3
  div_factor: float = 25.0
  final_div_factor: float = 1e4
  anneal: str = "cos"
  three_phase: bool = False

  def __post_init__(self):
    """Checks the step drops' factor at once, naming the field (optax's own error does not)."""
    if isinstance(self.drop_factor, (int, float)) and not (math.isfinite(self.drop_factor) and self.drop_factor > 0):
      raise ValueError(f"schedule.drop_factor must be a positive finite factor, got {self.drop_factor!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The loop: batch, duration, seeds, evaluation, logging and checkpoint intervals."""
  # Global batch, split evenly across all devices of all hosts.
  batch_size: int = 100
  # Length of the run (Duration; "%" is not allowed here).
  num_steps: Duration = Duration("70000")
  # Evaluate on the test set every this many steps (Duration) and at the end.
  eval_every: Duration = Duration("1000")
  # Fetch, check and write the training metrics every this many steps.
  log_every: int = 100
  # Write a checkpoint every this many steps (Duration) and at the end.
  checkpoint_every: Duration = Duration("5000")
  # How many checkpoints to keep.
  max_checkpoints: int = 2
  # Seed of the initialisation, the per-epoch shuffles and the augmentation.
  seed: int = 0
  # Devices of this host to use (None: all local devices).
  num_devices: int | None = None
  # Global batch of the evaluation.
  eval_batch_size: int = 1000
  # Show a tqdm progress bar.
  progress: bool = True
  # Training steps per compiled call (a lax.scan; the on-device data path). None: chosen per backend by
  # experiments.parallel.default_steps_per_call (1 on XLA:CPU for networks with convolutions, whose
  # gradients are much slower inside its loops; more on GPUs and TPUs). Calls are shortened so that none
  # crosses an evaluation or checkpoint step; every step's metrics are logged either way. The ImageNet stream
  # (data.crop_size set) feeds each step's batch from the host: one step per call (None or 1).
  steps_per_call: int | None = _added_field(None)
  # Also evaluate on the whole training set at every evaluation (rows of split "train_eval"; the images as
  # they enter the network, without augmentation), for figures of training accuracy (Fig. 6).
  eval_train: bool = _added_field(False)

  def __post_init__(self):
    """Checks the numbers at once, naming the field and the value (not deep inside a run)."""
    for name in ("batch_size", "eval_batch_size", "log_every", "max_checkpoints"):
      value = getattr(self, name)
      if isinstance(value, int) and value < 1:
        raise ValueError(f"train.{name} must be a positive integer, got {value!r}")
    if isinstance(self.num_devices, int) and self.num_devices < 1:
      raise ValueError(f"train.num_devices must be a positive integer or None (all), got {self.num_devices!r}")
    if isinstance(self.steps_per_call, int) and self.steps_per_call < 1:
      raise ValueError(f"train.steps_per_call must be a positive integer or None (chosen per backend), got "
                       f"{self.steps_per_call!r}")
    for name in ("num_steps", "eval_every", "checkpoint_every"):
      value = getattr(self, name)
      if Duration(value, f"train.{name}").amount == 0:
        raise ValueError(f"train.{name} must be a positive duration, got {value!r}")
    if Duration(self.num_steps).unit == "percent":
      raise ValueError(f"train.num_steps must be steps or epochs (not a percentage of itself), got {self.num_steps!r}")
    if isinstance(self.seed, int) and not 0 <= self.seed < SEEDS:
      raise ValueError(f"train.seed must be an integer in [0, 2**32 - 1] (jax.random.key keeps a seed's low 32 "
                       f"bits, so another seed would train as one of these), got {self.seed!r}")


@dataclasses.dataclass(frozen=True)
class WorkflowConfig:
  """The one-command workflow (`experiments.workflow`): range test, bounds, fixed LR vs triangular2."""
  # Training images held out (drawn at random, disjoint from the training set) on which the range test
  # measures accuracy; data.train_size counts the images trained on, without these.
  val_size: int = 500
  # Length of the range test (Duration; the paper: 8 epochs, for a comparison that takes minutes: 1).
  range_steps: Duration = Duration("1ep")
  # The range test's first and last learning rate.
  range_min_lr: float = 0.0
  range_max_lr: float = 0.02
  # "linear" (the paper) or "exponential" rise of the range test's learning rate.
  range_mode: str = "linear"
  # Held-out evaluations along the range test.
  range_eval_points: int = 25
  # clr_optax.suggest_bounds's rule: "auto" (the paper's accuracy rule when it applies), "accuracy",
  # "valley", "steepest".
  rule: str = "auto"
  # triangular2's half cycle (Duration): a quarter of the run, so that both runs end after two whole
  # cycles, back at base_lr, at the same iteration.
  step_size: Duration = Duration("25%")
  # The fixed run's learning rate (None: schedule.base_lr, the network's own rate).
  fixed_lr: float | None = None
  # triangular2's base_lr: "fixed" (the fixed run's rate, as the paper does when the network's rate is
  # known, Section 3.3) or "suggested" (the range test's); max_lr is always the range test's.
  base: str = "fixed"


@dataclasses.dataclass(frozen=True)
class Config:
  """One experiment: what to run and what the paper reports for it."""
  # Short name of the experiment (the module name, with its argument).
  name: str = "default"
  # The paper's row and the result it reports, for the README and the report.
  paper: str = ""
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  optim: OptimConfig = OptimConfig()
  schedule: ScheduleConfig = ScheduleConfig()
  train: TrainConfig = TrainConfig()
  # The workflow's settings, only in the workflow's configs (experiments/configs/workflow.py); None is left
  # out of config.json, so the files of every other run read as they did before this section existed.
  workflow: WorkflowConfig | None = None

  def __post_init__(self):
    """Checks that every number is finite, naming the field: a NaN or an infinity has no meaning in a config."""
    for path, value in flat_fields(self).items():
      if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, tuple) else [value])):
        raise ValueError(f"{path} must be finite, got {value!r}")


def _field_types(cls) -> dict[str, Any]:
  return typing.get_type_hints(cls, globalns=vars(importlib.import_module(__name__)))


def _convert(text: str, tp: Any, path: str) -> Any:
  """Converts a command-line string to the declared type `tp` of the field at `path`."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    inner = [a for a in args if a is not type(None)]
    if text.strip().lower() in ("none", "null", ""):
      return None
    return _convert(text, inner[0], path)
  if origin is tuple:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return tuple(_convert(p, args[0], path) for p in parts)
  if tp is Duration:
    return Duration(text, path)
  if tp is bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"{path} takes a boolean (true/false), got {text=}")
  if tp is int:
    try:
      return int(text)
    except ValueError:
      raise ValueError(f"{path} takes an integer, got {text=}") from None
  if tp is float:
    try:
      return float(text)
    except ValueError:
      raise ValueError(f"{path} takes a number, got {text=}") from None
  if tp is str:
    return text
  raise TypeError(f"cannot convert a string to {tp} for {path}")


def _check_type(value: Any, tp: Any, path: str) -> Any:
  """Accepts a Python value for a field of type `tp`, converting ints to floats and lists to tuples."""
  if tp is Duration:
    return Duration(value, path)
  origin = typing.get_origin(tp)
  if isinstance(value, str) and tp is not str and not (
      origin in (typing.Union, types.UnionType) and str in typing.get_args(tp)):
    return _convert(value, tp, path)
  if origin in (typing.Union, types.UnionType):
    if value is None:
      return None
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    return _check_type(value, inner[0], path)
  if origin is tuple:
    if not isinstance(value, (tuple, list)):
      raise TypeError(f"{path} takes a tuple, got {value=}")
    return tuple(_check_type(v, typing.get_args(tp)[0], path) for v in value)
  if tp is float and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
    raise TypeError(f"{path} takes a {tp.__name__}, got {value=}")
  return value


def override(config: Config, updates: Mapping[str, Any]) -> Config:
  """Returns `config` with the dotted fields in `updates` replaced.

  Args:
    config: a `Config` (or any section of one).
    updates: ``{"optim.max_lr": 0.01, "train.num_steps": "200"}``; values may be strings (converted to the
      field's declared type) or Python values of that type.

  Returns:
    A new config; `config` itself is frozen and unchanged.

  Raises:
    FieldError: a path names no field (the message lists the valid ones); a KeyError and a ValueError.
    ValueError, TypeError: a value does not fit the field's type.
  """
  for path, value in updates.items():
    config = _replace_path(config, path.split("."), value, path)
  return config


def _replace_path(node: Any, keys: list[str], value: Any, path: str) -> Any:
  names = [f.name for f in dataclasses.fields(node)]
  if keys[0] not in names:
    raise FieldError(f"no config field {path!r}: {type(node).__name__} has {', '.join(names)}")
  current = getattr(node, keys[0])
  if len(keys) == 1:
    if dataclasses.is_dataclass(current):
      raise FieldError(f"{path!r} is a section; set one of its fields, e.g. "
                       f"{path}.{dataclasses.fields(current)[0].name}")
    new = _check_type(value, _field_types(type(node))[keys[0]], path)
  else:
    if current is None and _is_optional_section(_field_types(type(node))[keys[0]]):
      raise FieldError(f"no config field {path!r}: this config has no {keys[0]!r} section")
    if not dataclasses.is_dataclass(current):
      raise FieldError(f"no config field {path!r}: {keys[0]!r} is not a section")
    new = _replace_path(current, keys[1:], value, path)
  return dataclasses.replace(node, **{keys[0]: new})


def parse_overrides(args: list[str]) -> dict[str, str]:
  """Parses ``["optim.max_lr=0.01", ...]`` into ``{"optim.max_lr": "0.01"}``.

  Raises:
    ValueError: an argument has no ``=``.
  """
  out = {}
  for arg in args:
    key, sep, value = arg.partition("=")
    if not sep or not key:
      raise ValueError(f"overrides are written key=value (e.g. train.num_steps=200), got {arg=}")
    out[key.strip()] = value
  return out


def flat_fields(config: Any, prefix: str = "") -> dict[str, Any]:
  """All leaf fields of `config` (a config, or its nested dicts as in ``config.json``) as
  ``{"section.field": value}``; a section that is None is left out (as in `to_dict`)."""
  items = (config if isinstance(config, dict) else to_dict(config)).items()
  out = {}
  for name, value in items:
    if isinstance(value, dict):
      out.update(flat_fields(value, prefix + name + "."))
    else:
      out[prefix + name] = value
  return out


def to_dict(config: Any) -> dict[str, Any]:
  """The config (or a section) as nested plain dicts (JSON-serialisable); a section that is None is left out,
  and so is an added field (`_added_field`) that holds its default."""
  hints = _field_types(type(config))
  out = {}
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if f.metadata.get(_OMIT_DEFAULT) and value == f.default:
      continue
    if dataclasses.is_dataclass(value):
      out[f.name] = to_dict(value)
    elif value is not None or not _is_optional_section(hints[f.name]):
      out[f.name] = copy.deepcopy(value)
  return out


def _is_optional_section(tp: Any) -> bool:
  return any(dataclasses.is_dataclass(a) for a in typing.get_args(tp))


def duration_fields(config: Any, prefix: str = "") -> dict[str, Any]:
  """The fields of `config` declared as a `Duration` or a tuple of them, ``{"section.field": value}``."""
  out = {}
  for f in dataclasses.fields(config):
    value, tp = getattr(config, f.name), _field_types(type(config))[f.name]
    if dataclasses.is_dataclass(value):
      out.update(duration_fields(value, prefix + f.name + "."))
    elif tp is Duration or typing.get_args(tp)[:1] == (Duration,):
      out[prefix + f.name] = value
  return out


def list_configs() -> list[str]:
  """Names of the experiment modules in experiments.configs (those with a get_config)."""
  names = []
  for info in pkgutil.iter_modules([str(pathlib.Path(__file__).parent)]):
    if info.name == "config_lib" or info.name.startswith("_"):
      continue
    if not hasattr(importlib.import_module(f"experiments.configs.{info.name}"), "get_config"):
      continue  # a module such as paper_results or tables, not an experiment
    names.append(info.name)
  return sorted(names)


def get_config(name: str) -> Config:
  """Builds the named config: ``"table1_exp"``, or ``"table4_resnet:0.2"`` for a module taking an argument.

  Raises:
    ValueError: the name is unknown (the message lists the known ones).
  """
  module_name, _, arg = name.partition(":")
  if module_name not in list_configs():
    raise ValueError(f"unknown config {name!r}; known: {', '.join(list_configs())}")
  module = importlib.import_module(f"experiments.configs.{module_name}")
  config = module.get_config(arg) if arg else module.get_config()
  if arg and config.name == module_name:
    config = dataclasses.replace(config, name=name)
  return config


def config_args(module_name: str) -> tuple[str, ...]:
  """The arguments a config module accepts (its ARGS tuple; empty when it takes none)."""
  module = importlib.import_module(f"experiments.configs.{module_name}")
  return tuple(getattr(module, "ARGS", ()))
