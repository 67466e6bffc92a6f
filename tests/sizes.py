"""The test suite's one "small run": recipe overrides that make a run seconds long on the
CPU (a pool of 32, 16 dev and 16 test rows, whatever device is visible). Test modules add
the steps and the rest they need: ``small_run("train.steps=6")``."""

SMALL_RUN = ("data.num_train=32", "data.num_dev=16", "data.num_test=16", "model.device=cpu")


def small_run(*extra: str) -> list[str]:
    return [*SMALL_RUN, *extra]


def sets(*items: str) -> list[str]:
    """Overrides as the command line takes them: ``--set KEY=VALUE`` each."""
    return [arg for item in items for arg in ("--set", item)]
