"""The WSGI entry point. Once the application is loaded it announces ``web_process_starting``, so apps load what no
request should wait for (recall's query encoder) before the first request. Only web processes import this module;
tests and management commands (but runserver) never do."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
application = get_wsgi_application()

from feedbackhub.events import web_process_starting  # noqa: E402 (the apps must be loaded first)

web_process_starting.send(sender=application.__class__)
