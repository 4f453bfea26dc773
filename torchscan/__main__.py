"""``python -m torchscan``: the command line."""

import sys

from torchscan.cli import main

sys.exit(main())
