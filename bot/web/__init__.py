"""The web app of ``rankbot run``: the public pages (front page, archive, model pages, charts, the Atom feed) and
the operator's ``/healthz`` and ``/metrics``. Slack, Discord and email routes join here in their issues.

Pages are rendered by the pure renderers in ``digests.render.html``; this package reads the database, caches
rendered bytes per (page, site version), answers conditional requests, and adds the security headers.
"""
