"""Every output format of rankbot, in one place: text and Markdown (``text``), the JSON document (``document``), the
``/rankings`` views as text (``view_text``), charts as PNG with alt text (``charts``, ``alt_text``) and web pages
(``html``). Pure: values in, text or bytes out; no I/O, no clock.
"""
