"""`sdd-fast`: train, evaluate, select and report from the command line.

    sdd-fast train  --out OUT [--method dino|ibot|mocov3|mae] [--data synthetic] ...
    sdd-fast eval   --run OUT          dense linear-probe mIoU + DSE of every checkpoint
    sdd-fast select --run OUT [--top 3] [--json]
    sdd-fast report --run OUT          OUT/report.png + OUT/report.md
    sdd-fast study  --out DIR [--quick] DSE vs RankMe / alpha-ReQ / LiDAR over the bundled trainers

Also `python -m sdd_fast.cli ...` (what torchrun runs). Every subcommand has --help.
Exit codes: 0 done, 2 a bad option or unusable run directory, 3 `train --on-degrade stop`
stopped the run (a checkpoint and OUT/alarm.json were written), 130 interrupted.
This package holds the command line: one module per subcommand (train, evaluate, select,
report, study, and their shared options in common), and the demos (`python -m
sdd_fast.cli.demo`, `python -m sdd_fast.cli.demo_features`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> module with HELP, add_arguments(parser) and run(args) -> exit code.
COMMANDS = {
    "train": "sdd_fast.cli.train",
    "eval": "sdd_fast.cli.evaluate",
    "select": "sdd_fast.cli.select",
    "report": "sdd_fast.cli.report",
    "study": "sdd_fast.cli.study",
}


class UsageError(ValueError):
    """A bad option value found after parsing; printed as `sdd-fast <cmd>: error: ...`."""


def build_parser() -> argparse.ArgumentParser:
    """The `sdd-fast` parser with one subparser per command."""
    parser = argparse.ArgumentParser(prog="sdd-fast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _parser=command)
    return parser


def _fail(command: str, message: str) -> int:
    """Prints `sdd-fast <command>: error: <message>` (one line) and returns exit code 2."""
    print(f"sdd-fast {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Entry point of the `sdd-fast` console script; returns the exit code.

    Exit codes: 0 done, 2 a bad option or a run directory / file the command cannot use
    (one `error:` line, no traceback), 3 `train --on-degrade stop` stopped the run (see
    sdd_fast/train/degrade.py), 130 interrupted. Anything else is a bug and keeps its
    traceback.
    """
    from ..utils.jsonl import JsonLinesError
    from ..utils.runlock import RunLockedError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as error:
        args._parser.error(str(error))  # exits 2 with the usage line
    except (RunLockedError, JsonLinesError) as error:
        return _fail(args.command, str(error))
    except OSError as error:  # a path that is a file, read-only, missing, a full disk, ...
        detail = error.strerror or str(error)
        where = f": {error.filename}" if error.filename else ""
        return _fail(args.command, f"{detail}{where}")
    except KeyboardInterrupt:
        print(f"sdd-fast {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0

