"""Tests never write into the checkout's experiments/reports: its default moves to a temporary folder."""

import pytest


@pytest.fixture(autouse=True)
def _reports_in_tmp(tmp_path_factory, monkeypatch):
  from experiments import reproduce  # pylint: disable=g-import-not-at-top  (imports jax, after tests/conftest.py)
  monkeypatch.setattr(reproduce, "REPORTS", tmp_path_factory.mktemp("reports"))
