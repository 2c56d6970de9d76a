"""PPS: pipelines, datums, jobs and where their user code runs."""
