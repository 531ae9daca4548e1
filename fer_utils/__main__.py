"""Run the command-line interface: ``python -m fer_utils --help``."""
import sys

from .cli import main

sys.exit(main())
