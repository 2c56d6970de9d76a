"""``haathi demo``: a small real pipeline on an embedded store.

Monthly sales go in; a two-stage DAG (``totals`` per month, then a ``report`` over all months)
runs; the results and their lineage are shown; then one month is corrected and only its datum
runs again.

The pipelines run in a real container image when this host can make and run one: a BusyBox
image built on the spot from Debian's ``busybox-static`` into an OCI layout in the store
directory (``umoci``), run by whichever runtime ``auto`` finds. Otherwise they run in the host
sandbox, and the demo says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from haathi.cli import render, render_pps
from haathi.cli.progress import job_progress
from haathi.client import connect
from haathi.client.client import is_server_address
from haathi.errors import HaathiError
from haathi.models.ops import PutOp
from haathi.pps import containers

CONSOLE = "http://127.0.0.1:8650/"  # where haathi serve's console is by default

SALES = {
    "/2026/01.csv": b"day,store,amount\n1,berlin,120\n2,berlin,80\n3,paris,200\n",
    "/2026/02.csv": b"day,store,amount\n1,paris,90\n2,berlin,110\n",
    "/2026/03.csv": b"day,store,amount\n1,berlin,60\n2,paris,40\n",
}

TOTALS = {  # one datum per month file: the month's total per store
    "pipeline": {"name": "totals"},
    "description": "Sales per store, one output per month.",
    "input": {"pfs": {"repo": "sales", "glob": "/*/*"}},
    "transform": {
        "cmd": ["sh"],
        "stdin": [
            'rel="${sales#/pfs/sales/}"',
            'mkdir -p "/pfs/out/$(dirname "$rel")"',
            "awk -F, 'NR > 1 { s[$2] += $3 } END { for (k in s) print k \",\" s[k] }' "
            '"$sales" | sort > "/pfs/out/$rel"',
        ],
    },
}

REPORT = {  # one datum over everything: the year's total per store
    "pipeline": {"name": "report"},
    "description": "Total per store over all months.",
    "input": {"pfs": {"repo": "totals", "glob": "/"}},
    "transform": {
        "cmd": ["sh"],
        "stdin": [
            "cat /pfs/totals/*/*.csv | awk -F, '{ s[$1] += $2 } "
            'END { for (k in s) print k "," s[k] }\' | sort > /pfs/out/report.csv',
        ],
    },
}


def demo_image(where: Path) -> tuple[str | None, str]:
    """(image, "") for a BusyBox image built at ``where`` (an OCI layout), or (None, why
    not)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox) or not _static(busybox):
        return None, "no statically linked busybox to build one from (apt install busybox-static)"
    if shutil.which("umoci") is None:
        return None, "umoci is not installed to build one (apt install umoci skopeo)"
    try:
        containers.resolve_runtime("auto")
    except HaathiError as exc:
        return None, str(exc)
    image = f"{where / 'layout'}:demo"
    bundle = where / "bundle"
    steps = [
        ["umoci", "init", "--layout", str(where / "layout")],
        ["umoci", "new", "--image", image],
        ["umoci", "unpack", *_rootless(), "--image", image, str(bundle)],
        ["umoci", "repack", "--image", image, str(bundle)],
        ["umoci", "config", "--image", image, "--config.env", "PATH=/bin"],
    ]
    try:
        for i, step in enumerate(steps):
            subprocess.run(step, check=True, capture_output=True, timeout=120)
            if i == 2:  # the empty root: fill it with busybox and its applets
                _fill(bundle / "rootfs" / "bin", busybox)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"building the image failed: {exc}"
    finally:
        shutil.rmtree(bundle, ignore_errors=True)
    return f"oci:{image}", ""


def _fill(bindir: Path, busybox: str) -> None:
    bindir.mkdir()
    shutil.copy2(busybox, bindir / "busybox")
    listed = subprocess.run(
        [busybox, "--list"], check=True, capture_output=True, text=True, timeout=30
    )
    for applet in listed.stdout.split():
        if applet != "busybox":
            os.symlink("busybox", bindir / applet)


def _rootless() -> list[str]:
    return [] if os.geteuid() == 0 else ["--rootless"]


def _static(path: str) -> bool:
    """Whether an ELF executable needs no dynamic loader (so it runs in an empty root)."""
    try:
        containers.elf_interpreter(path)
    except HaathiError:
        return True
    except OSError:
        return False
    return False


def _in_image(spec: dict[str, Any], image: str | None) -> dict[str, Any]:
    return spec if image is None else {**spec, "transform": {**spec["transform"], "image": image}}


def run_demo(address: str | None) -> None:
    """The demo on a new store at ``address`` (a directory; None: a new temp dir), or on the
    server at ``address`` (``http(s)://``: the console shows its data)."""
    store = address or tempfile.mkdtemp(prefix="haathi-demo-")
    served = is_server_address(store)
    say = render.out.print
    say(f"[bold]haathi demo[/bold] — {'server' if served else 'embedded store'} at {store}\n")
    with job_progress(render.out) as progress, connect(store, progress=progress) as c:
        images = tempfile.mkdtemp(prefix="demo-image-", dir=None if served else store)
        image, why = demo_image(Path(images))
        if image is not None:
            say(f"The pipelines run in a BusyBox container image built just now: {image}\n")
        else:
            say(f"The pipelines run in the host sandbox, not in a container image: {why}\n")
        c.create_repo("sales", "daily sales by store, one file per month")
        c.modify_file("sales@master", [_put(p, d) for p, d in SALES.items()])
        say("$ haathi create repo sales; haathi put file sales@master:/2026 -r -f ...")
        render.files(c.list_file("sales@master:/2026"))

        say("\n$ haathi create pipeline -f totals.json   (glob /*/*: one datum per month)")
        c.create_pipeline(_in_image(TOTALS, image))
        say("$ haathi create pipeline -f report.json   (glob /: one datum over all totals)")
        c.create_pipeline(_in_image(REPORT, image))
        say("\n$ haathi draw pipeline")
        render_pps.dag(c.list_pipeline())
        say("\n$ haathi get file report@master:/report.csv")
        say(c.get_file("report@master:/report.csv").decode(), end="")

        say("\n[bold]One month changes: only its datum runs again.[/bold]")
        corrected = SALES["/2026/02.csv"] + b"3,paris,75\n"
        say("$ haathi put file sales@master:/2026/02.csv -f 02.csv   (a late sale added)")
        cid = c.put_file("sales@master:/2026/02.csv", corrected)
        say("\n$ haathi list job")
        render_pps.jobs(c.list_job())
        say("\n$ haathi get file report@master:/report.csv")
        say(c.get_file("report@master:/report.csv").decode(), end="")

        say("\n[bold]Where did it come from?[/bold]")
        say(f"$ haathi list commit {cid}   (one ID across the DAG: the commit set)")
        render.commits(c.list_commit(cid))
        say(f"\n$ haathi list datum totals@{cid}")
        render_pps.datums(c.list_datum(f"totals@{cid}"))
        say(f"\n$ haathi inspect job report@{cid}")
        render_pps.job(c.inspect_job(f"report@{cid}"))
    say(f"\nExplore it yourself: export HAATHI_ADDRESS={store}; haathi list pipeline")
    if served:
        say(f"Or in a browser, the console: {store.rstrip('/')}/")
    else:
        say(f"Or in a browser: haathi serve --store {store}, then open the console at {CONSOLE}")


def _put(path: str, data: bytes) -> PutOp:
    from haathi.client import sources

    return sources.bytes_op(data, path)
