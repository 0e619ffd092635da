"""The control socket's client side: its wire protocol (shared with the master's server in
prefork/control.py) and ``unicorn_aioc``, the command-line client (``python -m unicorn_aio.ctl``)."""
