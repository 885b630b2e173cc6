"""``python -m synack``: the command line."""

from .commands.main import main

raise SystemExit(main())
