from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("hello/<str:name>", views.hello),
    path("upload", views.upload),
    path("stream", views.stream),
    path("file", views.file),
    path("boom", views.boom),
]
