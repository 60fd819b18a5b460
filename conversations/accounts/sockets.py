"""Who a WebSocket belongs to: channels' session and auth middleware, with the
user read side by side with other sockets' on PostgreSQL.

channels' AuthMiddleware reads the session and the user in the one database
thread every socket of the process shares (`database_sync_to_async`), so
after a restart 2,000 pages reconnecting waited for each other's two
queries, one round trip to the database at a time. This reads them the same
way (channels' own `get_user`) through infra.concurrency.database_work.
"""

from __future__ import annotations

from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware

from conversations.infra.concurrency import database_work

_read_user = database_work(get_user.func)  # channels' get_user, undecorated


class SocketAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope) -> None:
        scope["user"]._wrapped = await _read_user(scope)


def socket_auth(inner):
    """channels' AuthMiddlewareStack, with SocketAuthMiddleware."""
    return CookieMiddleware(SessionMiddleware(SocketAuthMiddleware(inner)))
