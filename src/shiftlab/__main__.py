import sys

from shiftlab.cli import main

sys.exit(main())
