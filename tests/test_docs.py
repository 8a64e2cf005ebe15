"""The README's Python examples run, in order, in one namespace (as a reader would paste them)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  assert blocks, "the README has no python examples"
  namespace: dict = {}
  for i, block in enumerate(blocks):
    exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # pylint: disable=exec-used
  # the quick start prints the first two peaks of triangular2
  assert "0.006" in capsys.readouterr().out
