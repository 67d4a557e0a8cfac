"""The benchmark: this proxy beside direct access, nginx and a minimal aiohttp proxy.

Run it with ``bench/run`` (see ``bench/README.md``). Figures, never assertions: the test suite
makes no timing claims.
"""
