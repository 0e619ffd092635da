import sys

from unicorn_aio.ctl.cli import main

sys.exit(main())
