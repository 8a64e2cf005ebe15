"""Test-wide set-up.

Four fake CPU devices let the pmap tests run on a machine without accelerators. The flag must be set
before jax is first imported, which is why it lives here rather than in the tests that use it.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
