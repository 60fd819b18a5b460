"""The chat workbench app. Arrows point down: views → services → rooms → models.

Chat core (this folder): models, services (writes), replies (the generation's
steps), selectors (reads), prompt (history → request), generation (the
streaming task), events (typed channel-layer messages), consumers/routing
(the WebSocket), views/urls/forms, fragments/rendering (HTML), lifespan.
Ground floor: errors.py, tokens.py. Rooms: relays/, media/, billing/,
infra/, accounts/, history/ (versions, branches, search, exports); simulator/ is a
development tool that production code never imports.
"""
