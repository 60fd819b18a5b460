"""The outside world: everything about talking to relays.

    client.py        RelayClient: the only code that speaks HTTP to a relay
    errors.py        RelayError and the plain-words explanation of every failure
    stream.py        SSE chunks / JSON completions → StreamEvents
    pictures.py      pictures' base64 cut out of the answer as it arrives, decoded
    request_body.py  request bodies that stream stored files as base64
    dialects.py      how each media kind is spelled for a relay's dialect
    checks.py        what a relay did not say (media it dropped silently, a model
                     substituted for the one asked)
    catalogue.py     what a model takes and gives, from models.dev, for new models
    setup.py         relays and models created from the environment or imported
    probe.py         what a relay really does with each medium, per model and dialect
    balance.py       a relay's balance through its key (the billing routes)
    probe_admin.py   the relay page's Import / Probe / Apply
    admin.py         the admin's relay and model pages (billing adds prices)

May import: models, errors, tokens, capabilities, media (formats, links), infra.
Never the chat core (services, views, generation) nor billing: what a probe
cost is worked out by a pricer billing hands in.
"""
