"""Command-line subcommands of `evotoken` that belong to the core."""
