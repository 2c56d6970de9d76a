"""``haathi demo``: a small real pipeline on an embedded store.

Monthly sales go in; a two-stage DAG (``totals`` per month, then a ``report`` over all months)
runs; the results and their lineage are shown; then one month is corrected and only its datum
runs again.
"""

from __future__ import annotations

import tempfile

from haathi.cli import render, render_pps
from haathi.cli.progress import job_progress
from haathi.client import connect
from haathi.models.ops import PutOp

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
            "END { for (k in s) print k \",\" s[k] }' | sort > /pfs/out/report.csv",
        ],
    },
}


def run_demo(address: str | None) -> None:
    store = address or tempfile.mkdtemp(prefix="haathi-demo-")
    say = render.out.print
    say(f"[bold]haathi demo[/bold] — embedded store at {store}\n")
    with job_progress(render.out) as progress, connect(store, progress=progress) as c:
        c.create_repo("sales", "daily sales by store, one file per month")
        c.modify_file("sales@master", [_put(p, d) for p, d in SALES.items()])
        say("$ haathi create repo sales; haathi put file sales@master:/2026 -r -f ...")
        render.files(c.list_file("sales@master:/2026"))

        say("\n$ haathi create pipeline -f totals.json   (glob /*/*: one datum per month)")
        c.create_pipeline(TOTALS)
        say("$ haathi create pipeline -f report.json   (glob /: one datum over all totals)")
        c.create_pipeline(REPORT)
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


def _put(path: str, data: bytes) -> PutOp:
    from haathi.client import sources

    return sources.bytes_op(data, path)
