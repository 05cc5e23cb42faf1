"""``python -m huijiao_plugin.province …``: the province run's command line (core/province/cli.py)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from huijiao_plugin.core.province.cli import main

    sys.exit(main())
