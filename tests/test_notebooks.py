"""The Colab notebooks in colab/ run top to bottom on CPU, shrunk, and are committed without outputs.

Each notebook is executed with nbclient in a kernel that runs *this* interpreter (a kernelspec written to a
temporary directory, so a stray user-level "python3" kernelspec cannot send the notebooks to another
Python), with ``CLR_NOTEBOOK_SMOKE=1`` (the notebooks' parameters cell then shrinks the run) and
``MPLBACKEND=Agg``. The notebooks that train on CIFAR-10 get ``CLR_DATA``: a small stratified sample of the
archive named by the ``cifar10_archive`` fixture, written once per session as an uncompressed tar, and are
skipped with the fixture's reason when it is absent. The kernels inherit the test session's
``XLA_FLAGS`` (four fake CPU devices, see conftest.py), so the pmap notebook really runs data-parallel.
"""

from __future__ import annotations

import io
import json
import pathlib
import sys
import tarfile

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = sorted(p.name for p in COLAB.glob("*.ipynb"))
# Notebooks that read CIFAR-10: they need CLR_DATA (no tfds download in the tests).
NEEDS_CIFAR10 = ("range_test.ipynb", "reproduce_tpu.ipynb")
CELL_TIMEOUT_S = 300
# Images per class in the sample archive handed to the notebooks.
SAMPLE_TRAIN_PER_CLASS = 40
SAMPLE_TEST_PER_CLASS = 15
KERNEL_NAME = "clr-optax-test-python3"
PROBE = "import sys\nprint(sys.executable)"


def test_notebooks_are_found():
  assert {"quickstart.ipynb", *NEEDS_CIFAR10} <= set(NOTEBOOKS), NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
  nb = nbformat.read(COLAB / name, as_version=nbformat.NO_CONVERT)
  nbformat.validate(nb)
  assert nb.nbformat == 4
  assert nb.metadata.kernelspec.name == "python3"
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, f"{name}: code cell {i} has outputs; clear them"
  # Opening in Colab: the notebook links to itself, and names the repository in one variable only.
  text = (COLAB / name).read_text()
  assert f"colab.research.google.com/github/clr-optax/clr_optax/blob/main/colab/{name}" in text
  assert text.count("REPO_URL = ") == 1


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory) -> pathlib.Path:
  """A kernelspec directory whose only kernel runs ipykernel under the interpreter running the tests."""
  root = tmp_path_factory.mktemp("kernels")
  spec = root / KERNEL_NAME
  spec.mkdir()
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "Python 3 (clr_optax tests)",
      "language": "python",
  }))
  return root


@pytest.fixture(scope="session")
def cifar10_sample(cifar10_archive, tmp_path_factory) -> pathlib.Path:
  """A stratified random sample of the CIFAR-10 image-folder archive, as a small uncompressed tar.

  One streaming pass over the archive with a seeded reservoir per (split, class): the archive is grouped
  by class, so "the first N files" would be one or two classes.
  """
  rng = np.random.default_rng(0)
  quota = {"train": SAMPLE_TRAIN_PER_CLASS, "test": SAMPLE_TEST_PER_CLASS}
  reservoirs: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
  seen: dict[tuple[str, str], int] = {}
  with tarfile.open(cifar10_archive, mode="r|*") as src:
    for member in src:
      parts = pathlib.PurePosixPath(member.name).parts
      if not member.isfile() or len(parts) < 3 or parts[-3] not in quota:
        continue
      group = (parts[-3], parts[-2])
      k = quota[parts[-3]]
      n = seen.get(group, 0)
      seen[group] = n + 1
      slot = n if n < k else int(rng.integers(n + 1))
      if slot < k:
        bucket = reservoirs.setdefault(group, [])
        item = ("/".join(parts[-3:]), src.extractfile(member).read())
        if n < k:
          bucket.append(item)
        else:
          bucket[slot] = item
  classes = {c for _, c in reservoirs}
  assert len(classes) == 10 and all(len(v) == quota[s] for (s, _), v in reservoirs.items()), \
      f"unexpected layout in {cifar10_archive}: {sorted(seen.items())}"
  out = tmp_path_factory.mktemp("cifar10_sample") / "cifar10-sample.tar"
  with tarfile.open(out, "w") as dst:
    for _, items in sorted(reservoirs.items()):
      for name, data in items:
        info = tarfile.TarInfo(f"cifar10-sample/{name}")
        info.size = len(data)
        dst.addfile(info, io.BytesIO(data))
  return out


def _execute(name: str, kernel_dir: pathlib.Path, workdir: pathlib.Path) -> None:
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import AsyncKernelManager

  nb = nbformat.read(COLAB / name, as_version=4)
  nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # which Python did the kernel run?
  km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
  client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                                   resources={"metadata": {"path": str(workdir)}})
  try:
    client.execute()
  except nbclient.exceptions.CellExecutionError as e:
    pytest.fail(f"{name}: a cell raised\n{e}", pytrace=False)
  probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream").strip()
  assert probe == sys.executable, f"the kernel ran {probe!r}, not the test interpreter {sys.executable!r}"


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n not in NEEDS_CIFAR10])
def test_notebook_runs(name, kernel_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("CLR_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.delenv("CLR_DATA", raising=False)
  _execute(name, kernel_dir, tmp_path)


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n in NEEDS_CIFAR10])
def test_cifar10_notebook_runs(name, kernel_dir, cifar10_sample, tmp_path, monkeypatch):
  monkeypatch.setenv("CLR_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.setenv("CLR_DATA", str(cifar10_sample))
  monkeypatch.setenv("CLR_OPTAX_CACHE", str(tmp_path / "cache"))  # decoded arrays stay in the test's tmp dir
  _execute(name, kernel_dir, tmp_path)
