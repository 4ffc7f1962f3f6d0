"""Entry point for ``python -m porch``."""

from porch.cli import main

raise SystemExit(main())
