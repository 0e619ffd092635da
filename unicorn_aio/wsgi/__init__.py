"""PEP 3333: the WSGI handler, its environ, and the app thread pool."""
