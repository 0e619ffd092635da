"""A PasteDeploy app factory: ``use = call:paste_app:make_app`` in development.ini."""


def make_app(global_conf, greeting="Hello", **local_conf):
    def app(environ, start_response):
        body = f"{greeting} ({global_conf.get('flavour', 'plain')})\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return app
