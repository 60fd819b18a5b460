"""Files: what a file really is, storing it, and serving it back.

    probe.py     sniffing and measuring bytes (type, size, duration, pages)
    uploads.py   checking, converting and storing a user's uploads
    generated.py checking and storing the pictures an image model made
    formats.py   the stored types, their extensions and relay labels
    links.py     owner links and signed links for relays
    views.py     serving stored files (owner-only, or by signed link)
    gallery.py   the page of every picture a model made for you
    urls.py      /files/

May import: models, errors, infra, capabilities, and relays.pictures (the
decoded pictures it stores). Never the chat core nor billing.
"""
