"""The reference pages, generated from the package, and the checks that keep them whole.

``.. public-module:: NAME`` documents a public module: its docstring, then every name
of its ``__all__`` whose home it is. Each object is documented once, in its home: the
public module that defines it, or, for a name defined in a private module
(``_lifecycle``...), the shortest public module exporting it. ``.. exception-tree::``
draws the exception hierarchy.

When the reading is done, a warning (an error under ``-W``) names every public module
no page documents, every public name without a docstring (classes' public methods
and properties included), and a module without a docstring. A reference that does
not resolve is a warning too (``nitpicky``): a reference to an object documented
under another public name (``pyrogram_storage.sqlite.file.FileStorage`` in a type
hint, documented as ``pyrogram_storage.sqlite.file.FileStorage`` or re-exported) is
resolved by identity; one to another project stays plain text when intersphinx is
off (offline), and fails only if it names nothing importable.
"""

from __future__ import annotations

import ast
import builtins
import enum
import functools
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode

PACKAGE = "pyrogram_storage"
SKIPPED_MODULES = {
    "pyrogram_storage.__main__",
    # moved in 0.2; importable for one release with a DeprecationWarning (no API of their own)
    "pyrogram_storage.checks",
    "pyrogram_storage.file",
    "pyrogram_storage.memory",
    "pyrogram_storage.sqlite_schema",
    "pyrogram_storage.kv.registry",
}
OPTIONAL_PRIMITIVES = {
    "pyrogram_storage.base.Storage": (
        "_close",
        "_save",
        "_ping",
        "_read_session",
        "_count_peers",
        "_sole_writer",
    ),
    "pyrogram_storage.kv.base.KVStore": ("_open", "_close", "_ping", "_peek", "_get_now"),
}
"""Base classes whose protected primitives are public contract (a subclass implements
the abstract ones and may override these)."""

logger = logging.getLogger(__name__)


@functools.cache
def public_modules() -> tuple[str, ...]:
    """Every module of the package without a private (``_``) part, shortest first."""
    package = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(package.__path__, PACKAGE + "."):
        parts = info.name.split(".")[1:]
        if any(part.startswith("_") for part in parts) or info.name in SKIPPED_MODULES:
            continue
        names.append(info.name)
    return tuple(sorted(names, key=lambda name: (name.count("."), name)))


def exported(module: str) -> list[str]:
    return list(getattr(importlib.import_module(module), "__all__", []))


@functools.cache
def defined_names(module: str) -> frozenset[str]:
    """Names assigned, or defined by ``def``/``class``, at the top of the module."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    names: set[str] = set()
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
        elif isinstance(statement, ast.Assign):
            names.update(t.id for t in statement.targets if isinstance(t, ast.Name))
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id)
    return frozenset(names)


@functools.cache
def attribute_docs(module: str) -> dict[str, str]:
    try:
        docs = ModuleAnalyzer.for_module(module).find_attr_docs()
    except Exception:
        return {}
    return {name: "\n".join(lines).strip() for (scope, name), lines in docs.items() if not scope}


def is_code(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj)


@functools.cache
def homes() -> dict[tuple[str, str], str]:
    """``(exporting module, name) -> home module`` for every public name."""
    exporters: dict[int, list[str]] = {}
    for module in public_modules():
        mod = importlib.import_module(module)
        for name in exported(module):
            exporters.setdefault(id(getattr(mod, name)), []).append(module)
    result = {}
    for module in public_modules():
        mod = importlib.import_module(module)
        for name in exported(module):
            obj = getattr(mod, name)
            candidates = [m for m in exporters[id(obj)] if name in exported(m)]
            if is_code(obj):
                defining = getattr(obj, "__module__", None)
            else:
                defining = next((m for m in candidates if name in defined_names(m)), None)
            result[module, name] = defining if defining in candidates else candidates[0]
    return result


def members_at_home(module: str) -> list[str]:
    return [name for name in exported(module) if homes()[module, name] == module]


def protected_primitives(cls: type) -> list[str]:
    """The abstract primitives of a base class, then the optional ones, in source order."""
    optional = OPTIONAL_PRIMITIVES[f"{cls.__module__}.{cls.__qualname__}"]
    wanted = set(getattr(cls, "__abstractmethods__", ())) | set(optional)
    return [name for name in vars(cls) if name in wanted]


@functools.cache
def documented_classes() -> frozenset[type]:
    return frozenset(
        obj
        for (module, name) in homes()
        if inspect.isclass(obj := getattr(importlib.import_module(module), name))
    )


def public_members(cls: type) -> list[str]:
    """The class's own public members, and those it inherits from undocumented bases.

    A base from a private module (``_lifecycle.Lifecycle``) is documented nowhere else,
    so what it gives the class (``open``, ``close``, ``health``) is shown here.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is object or (klass is not cls and klass in documented_classes()):
            break
        if klass is not cls and klass.__module__ in ("abc", "typing", "builtins", "enum"):
            continue
        for attr, value in vars(klass).items():
            if attr.startswith("_") or attr in names:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if inspect.isfunction(value) or isinstance(value, property):
                names.append(attr)
    return names


def member_directive(module: str, name: str) -> list[str]:
    obj = getattr(importlib.import_module(module), name)
    target = f"{module}.{name}"
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        own = [n for n in public_members(obj) if not n.startswith("test_")]
        inherited = any(n not in vars(obj) for n in own)
        members = ", ".join(own) if inherited and not issubclass(obj, enum.Enum) else ""
        lines = [
            f".. {kind}:: {target}",
            f"   :members: {members}".rstrip(),
            "   :show-inheritance:",
        ]
        if issubclass(obj, enum.Enum):
            lines.append("   :undoc-members:")
        if f"{obj.__module__}.{obj.__qualname__}" in OPTIONAL_PRIMITIVES:
            lines.append("   :private-members: " + ", ".join(protected_primitives(obj)))
        return lines
    if inspect.isroutine(obj):
        return [f".. autofunction:: {target}"]
    lines = [f".. autodata:: {target}"]
    if len(repr(obj)) > 70:
        lines.append("   :no-value:")
    return lines


class PublicModule(SphinxDirective):
    """``.. public-module:: NAME``: the module and every public name at home in it."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module = self.arguments[0]
        documented = self.env.domaindata.setdefault("public_api", {"modules": {}})
        documented["modules"][module] = self.env.docname
        lines = [f".. automodule:: {module}", "   :no-members:", ""]
        for name in members_at_home(module):
            lines += member_directive(module, name)
            lines.append("")
        elsewhere = [name for name in exported(module) if homes()[module, name] != module]
        if elsewhere:
            links = ", ".join(f":py:obj:`~{homes()[module, n]}.{n}`" for n in elsewhere)
            lines.append(f"Also exported here, documented in their home module: {links}.")
            lines.append("")
        content = StringList(lines, source=f"<public-module {module}>")
        container = nodes.container()
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


class ExceptionTree(SphinxDirective):
    """``.. exception-tree::``: every public exception, under the class it derives from."""

    def run(self) -> list[nodes.Node]:
        classes: dict[type, str] = {}
        for (module, name), home in homes().items():
            obj = getattr(importlib.import_module(module), name)
            if inspect.isclass(obj) and issubclass(obj, BaseException) and module == home:
                classes.setdefault(obj, f"{home}.{name}")
        lines: list[str] = []

        def add(cls: type, depth: int) -> None:
            path = classes[cls]
            shortest: dict[str, str] = {}  # alias -> the shortest path it is importable by
            for m, n in homes():
                if n != cls.__name__ and getattr(importlib.import_module(m), n) is cls:
                    path = n if m == PACKAGE else f"{m.removeprefix(PACKAGE + '.')}.{n}"
                    if n not in shortest or len(path) < len(shortest[n]):
                        shortest[n] = path
            aliases = sorted(f"``{path}``" for path in shortest.values())
            builtin = [
                b.__name__
                for b in cls.__bases__
                if b.__module__ == "builtins" and b not in (Exception, BaseException)
            ]
            notes = []
            if builtin:
                notes.append("also " + ", ".join(f"``{b}``" for b in builtin))
            if aliases:
                notes.append("also named " + ", ".join(aliases))
            others = [b for b in cls.__bases__ if b in classes and b is not parent_of(cls)]
            if others:
                notes.append("also " + ", ".join(f":exc:`~{classes[b]}`" for b in others))
            suffix = f" ({'; '.join(notes)})" if notes else ""
            lines.append("   " * depth + f"* :exc:`~{path}`{suffix}")
            lines.append("")
            for child in sorted(classes, key=lambda c: c.__name__):
                if parent_of(child) is cls:
                    add(child, depth + 1)

        def parent_of(cls: type) -> type | None:
            return next((b for b in cls.__bases__ if b in classes), None)

        for root in sorted(classes, key=lambda c: c.__name__):
            if parent_of(root) is None:
                add(root, 0)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="<exception-tree>"), 0, container)
        return container.children


class CommandHelp(SphinxDirective):
    """``.. command-help:: copy`` (or ``kv copy``, or nothing): that command's ``--help``."""

    optional_arguments = 2

    def run(self) -> list[nodes.Node]:
        import argparse
        import os

        from pyrogram_storage.cli import build_parser

        parser: argparse.ArgumentParser = build_parser()
        for word in self.arguments:
            (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            parser = action.choices[word]
        width = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            text = parser.format_help()
        finally:
            if width is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = width
        block = nodes.literal_block(text, text, language="text")
        return [block]


def _warn(message: str) -> None:
    logger.warning(message, type="public_api", subtype="check")


def check_public_api(app: Sphinx, env: BuildEnvironment) -> None:
    """Every public module documented; every public name with a docstring."""
    documented = env.domaindata.get("public_api", {"modules": {}})["modules"]
    for module in public_modules():
        mod = importlib.import_module(module)
        if module not in documented:
            _warn(f"public module {module} is in no reference page (.. public-module::)")
        if not (mod.__doc__ or "").strip():
            _warn(f"public module {module} has no docstring")
        for name in members_at_home(module):
            obj = getattr(mod, name)
            if is_code(obj):
                if not inspect.getdoc(obj):
                    _warn(f"{module}.{name} has no docstring")
            elif name not in attribute_docs(module) and name != "__version__":
                _warn(f"{module}.{name} has no docstring (a '#:' comment or a string below it)")
            if inspect.isclass(obj) and not issubclass(obj, enum.Enum):
                for attr in public_members(obj):
                    if not attr.startswith("test_") and not inspect.getdoc(getattr(obj, attr)):
                        _warn(f"{module}.{name}.{attr} has no docstring")


def check_benchmark_reports(app: Sphinx, env: BuildEnvironment) -> None:
    """Every committed benchmark report has a performance page, every plot is shown."""
    from pathlib import Path

    results = Path(app.srcdir).parent / "benchmarks" / "results"
    pages = Path(app.srcdir) / "performance"
    shown = "".join(page.read_text() for page in pages.glob("*.rst"))
    for report in sorted(results.glob("*.md")):
        if not (pages / report.name).exists():
            _warn(f"benchmarks/results/{report.name} has no page docs/performance/{report.name}")
    for plot in sorted(results.glob("*.png")):
        if f"benchmarks/results/{plot.name}" not in shown:
            _warn(f"benchmarks/results/{plot.name} is shown on no docs/performance page")


def _import(path: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return _MISSING
        return obj
    return _MISSING


_MISSING = object()


def _key(obj: Any) -> int:
    """Identity of an object, a classmethod reached through its class included."""
    return id(getattr(obj, "__func__", obj))


Documented = tuple[dict[int, tuple[str, str, str]], dict[str, set[int]]]


def _documented(env: BuildEnvironment) -> Documented:
    """Where each documented Python object is (by identity), and the objects by short name."""
    domain = env.get_domain("py")
    found: dict[int, tuple[str, str, str]] = {}
    by_short: dict[str, set[int]] = {}
    for name, entry in domain.objects.items():  # type: ignore[attr-defined]
        obj = _import(name)
        if obj is _MISSING or not (is_code(obj) or isinstance(obj, (ModuleType, property))):
            continue
        by_short.setdefault(name.rsplit(".", 1)[-1], set()).add(_key(obj))
        current = found.get(_key(obj))
        if current is None or len(name) < len(current[0]):
            found[_key(obj)] = (name, entry.docname, entry.node_id)
    return found, by_short


def resolve_by_identity(
    app: Sphinx, env: BuildEnvironment, node: nodes.Element, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a Python reference to where its object is documented, or leave it plain."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    candidates = [target]
    if node.get("py:module"):
        candidates.insert(0, f"{node['py:module']}.{target}")
        if node.get("py:class"):
            candidates.insert(0, f"{node['py:module']}.{node['py:class']}.{target}")
    if not hasattr(app, "_public_api_documented"):
        app._public_api_documented = _documented(env)  # type: ignore[attr-defined]
    documented, by_short = app._public_api_documented  # type: ignore[attr-defined]

    def link(obj_id: int) -> nodes.Element:
        _name, docname, node_id = documented[obj_id]
        return make_refnode(app.builder, node["refdoc"], docname, node_id, contnode)

    for candidate in candidates:
        obj = _import(candidate)
        if obj is _MISSING:
            continue
        if _key(obj) in documented and (is_code(obj) or isinstance(obj, (ModuleType, property))):
            return link(_key(obj))
        if not candidate.startswith(PACKAGE + ".") or _is_external(obj):
            return contnode  # another project's object: plain text offline
        if not is_code(obj) and not isinstance(obj, ModuleType):
            return contnode  # a TypeVar or alias of ours: shown, not linked
    short = target.rsplit(".", 1)[-1]
    if target == short and len(by_short.get(short, ())) == 1:
        return link(next(iter(by_short[short])))
    if any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
        return contnode  # a private helper of ours named in a signature: not documented
    if "." in target and target.split(".")[0] != PACKAGE:
        return contnode  # another project's object, not installed here: plain text
    if hasattr(builtins, target) or target in ("None", "True", "False"):
        return contnode
    return None


def _is_external(obj: Any) -> bool:
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
    return not str(module).startswith(PACKAGE)


def skip_contract_tests(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """The shipped suites' ``test_*`` methods are run, not called: the class doc lists them."""
    return True if what in ("class", "exception") and name.startswith("test_") else None


def _napoleon_for_code_only(app: Sphinx) -> None:
    """Leave attribute docstrings to reST: napoleon reads ``Text: more`` as a type."""
    from sphinx.ext import napoleon

    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)

            def process(
                app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
            ) -> None:
                if what not in ("attribute", "data", "property"):
                    napoleon._process_docstring(app, what, name, obj, options, lines)

            app.connect("autodoc-process-docstring", process, priority=listener.priority)


def readable_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """A dataclass field's ``<factory>`` default, as ``...``: Sphinx can then parse it."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", readable_defaults)
    app.setup_extension("sphinx.ext.napoleon")
    _napoleon_for_code_only(app)
    app.connect("autodoc-skip-member", skip_contract_tests)
    app.add_directive("public-module", PublicModule)
    app.add_directive("exception-tree", ExceptionTree)
    app.add_directive("command-help", CommandHelp)
    app.connect("env-check-consistency", check_public_api)
    app.connect("env-check-consistency", check_benchmark_reports)
    app.connect("missing-reference", resolve_by_identity, priority=900)
    return {"parallel_read_safe": False, "env_version": 1}
