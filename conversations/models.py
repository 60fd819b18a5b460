from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from conversations.fields import EncryptedTextField
from conversations.search_terms import index_text


class Dialect(models.TextChoices):
    """How a relay wants media parts spelled (PROTOCOL.md §2)."""

    OPENAI = "openai", _("OpenAI (input_audio, file)")
    IMAGE_URL_FOR_ALL = "image_url-for-all", _("image_url for every medium")
    MEDIA_URL_PARTS = "media-url-parts", "image_url / audio_url / video_url"
    OPENROUTER = "openrouter", "OpenRouter"
    IMAGES_ONLY = "images-only", _("Images only (one-api)")


class BillingMode(models.TextChoices):
    LIST_PRICE = "list", _("List price × multiplier")
    NEW_API = "new_api", _("new-api ratios")


class Relay(models.Model):
    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(
        max_length=500, help_text=_("Without /v1, e.g. https://api.example.com")
    )
    api_key = EncryptedTextField(blank=True, help_text=_("Stored encrypted; never shown again."))
    dialect = models.CharField(
        max_length=32, choices=Dialect.choices, default=Dialect.OPENAI,
        help_text=_("How the relay's software wants files spelled. openai: OpenAI, LiteLLM, "
        "new-api's native Gemini channel. image_url for every medium: new-api's Gemini "
        "channel (钱多多, aigcbest). image_url / audio_url / video_url: relays whose docs show "
        "those parts (mixrouter, toiotech); new-api drops audio_url without a word. "
        "OpenRouter: OpenRouter. Images only: one-api. Not sure? Save, then Probe."),
    )
    is_simulated = models.BooleanField(
        default=False, help_text=_("The built-in relay simulator, for demos and tests.")
    )
    is_active = models.BooleanField(default=True)

    # What the relay charges (issue "What every reply cost").
    currency = models.CharField(max_length=8, default="USD")
    exchange_rate = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("1"),
        help_text=_("Money you paid per relay dollar (e.g. 7.0 CNY)."),
    )
    billing_mode = models.CharField(
        max_length=16, choices=BillingMode.choices, default=BillingMode.LIST_PRICE
    )
    price_multiplier = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))
    group_ratio = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("1"))

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        if self.is_simulated:
            return gettext("%(name)s (simulated)") % {"name": self.name}
        return self.name


class RelayProbe(models.Model):
    """One probe of a relay (relays/probe.py): its report, and whether staff applied it."""

    relay = models.ForeignKey(Relay, on_delete=models.CASCADE, related_name="probes")
    created_at = models.DateTimeField(default=timezone.now)
    report = models.JSONField(default=dict)
    proposed_dialect = models.CharField(max_length=32, blank=True)
    cost_usd = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True,
        help_text=_("What the probe's requests cost at list price (empty: a price unknown)"),
    )
    seconds = models.FloatField(default=0)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        when = formats.date_format(timezone.localtime(self.created_at), "DATETIME_FORMAT")
        return gettext("Probe of %(relay)s at %(when)s") % {"relay": self.relay, "when": when}


# A simulator model that fails on purpose (simulator/behaviour.py): for staff
# trying out error handling, never offered to others or made anyone's default.
SIMULATED_FAILURE = Q(relay__is_simulated=True, model_id__contains="@fail=")


class ChatModelQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(is_active=True, relay__is_active=True).select_related("relay")

    def offered_to(self, user):
        """The models `user` picks from."""
        usable = self.usable()
        return usable if getattr(user, "is_staff", False) else usable.exclude(SIMULATED_FAILURE)


class ChatModel(models.Model):
    """A model as one relay knows it."""

    relay = models.ForeignKey(Relay, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=200, help_text=_("The id the relay knows"))
    display_name = models.CharField(max_length=200, blank=True)
    accepts_text = models.BooleanField(default=True)
    accepts_image = models.BooleanField(default=False)
    accepts_audio = models.BooleanField(default=False)
    accepts_video = models.BooleanField(default=False)
    accepts_pdf = models.BooleanField(default=False)
    outputs_images = models.BooleanField(default=False)
    context_window = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Input tokens the model takes at most")
    )
    capabilities_source = models.CharField(
        max_length=200, blank=True,
        help_text=_("Where the flags came from when the model was created (relays/catalogue.py)"),
    )
    is_active = models.BooleanField(default=True)

    # Price overrides, per million tokens in USD list terms; they always win.
    price_input = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_cached_input = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    price_audio_input = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    price_output = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    price_image_output = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    price_per_request = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    # new-api ratios (PROTOCOL.md §6), entered by hand or imported from /api/pricing.
    model_ratio = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    completion_ratio = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cache_ratio = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    audio_price_per_m = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True
    )
    price_model_ref = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Name to look up in the list prices when it differs from the relay's id."),
    )

    objects = ChatModelQuerySet.as_manager()

    class Meta:
        ordering = ["relay__name", "display_name", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["relay", "model_id"], name="unique_model_per_relay")
        ]

    def __str__(self) -> str:
        return self.display_name or self.model_id

    @property
    def accepted_kinds(self) -> set[str]:
        kinds = {"text"} if self.accepts_text else set()
        for kind in ("image", "audio", "video", "pdf"):
            if getattr(self, f"accepts_{kind}"):
                kinds.add(kind)
        return kinds


class ConversationQuerySet(models.QuerySet):
    def for_user(self, user):
        """A person's conversations; a deleted one is gone for them (its row
        stays so its costs stay in the totals)."""
        return self.filter(owner=user, deleted_at__isnull=True)

    def in_sidebar(self):
        return self.filter(archived_at__isnull=True)


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    class TitleSource(models.TextChoices):
        NONE = "", _("not yet (or from before titles were generated)")
        FIRST_WORDS = "first_words", _("the first message's words")
        MODEL = "model", _("named by TITLE_MODEL")
        USER = "user", _("renamed by its owner")

    title = models.CharField(max_length=200, blank=True)
    title_source = models.CharField(max_length=16, choices=TitleSource.choices, blank=True)
    model = models.ForeignKey(ChatModel, on_delete=models.SET_NULL, null=True, blank=True)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    # For image-output models (capabilities.ASPECT_RATIOS / IMAGE_SIZES): the
    # composer's choice, kept for the next message.
    image_aspect_ratio = models.CharField(max_length=8, default="1:1")
    image_size = models.CharField(max_length=4, default="1K")
    total_cost = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0"))
    # The child on screen at each fork, {"<parent id>" or "root": child id};
    # a fork without an entry shows its newest child (conversations/history/tree.py).
    current_children = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(default=False)
    # Hidden from the sidebar; still found by search and counted in costs.
    archived_at = models.DateTimeField(null=True, blank=True)
    # Deleted by its owner: messages and files are gone, the row stays for its costs.
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["owner", "-updated_at"], name="conv_owner_recent"),
            # The sidebar's keyset pages: (updated_at, id) below the last one shown.
            models.Index(fields=["owner", "-updated_at", "-id"], name="conv_owner_sidebar",
                         condition=Q(archived_at__isnull=True, deleted_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return self.title or gettext("New conversation")

    @property
    def group_name(self) -> str:
        return f"conversation-{self.pk}"


class MessageQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(conversation__owner=user)

    def in_flight(self):
        return self.filter(status__in=[Message.Status.PENDING, Message.Status.STREAMING])


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        INTERRUPTED = "interrupted", _("Interrupted")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # The message this one answers or follows: regenerating adds a sibling,
    # editing adds a sibling of the user's message (a branch), continuing a cut
    # reply adds a child of it. None: the conversation's first message(s).
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True, help_text=_("What went wrong, in plain words"))
    error_code = models.CharField(max_length=100, blank=True)
    error_status = models.PositiveIntegerField(null=True, blank=True)
    warning = models.TextField(blank=True, help_text=_("e.g. media the relay silently dropped"))
    model = models.ForeignKey(ChatModel, on_delete=models.SET_NULL, null=True, blank=True)
    # A user message's picture to edit (generated or uploaded, of this conversation):
    # sent again as an image part of this turn (prompt.py).
    edit_source = models.ForeignKey(
        "Attachment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What the relay's answer said in its `model` field, beside the one asked
    # for (model.model_id), and whether it names another model (relays/checks.py).
    served_model = models.CharField(max_length=200, blank=True)
    model_substituted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Touched by every checkpoint: a streaming reply whose updated_at is stale
    # belongs to a process that died.
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # From the request to the relay to its first token (text or reasoning): the
    # staff's relays page shows its median per relay.
    first_token_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # host:pid:start of the process generating it (replies.THIS_PROCESS): a restarted
    # server closes at once what a process of this machine that is gone left streaming.
    # Nullable so that adding it is an ALTER TABLE on SQLite, not a rebuild of the
    # message table (which would drop the search index's triggers).
    generated_by = models.CharField(max_length=120, null=True, blank=True, editable=False)  # noqa: DJ001
    # The text as search terms (search_terms.py), kept by save(); indexed by
    # SQLite FTS5 or a PostgreSQL tsvector (migration 0005_history_search).
    # A streaming reply's checkpoints do not touch it: a reply is found once saved.
    search_text = models.TextField(blank=True, editable=False)
    # A finished reply's sanitised HTML blocks, {"text": [...], "reasoning": [...]}:
    # a page shows them instead of rendering markdown on every visit. Cleared
    # by save() whenever the text or reasoning is saved without them.
    rendered = models.JSONField(null=True, blank=True, editable=False)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="msg_conv_created"),
            models.Index(
                fields=["status"],
                name="msg_in_flight",
                condition=Q(status__in=["pending", "streaming"]),
            ),
            # The costs page counts these per relay; they are rare.
            models.Index(fields=["completed_at"], name="msg_substituted",
                         condition=Q(model_substituted=True)),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        extra = set()
        if update_fields is None or "text" in update_fields:
            self.search_text = index_text(self.text)
            extra.add("search_text")
        if update_fields is not None and "rendered" not in update_fields and (
            {"text", "reasoning"} & set(update_fields)
        ):
            self.rendered = None
            extra.add("rendered")
        if update_fields is not None and extra:
            kwargs["update_fields"] = {*update_fields, *extra}
        super().save(*args, **kwargs)

    @property
    def is_in_flight(self) -> bool:
        return self.status in (self.Status.PENDING, self.Status.STREAMING)

    @property
    def dom_id(self) -> str:
        return f"message-{self.pk}"

    @property
    def generated_pictures(self) -> list[Attachment]:
        """The pictures a model made in this reply (from the prefetch when there is one)."""
        return [a for a in self.attachments.all() if a.generated]


def attachment_path(instance: Attachment, filename: str) -> str:
    # The stored name is generated; the user's file name is only ever data.
    return f"attachments/{instance.owner_id}/{instance.uuid.hex}"


class Attachment(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        AUDIO = "audio", _("Audio")
        VIDEO = "video", _("Video")
        PDF = "pdf", _("Pdf")

    uuid = models.UUIDField(unique=True, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=300)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    mime = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    pages = models.PositiveIntegerField(null=True, blank=True)
    generated = models.BooleanField(default=False, help_text=_("Produced by an image model"))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.original_name


class UsageQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(owner=user)


class Usage(models.Model):
    """What one reply consumed and cost, frozen when the reply is saved."""

    # Kept when its message is deleted (with its conversation): what was paid stays paid.
    message = models.OneToOneField(Message, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="usage")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usages"
    )
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="usages")
    relay = models.ForeignKey(Relay, on_delete=models.SET_NULL, null=True, blank=True)
    model = models.ForeignKey(ChatModel, on_delete=models.SET_NULL, null=True, blank=True)
    model_name = models.CharField(max_length=200, blank=True)

    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    prompt_text_tokens = models.PositiveIntegerField(default=0)
    prompt_audio_tokens = models.PositiveIntegerField(default=0)
    prompt_image_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    completion_text_tokens = models.PositiveIntegerField(default=0)
    completion_audio_tokens = models.PositiveIntegerField(default=0)
    completion_image_tokens = models.PositiveIntegerField(default=0)
    raw = models.JSONField(null=True, blank=True)
    estimated = models.BooleanField(
        default=False, help_text=_("The relay sent no usage; counted from the text and media")
    )

    # Cost: None means the price is unknown, never a silent zero.
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=8, default="USD")
    price_source = models.CharField(max_length=32, blank=True)
    prices_used = models.JSONField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)

    objects = UsageQuerySet.as_manager()

    class Meta:
        indexes = [
            # Covers the budget check (a user's spending this month, per currency).
            models.Index(fields=["owner", "created_at", "currency", "cost"],
                         name="usage_owner_created"),
            models.Index(fields=["created_at"], name="usage_created"),
        ]

    def __str__(self) -> str:
        return f"usage of message #{self.message_id}"


class Budget(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="budget"
    )
    monthly_limit = models.DecimalField(max_digits=14, decimal_places=4)
    currency = models.CharField(max_length=8, default="USD")

    def __str__(self) -> str:
        return gettext("%(user)s: %(limit)s %(currency)s/month") % {
            "user": self.user, "limit": self.monthly_limit, "currency": self.currency}


# What the costs page groups by, then sums (cost_reports.py).
USAGE_DAY_GROUPS = ["relay", "model_name", "currency"]
USAGE_DAY_SUMS = ["cost", "replies", "priced", "estimated", "prompt_tokens", "completion_tokens"]


class UsageDay(models.Model):
    """Usage summed per local day, conversation, relay, model and currency.

    The costs page reads this instead of every reply, so a month or a year of
    history is a few thousand rows. Kept in step with Usage, in the same
    transaction, by conversations/cost_rollup.py; `manage.py
    rebuild_cost_rollup` rebuilds it (e.g. after changing TIME_ZONE).
    """

    day = models.DateField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="+")
    relay = models.ForeignKey(Relay, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    model_name = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=8)
    replies = models.IntegerField(default=0)
    priced = models.IntegerField(default=0, help_text=_("Replies with a known cost"))
    estimated = models.IntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=Decimal("0"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "conversation", "relay", "model_name", "currency"],
                name="usage_day_unique",
            )
        ]
        # Covering indexes, in the order the costs page groups by: a period's
        # per-day sums stream out of the index without a sort or a table read.
        indexes = [
            models.Index(
                fields=["day", *USAGE_DAY_GROUPS, "owner", "conversation", *USAGE_DAY_SUMS],
                name="usage_day_period",
            ),
            models.Index(
                fields=["owner", "day", *USAGE_DAY_GROUPS, "conversation", *USAGE_DAY_SUMS],
                name="usage_day_owner",
            ),
            # A conversation's total, per currency (header and sidebar).
            models.Index(fields=["conversation", "currency", *USAGE_DAY_SUMS],
                         name="usage_day_conversation"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model_name}: {self.cost} {self.currency}"


class Preferences(models.Model):
    """A person's own settings that follow them from device to device."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    language = models.CharField(
        max_length=16, blank=True,
        help_text=_("Chosen from the language menu; blank follows the browser"),
    )
    browser_language = models.CharField(
        max_length=16, blank=True,
        help_text=_("What the browser last asked for: the language of what is written "
        "without a request (a reply's errors, its finished copy)"),
    )

    def __str__(self) -> str:
        return f"preferences of {self.user}"
