"""Every example in clr_optax's docstrings runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import clr_optax

MODULES = sorted(m.name for m in pkgutil.iter_modules(clr_optax.__path__, "clr_optax."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
