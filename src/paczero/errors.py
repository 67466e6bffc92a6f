"""The one exception type that means "the user asked for something we cannot do"."""


class UserError(Exception):
    """Bad input: the CLI prints the message on one line and exits with status 2."""

    exit_code = 2


class Interrupted(Exception):
    """SIGINT/SIGTERM: the current step finished and a checkpoint was written."""

    def __init__(self, run_dir: object, step: int, signum: int):
        super().__init__(
            f"interrupted after step {step}; checkpoint written. "
            f"Resume with: paczero resume {run_dir}"
        )
        self.exit_code = 128 + signum


class Stopped(Interrupted):
    """SIGINT/SIGTERM during a job with nothing to resume (an export): it cleaned up."""

    def __init__(self, message: str, signum: int):
        Exception.__init__(self, message)
        self.exit_code = 128 + signum


class Diverged(Exception):
    """The loss became non-finite at ``step`` (raised before that step releases anything)."""

    def __init__(self, step: int, what: str):
        super().__init__(f"training diverged at step {step}: {what}")
        self.step = step
        self.what = what
