"""`python -m sim.cli`: the same as the `kafkasim` command."""

import sys

from sim.cli.app import main

sys.exit(main())
