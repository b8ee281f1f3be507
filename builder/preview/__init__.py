"""Browser preview of a build, rendered from the generated mini-program files.

The preview reads the same `FileTree` that `mpforge build` writes (never re-rendering
the spec), so it cannot disagree with the output:

- `expr`: a safe evaluator for AXML `{{ }}` expressions (never Python `eval`), of the
  grammar in builder/expr.py that the output check enforces
- `axml`: a tolerant AXML parser on builder/axml.py, the tokenizer the check uses
- `renderer`: AXML + page data -> escaped HTML, component by component
- `acss`: ACSS -> CSS (rpx to px for the 375 px phone frame, component selectors)
- `model`: the app and page models the preview shell shows, cached per page
- `shell`, `static/`: the preview page (phone frame, tab bar, page list, error overlay);
  `static/runtime.js` runs the pages' scripts on an emulation of `my` (mpforge dev only)
- `static_site`: `mpforge preview`, the same preview as static files, without the runtime

`mpforge dev` (builder/devserver.py) serves it with live reload, the runtime and the
spec's back end (docs/preview-runtime.md).
"""

from .model import PreviewApp
from .static_site import static_preview_files, write_static_preview

__all__ = ["PreviewApp", "static_preview_files", "write_static_preview"]
