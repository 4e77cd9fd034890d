"""The ``cloudburst`` command (``main``: its subcommands; the entry point is ``cloudburst.cli.main:main``):
``tasks`` (``cloudburst tasks ...``), ``plots`` (fan charts, bands, risk maps) and ``completion`` (bash). It may
import ``api`` and what ``api`` returns; never ``worker``."""
