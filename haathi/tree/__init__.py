"""Trees: the files of a commit as a content-addressed, history-independent search tree."""
