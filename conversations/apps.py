from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Signal receivers: stored files go with their rows; the costs page's
        # daily sums keep in step with usage; a chosen language follows sign-in.
        from conversations.accounts import language  # noqa: F401
        from conversations.billing import rollup  # noqa: F401
        from conversations.media import uploads  # noqa: F401
