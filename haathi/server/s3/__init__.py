"""haathi's S3 gateway: ``haathi serve``'s, where branches are buckets (``branch.repo``,
read-write) and commits read-only buckets (``commit.branch.repo``), on a port of its own; and
each job's sidecar, whose buckets are its s3 inputs and ``out`` (:mod:`.backend`)."""
