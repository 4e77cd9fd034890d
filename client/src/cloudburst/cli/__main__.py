"""``python -m cloudburst.cli``: the ``cloudburst`` command."""
import sys

from cloudburst.cli.main import main

sys.exit(main())
