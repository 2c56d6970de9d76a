"""The web console: server-rendered pages over the Api, served by ``haathi serve`` at ``/``.

It owns the console's pages, their URL scheme (:mod:`haathi.console.urls`), templates and
assets (``templates/``, ``static/``: files of the package, nothing fetched at run time), and
its safety: sign-in with a token kept in a cookie (:mod:`haathi.console.session`), one CSRF
check for every write (:mod:`haathi.console.csrf`), and security headers on every answer
(:mod:`haathi.console.headers`). Each page calls the same :class:`~haathi.api.Api` the REST
routes call, as the signed-in caller, so it shows and does what the API lets that caller.
It sits below the server (which mounts it: :func:`haathi.console.app.create_console`) and
imports the Api and what is below it.
"""
