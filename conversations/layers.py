"""The in-memory channel layer, without a full scan on every send."""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer


class SingleProcessChannelLayer(InMemoryChannelLayer):
    """channels' InMemoryChannelLayer, cleaning expired messages once a second.

    The stock layer walks every channel and every group membership on every
    send and group_send. With hundreds of open sockets each receiving about
    20 frames a second, that scan costs more than everything else a frame
    does; expiry is measured in minutes, so once a second loses nothing.
    """

    clean_interval = 1.0
    _last_clean = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._last_clean < self.clean_interval:
            return
        self._last_clean = now
        super()._clean_expired()
