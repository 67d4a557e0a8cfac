"""The inspector: the last exchanges, live, on a page the proxy serves at ``/_proxy/``.

A consumer of the exchange record like the access log and the metrics: :mod:`.buffer` keeps
the last N finished exchanges, :mod:`.routes` serves the page and its data (JSON, a stream of
Server-Sent Events, a HAR 1.2 export), :mod:`.gate` decides who may open them, and every
value they show passes :mod:`.redact` first. Nothing here reaches back into a request.

(No imports here: :mod:`proxy.keys` imports :mod:`.buffer`, and :mod:`.routes` imports
:mod:`proxy.keys`.)
"""
