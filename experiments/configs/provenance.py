"""Where each setting of a paper row's config comes from: a line of the paper, a file the paper names, or us.

Every config module of a paper row declares its sources, ``SOURCES`` (a dict) or ``sources(arg)`` for a module
taking an argument, mapping a config field (``"schedule.max_lr"``) to one of:

* `Paper`: the paper gives the value, at a line of its text (``../shared/paper/smith-clr-1506.01186.txt``, or
  another document of that folder), where the words ``text`` stand; ``departs`` says why a config does not
  follow it;
* `ByReference`: the paper says it used a file it names (Caffe's solver, the original Torch code) and the value
  is that file's;
* `Assumed`: the paper does not give it; the reason for our choice.

`experiments.fidelity` writes them as ``experiments/reports/fidelity.md``; the tests check every cited line
against the paper's text and every `Paper` value against the config. This module is not a config.

>>> from experiments.configs import provenance
>>> provenance.sources("table2_staged")["schedule.stage_max_lrs"].line
167
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
from typing import Any, Union

from experiments.configs import config_lib

PAPER = "smith-clr-1506.01186.txt"
# The folder holding the paper's text and the other documents (set by .ci/run; tests skip without it).
PAPER_DIR_ENV = "CLR_PAPER_DIR"


@dataclasses.dataclass(frozen=True)
class Paper:
  """A setting the paper gives.

  Attributes:
    value: the paper's value, as the config writes it (a Duration as its string, several as a tuple).
    where: the table, figure or section ("Table 2", "§4.1.1").
    line: the line of `doc` that gives it (the first, for a table's column).
    text: words on that line that state it (as printed there, e.g. "2,000"): the tests check they are there.
    departs: why the config does not follow it ("" when it does).
    doc: the document, a file of the paper folder (default the paper).
    last_line: a table's column spans `line` to this line, and `text` may stand anywhere in them.
  """
  value: Any
  where: str
  line: int
  text: str
  departs: str = ""
  doc: str = PAPER
  last_line: int | None = None

  @property
  def lines(self) -> str:
    """The cited line(s), as "164" or "167-169"."""
    return f"{self.line}-{self.last_line}" if self.last_line else str(self.line)


@dataclasses.dataclass(frozen=True)
class ByReference:
  """A setting the paper takes from a file it names, at `line` of its text (where `text` stands).

  Attributes:
    value: the value in that file, as the config writes it.
    source: the file ("Caffe's cifar10_full_solver.prototxt").
    line: the paper's line naming it.
    text: words on that line naming it.
  """
  value: Any
  source: str
  line: int
  text: str


@dataclasses.dataclass(frozen=True)
class Assumed:
  """A setting the paper does not give: the reason for ours."""
  reason: str


Source = Union[Paper, ByReference, Assumed]

# Caffe's cifar10_full network and solver, which §4.1.1 says it used as the baseline (line 152), and the batch
# of 100 that §3.2 states (line 103): shared by every cifar10_full row.
CAFFE_CIFAR10_FULL: dict[str, Source] = {
    "model.name": ByReference("cifar10_full", "Caffe's cifar10_full_train_test.prototxt", 152, "Caffe website"),
    "optim.name": ByReference("caffe_sgd", "Caffe's cifar10_full_solver.prototxt (SGD)", 152, "Caffe website"),
    "optim.momentum": ByReference(0.9, "Caffe's cifar10_full_solver.prototxt", 152, "Caffe website"),
    "optim.weight_decay": ByReference(0.004, "Caffe's cifar10_full_solver.prototxt", 152, "Caffe website"),
    "data.normalization": ByReference("mean_image", "Caffe's cifar10_full_train_test.prototxt (mean_file)", 152,
                                      "Caffe website"),
    "train.batch_size": Paper(100, "§3.2", 103, "is 100"),
}


def paper_dir() -> pathlib.Path | None:
  """The folder of the paper's text: ``$CLR_PAPER_DIR``, else None."""
  path = os.environ.get(PAPER_DIR_ENV)
  return pathlib.Path(path) if path else None


def sources(name: str) -> dict[str, Source]:
  """The sources of config `name` (``"table3_adam:clr"``): its module's ``sources(arg)`` or ``SOURCES``.

  Raises:
    ValueError: the config's module declares none (it is not a paper row).
  """
  module_name, _, arg = name.partition(":")
  module = importlib.import_module(f"experiments.configs.{module_name}")
  if hasattr(module, "sources"):
    return module.sources(arg or None)
  if hasattr(module, "SOURCES"):
    return dict(module.SOURCES)
  raise ValueError(f"config {name!r} declares no sources (SOURCES or sources(arg)) in its module")


def value_of(config: config_lib.Config, field: str) -> Any:
  """The value of ``section.field`` of `config`, tuples as tuples."""
  node: Any = config
  for key in field.split("."):
    node = getattr(node, key)
  return node


def status(config: config_lib.Config, field: str, source: Source) -> str:
  """"match", "by reference", "assumed: why", "departs: why", or "differs" (a `Paper` value the config does not
  follow without saying why: the tests refuse it)."""
  ours = value_of(config, field)
  if isinstance(source, Assumed):
    return f"assumed: {source.reason}"
  if isinstance(source, Paper) and source.departs:
    return f"departs: {source.departs}"
  if ours != source.value:
    return "differs"
  return "match" if isinstance(source, Paper) else "by reference"


# The fields every paper row must account for, by schedule policy (beside the run's length, network, solver
# and batch).
COMMON_FIELDS = ("model.name", "optim.name", "train.batch_size", "train.num_steps", "schedule.name")
POLICY_FIELDS = {
    "fixed": ("schedule.base_lr",),
    "triangular": ("schedule.base_lr", "schedule.max_lr", "schedule.step_size"),
    "triangular2": ("schedule.base_lr", "schedule.max_lr", "schedule.step_size"),
    "decay": ("schedule.base_lr", "schedule.max_lr", "schedule.step_size"),
    "exp": ("schedule.base_lr", "schedule.gamma"),
    "exp_range": ("schedule.base_lr", "schedule.max_lr", "schedule.step_size", "schedule.gamma",
                  "schedule.scale_bounds"),
    "staged": ("schedule.stage_starts", "schedule.stage_base_lrs", "schedule.stage_max_lrs",
               "schedule.stage_step_sizes"),
    "one_cycle": ("schedule.max_lr", "schedule.pct_start", "schedule.div_factor", "schedule.final_div_factor",
                  "schedule.anneal", "schedule.three_phase"),
}


def required_fields(config: config_lib.Config) -> tuple[str, ...]:
  """The fields of `config` that its sources must cover: `COMMON_FIELDS`, its policy's, and any step drops."""
  drops = ("schedule.drop_at",) if config.schedule.drop_at else ()
  return COMMON_FIELDS + POLICY_FIELDS[config.schedule.name] + drops
