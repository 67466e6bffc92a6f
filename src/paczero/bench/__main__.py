"""``python -m paczero.bench``: the bench without the CLI (a memory phase's subprocess)."""

from __future__ import annotations

import argparse
import json
import sys

from paczero.bench import __doc__ as DOC
from paczero.bench.arguments import add_arguments
from paczero.bench.table import format_table
from paczero.bench.timing import run_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paczero.bench", description=DOC)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from paczero.quiet import quiet_libraries

    quiet_libraries()
    result = run_bench(args)
    if args.phase != "all":
        print(json.dumps(result))  # read by the parent bench
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
