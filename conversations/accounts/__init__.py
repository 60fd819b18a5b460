"""People on a team: each user's own password, and the staff's simple page to add
and deactivate users (besides the admin). A deactivated user's sessions end at
once, and their open sockets close (the account.closed event); Django's
authentication then refuses their sockets on connect too.

    services.py  add_user, set_active (ends the sessions of a deactivated user)
    forms.py     the add-user form
    views.py     password change, the people page
    urls.py      /account/password/, /people/
    sockets.py   who a WebSocket belongs to (channels' auth, read off the shared thread)

May import: models' User (django.contrib.auth), errors, events, infra. Never the chat core.
"""
