"""``python -m proxy``: the same as the ``smartdoc-proxy`` command."""

import sys

from proxy.cli import main

sys.exit(main())
