"""``validate pipeline``: a spec checked as pachctl checks it, on the client.

pachctl's ``validate pipeline`` reads the spec and its fields and contacts no server
(``src/server/pps/cmds/cmds.go``); so this needs no store: what only ``create pipeline``
refuses (an input without a glob) is a note, and so is why the spec's jobs would fail on this
machine (no runtime for its image, the image not found, a GPU asked for).
"""

from __future__ import annotations

from typing import Any

from haathi.pps.isolation import image_notes
from haathi.pps.spec import parse_spec


def check_spec(doc: dict[str, Any], images: tuple[str, str] | None) -> dict[str, Any]:
    """The effective spec (defaults applied) and notes, or InvalidArgument.

    ``images``: the (runtime, image pull policy) settings under which this machine would run
    the spec's image, for the notes on it; None leaves the image unchecked (a server's jobs
    run on its own machine).
    """
    parsed = parse_spec(doc, check_only=True)
    notes = [*parsed.notes, *(image_notes(*images, parsed) if images is not None else ())]
    return {"spec": parsed.to_dict(), "notes": notes}
