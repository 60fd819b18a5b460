"""Files: what a file really is, storing it, and serving it back.

    probe.py     sniffing and measuring bytes (type, size, duration, pages)
    uploads.py   checking, converting and storing a user's uploads
    formats.py   the stored types, their extensions and relay labels
    links.py     owner links and signed links for relays
    views.py     serving stored files (owner-only, or by signed link)
    urls.py      /files/

May import: models, errors, infra, and relays.dialects (whether a model can
take a kind). Never the chat core nor billing.
"""
