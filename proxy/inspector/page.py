"""The page itself: one HTML file, its script and its style sheet, shipped in the package
(``static/``) and read once. Nothing is built and nothing comes from elsewhere, so the page
works on a machine without internet; the Content-Security-Policy says so to the browser."""

from __future__ import annotations

from importlib.resources import files

_STATIC = files("proxy.inspector") / "static"

HTML = (_STATIC / "page.html").read_bytes()
SCRIPT = (_STATIC / "inspector.js").read_bytes()
STYLE = (_STATIC / "inspector.css").read_bytes()

# Only this origin's own script, style and data; no frames, no forms, no plug-ins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
