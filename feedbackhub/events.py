"""What the project core announces to the apps (they subscribe in their ``AppConfig.ready()``).

The core never imports an app; an app that needs to act at one of these moments connects a receiver.
"""

from __future__ import annotations

from django.dispatch import Signal

#: A web process (WSGI) has loaded the application and is about to take its first request: the moment to load what
#: a request should never wait for (the recall query encoder). No arguments.
web_process_starting = Signal()
