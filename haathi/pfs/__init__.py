"""PFS: repos, branches, commits, files, diffs (Pachyderm semantics).

Each of its tables has one owner holding its SQL: ``repos``, ``branches``, ``commits``,
``provenance`` (branch and commit provenance) and ``staging`` (the changes of open commits);
every other module calls their functions with its connection (``tests/test_table_owners.py``).
"""
