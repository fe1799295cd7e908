"""Keep what must not be translated out of the translation catalogs.

Sphinx's gettext extraction (and its translation step) takes every text element
that is not a literal block: display maths (``math_block``: ``$$ ... $$`` and the
amsmath environments) would land in the catalogs as messages, which a translator
could only copy, and could break. Code cells and their outputs are never meant
for translation either (the outputs are the stored results the tests check);
literal blocks are already skipped, but text that myst-nb renders from an output
(markdown or an image's alt text) would not be.

This extension marks those nodes ``translatable = False`` right after parsing,
before Sphinx's ``Locale`` transform (priority 20) and before the gettext builder
reads the doctree, so they are neither extracted nor translated.
Enabled in ``_config.yml`` under ``sphinx.local_extensions``; ``tests/test_i18n.py``
checks that no catalog holds display maths.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.transforms import SphinxTransform


def _is_output(node: nodes.Node) -> bool:
    """A code cell's input or output as myst-nb lays it out (a container of class cell_output/cell_input)."""
    classes = getattr(node, "get", lambda *_: [])("classes", [])
    return isinstance(node, nodes.container) and bool({"cell_output", "cell_input"} & set(classes))


class KeepUntranslatable(SphinxTransform):
    default_priority = 5  # before Locale (20) and ExtraTranslatableNodes (10)

    def apply(self, **kwargs: Any) -> None:
        for node in self.document.findall(nodes.math_block):
            node["translatable"] = False
        for cell in self.document.findall(_is_output):
            for node in cell.findall(nodes.Element):
                if isinstance(node, (nodes.TextElement, nodes.image)):
                    node["translatable"] = False


def setup(app) -> dict[str, Any]:
    app.add_transform(KeepUntranslatable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
