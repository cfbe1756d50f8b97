"""`python -m flowcraft_core.cli`: the same as the `flowcraft` script."""

import sys

from . import main

sys.exit(main())
