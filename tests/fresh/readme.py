"""The commands README.rst tells a new user to type, read from README.rst."""

from __future__ import annotations

from pathlib import Path

import docutils.frontend
import docutils.nodes
import docutils.parsers.rst
import docutils.utils

__all__ = ["README", "quick_start_commands"]

README = Path(__file__).resolve().parents[2] / "README.rst"


def quick_start_commands(readme: Path = README) -> list[str]:
    """The literal blocks of README's "Quick start" list items, in order.

    Parsed as reStructuredText, so that the test runs what a reader copies,
    whatever the prose around it says.
    """
    parser = docutils.parsers.rst.Parser()
    settings = docutils.frontend.get_default_settings(parser)
    settings.report_level = docutils.utils.Reporter.SEVERE_LEVEL
    document = docutils.utils.new_document(str(readme), settings)
    parser.parse(readme.read_text(), document)
    for section in document.findall(docutils.nodes.section):
        if section[0].astext() == "Quick start":
            items = section.findall(docutils.nodes.list_item)
            return [
                next(item.findall(docutils.nodes.literal_block)).astext()
                for item in items
            ]
    raise LookupError(f"{readme} has no 'Quick start' section")
