"""Custom infrastructure, fenced: each module replaces or bends a library's
behaviour and says in its docstring which benchmark figure keeps it here.

    concurrency.py  one request at a time in Django's synchronous code; where
                    async code runs its database work (database_work)
    layers.py       the in-process channel layer that hands frames straight over,
                    and Redis pub/sub publishing without a lock per message
    netio.py        httpcore's network backend on plain asyncio

Imports nothing from the app.
"""
