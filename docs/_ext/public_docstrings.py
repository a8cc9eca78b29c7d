"""Sphinx extension: the API reference pages, and a build that fails when a
public name has no docstring.

``conf.py`` lists the modules of the API reference as
``public_docstring_modules``. A module's public names are its ``__all__``,
or else the functions and classes it defines whose names do not start with
``_``, and the data it documents with ``#:`` comments. Each public function
and class needs a docstring, and so does each public method, property,
classmethod and staticmethod a public class defines itself: a missing one is
a warning, which ``-W`` makes an error.

Before the sources are read, one page per module is written to
``api/_generated/<module>.rst``: the module's docstring, a summary table,
then every public name in full (``autoclass``, ``autofunction``, data with
its ``#:`` comment).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)
GENERATED = os.path.join("api", "_generated")


def _attr_docs(module_name: str) -> dict[str, str]:
  """``#:`` comments of module-level names: name -> text."""
  try:
    analyzer = ModuleAnalyzer.for_module(module_name)
  except Exception:  # noqa: BLE001 (compiled or source-less modules)
    return {}
  return {
    name: "\n".join(lines).strip()
    for (scope, name), lines in analyzer.find_attr_docs().items()
    if scope == ""
  }


def public_names(module) -> list[str]:
  """``module.__all__``, or its public functions, classes and documented data."""
  if hasattr(module, "__all__"):
    return list(module.__all__)
  documented = _attr_docs(module.__name__)
  return [
    name
    for name, obj in vars(module).items()
    if not name.startswith("_")
    and (
      (
        (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
      )
      or name in documented
    )
  ]


def _member_function(value):
  """The function behind a class attribute, or None if it is not one."""
  if isinstance(value, (classmethod, staticmethod)):
    return value.__func__
  if isinstance(value, property):
    return value.fget
  if inspect.isfunction(value):
    return value
  return None


def _has_docstring(obj) -> bool:
  """A docstring someone wrote: not empty, and not the signature that
  dataclasses and NamedTuple put in ``__doc__`` of a class without one.
  """
  doc = (obj.__doc__ or "").strip()
  generated = inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")
  return bool(doc) and not generated


def missing_docstrings(module_name: str) -> list[str]:
  """Dotted names of the module's public functions, classes and methods
  that have no docstring (an empty or whitespace-only one counts as none).
  """
  module = importlib.import_module(module_name)
  missing = []
  for name in public_names(module):
    obj = getattr(module, name)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
      continue  # data: documented by a #: comment where it is defined
    if not _has_docstring(obj):
      missing.append(f"{module_name}.{name}")
    if inspect.isclass(obj):
      for attr, value in vars(obj).items():
        fn = _member_function(value)
        if attr.startswith("_") or fn is None:
          continue
        if getattr(fn, "__module__", obj.__module__) != obj.__module__:
          continue  # generated (dataclass, NamedTuple) or borrowed
        if not (fn.__doc__ or "").strip():
          missing.append(f"{module_name}.{name}.{attr}")
  return missing


def _data_doc(module, name: str) -> str:
  """The ``#:`` comment of ``module.name``, where the object is defined."""
  obj = getattr(module, name)
  candidates = [module.__name__] + sorted(
    m for m in sys.modules if m.startswith(module.__name__.split(".")[0] + ".")
  )
  for candidate in candidates:
    owner = sys.modules.get(candidate)
    if owner is None or getattr(owner, name, None) is not obj:
      continue
    doc = _attr_docs(candidate).get(name)
    if doc:
      return doc
  return ""


def module_page(module_name: str) -> str:
  """The reST page of one module."""
  module = importlib.import_module(module_name)
  names = [n for n in public_names(module) if n != "__version__"]
  kinds = {}
  for name in names:
    obj = getattr(module, name)
    if inspect.isclass(obj) and issubclass(obj, BaseException):
      kinds[name] = "exception"
    elif inspect.isclass(obj):
      kinds[name] = "class"
    elif callable(obj):
      kinds[name] = "function"
    else:
      kinds[name] = "data"
  order = {"class": 0, "exception": 1, "function": 2, "data": 3}
  names.sort(key=lambda n: (order[kinds[n]], n.lower()))
  title = module_name.replace("_", r"\_")
  lines = [
    title,
    "=" * len(title),
    "",
    f".. automodule:: {module_name}",
    "   :no-members:",
    "",
    f".. currentmodule:: {module_name}",
    "",
  ]
  if names:
    lines += [".. autosummary::", "   :nosignatures:", ""]
    lines += [f"   {name}" for name in names]
    lines.append("")
  for name in names:
    kind = kinds[name]
    if kind == "class":
      lines += [
        f".. autoclass:: {name}",
        "   :members:",
        "   :show-inheritance:",
        "",
      ]
    elif kind == "exception":
      lines += [f".. autoexception:: {name}", ""]
    elif kind == "function":
      lines += [f".. autofunction:: {name}", ""]
    else:
      obj = getattr(module, name)
      doc = _data_doc(module, name) or f"A ``{type(obj).__name__}``."
      lines += [f".. py:data:: {name}", ""]
      lines += [f"   {line}" if line else "" for line in doc.splitlines()]
      lines.append("")
  return "\n".join(lines)


def write_pages(app) -> None:
  """Writes ``api/_generated/<module>.rst`` (only when its text changes)."""
  folder = os.path.join(app.srcdir, GENERATED)
  os.makedirs(folder, exist_ok=True)
  for module_name in app.config.public_docstring_modules:
    path = os.path.join(folder, f"{module_name}.rst")
    text = module_page(module_name)
    old = None
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        old = f.read()
    if text != old:
      with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def check(app) -> None:
  """Warns once per public name without a docstring."""
  for module_name in app.config.public_docstring_modules:
    for name in missing_docstrings(module_name):
      logger.warning(
        "%s has no docstring; every public name needs one (shapes, formula)",
        name,
        type="public_docstrings",
      )


def setup(app):
  """Registers ``public_docstring_modules``, the pages and the check."""
  app.add_config_value("public_docstring_modules", [], "env")
  app.connect("builder-inited", write_pages)
  app.connect("builder-inited", check)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
