"""The S3 gateway of ``haathi serve``: branches as S3 buckets (``branch.repo``, read-write) and
commits as read-only buckets (``commit.branch.repo``), on a port of its own."""
