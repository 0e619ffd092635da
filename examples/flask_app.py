"""A Flask app exercising what real apps need from the server.

    python -m unicorn_aio examples.flask_app:app --bind 127.0.0.1:8000

Routes, a multipart form with a file upload, a streamed response, a file sent through
``wsgi.file_wrapper`` (Flask's send_file uses it, so unicorn_aio can sendfile(2) it), and
error pages: a 404 and a 500 from an exception in a view.
"""

import hashlib
import os

from flask import Flask, Response, jsonify, request, send_file, stream_with_context

HERE = os.path.dirname(os.path.abspath(__file__))
app = Flask(__name__, static_folder=os.path.join(HERE, "static"))


@app.get("/")
def index():
    return "Hello from Flask\n"


@app.get("/hello/<name>")
def hello(name):
    return jsonify(greeting=f"Hello, {name}!", scheme=request.scheme,
                   remote_addr=request.remote_addr, host=request.host)


@app.route("/upload", methods=["GET", "POST"])
def upload():
    if request.method == "GET":
        return ('<form method="post" enctype="multipart/form-data">'
                '<input name="title"><input type="file" name="file"><button>Send</button></form>')
    f = request.files["file"]
    data = f.read()
    return jsonify(title=request.form.get("title"), filename=f.filename, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())


@app.get("/stream")
def stream():
    count = request.args.get("n", 5, type=int)

    def generate():
        for i in range(count):
            yield f"chunk {i}\n"
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/file")
def file():
    return send_file(os.path.join(HERE, "static", "style.css"), mimetype="text/css")


@app.get("/boom")
def boom():
    raise RuntimeError("boom: an exception in a view")


@app.errorhandler(404)
def not_found(error):
    return "Nothing here\n", 404
