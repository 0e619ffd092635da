"""Settings: the declarative table, its validators, and Config built from flags, files and env."""
