"""`python -m sdd_fast.cli ARGS` (what torchrun runs): the `sdd-fast` command."""

import sys

from sdd_fast.cli import main

sys.exit(main())
