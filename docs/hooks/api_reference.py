"""MkDocs hook: the API reference's top-level section lists what ``import paczero`` offers.

``paczero`` loads its public names lazily (``paczero._LAZY``: name -> module), which a static
reader of the source cannot follow; this hook writes one ``::: module.name`` entry per name,
so the page follows the package when a name moves to another module.
"""

import sys
from pathlib import Path

MARKER = "<!-- paczero-api -->"


def _entries() -> str:
    src = Path(__file__).resolve().parents[2] / "src"
    sys.path.insert(0, str(src))
    try:
        import paczero
    finally:
        sys.path.remove(str(src))
    return "\n\n".join(f"::: {module}.{name}" for name, module in sorted(paczero._LAZY.items()))


def on_page_markdown(markdown, page, **kwargs):
    if page.file.src_uri == "api.md":
        return markdown.replace(MARKER, _entries())
    return markdown
