import sys

from paczero.cli import main

sys.exit(main())
