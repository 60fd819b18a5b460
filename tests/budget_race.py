"""Two posts race for the last of a budget, on the database DATABASE_URL names.

Run by tests/test_budget.py in a subprocess, so that it runs against a real
file or server database with real concurrent connections (pytest-django's
in-memory SQLite cannot show what two connections do). Prints one JSON line:
{"admitted": n, "refused": [messages], "started": [reply ids]}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# The check is made slow on purpose, so that without the lock both posts
# would read the budget before either reply exists.
CHECK_DELAY = 0.4


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from conversations import replies, services
    from conversations.billing import budgets
    from conversations.errors import ServiceError
    from conversations.models import Budget, Message
    from tests.factories import make_conversation, make_model, make_relay, make_user

    call_command("migrate", verbosity=0)
    owner = make_user("racer")
    model = make_model(make_relay("http://127.0.0.1:9"), "gemini-2.5-flash",
                       price_input=Decimal(1), price_output=Decimal(0))
    Budget.objects.create(user=owner, monthly_limit=Decimal(10), currency="USD")
    earlier = make_conversation(owner, model, title="earlier")
    reply = Message.objects.create(conversation=earlier, role="assistant", text="done",
                                   status="complete", model=model)
    replies.record_usage(message=reply, raw={"prompt_tokens": 9_500_000,
                                              "completion_tokens": 0})  # $9.50 of $10
    conversations = [make_conversation(owner, model, title=f"racer {n}") for n in range(2)]

    started: list[int] = []
    services._start = lambda message_id, **_: started.append(message_id)  # record, don't send
    slow_status = budgets.budget_status

    def budget_status(**kwargs):
        status = slow_status(**kwargs)
        time.sleep(CHECK_DELAY)
        return status

    budgets.budget_status = budget_status
    admitted, refused = [], []
    barrier = threading.Barrier(2)

    def post(conversation) -> None:
        try:
            barrier.wait()
            services.post_message(conversation=conversation, author=owner, text="one more")
            admitted.append(conversation.pk)
        except ServiceError as exc:
            refused.append(exc.message)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(c,)) for c in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    pending = Message.objects.filter(status="pending").count()
    print(json.dumps({"admitted": len(admitted), "refused": refused, "started": started,
                      "pending": pending}))


if __name__ == "__main__":
    main()
