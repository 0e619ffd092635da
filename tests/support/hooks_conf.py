# A gunicorn.conf.py as users write them: settings plus server hooks. Each hook appends its
# name (and pid) to the file named by $HOOK_LOG, so the test sees which ran, where and when.
import os

workers = 2
max_requests = 0


def _record(name):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(f"{name} {os.getpid()}\n")


def on_starting(server):
    _record("on_starting")


def when_ready(server):
    _record("when_ready")


def pre_fork(server, worker):
    _record("pre_fork")


def post_fork(server, worker):
    _record("post_fork")


def post_worker_init(worker):
    _record("post_worker_init")


def worker_int(worker):
    _record("worker_int")


def pre_request(worker, req):
    _record(f"pre_request {req.method} {req.path}")


def post_request(worker, req, environ, resp):
    _record(f"post_request {req.path} {resp.status}")


def child_exit(server, worker):
    _record("child_exit")


def worker_exit(server, worker):
    _record("worker_exit")


def nworkers_changed(server, new_value, old_value):
    _record(f"nworkers_changed {old_value}->{new_value}")


def on_reload(server):
    _record("on_reload")


def on_exit(server):
    _record("on_exit")
