"""Real backing servers on loopback, for tests and benchmarks: SeaweedFS (S3), PostgreSQL, a
container registry and ``haathi serve`` (:mod:`loopback.servers`); and a headless Chromium
that reaches only them (:mod:`loopback.browser`)."""
