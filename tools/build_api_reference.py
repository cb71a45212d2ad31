"""Build the API reference of keras_regnet from its docstrings (HTML, with pdoc).

    python tools/build_api_reference.py build/api      # then open build/api/index.html

One page per public module (every module of the package whose name has no
leading underscore; ``keras_regnet.datasets``, ``.download`` and
``.torch_checkpoint``, aliases of their new modules kept for old imports,
are documented under their new names), with a search box.  Docstrings are
read as Google style with reStructuredText roles, as the package writes them.

The build checks the docstrings first and fails (exit status 1, one line per
problem) instead of writing a reference with holes when:

* a module does not import;
* a module, or a name in a module's ``__all__`` that is a class or function
  of the package, has no docstring;
* a cross-reference (``:func:`...```, ``:class:``, ``:mod:``, ``:meth:``,
  ``:attr:``, ``:exc:``, ``:data:``) names nothing that exists;
* an ``Args:`` section names a parameter its function does not have;
* pdoc warns while rendering.

``build/`` is ignored by git: the reference is built, not committed.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from typing import Iterator, List

# TensorFlow's C++ start-up chatter is not part of a reference build's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PACKAGE = "keras_regnet"
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|exc|data|obj):`~?([^`<>]+?)(?:\(\))?`")
SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters):\s*$")


class ApiReferenceError(RuntimeError):
    """The docstrings have problems; the message lists them, one per line."""


def public_modules(package: str = PACKAGE, problems: List[str] = None) -> List[str]:
    """Every importable public module of ``package`` (aliases of other modules left out), sorted.

    Modules that fail to import are appended to ``problems`` (or raise
    :class:`ApiReferenceError` when ``problems`` is None).
    """
    found = [] if problems is None else problems
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda name: None):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue  # private, and __main__ (importing it would run the command)
        try:
            module = importlib.import_module(info.name)
        except Exception as e:  # noqa: BLE001 - any import failure is a problem to report
            found.append(f"{info.name}: does not import ({type(e).__name__}: {e})")
            continue
        if module.__name__ == info.name:
            names.append(info.name)
    if problems is None and found:
        raise ApiReferenceError("\n".join(found))
    return sorted(names)


def documented_objects(module) -> Iterator[tuple]:
    """``(qualified name, object)`` for the module and its classes, functions and their methods defined in it."""
    yield module.__name__, module
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for attr, member in sorted(vars(obj).items()):
                function = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if not attr.startswith("_") and inspect.isfunction(function):
                    yield f"{module.__name__}.{name}.{attr}", function
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def resolves(target: str, module, owner=None) -> bool:
    """Whether a cross-reference ``target`` names something, from ``module`` (and class ``owner``)."""
    parts = target.strip().split(".")
    # A name visible where the docstring is, or exported by an enclosing
    # package (``RegNet`` is ``keras_regnet.RegNet`` anywhere in the package).
    enclosing = [sys.modules[module.__name__.rsplit(".", n)[0]] for n in range(1, module.__name__.count(".") + 1)]
    for scope in filter(None, (owner, module, *enclosing)):
        obj, ok = scope, True
        for part in parts:
            if not hasattr(obj, part):
                ok = False
                break
            obj = getattr(obj, part)
        if ok:
            return True
    for cut in range(len(parts), 0, -1):  # an absolute dotted path
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                obj = getattr(obj, part)
        except AttributeError:
            return False
        return True
    return False


def argument_names(doc: str) -> List[str]:
    """The parameter names listed by the ``Args:`` sections of a Google-style docstring."""
    names, inside, indent = [], False, None
    for line in doc.splitlines():
        if SECTION.match(line):
            inside, indent = True, None
            continue
        if not inside or not line.strip():
            continue
        current = len(line) - len(line.lstrip())
        indent = current if indent is None else indent
        if current < indent or (current == indent and re.fullmatch(r"[A-Z][A-Za-z ]*:", line.strip())):
            inside = False  # the next section
        elif current == indent:  # "name: text", "a, b: text", "name (type): text"
            head = line.strip().split(":")[0].split(" (")[0]
            names += [n.strip(" *`") for n in head.split(",")]
    return [n for n in names if n]


def docstring_problems(module_name: str) -> List[str]:
    """Missing docstrings, unresolvable cross-references and unknown ``Args:`` names in one module."""
    module = importlib.import_module(module_name)
    problems = []
    exported = set(getattr(module, "__all__", ()))
    for qualified, obj in documented_objects(module):
        doc = inspect.getdoc(obj) if obj is not module else module.__doc__
        name = qualified.rsplit(".", 1)[-1]
        needs_doc = obj is module or (name in exported and qualified.count(".") == module_name.count(".") + 1)
        if not (doc or "").strip():
            if needs_doc:
                problems.append(f"{qualified}: no docstring")
            continue
        if inspect.isclass(obj) and obj.__doc__ is None:
            continue  # inherited: checked where it is written
        owner = obj if inspect.isclass(obj) else None
        for target in ROLE.findall(doc):
            if not resolves(target, module, owner):
                problems.append(f"{qualified}: the docstring refers to {target!r}, which does not exist")
        if inspect.isfunction(obj):
            problems += argument_problems(qualified, obj, doc)
    return problems


def argument_problems(qualified: str, function, doc: str) -> List[str]:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []  # **kwargs: documented names may go there
    unknown = [n for n in argument_names(doc) if n not in parameters and n.lstrip("*") not in parameters]
    return [f"{qualified}: 'Args:' lists {n!r}, which is not a parameter" for n in unknown]


def check(package: str = PACKAGE) -> List[str]:
    """Every docstring problem of ``package``'s public modules (empty when the reference can be built)."""
    problems: List[str] = []
    for name in public_modules(package, problems):
        problems += docstring_problems(name)
    return problems


def build(output_dir, package: str = PACKAGE) -> Path:
    """Check the docstrings of ``package``, then write its HTML reference to ``output_dir``; the index page.

    Raises:
        ApiReferenceError: a module does not import, a docstring has a
            problem (see the module docstring), or pdoc warned.
    """
    import pdoc.doc
    import pdoc.render

    problems = check(package)
    if problems:
        raise ApiReferenceError("\n".join(problems))
    pdoc.render.configure(docformat="google", search=True, show_source=True, footer_text=f"{package} API reference")
    output_dir = Path(output_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # pdoc.pdoc() would walk submodules itself and skip those a package's
        # __all__ leaves out; the pages are rendered here for exactly our list.
        modules = {name: pdoc.doc.Module.from_name(name) for name in public_modules(package)}
        pages = {name: pdoc.render.html_module(module, modules) for name, module in modules.items()}
        # The module list as index (pdoc's html_index would redirect to the package's page, whose
        # navigation lists only the submodules in its __all__, i.e. none).
        index = pdoc.render.env.get_template("index.html.jinja2").render(all_modules=modules, root_module_name=None)
        search = pdoc.render.search_index(modules)
    pdoc_warnings = [str(w.message) for w in caught if "pdoc" in w.filename]
    if pdoc_warnings:
        raise ApiReferenceError("\n".join(f"pdoc: {w}" for w in pdoc_warnings))
    for name, page in pages.items():
        path = output_dir / f"{name.replace('.', '/')}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page.replace("<code>~<a ", "<code><a "))  # pdoc keeps reST's "~" (short name) marker
    (output_dir / "index.html").write_text(index)
    (output_dir / "search.js").write_text(search)
    return output_dir / "index.html"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output_dir", nargs="?", default="build/api", help="where the HTML goes (default build/api)")
    parser.add_argument("--package", default=PACKAGE, help="the package to document (default keras_regnet)")
    parser.add_argument("--check-only", action="store_true", help="check the docstrings, write nothing")
    args = parser.parse_args(argv)
    try:
        if args.check_only:
            problems = check(args.package)
            if problems:
                raise ApiReferenceError("\n".join(problems))
            print(f"{args.package}: docstrings OK")
        else:
            print(f"wrote {build(args.output_dir, args.package)}")
    except ApiReferenceError as e:
        print(f"build_api_reference: {len(str(e).splitlines())} problem(s):\n{e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
