"""Test-wide set-up.

Four fake CPU devices let the pmap tests run on a machine without accelerators. The flag must be set
before jax is first imported, which is why it lives here rather than in the tests that use it.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import pathlib

import pytest

CIFAR10_ENV = "CLR_TEST_CIFAR10"


@pytest.fixture(scope="session")
def cifar10_archive() -> pathlib.Path:
  """The CIFAR-10 image-folder archive named by $CLR_TEST_CIFAR10; skips the test when it is absent."""
  path = os.environ.get(CIFAR10_ENV)
  if not path:
    pytest.skip(f"set {CIFAR10_ENV} to a CIFAR-10 image-folder archive (e.g. cifar10-jpeg.tar.xz) to run this test")
  path = pathlib.Path(path)
  if not path.exists():
    pytest.skip(f"{CIFAR10_ENV}={path} does not exist")
  return path
