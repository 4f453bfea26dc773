"""``python -m torchscan``: the command line."""

import sys

from torchscan.console import main

sys.exit(main())
