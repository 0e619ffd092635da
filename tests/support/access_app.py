"""The app the access-log end-to-end tests run: fixed bodies and headers, known lengths."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"),
                                  ("X-Resp", 'de"f')])
        return [b"hello"]
    if path == "/created":
        body = environ["wsgi.input"].read()
        start_response("201 Created", [("Content-Length", str(len(body) + 3)), ("X-Resp", "made")])
        return [b"ok:", body]
    if path == "/":  # the readiness probe of procs.ServerProcess
        start_response("200 OK", [("Content-Length", "5")])
        return [b"ready"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"nope"]
