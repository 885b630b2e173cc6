"""``python -m synack``: the command line."""

from .cli import main

raise SystemExit(main())
