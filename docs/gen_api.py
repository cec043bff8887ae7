"""Generate the API reference (``docs/api/*.md``) from the docstrings of ordhash's public API.

Usage (from the repository root)::

    python docs/gen_api.py            # rewrite docs/api/
    python docs/gen_api.py --check    # exit 1 if docs/api/ is not up to date
    python docs/gen_api.py --out DIR  # write somewhere else

The public API is what ``ordhash/__init__.py`` advertises: its lazily exported names and its
public submodules (``ordhash._SUBMODULES``). For each submodule the public names are its
``__all__`` (or, without one, the names its own source defines at top level), minus names that
start with ``_`` and objects re-exported from third-party modules. Every submodule gets one
page, ``docs/api/ordhash.<name>.md``; ``docs/api/index.md`` lists them and the top-level names.

Docstrings are numpydoc. Parameter-like sections (Parameters, Returns, Attributes, Raises, ...)
become bullet lists, Examples become ``python`` code blocks, Sphinx roles become (linked)
inline code. The output is deterministic: names are sorted, reprs are stripped of memory
addresses, and the generator refuses to write absolute paths of this machine.

Only the standard library (and the ordhash package with its dependencies) is needed.
``ordhash.distributed`` needs the ``dask`` extra; without it the generator stops with an error
instead of leaving that page out.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib
import inspect
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "api"

PARAM_SECTIONS = ("Parameters", "Other Parameters", "Returns", "Yields", "Receives",
                  "Attributes", "Raises", "Warns", "Warnings", "Methods")
# sections whose entries are a bare type (or exception) rather than "name : type"
TYPE_ONLY_SECTIONS = ("Raises", "Warns")


class GenerationError(RuntimeError):
    """The API reference cannot be generated (a module does not import, output not portable)."""


# --------------------------------------------------------------------------------------------
# collecting the public API


def _import(modname):
    try:
        return importlib.import_module(modname)
    except ImportError as exc:
        hint = ""
        if modname == "ordhash.distributed":
            hint = ' (it needs the dask extra: pip install -e ".[dask]")'
        raise GenerationError(f"cannot import {modname}{hint}: {exc}") from exc


def _defined_names(module):
    """Top-level names bound by the module's own source (functions, classes, assignments)."""
    tree = ast.parse(inspect.getsource(module))
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names.extend(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return names


def _is_ordhash(obj):
    mod = getattr(obj, "__module__", None)
    return isinstance(mod, str) and (mod == "ordhash" or mod.startswith("ordhash."))


def public_names(module):
    """Public names of ``module``: ``__all__`` or its own top-level definitions, sorted."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = _defined_names(module)
    out = []
    for name in names:
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue
        if (inspect.isclass(obj) or callable(obj)) and not _is_ordhash(obj):
            continue  # re-exported from a third-party module
        out.append(name)
    return sorted(set(out), key=lambda s: (s.lower(), s))


def api_modules():
    """``[(module name, module, [public names])]`` for every public submodule of ordhash."""
    import ordhash

    mods = []
    for sub in sorted(ordhash._SUBMODULES):
        name = f"ordhash.{sub}"
        module = _import(name)
        mods.append((name, module, public_names(module)))
    return mods


def top_level_exports():
    """``{name: defining public submodule}`` for the names ``import ordhash`` exports."""
    import ordhash

    return dict(sorted(ordhash._EXPORTS.items()))


def kind_of(obj):
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj):
        return "function"
    return "data"


def public_members(cls):
    """Public methods and properties of ``cls`` defined by ordhash classes of its MRO.

    Returns ``[(name, kind, function or property, defining class)]`` sorted by name; members
    inherited from third-party bases (scikit-learn's ``get_params`` ...) are left out.
    """
    seen = {}
    for klass in cls.__mro__:
        if not _is_ordhash(klass):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if isinstance(raw, property):
                seen[name] = ("property", raw, klass)
            elif isinstance(raw, classmethod):
                seen[name] = ("classmethod", raw.__func__, klass)
            elif isinstance(raw, staticmethod):
                seen[name] = ("staticmethod", raw.__func__, klass)
            elif inspect.isfunction(raw):
                seen[name] = ("method", raw, klass)
    return [(n, *seen[n]) for n in sorted(seen)]


def member_doc(cls, name):
    """Docstring of member ``name`` of ``cls``: its own, else the nearest ordhash base's."""
    for klass in cls.__mro__:
        if not _is_ordhash(klass) or name not in vars(klass):
            continue
        raw = vars(klass)[name]
        if isinstance(raw, (classmethod, staticmethod)):
            raw = raw.__func__
        doc = getattr(raw, "__doc__", None) if callable(raw) or isinstance(raw, property) else None
        if doc and doc.strip():
            return doc
    return None


def data_comment(module, name, _seen=None):
    """Documentation of the top-level assignment of ``name``: the ``#:`` comment lines above it
    or the string literal right after it (following relative imports), or ``None``."""
    _seen = set() if _seen is None else _seen
    if module.__name__ in _seen:
        return None
    _seen.add(module.__name__)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return None
    lines = source.splitlines()
    body = ast.parse(source).body
    for pos, node in enumerate(body):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if name in targets:
            comment = []
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#:"):
                comment.insert(0, lines[i].strip()[2:].strip())
                i -= 1
            after = body[pos + 1] if pos + 1 < len(body) else None
            if (not comment and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                comment = [" ".join(inspect.cleandoc(after.value.value).split())]
            return " ".join(comment) or None
        if isinstance(node, ast.ImportFrom) and node.level and any(
                (a.asname or a.name) == name for a in node.names):
            package = module.__name__ if hasattr(module, "__path__") else module.__package__
            base = importlib.import_module(("." * node.level) + (node.module or ""), package)
            return data_comment(base, name, _seen)
    return None


# --------------------------------------------------------------------------------------------
# text helpers

_ADDRESS = re.compile(r"<(?:built-in )?(?:function|class|method|bound method) '?([\w.<>]+?)'?"
                      r"(?: of <[^>]*>)?(?: at 0x[0-9a-fA-F]+)?>")
_ANY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def clean_repr(text):
    """Replace ``<function f at 0x...>`` style reprs by the bare name; drop other addresses."""
    text = _ADDRESS.sub(lambda m: m.group(1), text)
    return _ANY_ADDRESS.sub("", text)


def signature_of(obj, name):
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name}(...)"
    return clean_repr(f"{name}{sig}")


def anchor(title):
    """GitHub's heading anchor for ``title``."""
    slug = title.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


class Linker:
    """Maps names (``HammingIndex``, ``ordhash.index.HammingIndex``, ``HammingIndex.search``) to
    relative Markdown links into the generated pages."""

    def __init__(self):
        self.targets = {}
        self.ambiguous = set()
        self.public = {}  # id(object) -> public dotted name

    def add(self, key, page, title):
        target = (page, anchor(title))
        if key in self.targets and self.targets[key] != target:
            self.ambiguous.add(key)
        else:
            self.targets[key] = target

    def resolve(self, ref, current_page, context=None):
        """Link for ``ref`` seen on ``current_page`` (in the namespace of ``context``)."""
        ref = ref.lstrip("~.").rstrip("()")
        candidates = [ref]
        if context:
            candidates.insert(0, f"{context}.{ref}")
        parts = ref.split(".")
        for i in range(1, len(parts)):
            if i == len(parts) - 1 and parts[i - 1][:1].isupper():
                break  # "Klass.method" must not fall back to a function named "method"
            candidates.append(".".join(parts[i:]))
        for key in candidates:
            if key in self.targets and key not in self.ambiguous:
                page, frag = self.targets[key]
                if page == current_page:
                    return f"#{frag}"
                return f"{page}#{frag}" if frag else page
        return None


_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|obj|exc|const):`([^`]+)`")


def inline(text, linker, page, context=None):
    """RST inline markup to Markdown: roles become (linked) code, ``literal`` becomes `literal`."""

    def role(m):
        body = m.group(1)
        explicit = re.fullmatch(r"(.+?)\s*<(.+)>", body)
        if explicit:
            label, ref = explicit.group(1), explicit.group(2)
        else:
            ref = body
            label = body[1:].rsplit(".", 1)[-1] if body.startswith("~") else body
        target = linker.resolve(ref, page, context)
        code = f"`{label}`"
        return f"[{code}]({target})" if target else code

    text = _ROLE.sub(role, text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _split_sections(lines):
    """``[(section title or None, lines)]`` of a cleaned numpydoc docstring."""
    sections = [[None, []]]
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() and not line.startswith(" ") and re.fullmatch(r"-{3,}", nxt.strip())
                and len(nxt.strip()) >= len(line.strip()) - 1):
            sections.append([line.strip(), []])
            i += 2
            continue
        sections[-1][1].append(line)
        i += 1
    return [(title, _strip_blank(body)) for title, body in sections]


def _strip_blank(lines):
    lines = list(lines)
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _dedent(lines):
    width = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    return [l[width:] for l in lines]


def render_text(lines, linker, page, context=None):
    """Free text (summary, Notes, module docstrings): paragraphs, lists and ``::`` blocks."""
    out = []
    i = 0
    lines = list(lines)
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            if stripped:
                out.append(inline(stripped + ":", linker, page, context))
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            block = _strip_blank(_dedent(block))
            out += ["", "```", *block, "```", ""]
            continue
        if line.lstrip().startswith(".. "):  # an RST directive: keep its body as a code block
            block = [line.strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            out += ["", "```", *_strip_blank(block), "```", ""]
            continue
        if line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["", "```python", *_dedent(block), "```", ""]
            continue
        out.append(inline(line, linker, page, context))
        i += 1
    return out


def render_params(title, lines, linker, page, context=None):
    """``name : type`` entries with indented descriptions as a bullet list."""
    out = []
    entries = []
    for line in lines:
        if line.strip() and not line.startswith(" "):
            entries.append([line.strip(), []])
        elif entries:
            entries[-1][1].append(line)
        elif line.strip():
            entries.append([line.strip(), []])
    for head, desc in entries:
        if title in TYPE_ONLY_SECTIONS or " : " not in head and title in ("Returns", "Yields"):
            name, typ = head, None
            if " : " in head:
                name, typ = head.split(" : ", 1)
            item = f"- `{name.strip()}`" + (f" : {inline(typ.strip(), linker, page, context)}"
                                              if typ else "")
        elif " : " in head:
            name, typ = head.split(" : ", 1)
            item = f"- **{name.strip()}** : {inline(typ.strip(), linker, page, context)}"
        else:
            item = f"- **{head.rstrip(':').strip()}**"
        desc = _strip_blank(_dedent(desc))
        if desc:
            body = render_text(desc, linker, page, context)
            out.append(item)
            out += [f"  {l}" if l.strip() else "" for l in body]
        else:
            out.append(item)
    return out


def render_see_also(lines, linker, page, context=None):
    out = []
    for line in lines:
        if not line.strip():
            continue
        if line.startswith(" ") and out:  # continuation of the previous description
            out[-1] += " " + inline(line.strip(), linker, page, context)
            continue
        refs, _, desc = line.partition(" : ")
        links = []
        for ref in (r.strip() for r in refs.split(",")):
            if not ref:
                continue
            ref = re.sub(r"^:\w+:`(.+)`$", r"\1", ref)
            target = linker.resolve(ref, page, context)
            label = ref.lstrip("~")
            links.append(f"[`{label}`]({target})" if target else f"`{label}`")
        item = "- " + ", ".join(links)
        if desc.strip():
            item += ": " + inline(desc.strip(), linker, page, context)
        out.append(item)
    return out


_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def render_examples(lines, linker, page, context=None):
    """Doctest blocks (``>>>`` with their output) as ``python`` blocks, the rest as text."""
    out = []
    block = []
    text = []

    def flush_text():
        if text:
            out.extend(render_text(_strip_blank(text), linker, page, context))
            out.append("")
            text.clear()

    def flush_block():
        if block:
            code = [_DIRECTIVE.sub("", line) for line in _dedent(block)]
            out.extend(["```python", *code, "```", ""])
            block.clear()

    for line in lines:
        if line.lstrip().startswith(">>>"):
            flush_text()
            block.append(line)
        elif block and line.strip():
            block.append(line)  # continuation or expected output
        else:
            flush_block()
            if line.strip() or text:
                text.append(line)
    flush_block()
    flush_text()
    return _strip_blank(out)


def render_docstring(doc, linker, page, level, context=None):
    """A numpydoc docstring as Markdown; sections become headings of ``level``."""
    if not doc:
        return ["*No docstring.*"]
    lines = inspect.cleandoc(doc).splitlines()
    out = []
    for title, body in _split_sections(lines):
        if title is None:
            out += render_text(body, linker, page, context)
            out.append("")
            continue
        out += [f"{'#' * level} {title}", ""]
        if title in PARAM_SECTIONS:
            out += render_params(title, body, linker, page, context)
        elif title == "See Also":
            out += render_see_also(body, linker, page, context)
        elif title == "Examples":
            out += render_examples(body, linker, page, context)
        else:
            out += render_text(body, linker, page, context)
        out.append("")
    return out


def value_repr(value, public=None):
    """Deterministic repr of a module-level constant; classes and functions are shown by
    their public name (``public``: ``{id(obj): "ordhash.module.Name"}``)."""
    public = public or {}
    if isinstance(value, dict):
        items = ", ".join(f"{value_repr(k, public)}: {value_repr(v, public)}"
                          for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, (tuple, list)):
        items = ", ".join(value_repr(v, public) for v in value)
        if isinstance(value, tuple):
            return f"({items}{',' if len(value) == 1 else ''})"
        return f"[{items}]"
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return public.get(id(value), f"{value.__module__}.{value.__qualname__}")
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return clean_repr(repr(value))


# --------------------------------------------------------------------------------------------
# pages


def page_name(modname):
    return f"{modname}.md"


def build_linker(modules):
    linker = Linker()
    for modname, module, names in modules:
        page = page_name(modname)
        linker.add(modname, page, "")
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or callable(obj):
                linker.public.setdefault(id(obj), f"{modname}.{name}")
            linker.add(name, page, name)
            linker.add(f"{modname}.{name}", page, name)
            if inspect.isclass(obj):
                for mname, *_ in public_members(obj):
                    linker.add(f"{name}.{mname}", page, f"{name}.{mname}")
                    linker.add(f"{modname}.{name}.{mname}", page, f"{name}.{mname}")
    for name, modname in top_level_exports().items():
        if f"{modname}.{name}" in linker.targets:
            linker.targets.setdefault(f"ordhash.{name}", linker.targets[f"{modname}.{name}"])
    return linker


def render_class(name, cls, linker, page):
    if issubclass(cls, BaseException):
        sig = name  # the (*args, **kwargs) of BaseException says nothing
    else:
        sig = re.sub(r" -> None$", "", signature_of(cls, name))
    out = [f"## {name}", "", "```python", f"class {sig}", "```", ""]
    bases = [b for b in cls.__bases__ if b is not object]
    if bases:
        labels = []
        for b in bases:
            qual = f"{b.__module__}.{b.__qualname__}"
            target = linker.resolve(f"{b.__module__}.{b.__name__}", page) if _is_ordhash(b) else None
            labels.append(f"[`{b.__name__}`]({target})" if target else f"`{qual}`")
        out += ["Bases: " + ", ".join(labels), ""]
    out += render_docstring(cls.__doc__, linker, page, 4, context=name)
    members = public_members(cls)
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for mname, mkind, func, owner in members:
        if mname in fields:
            continue
        title = f"{name}.{mname}"
        out += [f"### {title}", ""]
        doc = member_doc(cls, mname)
        if mkind == "property":
            out += ["```python", f"property {title}", "```", ""]
        else:
            prefix = "" if mkind == "method" else f"{mkind} "
            sig = signature_of(func, mname)
            if mkind == "method":
                sig = re.sub(r"^(\w+)\(self(?:, )?", r"\1(", sig)
            elif mkind == "classmethod":
                sig = re.sub(r"^(\w+)\(cls(?:, )?", r"\1(", sig)
            out += ["```python", f"{prefix}{name}.{sig}", "```", ""]
        target = None
        if owner is not cls:
            target = linker.resolve(f"{owner.__module__}.{owner.__name__}.{mname}", page)
            label = f"`{owner.__name__}.{mname}`"
            out += [f"Inherited from {f'[{label}]({target})' if target else label}.", ""]
        if target:  # documented in full at the (public) owner: the summary is enough here
            summary = inspect.cleandoc(doc).split("\n\n")[0] if doc else ""
            out += render_text(summary.splitlines(), linker, page, context=name) + [""]
        else:
            out += render_docstring(doc, linker, page, 5, context=name)
    return out


def render_function(name, func, linker, page):
    out = [f"## {name}", "", "```python", signature_of(func, name), "```", ""]
    out += render_docstring(func.__doc__, linker, page, 4)
    return out


def render_data(name, value, module, linker, page):
    out = [f"## {name}", "", "```python", f"{name} = {value_repr(value, linker.public)}", "```",
           ""]
    comment = data_comment(module, name)
    if comment:
        out += [inline(comment, linker, page), ""]
    return out


def render_module(modname, module, names, linker):
    page = page_name(modname)
    out = [f"# `{modname}`", "", "[API index](index.md)", ""]
    out += render_text(_strip_blank(inspect.cleandoc(module.__doc__ or "").splitlines()),
                       linker, page)
    out.append("")
    groups = {"class": [], "exception": [], "function": [], "data": []}
    for name in names:
        groups[kind_of(getattr(module, name))].append(name)
    out += ["| name | kind | summary |", "|---|---|---|"]
    for kind in ("class", "exception", "function", "data"):
        for name in groups[kind]:
            obj = getattr(module, name)
            summary = ""
            if kind == "data":
                summary = inline(data_comment(module, name) or "", linker, page)
            elif obj.__doc__:
                summary = inline(inspect.cleandoc(obj.__doc__).split("\n\n")[0].replace("\n", " "),
                                 linker, page).replace("|", "\\|")
            out.append(f"| [`{name}`](#{anchor(name)}) | {kind} | {summary} |")
    out.append("")
    for kind in ("class", "exception", "function", "data"):
        if not groups[kind]:
            continue
        for name in groups[kind]:
            obj = getattr(module, name)
            if kind in ("class", "exception"):
                out += render_class(name, obj, linker, page)
            elif kind == "function":
                out += render_function(name, obj, linker, page)
            else:
                out += render_data(name, obj, module, linker, page)
    return _finish(out)


def render_index(modules, linker):
    out = ["# ordhash API reference", "",
           "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand "
           "(`tests/test_docs.py` checks that these pages are up to date). The "
           "[user guide](../guide.md) shows how the pieces fit together.", "",
           "## Modules", "", "| module | summary |", "|---|---|"]
    for modname, module, _ in modules:
        summary = inspect.cleandoc(module.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        out.append(f"| [`{modname}`]({page_name(modname)}) | "
                   f"{inline(summary, linker, 'index.md').replace('|', chr(92) + '|')} |")
    out += ["", "## Names exported by `import ordhash`", "",
            "These are imported lazily on first use and are the same objects as in their modules.",
            "", "| name | defined in |", "|---|---|"]
    for name, modname in top_level_exports().items():
        target = linker.resolve(f"{modname}.{name}", "index.md")
        label = f"[`ordhash.{name}`]({target})" if target else f"`ordhash.{name}`"
        out.append(f"| {label} | `{modname}` |")
    out.append("")
    return _finish(out)


def _finish(lines):
    text = "\n".join(l.rstrip() for l in lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


def _check_portable(name, text):
    for b in (str(REPO), sys.prefix, sys.base_prefix):
        if len(Path(b).parts) > 1 and b in text:
            raise GenerationError(f"{name} would contain the machine-specific path {b!r}")
    if _ANY_ADDRESS.search(text):
        raise GenerationError(f"{name} would contain a memory address")


def generate():
    """``{file name: Markdown text}`` of the whole API reference."""
    modules = api_modules()
    linker = build_linker(modules)
    pages = {"index.md": render_index(modules, linker)}
    for modname, module, names in modules:
        pages[page_name(modname)] = render_module(modname, module, names, linker)
    for name, text in pages.items():
        _check_portable(name, text)
    return dict(sorted(pages.items()))


def write(out_dir, pages):
    """Write ``pages`` into ``out_dir`` and delete other generated ``.md`` files there."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.md"):
        if stale.name not in pages and (stale.name == "index.md" or stale.name.startswith("ordhash")):
            stale.unlink()
    for name, text in pages.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8", newline="\n")


def differences(out_dir, pages):
    """Names of files in ``out_dir`` that are missing, stale or not generated any more."""
    out_dir = Path(out_dir)
    present = {p.name for p in out_dir.glob("*.md")} if out_dir.is_dir() else set()
    diff = sorted(n for n in pages if n not in present
                  or (out_dir / n).read_text(encoding="utf-8") != pages[n])
    return diff + sorted(present - set(pages))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (docs/api)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the folder is not up to date")
    args = parser.parse_args(argv)
    try:
        pages = generate()
    except GenerationError as exc:
        print(f"gen_api: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        diff = differences(args.out, pages)
        if diff:
            print("out of date: " + ", ".join(diff) + "; run python docs/gen_api.py",
                  file=sys.stderr)
            return 1
        return 0
    write(args.out, pages)
    print(f"wrote {len(pages)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
