#!/usr/bin/python3
"""``app`` of Pachyderm's word count example (``/go/bin/app`` in ``pachyderm/example-wordcount``),
for haathi's tests: the example's ``src/map.go`` (Go, built in its image) written in Python.

``app INPUT_DIR OUTPUT_DIR`` walks INPUT_DIR (symlinks to directories below it are not
followed, as Go's ``filepath.Walk``), splits each file into whitespace-separated words, turns
every run of characters other than A-Z and a-z into a space, lowercases, and counts each
resulting word. Each count is written to ``OUTPUT_DIR/$PACH_DATUM_ID/<word>`` as the number and
a newline. A datum without words writes nothing.
"""

import os
import re
import sys

NOT_A_LETTER = re.compile(r"[^A-Za-z]+")


def main() -> None:
    args = sys.argv[1:]
    if len(args) != 2:
        sys.exit(f"expect two arguments; got {len(args)}")
    input_dir, output_dir = args
    counts: dict[str, int] = {}
    for directory, _subdirs, names in os.walk(input_dir):
        for name in names:
            path = os.path.join(directory, name)
            print(f"scanning {path}", file=sys.stderr)
            with open(path, "rb") as f:
                words = f.read().decode("utf-8", "replace").split()
            for word in words:
                for part in NOT_A_LETTER.sub(" ", word).lower().split(" "):
                    if part:
                        counts[part] = counts.get(part, 0) + 1
            print(f"found {len(words)} words in {path}", file=sys.stderr)
    for word, count in counts.items():
        target = os.path.join(output_dir, os.environ.get("PACH_DATUM_ID", ""))
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(target, word), "w") as out:
            out.write(f"{count}\n")


if __name__ == "__main__":
    main()
