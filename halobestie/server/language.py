"""Which language a request is answered in: Bahasa Indonesia, unless the user chose English.

The choice is the `django_language` cookie, set by the language switch in the control center's
header (Django's `set_language` view on the internal listener). A browser's Accept-Language is not
a choice (an English Chrome in Jakarta still gets Indonesian), so unlike Django's LocaleMiddleware
this never reads it. The apps' API has no switch: it answers in Indonesian.
"""

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_vary_headers


def chosen_language(request):
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return chosen if chosen in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


class LanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = chosen_language(request)
        request.LANGUAGE_CODE = language
        with translation.override(language):
            response = self.get_response(request)
        patch_vary_headers(response, ("Cookie",))
        response.headers.setdefault("Content-Language", language)
        return response
