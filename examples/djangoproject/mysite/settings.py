"""Minimal Django settings for serving under unicorn_aio: no database, no templates."""

import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = "example-only-not-secret"
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
# No SECURE_PROXY_SSL_HEADER: behind a proxy, unicorn_aio already sets wsgi.url_scheme from
# X-Forwarded-Proto when the peer is in forwarded_allow_ips, and request.scheme reads that.
# Uploads larger than this spill to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
STATIC_URL = "static/"
# Errors of views to stderr, which unicorn_aio's error log captures (Django's default only
# prints them with DEBUG on, and mails them otherwise).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
