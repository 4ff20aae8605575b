"""Slack: the publisher (digests to channels through ``chat.postMessage``), the ``/rankings`` app on slack_bolt, and
the installations. Block Kit is rendered by the pure ``digests.render.slack``."""
