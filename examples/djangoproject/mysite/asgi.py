"""ASGI entry point: python -m unicorn_aio mysite.asgi --chdir examples/djangoproject"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_asgi_application()
