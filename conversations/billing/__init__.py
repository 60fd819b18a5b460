"""Money: what each reply cost, and what people may spend.

    usage.py     a relay's usage object → Usage columns, or an estimate
    prices.py    Usage → Decimal cost (override, new-api ratios, list price)
    ratios.py    importing a new-api relay's own ratios
    budgets.py   monthly budgets per user
    money.py     Decimal parsing and money for people to read
    rollup.py    the daily sums the costs page reads
    reports.py   the costs page's figures and CSV (substituted replies per relay too)
    balances.py  relays' own balances beside the product's figure (staff)
    views.py     the costs page, its CSV, the sidebar's cost view
    admin.py     prices, usage and budgets in the admin

May import: models, errors, tokens, relays (admin to extend it, client and
balance to ask a relay), infra.
Never the chat core (services, generation, views).
"""
