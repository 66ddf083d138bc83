"""What the job API raises (the Training page shows both messages as they are)."""


class JobBusy(RuntimeError):
    """Another training is already running on this server."""


class JobError(RuntimeError):
    """A job request that cannot be carried out (bad options, unknown job)."""
