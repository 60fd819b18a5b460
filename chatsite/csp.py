"""The Content-Security-Policy header (django-csp), with this site's own WebSocket.

CSP3 lets 'self' match ws:/wss: of the page's host, but browsers that predate
it do not; naming the request's own host keeps every browser's socket allowed
without allowing any other host.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts


class SiteCSPMiddleware(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        host = request.get_host()
        update = dict(parts.update or {})
        update["connect-src"] = [*update.get("connect-src", []), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts
