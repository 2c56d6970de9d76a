"""Helper processes start with Ctrl-C blocked (haathi/interrupts.py): a Ctrl-C while one is
still importing must not kill it with a traceback. The serve workers' and the put helpers'
own tests send the Ctrl-C; this one checks the mask itself, in a fresh process, where no
multiprocessing helper has started yet."""

import subprocess
import sys
from pathlib import Path

CHILD_MASK = """
import multiprocessing, signal
from haathi import interrupts

def mask(pipe):
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
    pipe.send(int(status["SigBlk"], 16) & (1 << (signal.SIGINT - 1)) != 0)

if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    with interrupts.held():
        child = context.Process(target=mask, args=(writer,))
        child.start()
    held_in_child = reader.recv()
    child.join()
    print(held_in_child, signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
"""


def test_the_first_helper_multiprocessing_starts_has_ctrl_c_blocked(tmp_path: Path) -> None:
    """The first start of multiprocessing also starts its resource tracker, which unblocks
    SIGINT in the starting thread once it runs: ``held`` starts the tracker before it blocks,
    so the helper started in the block has SIGINT blocked, and the block ends as it began."""
    script = tmp_path / "child_mask.py"
    script.write_text(CHILD_MASK)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out.stderr
