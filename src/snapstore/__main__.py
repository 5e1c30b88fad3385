import sys

from snapstore.cli.main import main

sys.exit(main())
