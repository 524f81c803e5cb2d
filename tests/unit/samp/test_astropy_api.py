"""sampflow.samp has astropy.samp's public API, and pyvo.samp's: every module, name, class,
method, property, parameter name and default, exception base class (issue 11).

astropy (a dependency; 7.x or 8.x, whichever is installed) and pyvo (a test dependency;
pyvo.samp is astropy's code plus pyvo's helpers) are enumerated with `inspect` and compared
with sampflow. Each deliberate difference is in `ALLOWED` (or `PYVO_ALLOWED`), with its
reason, and must be explained in the table of docs/astropy-compat.md; an entry that no
longer differs fails too, so the list stays true. No sockets: this looks at the API only (the
behaviour is tested over real sockets in tests/integration/test_astropy_compat*.py).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # astropy 8 deprecates astropy.samp in favour of pyvo
    import astropy.samp as astropy_samp
import pyvo.samp as pyvo_samp

import sampflow.samp as sampflow_samp

DOC = Path(__file__).resolve().parents[3] / "docs" / "astropy-compat.md"

#: astropy's internals that are not API (its test package, its build hook).
NOT_API_MODULES = {"tests", "setup_package"}

#: key -> why it differs. Keys: ``module:name`` for a name sampflow does not have (module ""
#: is the package), ``Qualname`` / ``Qualname.member`` for a signature, kind, base class or
#: value that differs.
ALLOWED: dict[str, str] = {
    "SAMPHubServer.__init__": "web_profile defaults to None (off) instead of True",
    "SAMP_ICON": "sampflow's own 16 x 16 PNG, not astropy's picture",
    "CROSS_DOMAIN": "sampflow's own text of the Flash policy (same effect, section 5.4.1)",
    "CLIENT_ACCESS_POLICY": "sampflow's own text of the Silverlight policy (same effect)",
    "standard_profile:SAMPSimpleXMLRPCRequestHandler": "astropy's socketserver plumbing",
    "standard_profile:ThreadingXMLRPCServer": "astropy's socketserver plumbing",
    "web_profile:WebProfileRequestHandler": "astropy's socketserver plumbing",
    "web_profile:WebProfileXMLRPCServer": "astropy's socketserver plumbing",
    "web_profile:web_profile_text_dialog": "astropy's queue-based terminal prompt; sampflow's "
                                           "is hub.web_consent.TerminalPrompt",
}


_HELPER_REASON = ("sampflow's helper has more optional parameters after pyvo's (timeout, "
                  "extra parameters, the file name) or its own default client name")
#: pyvo.samp's differences on top of astropy.samp's.
PYVO_ALLOWED: dict[str, str] = {
    **ALLOWED,
    **{name: _HELPER_REASON for name in (
        "accessible_table", "connection", "send_image_to", "send_product_to",
        "send_spectrum_to", "send_table_to")},
}
LIBRARIES = {"astropy": (astropy_samp, ALLOWED), "pyvo": (pyvo_samp, PYVO_ALLOWED)}


def _modules(package: ModuleType) -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(package.__path__)]
    return [""] + sorted(n for n in names if n not in NOT_API_MODULES)


def _import(package: ModuleType, name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(package.__name__ + ("." + name if name else ""))


def _public_names(module: ModuleType, top_level: bool) -> list[str]:
    """What a module offers: its ``__all__``; with an empty or no ``__all__``, the classes
    and functions it defines and its UPPER_CASE constants; for the package, everything
    public (astropy's package has no ``__all__``)."""
    if top_level:  # (a test package appears here once something imported it)
        return [n for n in dir(module) if not n.startswith("_") and n not in NOT_API_MODULES]
    names = list(getattr(module, "__all__", None) or [])
    if names:
        return names
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        defined_here = getattr(value, "__module__", None) == module.__name__
        code = (inspect.isclass(value) or inspect.isfunction(value)) and defined_here
        constant = name.isupper() and isinstance(value, (str, bytes, int, list, tuple))
        if code or constant:
            names.append(name)
    return names


def _library_names(library: ModuleType) -> list[tuple[str, str]]:
    return [(m, n) for m in _modules(library)
            for n in _public_names(_import(library, m), m == "")]


def _params(obj: Any) -> list[tuple[str, str, str]] | None:
    """Parameter names, kinds and default reprs; None when there is no signature."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.kind.name, repr(p.default)) for p in signature.parameters.values()]


def _members(cls: type) -> dict[str, tuple[str, Any]]:
    """Public members a class defines in its own package: name -> (kind, object)."""
    found: dict[str, tuple[str, Any]] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(cls.__module__.split(".")[0] + ".samp"):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(raw, property):
                found[name] = ("property", None)
            elif isinstance(raw, staticmethod):
                found[name] = ("staticmethod", raw.__func__)
            elif isinstance(raw, classmethod):
                found[name] = ("classmethod", raw.__func__)
            elif inspect.isfunction(raw):
                found[name] = ("method", raw)
    return found


def _differences(name: str, ours: Any, theirs: Any) -> dict[str, str]:
    """key -> what differs, for one astropy object and sampflow's object of the same name."""
    out: dict[str, str] = {}
    if inspect.isclass(theirs):
        if not inspect.isclass(ours):
            return {name: f"astropy's is a class, ours a {type(ours).__name__}"}
        for base in theirs.__mro__[1:]:
            if not base.__module__.startswith("astropy") and not issubclass(ours, base):
                out[name] = f"not a subclass of {base.__module__}.{base.__qualname__}"
        if issubclass(theirs, BaseException) and _params(theirs) is None:
            pass  # exceptions without a signature of their own (they take *args)
        elif _params(ours) != _params(theirs):
            out[f"{name}.__init__"] = f"signature {_params(ours)} != {_params(theirs)}"
        our_members = _members(ours)
        for member, (kind, function) in _members(theirs).items():
            key = f"{name}.{member}"
            if member not in our_members and not hasattr(ours, member):
                out[key] = "missing"
            elif member in our_members and our_members[member][0] != kind:
                out[key] = f"a {our_members[member][0]}, astropy's a {kind}"
            elif function is not None and _params(our_members[member][1]) != _params(function):
                out[key] = (f"signature {_params(our_members[member][1])} != "
                            f"{_params(function)}")
    elif inspect.isfunction(theirs) or inspect.isbuiltin(theirs):
        if not callable(ours):
            out[name] = "not callable"
        elif _params(ours) != _params(theirs):
            out[name] = f"signature {_params(ours)} != {_params(theirs)}"
    elif inspect.ismodule(theirs):
        if not inspect.ismodule(ours):
            out[name] = "not a module"
    else:
        if type(ours).__name__ != type(theirs).__name__:
            out[name] = f"a {type(ours).__name__}, astropy's a {type(theirs).__name__}"
        elif ours != theirs and isinstance(theirs, (str, bytes, list, tuple, int)):
            out[name] = f"value {ours!r:.60} != {theirs!r:.60}"
    return out


def _all_differences(library: str) -> tuple[dict[str, str], set[str]]:
    package, allowed = LIBRARIES[library]
    missing_or_different: dict[str, str] = {}
    compared: set[int] = set()
    for module_name, name in _library_names(package):
        theirs_module = _import(package, module_name)
        theirs = getattr(theirs_module, name)
        try:
            ours_module = _import(sampflow_samp, module_name)
        except ImportError:
            missing_or_different[f"{module_name}:"] = "module missing"
            continue
        if inspect.ismodule(theirs):  # a submodule: ours must import under the same path
            try:
                _import(sampflow_samp, name)
            except ImportError:
                missing_or_different[f"{module_name}:{name}"] = "no such submodule"
            continue
        if not hasattr(ours_module, name):
            missing_or_different[f"{module_name}:{name}"] = "missing"
            continue
        if id(theirs) in compared and not isinstance(theirs, (str, bytes, int)):
            continue
        compared.add(id(theirs))
        missing_or_different.update(_differences(name, getattr(ours_module, name), theirs))
    return missing_or_different, set(allowed)


def test_the_installed_astropy_is_what_we_compare_with() -> None:
    major = int(importlib.import_module("astropy").__version__.split(".")[0])
    assert major >= 7
    assert len(_library_names(astropy_samp)) > 40  # the enumeration found astropy's API


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_public_name_of_the_library_exists_alike_in_sampflow_samp(library: str) -> None:
    differences, allowed = _all_differences(library)
    unexplained = {k: v for k, v in differences.items() if k not in allowed}
    assert unexplained == {}, "\n".join(f"{k}: {v}" for k, v in sorted(unexplained.items()))


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_allowed_difference_is_still_a_difference(library: str) -> None:
    differences, allowed = _all_differences(library)
    assert sorted(allowed - set(differences)) == []


def test_every_allowed_difference_is_explained_in_the_docs_table() -> None:
    table = [line for line in DOC.read_text("utf-8").splitlines() if line.startswith("|")]
    for key in PYVO_ALLOWED:
        assert any(f"`{key}`" in row for row in table), f"{key} is not in {DOC.name}'s table"


@pytest.mark.parametrize(("library", "module"), [
    (library, module) for library, (package, _) in LIBRARIES.items()
    for module in _modules(package)])
def test_every_submodule_path_imports_from_sampflow(library: str, module: str) -> None:
    ours = _import(sampflow_samp, module)
    theirs = _import(LIBRARIES[library][0], module)
    assert set(getattr(theirs, "__all__", None) or []) <= set(
        getattr(ours, "__all__", None) or [])
