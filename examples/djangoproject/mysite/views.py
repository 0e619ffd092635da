import hashlib
import os

from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static.txt")


def index(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain")


def hello(request, name):
    return JsonResponse({"greeting": f"Hello, {name}!", "scheme": request.scheme,
                         "remote_addr": request.META.get("REMOTE_ADDR"),
                         "host": request.get_host()})


@csrf_exempt
def upload(request):
    if request.method != "POST":
        return HttpResponse('<form method="post" enctype="multipart/form-data">'
                            '<input name="title"><input type="file" name="file"></form>')
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"title": request.POST.get("title"), "filename": f.name,
                         "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def stream(request):
    count = int(request.GET.get("n", 5))
    return StreamingHttpResponse((f"chunk {i}\n" for i in range(count)),
                                 content_type="text/plain")


def file(request):
    # FileResponse hands the open file to wsgi.file_wrapper when the server offers one.
    return FileResponse(open(STATIC, "rb"), content_type="text/plain")


def boom(request):
    raise RuntimeError("boom: an exception in a view")
