"""The README's and the documentation's examples run, and the API reference lists every public name.

Each page's Python examples run in order in one namespace, as a reader would paste them; the pages do not
share a namespace, so each one imports what it uses.
"""

import pathlib
import re
import types

import pytest

import clr_optax

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_build" not in p.parts)]


def _python_blocks(text: str) -> list[str]:
  return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_pages_are_found():
  assert {"README.md", "docs/index.md", "docs/guides/policies.md", "docs/guides/range_test.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_python_examples_run(page, capsys):
  blocks = _python_blocks((ROOT / page).read_text())
  namespace: dict = {}
  for i, block in enumerate(blocks):
    exec(compile(block, f"{page} python block {i}", "exec"), namespace)  # pylint: disable=exec-used
  if page == "README.md":
    assert len(blocks) >= 3, "the README lost its examples"
    # the quick start prints the first two peaks of triangular2
    assert "0.006" in capsys.readouterr().out


def _api_names() -> list[str]:
  """The names listed under the API reference's autosummary directives."""
  names = []
  for block in re.findall(r"\.\. autosummary::\n((?:   .*\n|\n)+)", (DOCS / "api.rst").read_text()):
    names += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(":")]
  return names


def test_api_reference_lists_every_public_name_once():
  public = {name for name in dir(clr_optax)
            if not name.startswith("_") and not isinstance(getattr(clr_optax, name), types.ModuleType)}
  assert public == set(clr_optax.__all__), "clr_optax's public names and __all__ differ"
  listed = _api_names()
  assert sorted(listed) == sorted(set(listed)), f"listed twice: {sorted({n for n in listed if listed.count(n) > 1})}"
  assert set(listed) == public, (f"missing from docs/api.rst: {sorted(public - set(listed))}; "
                                 f"not public: {sorted(set(listed) - public)}")
