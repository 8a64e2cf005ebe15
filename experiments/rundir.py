"""One run's directory: its file names, atomic writes, the metrics writer and reader, checkpoints, and the
one rule for "does this saved run match this config".

A run directory (``<workdir>/<config with ':' -> '_'>/seed<k>/`` under `experiments.reproduce`) holds:

* ``config.json`` (`CONFIG`): the config it trains, `experiments.configs.to_dict`;
* ``metrics.jsonl`` (`METRICS_JSONL`) and ``metrics.csv`` (`METRICS_CSV`): one row per training step and
  per evaluation (``"split"``: "train" or "test"), the learning rate of each step included;
* ``checkpoints/`` (`CHECKPOINTS`): orbax checkpoints of `TrainState.checkpoint_items`;
* ``summary.json`` (`SUMMARY`), once the run has finished (written by `experiments.reproduce.run_one`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pathlib
import shutil
from typing import Any, Iterator, Mapping, Sequence

import jax
import orbax.checkpoint as ocp

from experiments import configs as config_lib
from experiments.step import TrainState

CONFIG = "config.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
# The infix of the temporary directory orbax writes a checkpoint to before renaming it to its step.
TMP_CHECKPOINT = ".orbax-checkpoint-tmp-"
# What a finished run leaves that is worth committing (never its checkpoints).
RESULT_FILES = (SUMMARY, METRICS_JSONL, CONFIG)
CSV_FIELDS = ("step", "epoch", "split", "loss", "accuracy", "lr", "grad_norm", "images_per_sec", "wall_time")

# Fields a resumed run may change: they decide what is logged, evaluated and kept, how the same training is split
# over devices and compiled calls (equal up to float rounding) or how many processes decode the stream (batch k
# is the same either way), not what is trained.
RESUMABLE_CHANGES = frozenset({"paper", "data.cache_dir", "train.eval_every", "train.log_every",
                               "train.checkpoint_every", "train.max_checkpoints", "train.eval_batch_size",
                               "train.progress", "train.num_devices", "train.steps_per_call", "data.workers"})


def make_dir(path: str | os.PathLike) -> pathlib.Path:
  """Creates the directory `path` (a work directory, a report's) and the folders above it where missing; returns
  it as a Path.

  Raises:
    ValueError: `path` or a folder above it is a file (naming it), checked before anything is created.
  """
  path = pathlib.Path(path)
  blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
  if blocker is not None:
    raise ValueError(f"the directory {path} cannot be made: {blocker} is a file")
  path.mkdir(parents=True, exist_ok=True)
  return path


def run_dir(workdir: str | os.PathLike, config_name: str, seed: int) -> pathlib.Path:
  """Where the run of `config_name` with `seed` keeps its metrics and checkpoints: ``<workdir>/<name>/seed<k>``."""
  return pathlib.Path(workdir) / config_name.replace(":", "_") / f"seed{seed}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
  """A temporary name beside `path` (same suffix, for writers that pick the format by it) to write to; on
  leaving the block without an error it is renamed to `path` in one step, so `path` is never half written."""
  path = pathlib.Path(path)
  tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes `text` to `path` atomically (`atomic_path`)."""
  with atomic_path(path) as tmp:
    tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
  return json.loads(pathlib.Path(path).read_text())


def write_config(directory: pathlib.Path, config: config_lib.Config) -> None:
  """Writes the run's ``config.json``."""
  write_text(directory / CONFIG, json.dumps(config_lib.to_dict(config), indent=2))


def run_differences(saved: Mapping[str, Any], config: config_lib.Config) -> list[str]:
  """The one rule for "is this saved run a run of `config`": the fields that train differently.

  Fields in `RESUMABLE_CHANGES` may differ. The comparison goes through JSON, so that the config's tuples
  equal the saved lists; a field missing on one side differs. An image-folder dataset is named by its file:
  the same archive in another folder (another clone, another machine) is the same data.

  Args:
    saved: a run's ``config.json``, as a dict.
    config: the config to compare with.

  Returns:
    ``"field: saved -> new"`` for every differing field, sorted; empty when it is the same run.
  """
  old, new = _trained_fields(saved), _trained_fields(config_lib.to_dict(config))
  changed = sorted(k for k in old.keys() | new.keys() if old.get(k, "<missing>") != new.get(k, "<missing>"))
  return [f"{k}: {old.get(k, '<missing>')!r} -> {new.get(k, '<missing>')!r}" for k in changed]


def _trained_fields(config: Mapping[str, Any]) -> dict[str, Any]:
  """The flat fields of a config dict that decide what is trained (not `RESUMABLE_CHANGES`), as JSON reads them
  back (tuples as lists), an image-folder dataset named by its file."""
  fields = config_lib.flat_fields(json.loads(json.dumps(dict(config))))
  if isinstance(fields.get("data.dataset"), str):
    fields["data.dataset"] = pathlib.PurePath(fields["data.dataset"]).name
  return {k: v for k, v in fields.items() if k not in RESUMABLE_CHANGES}


def check_distinct_runs(configs: Sequence[config_lib.Config],
                        directories: Sequence[str | os.PathLike] | None = None) -> None:
  """Refuses a plan that holds one run twice: two configs that train alike (`run_differences` finds nothing
  between them: one config with one seed listed twice) or, given their `directories`, two runs in one directory
  (their metrics would be written into one file).

  Raises:
    ValueError: naming the two runs (numbered from 1) and what they share.
  """
  seen: dict[str, int] = {}
  for i, config in enumerate(configs):
    j = seen.setdefault(json.dumps(_trained_fields(config_lib.to_dict(config)), sort_keys=True), i)
    if j != i:
      raise ValueError(f"{config.name} seed {config.train.seed} is planned twice (runs {j + 1} and {i + 1}): each "
                       "seed of a config runs once, or it would count twice")
  places: dict[pathlib.Path, int] = {}
  for i, directory in enumerate(directories or ()):
    j = places.setdefault(pathlib.Path(directory).resolve(), i)
    if j != i:
      a, b = configs[j], configs[i]
      raise ValueError(f"runs {j + 1} ({a.name} seed {a.train.seed}) and {i + 1} ({b.name} seed {b.train.seed}) "
                       f"share the work directory {directory}: each run needs its own")


def check_same_run(directory: pathlib.Path, config: config_lib.Config) -> None:
  """Refuses a `directory` whose ``config.json`` trains differently from `config` (`run_differences`).

  Raises:
    ValueError: naming every differing field.
  """
  if (directory / CONFIG).exists():
    diffs = run_differences(read_json(directory / CONFIG), config)
    if diffs:
      raise ValueError(f"{directory} holds a run of a different config ({', '.join(diffs)}); continue it with "
                       "its own settings, or use another --workdir (or delete it)")


def read_rows(path: pathlib.Path) -> list[dict[str, Any]]:
  """The rows of a ``metrics.jsonl``, in order.

  A last line without its newline that is not a whole row (a write killed half way) is dropped: the rows are
  appended in one write each, so every complete row is kept and a resumed run writes the rest again.

  Raises:
    ValueError: another line is not a row (naming the line and the file).
  """
  lines = pathlib.Path(path).read_text().split("\n")
  rows = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError as e:
      if number == len(lines):  # the last line, cut short
        break
      raise ValueError(f"line {number} of {path} is not a metrics row ({e})") from None
  return rows


def read_metrics(directory: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
  """The rows of a run's ``metrics.jsonl`` split by ``"split"`` (``{"train": [...], "test": [...]}``)."""
  out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
  for row in read_rows(pathlib.Path(directory) / METRICS_JSONL):
    out.setdefault(row["split"], []).append(row)
  return out


class MetricsWriter:
  """Appends metric rows to ``metrics.jsonl`` and ``metrics.csv`` in the work directory (process 0 only)."""

  def __init__(self, workdir: pathlib.Path, *, enabled: bool = True, keep_until_step: int | None = None):
    """Opens the files; on resume (`keep_until_step`) rows after that step are dropped first, atomically."""
    self.enabled = enabled
    self.jsonl = workdir / METRICS_JSONL
    self.csv = workdir / METRICS_CSV
    if not enabled:
      return
    if keep_until_step is None:
      for path in (self.jsonl, self.csv):
        path.unlink(missing_ok=True)
    else:
      self._truncate(keep_until_step)
    if not self.csv.exists():
      with open(self.csv, "w", newline="") as f:
        csv.DictWriter(f, CSV_FIELDS).writeheader()

  def _truncate(self, step: int) -> None:
    rows = read_rows(self.jsonl) if self.jsonl.exists() else []
    rows = [r for r in rows if r["step"] <= step]
    write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows))
    write_text(self.csv, self._csv_text(rows))

  @staticmethod
  def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()

  def write(self, rows: list[dict[str, Any]]) -> None:
    """Appends `rows` (dicts with at least "step" and "split") and flushes them to disk."""
    if not self.enabled or not rows:
      return
    with open(self.jsonl, "a") as f:
      f.write("".join(json.dumps(r) + "\n" for r in rows))
    with open(self.csv, "a", newline="") as f:
      csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore").writerows(rows)


def checkpoint_manager(workdir: pathlib.Path, max_to_keep: int) -> ocp.CheckpointManager:
  """The orbax manager of ``<workdir>/checkpoints``, keeping the latest `max_to_keep` checkpoints.

  A write killed inside orbax leaves ``<step>.orbax-checkpoint-tmp-*``, never restored but counted by orbax
  against `max_to_keep`: such leftovers are removed first (by the primary process).
  """
  directory = (workdir / CHECKPOINTS).absolute()
  if jax.process_index() == 0 and directory.is_dir():
    for leftover in directory.glob(f"*{TMP_CHECKPOINT}*"):
      shutil.rmtree(leftover)
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options)


def save_checkpoint(manager: ocp.CheckpointManager, state: TrainState) -> None:
  """Writes `state` (unreplicated) as an orbax checkpoint; orbax writes to a temporary name, then renames."""
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.StandardSave(state.checkpoint_items()))
  manager.wait_until_finished()


def restore_checkpoint(manager: ocp.CheckpointManager, state: TrainState, step: int | None = None) -> TrainState:
  """`state` with its arrays replaced by those of the checkpoint at `step` (default: the latest)."""
  step = manager.latest_step() if step is None else step
  items = manager.restore(step, args=ocp.args.StandardRestore(state.checkpoint_items()))
  return state.replace_checkpoint_items(items)
