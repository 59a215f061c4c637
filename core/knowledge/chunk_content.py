r"""Whether a chunk says anything of its own, or holds only markup.

Markup here is what structures a document without being read as its content: code fences,
headings (their text reaches the embedding through the heading path), reStructuredText titles
with their over- and underlines, rules, table borders, HTML tags and link targets. A chunk of
nothing else makes a poor search result (a lone "```" can match any question about code),
so the splitter merges it into a neighbour.

>>> has_content("```")
False
>>> has_content("# FAQ\n\n## Install")
False
>>> has_content("Install\n=======\n\npip install x")
True
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(\s|$)")
# An rst over- or underline, a Markdown setext underline or a rule: one punctuation mark repeated.
_ADORNMENT = re.compile(r"""^\s*([=\-~^*+#`:'"_.<>|])\1{2,}\s*$""")
_TABLE_BORDER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")
_TAG = re.compile(r"<[^<>\n]*>")
_LINK_TARGET = re.compile(r"\]\([^()\s]*\)")
_WORD = re.compile(r"\w")


def has_content(text: str, markup: bool = True, in_fence: bool = False) -> bool:
    r"""Whether ``text`` holds anything besides markup.

    ``markup`` is False for source code and plain text, where ``#`` may start a comment and
    only a chunk without a single word (``}`` or ``)``) is empty. ``in_fence`` says that ``text`` starts
    inside a fenced code block, whose lines are all content.

    >>> has_content("# load the weights\nmodel = load()", markup=False)
    True
    >>> has_content("# not a heading\n```", in_fence=True)
    True
    >>> has_content('<div align="center">\n  <img src="logo.png">\n</div>')
    False
    """
    if not markup:
        return bool(_WORD.search(text))
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            if _WORD.search(line):
                return True
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _HEADING.match(line) or _ADORNMENT.match(line) or _TABLE_BORDER.match(line):
            continue
        if _ADORNMENT.match(following) and len(following.strip()) >= len(line.strip()):
            continue  # a title over its underline
        if _WORD.search(_LINK_TARGET.sub("]", _TAG.sub("", line))):
            return True
    return False
