"""Every table of tswatch, one module per domain; all share `app.storage.base.Base.metadata`."""
