"""What the CLI subcommands do, kept apart from argument parsing in ``meshstyle.cli``."""
