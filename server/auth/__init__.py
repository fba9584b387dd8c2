"""Access control: who may do what (roles.py), who is asking (middleware.py),
and where people, tokens and sessions are kept (store.py)."""
