"""``python -m onebit``: the ``onebit`` command (torchrun starts it this way: ``torchrun ... -m onebit train``)."""

import sys

from onebit.cli import main

sys.exit(main())
