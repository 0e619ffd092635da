"""Apps that borrow the server's log by gunicorn's logger names, as Flask's docs tell them to
(https://flask.palletsprojects.com/en/stable/logging/, "Other Libraries"), set up at import."""

import logging

from flask import Flask

flask_app = Flask(__name__)
if __name__ != "__main__":
    gunicorn_logger = logging.getLogger("gunicorn.error")
    flask_app.logger.handlers = gunicorn_logger.handlers
    flask_app.logger.setLevel(gunicorn_logger.level)


@flask_app.route("/")
def index():
    flask_app.logger.info("flask says hello")
    flask_app.logger.debug("flask debug line")
    logging.getLogger("gunicorn.access").info("app line in the access log")
    return "ok"
