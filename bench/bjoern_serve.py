"""bjoern has no command line: `python -m bench.bjoern_serve APP HOST PORT` serves bench.apps.APP."""

import sys

import bjoern

from bench import apps

if __name__ == "__main__":
    app, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    bjoern.run(getattr(apps, app), host, port)
