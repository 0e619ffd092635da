"""An app whose import takes a second once the file SLOW_BOOT_FLAG names exists: replacement
workers that are slow to boot, while the first ones start at once."""

import os
import time

if os.path.exists(os.environ.get("SLOW_BOOT_FLAG", "")):
    time.sleep(1)


def app(environ, start_response):
    body = b"pid=%d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
