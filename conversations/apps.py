from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from . import (
            attachments,  # noqa: F401 - deletes stored files along with their rows
            cost_rollup,  # noqa: F401 - keeps the costs page's daily sums in step
        )
