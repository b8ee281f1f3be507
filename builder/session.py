"""BuildSession: the one owner of what a build remembers from the build before it.

Incremental rebuilds (`mpforge dev`, the editor, the back end) reuse the parsed,
validated, planned and rendered pages that an edit did not touch. Each stage keeps its
part in a memo object of its own (defined beside the stage); a session holds one of each
and a lock, so one session serves one build at a time. A one-off build (the CLI, a batch
worker) makes a throwaway session; a long-lived caller keeps its own. Two sessions share
nothing, so builds in different threads cannot see each other's state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .load import LoadMemo
from .plan import PlanMemo
from .render import RenderMemo
from .validate import ValidateMemo


@dataclass
class BuildSession:
    load: LoadMemo = field(default_factory=LoadMemo)
    validate: ValidateMemo = field(default_factory=ValidateMemo)
    plan: PlanMemo = field(default_factory=PlanMemo)
    render: RenderMemo = field(default_factory=RenderMemo)
    # Held for a whole build: a session's memos describe one previous build.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
