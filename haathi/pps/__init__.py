"""PPS: pipelines, datums, jobs and where their user code runs.

Its tables have one owner each: ``records`` (pipelines, their versions, jobs) and
``datum_records`` (each job's datums and the input paths they read). PFS state changes only
through ``haathi.pfs`` functions.
"""
