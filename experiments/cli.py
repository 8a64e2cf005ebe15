"""What the command-line tools of experiments/ share: the process set up for training on the host (kept buffers,
`experiments.hostmem`), and a user's mistake ending the command with its message alone.

Every ``python -m experiments.<tool>`` ends with ``cli.run(main)``; `main` itself raises, so that a notebook or a
test calling it sees the exception.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from experiments import hostmem

# A user's mistake: a value the tool refuses (a ValueError naming the argument or field), or a file it was told
# to read that is missing or to create that is in the way; each message names what to change.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def run(main: Callable[[], Any]) -> None:
  """Keeps freed buffers (`experiments.hostmem`, unless ``CLR_KEEP_BUFFERS=0``), then calls `main()`; on a
  `USER_ERRORS` exception prints ``error: <message>`` to stderr and exits with status 1.

  Any other exception propagates with its traceback: it is not the user's to fix.
  """
  hostmem.keep_freed_buffers()
  try:
    main()
  except USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
