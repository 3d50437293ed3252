"""Which language a request is answered in: Bahasa Indonesia, unless the user chose English.

The choice is the `django_language` cookie, set by the language switch in the control center's
header (Django's `set_language` view on the internal listener). A browser's Accept-Language is not
a choice (an English Chrome in Jakarta still gets Indonesian), so unlike Django's LocaleMiddleware
this never reads it. The apps' API has no switch: it answers in Indonesian.
"""

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_vary_headers

from halobestie.server.async_capable import AsyncCapableMiddleware


def chosen_language(request):
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    return chosen if chosen in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


class LanguageMiddleware(AsyncCapableMiddleware):
    @staticmethod
    def finish(response, language):
        patch_vary_headers(response, ("Cookie",))
        response.headers.setdefault("Content-Language", language)
        return response

    def handle(self, request):
        language = request.LANGUAGE_CODE = chosen_language(request)
        with translation.override(language):
            response = self.get_response(request)
        return self.finish(response, language)

    async def __acall__(self, request):
        # translation.override sets a context variable (asgiref Local): the view, on a thread
        # or not, sees the language; it is restored when the block ends.
        language = request.LANGUAGE_CODE = chosen_language(request)
        with translation.override(language):
            response = await self.get_response(request)
        return self.finish(response, language)
