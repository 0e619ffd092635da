"""WSGI entry point: python -m unicorn_aio mysite.wsgi --chdir examples/djangoproject"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
