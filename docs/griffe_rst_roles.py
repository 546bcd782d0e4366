"""A griffe extension for the docs build (mkdocs.yml loads it; it is not part of onebit).

onebit's docstrings are prose with a little reStructuredText: roles such as
``:class:`~onebit.nn.QuantLayer``` and ``:func:`load```, and ``text::`` before an
indented literal block. Markdown would show the roles verbatim (":class:" then code), so
this extension rewrites each docstring, before it is rendered, into Markdown:

- a Python role becomes an optional cross-reference: a link where its target is in the
  API reference, plain code otherwise (so it never warns). The target is resolved the
  way Python resolves the name where the docstring is written: a dotted path that
  exists, or a name of the object's scope or of its module's imports
  (``ModelFileError`` in ``onebit.runtime.model`` is ``onebit.errors.ModelFileError``).
  ``~`` shows only the last component, ``title <target>`` shows the title; other
  roles become plain code;
- ``text::`` ending a paragraph becomes ``text:``, ``text ::`` becomes ``text`` and a
  lone ``::`` disappears, as in reST (the indented block after it is a Markdown code
  block as it is).

Only the docstring text the reference shows is changed; the source files are not.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

# :role:`target` (roles with a domain prefix, such as :py:func:, are accepted too).
_ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<target>[^`]+)`")
_PY_ROLES = {"class", "func", "meth", "mod", "attr", "data", "exc", "obj", "const", "type"}
_DOUBLE_COLON = re.compile(r"(?m)^(?P<text>.*?)(?P<space>[ \t]?)::[ \t]*$(?=\n[ \t]*\n)")


def _lookup(obj: griffe.Object, path: str) -> str | None:
    """The canonical path of ``path`` as written in ``obj``'s docstring, or None."""
    head, _, rest = path.partition(".")
    candidates = []
    try:
        candidates.append(obj.modules_collection.get_member(path))
    except (KeyError, ValueError, AttributeError):
        pass
    try:
        base = obj.resolve(head)
    except Exception:  # noqa: BLE001 (griffe.NameResolutionError, or a name of no scope)
        base = None
    if base is not None:
        full = f"{base}.{rest}" if rest else base
        try:
            candidates.append(obj.modules_collection.get_member(full))
        except (KeyError, ValueError, AttributeError):
            candidates.append(full)  # resolved to something outside the loaded packages
    for found in candidates:
        if isinstance(found, str):
            return found
        try:
            return found.final_target.path if found.is_alias else found.path
        except Exception:  # noqa: BLE001 (an alias griffe cannot resolve)
            continue
    return None


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match[str]) -> str:
        target = match["target"].strip()
        explicit = re.fullmatch(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", target)  # :func:`title <target>`
        if explicit:
            title, target = explicit["title"], explicit["target"].strip().lstrip("~.")
        else:
            short = target.startswith("~")
            target = target.lstrip("~.")
            title = target.rsplit(".", 1)[-1] if short else target
        code = f"<code>{html.escape(title)}</code>"
        if match["role"] not in _PY_ROLES:
            return code
        identifier = _lookup(obj, target)
        if identifier is None:
            return code
        return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

    text = _ROLE.sub(role, text)
    return _DOUBLE_COLON.sub(_literal_marker, text)


def _literal_marker(match: re.Match[str]) -> str:
    """reST: ``text::`` shows ``text:``, ``text ::`` shows ``text``, a lone ``::`` nothing."""
    if not match["text"].strip():
        return ""
    return match["text"] if match["space"] else f"{match['text']}:"


def _walk(obj: griffe.Object, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, seen)


class RstRoles(griffe.Extension):
    """Rewrite the reStructuredText roles of every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # griffe >= 1.14
        _walk(pkg, set())

    def on_package_loaded(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # older griffe 1.x
        _walk(pkg, set())
