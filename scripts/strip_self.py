"""Remove the project's own entry (``prodsearch @ file://…``, which pip-compile writes for
the ``dev`` extra's ``prodsearch[…]``) from lock files: the project is installed from the
work tree with ``--no-deps``, and a local path has no hash."""

from __future__ import annotations

import re
import sys
from pathlib import Path

SELF = re.compile(
    r"(# WARNING: pip install will require the following package to be hashed\.\n"
    r"# Consider using a hashable URL[^\n]*\n)?prodsearch @ [^\n]*\n(    # via[^\n]*\n)*"
)

for name in sys.argv[1:]:
    path = Path(name)
    path.write_text(SELF.sub("", path.read_text("utf-8")), "utf-8")
