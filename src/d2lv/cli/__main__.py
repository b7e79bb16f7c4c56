"""``python -m d2lv.cli``: the same as the ``d2lv`` command."""

import sys

from d2lv.cli import main

sys.exit(main())
