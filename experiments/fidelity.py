"""The fidelity report: every setting of every paper row's config beside the paper's, with where the paper gives it.

  python -m experiments.reproduce --fidelity      # writes experiments/reports/fidelity.md

One section per experiment of `experiments.configs.tables` (and the workflow), one table per config: each setting
its sources name (`experiments.configs.provenance`), the paper's value with its section and line, ours, and
whether they match, come from a file the paper names, are our assumption, or depart from the paper (and why).
The paper's reported result heads each config, with its line. `render` is pure: the tests compare the committed
report with it, so a config changed without regenerating the report fails them.
"""

from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np

from experiments.configs import config_lib
from experiments.configs import paper_results
from experiments.configs import provenance
from experiments.configs.tables import EXPERIMENTS

# The rows the report covers beyond the experiments' configs.
EXTRA = (("Section 3.3, Figures 1 and 3: the one-command workflow (`experiments.workflow`)", ("workflow",)),)
_ORDER = ("match", "by reference", "assumed", "departs")


def _fmt(value: Any) -> str:
  if isinstance(value, tuple):
    return ", ".join(_fmt(v) for v in value)
  if isinstance(value, float):
    return np.format_float_positional(value, trim="-")
  return str(value)


def _paper_cell(source: provenance.Source) -> str:
  if isinstance(source, provenance.Paper):
    doc = "" if source.doc == provenance.PAPER else f"{source.doc}, "
    return f"{_fmt(source.value)} ({source.where}; {doc}line{'s' if source.last_line else ''} {source.lines})"
  if isinstance(source, provenance.ByReference):
    return f"by reference: {source.source} (line {source.line})"
  return "not given"


def _result_line(name: str) -> str:
  # A second reading of a row (Table 3's "_staged") is judged against the row's number.
  r = paper_results.get(name) or paper_results.get(name.removesuffix("_staged"))
  if r is None:
    return "The paper reports no accuracy for this config."
  numbers = [f"{v}% {d}" for v, d in ((r.accuracy, "CIFAR-10"), (r.cifar100_accuracy, "CIFAR-100"),
                                      (r.imagenet_accuracy, "ImageNet top-1")) if v is not None]
  at = f" at {r.iterations:,} iterations" if r.iterations else ""
  where = f"{r.source}, line {r.line}" if r.line else r.source
  kind = ("best" if r.best else "final") + (" training accuracy" if r.training else "")
  return f"Paper: {', '.join(numbers)} ({kind}){at} ({where})" + (f"; {r.note}." if r.note else ".")


def config_table(name: str) -> tuple[list[str], collections.Counter]:
  """The markdown table of config `name` and the count of its statuses."""
  config = config_lib.get_config(name)
  sources = provenance.sources(name)
  counts: collections.Counter = collections.Counter()
  lines = [f"### `{name}`", "", _result_line(name), "", "| setting | the paper | ours | status |", "|---|---|---|---|"]
  for field in sorted(sources, key=lambda f: (f.split(".")[0] != "schedule", f)):
    source = sources[field]
    status = provenance.status(config, field, source)
    counts[status.split(":")[0]] += 1
    lines.append(f"| `{field}` | {_paper_cell(source)} | {_fmt(provenance.value_of(config, field))} | {status} |")
  return lines + [""], counts


def sections() -> list[tuple[str, tuple[str, ...]]]:
  """``(title, config names)`` of every section: the experiments in their order, each config once."""
  seen: set[str] = set()
  out = []
  for experiment in EXPERIMENTS.values():
    names = tuple(n for n in experiment.configs if n not in seen)
    seen.update(names)
    if names:
      out.append((f"{experiment.title} (`{experiment.name}`)", names))
  return out + list(EXTRA)


def render() -> str:
  """The whole report, as markdown."""
  body, total = [], collections.Counter()
  summary = ["| section | configs | match | by reference | assumed | departs |", "|---|---|---|---|---|---|"]
  for title, names in sections():
    counts: collections.Counter = collections.Counter()
    body += [f"## {title}", ""]
    for name in names:
      table, c = config_table(name)
      body += table
      counts += c
    total += counts
    summary.append(f"| {title} | {len(names)} | " + " | ".join(str(counts[k]) for k in _ORDER) + " |")
  summary.append("| all | | " + " | ".join(str(total[k]) for k in _ORDER) + " |")
  head = [
      "# Fidelity: every setting of every paper row, against the paper's text",
      "",
      "Written by `python -m experiments.reproduce --fidelity` from the configs' sources "
      "(`experiments/configs/provenance.py`); the tests fail when this file is out of date, when a cited line of "
      "the paper does not hold the words cited, or when a config departs from a value the paper gives without "
      "saying why. Line numbers are those of `../shared/paper/smith-clr-1506.01186.txt` (other documents of that "
      "folder are named).",
      "",
      "Status: **match**, the paper gives the value and the config has it; **by reference**, the paper says it used "
      "a file it names (Caffe's solver, the original Torch code) and the value is that file's; **assumed**, the "
      "paper does not give it, and the reason for ours; **departs**, the paper gives a value we do not use, and "
      "why. The paper's result heads each config: \"best\" where the paper calls it the run's best accuracy.",
      "",
      *summary,
      "",
  ]
  return "\n".join(head + body)


def write(path: pathlib.Path) -> pathlib.Path:
  """Writes `render` to `path`; returns it."""
  path.write_text(render())
  return path
