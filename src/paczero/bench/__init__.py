"""`paczero bench`: what a step costs next to its floor, the two forward passes it cannot avoid.

``timing`` times the step against its floor in one process, ``memory`` measures peak
memory in two fresh ones, ``compute`` holds the times against the device's peak and the
targets, ``table`` prints it; ``compare`` sets a zeroth-order step beside a first-order
one, ``parallel`` one process against G under torchrun, and ``reference_step`` is the
published-code-style step, the yardstick. No module here imports torch at import time:
the CLI builds its parser from ``arguments`` and stays quick.
"""

from paczero.bench.arguments import add_arguments, check_args
from paczero.bench.table import format_table
from paczero.bench.timing import run_bench

__all__ = ["add_arguments", "check_args", "format_table", "run_bench"]
