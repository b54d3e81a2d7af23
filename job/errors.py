"""Errors that the CLI turns into one line on stderr and a meaningful exit code: each is an ExitError, which
carries its code, so `mnist-job` catches that one type."""


class ExitError(Exception):
    """A failure the CLI reports in one line and ends with `exit_code`."""

    exit_code = 1


class JobError(ExitError):
    """A problem the user can fix: bad arguments, missing or corrupt input. Exit code 2."""

    exit_code = 2


class GateError(ExitError):
    """A check the job ran itself failed (e.g. export parity). Exit code 1."""

    exit_code = 1


class Interrupted(ExitError):
    """Ctrl-C: stopped cleanly, state kept for --resume. Exit code 130, as shells expect."""

    exit_code = 130


class WriteError(ExitError):
    """The job's output could not be written (a full disk, a file size limit, permissions). Exit code 1:
    what was being written was removed, and nothing half-written is left."""

    exit_code = 1


class ClusterError(ExitError):
    """A multi-worker run lost a worker, or its workers never reached one another. Exit code 1: restart every
    worker (with --resume once an epoch has finished)."""

    exit_code = 1
