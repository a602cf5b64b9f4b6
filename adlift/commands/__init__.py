"""CLI subcommands: one module per command, each a dataclass config with a ``run()`` method.

To add a command, write ``adlift/commands/<name>.py`` with a dataclass whose docstring is the
command's help and whose fields (each with a docstring) are its options, give it ``run()``,
and register it in :data:`adlift.cli.COMMANDS`.
"""
