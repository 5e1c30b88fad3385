import sys

from snapstore._cli import main

sys.exit(main())
