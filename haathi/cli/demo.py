"""``haathi demo``: a small real tour on an embedded store."""

from __future__ import annotations

import tempfile

from haathi.cli import render
from haathi.client import connect

SALES_1 = {
    "/2026/01.csv": b"day,store,amount\n1,berlin,120\n2,berlin,80\n3,paris,200\n",
    "/2026/02.csv": b"day,store,amount\n1,paris,90\n2,berlin,110\n",
    "/stores.csv": b"store,city\nberlin,Berlin\nparis,Paris\n",
}


def run_demo(address: str | None) -> None:
    store = address or tempfile.mkdtemp(prefix="haathi-demo-")
    say = render.out.print
    say(f"[bold]haathi demo[/bold] — embedded store at {store}\n")
    with connect(store) as c:
        c.create_repo("sales", "daily sales by store")
        say("$ haathi create repo sales")
        with c.start_commit("sales@master", description="January and February") as commit:
            for path, data in SALES_1.items():
                commit.put_file(path, data)
        say("$ haathi start commit sales@master; haathi put file ... (x3); haathi finish commit")
        c.put_file("sales@master:/2026/02.csv", SALES_1["/2026/02.csv"] + b"3,paris,75\n")
        c.put_file("sales@master:/2026/03.csv", b"day,store,amount\n1,berlin,60\n")
        say("$ haathi put file ...   (February corrected, March added: two more commits)\n")
        say("$ haathi list commit sales@master")
        render.commits(c.list_commit("sales@master"))
        say("\n$ haathi list file sales@master:/2026")
        render.files(c.list_file("sales@master:/2026"))
        say("\n$ haathi diff file sales@master sales@master.1")
        render.diff(c.diff_file("sales@master", "sales@master.1"), name_only=False)
        say("\n$ haathi get file sales@master.1:/2026/02.csv   (the first version)")
        say(c.get_file("sales@master.1:/2026/02.csv").decode(), end="")
        say("\n$ haathi glob file 'sales@master:/2026/0[23].csv'")
        render.files(c.glob_file("sales@master:/2026/0[23].csv"))
        problems = c.fsck()
        say(f"\n$ haathi fsck\n{problems if problems else 'no problems found'}")
    say(f"\nExplore it yourself: export HAATHI_ADDRESS={store}; haathi list repo")
