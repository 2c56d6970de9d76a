"""Upload every file of a directory with boto3's ``upload_file`` (the S3W2 peer), one by one.

    python bench/boto3_upload.py ENDPOINT BUCKET PREFIX SRC_DIR

Credentials come from the usual ``AWS_*`` environment variables. ``upload_file`` runs with its
default ``TransferConfig`` (multipart above 8 MiB, 8 MiB parts, 10 threads per file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3


def main(argv: list[str]) -> int:
    endpoint, bucket, prefix, src = argv
    client = boto3.client("s3", endpoint_url=endpoint)
    root = Path(src)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
