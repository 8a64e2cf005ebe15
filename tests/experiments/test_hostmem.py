"""Kept buffers (experiments.hostmem): applied by every command line, off with CLR_KEEP_BUFFERS=0, same results."""

import json
import pathlib
import platform
import subprocess
import sys

import pytest

from experiments import hostmem
from tests.experiments.test_train import _write_image_folder

REPO = pathlib.Path(__file__).resolve().parents[2]
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")

# Minor page faults per free-and-allocate of a block, after a warm-up, in a fresh process: glibc's default hands the
# block back to the kernel on free (a fault per page, or per huge page, to get it again). argv: the hostmem
# function to call first, the block's size in MB, and "thread" to allocate on a thread of its own (its own arena).
_FAULTS = """
import resource, sys, threading, numpy as np
from experiments import hostmem
getattr(hostmem, sys.argv[1], lambda: None)()
def churn():
  for _ in range(20):
    block = np.ones(int(sys.argv[2]) * 250_000, np.float32)
    del block
def faults():
  churn()
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  churn()
  print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
if sys.argv[3] == "thread":
  worker = threading.Thread(target=faults)
  worker.start()
  worker.join()
else:
  faults()
"""


def _faults_per_alloc(call: str, env: dict[str, str], megabytes: int = 40, where: str = "main") -> float:
  out = subprocess.run([sys.executable, "-c", _FAULTS, call, str(megabytes), where], capture_output=True, text=True,
                       check=True, cwd=REPO, env=env, timeout=120)
  return float(out.stdout)


@glibc_only
def test_kept_buffers_stop_the_page_faults_of_a_freed_block_and_the_switch_turns_them_off():
  plain = hostmem.subprocess_env(False)  # glibc's variables unset, the switch off
  assert _faults_per_alloc("none", plain) >= 10  # glibc's default
  assert _faults_per_alloc("keep_freed_buffers", {**plain, hostmem.SWITCH: "1"}) <= 1
  assert _faults_per_alloc("keep_freed_buffers", plain) >= 10
  assert _faults_per_alloc("none", hostmem.subprocess_env(True)) <= 1  # the documented recipe for other programs


@glibc_only
def test_a_block_larger_than_a_thread_arenas_heap_is_kept_too():
  # 100 MB is above the 64 MiB heaps of a thread's own arena, which map such a block whatever the thresholds.
  plain = hostmem.subprocess_env(False)
  thresholds_only = {**plain, **{k: v for k, v in hostmem.ENV_SETTINGS.items() if k != "MALLOC_ARENA_MAX"}}
  assert _faults_per_alloc("none", thresholds_only, 100, "thread") >= 10
  assert _faults_per_alloc("keep_freed_buffers", {**plain, hostmem.SWITCH: "1"}, 100, "thread") <= 1
  assert _faults_per_alloc("none", hostmem.subprocess_env(True), 100, "thread") <= 1


def test_the_switch_and_other_platforms_make_it_a_no_op(monkeypatch):
  monkeypatch.setenv(hostmem.SWITCH, "0")
  assert hostmem.keep_freed_buffers() is False
  monkeypatch.setenv(hostmem.SWITCH, "1")
  monkeypatch.setattr(sys, "platform", "darwin")
  assert hostmem.keep_freed_buffers() is False


def test_subprocess_env_sets_or_clears_both_the_switch_and_glibcs_variables():
  on = hostmem.subprocess_env(True, {"MALLOC_TOP_PAD_": "1", "PATH": "/bin"})
  off = hostmem.subprocess_env(False, {**hostmem.ENV_SETTINGS, "PATH": "/bin"})
  assert on == {**hostmem.ENV_SETTINGS, hostmem.SWITCH: "1", "PATH": "/bin"}
  assert off == {hostmem.SWITCH: "0", "PATH": "/bin"}


@glibc_only
def test_the_trainer_gives_bitwise_the_same_run_with_and_without_kept_buffers(tmp_path):
  folder = _write_image_folder(tmp_path / "images")

  def start(keep: bool) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.train", "--config", "table1_triangular2", "--workdir",
         str(tmp_path / f"keep{keep}"), "--data", str(folder), "--set", f"data.cache_dir={tmp_path / f'cache{keep}'}",
         "model.name=cifar10_quick", "train.batch_size=10", "train.num_steps=20", "train.eval_every=10",
         "train.eval_batch_size=10", "train.progress=false", "train.num_devices=1", "schedule.step_size=5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=hostmem.subprocess_env(keep))

  def finish(keep: bool, proc: subprocess.Popen) -> tuple[list, dict]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    rows = [json.loads(line) for line in (tmp_path / f"keep{keep}" / "metrics.jsonl").read_text().splitlines()]
    return [(r["split"], r["step"], r["loss"]) for r in rows], json.loads(out.splitlines()[-1])

  # Both at once (two cores), each with its own decoded-image cache.
  procs = {keep: start(keep) for keep in (True, False)}
  (kept_rows, kept_summary), (default_rows, _) = (finish(k, p) for k, p in procs.items())
  assert kept_rows == default_rows and len(kept_rows) > 20
  assert kept_summary["peak_rss_mib"] > 0
