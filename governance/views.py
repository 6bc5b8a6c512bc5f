from django.http import HttpResponse


def dashboard(request):
    return HttpResponse("ChronosX: see /api/v1/health/ and /admin/", content_type="text/plain")
