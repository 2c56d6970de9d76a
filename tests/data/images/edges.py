"""Edge detection for the OpenCV tutorial image (``/edges.py`` in ``haathi-test/opencv``).

Written for haathi's tests; it does what the script of Pachyderm's OpenCV beginner tutorial
does. Every file under ``/pfs/images`` is read as a grayscale image, ``cv2.Canny`` finds its
edges, and the result is saved as a grayscale PNG with the input's stem in ``/pfs/out``:
``/pfs/images/liberty.jpg`` becomes ``/pfs/out/liberty.png``. A file OpenCV cannot read as an
image stops the script with a one-line error and exit status 1, so it never succeeds silently
with a missing output.
"""

import os
import sys

import cv2

INPUT = "/pfs/images"
OUTPUT = "/pfs/out"


def edges(source: str) -> None:
    """Write the edges of the image at ``source`` to ``OUTPUT/<stem>.png``."""
    image = cv2.imread(source, cv2.IMREAD_GRAYSCALE)
    if image is None:
        sys.exit(f"edges.py: {source} is not an image OpenCV can read")
    stem = os.path.splitext(os.path.basename(source))[0]
    target = os.path.join(OUTPUT, stem + ".png")
    if not cv2.imwrite(target, cv2.Canny(image, 100, 200)):
        sys.exit(f"edges.py: could not write {target}")


def main() -> None:
    for directory, _subdirs, names in os.walk(INPUT, followlinks=True):
        for name in sorted(names):
            edges(os.path.join(directory, name))


if __name__ == "__main__":
    main()
