"""``python -m vid2vid_widgets`` is the ``vid2vid`` command."""

import sys

from .cli import main

sys.exit(main())
