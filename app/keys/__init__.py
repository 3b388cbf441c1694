"""API keys: roles, the hashed key store and its lookup cache (the table is in `app.storage`)."""
