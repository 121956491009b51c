"""First-party kamrules plugins (installed as the package ``kamrules_plugins``)."""
