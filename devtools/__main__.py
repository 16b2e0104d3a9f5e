"""`python -m devtools`: see devtools/cli.py."""

import sys

from devtools.cli import main

sys.exit(main())
