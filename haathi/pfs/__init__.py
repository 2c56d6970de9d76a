"""PFS: repos, branches, commits, files, diffs (Pachyderm semantics)."""
