"""One module per `sdd-fast` subcommand: HELP, add_arguments(parser), run(args) -> exit code."""
