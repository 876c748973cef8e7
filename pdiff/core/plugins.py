"""Your own code named by import path in params.yaml: ``"module.path:Name"``.

Two keys take one: ``model.arch`` (your architecture, `pdiff.nets.custom`) and ``generator`` (your generator,
`pdiff.generative.registry`). The module is imported from the repository root (``user/models/tiny_cnn.py`` is
``user.models.tiny_cnn``) and must live in that key's own folder: ``user/models/`` for models,
``user/generators/`` for generators. dvc.yaml lists each folder as a dependency of exactly the stages that may
import its code (a model's: the stages that build the model; a generator's: the stages that fit, sample or
decode with it), so editing a file reruns those stages and no others (editing your generator does not retrain
the base model). Code elsewhere in the repository is refused; code outside it (an installed package) is used
with a warning that DVC does not see it change. Every failure is one paragraph that names the params key and
its value.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from pdiff import PdiffError

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_DIR = "user"  # your code; each kind lives in its own subfolder (Plugin.folder), a dvc.yaml dependency


class UntrackedCodeWarning(UserWarning):
    """The code lives outside the repository, so DVC cannot see it change."""


@dataclass(frozen=True)
class Plugin:
    """What an import path names, for the messages: the params ``key``, what the code is (``what``: 'model',
    'generator'), an ``example`` file stem and attribute ('my_net', 'build'), the stages that import it
    (``stages``), the pdiff folder whose own modules may be named too (``package``, e.g. 'pdiff/nets') and the
    subfolder of user/ that holds this kind of code (``subdir``: 'models', 'generators')."""
    key: str
    what: str
    example: tuple[str, str]
    stages: str
    package: str
    subdir: str

    @property
    def folder(self) -> str:
        """Where this kind of code lives, e.g. 'user/models': the folder dvc.yaml lists for its stages."""
        return f"{USER_DIR}/{self.subdir}"

    @property
    def module_prefix(self) -> str:
        """The import path of that folder, e.g. 'user.models'."""
        return self.folder.replace("/", ".")


def is_import_path(value: str) -> bool:
    return ":" in value


def _fail(plugin: Plugin, value: str, what: str) -> PdiffError:
    return PdiffError(f"params: `{plugin.key}` = {value!r}: {what}")


def _import(plugin: Plugin, value: str, module_name: str):
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(f"{missing}."):
            guess = Path(*module_name.split(".")).with_suffix(".py")
            stem, attr = plugin.example
            raise _fail(plugin, value, f"module `{module_name}` was not found. Modules are imported from the "
                        f"repository root, so this name means the file {guess}; put your {plugin.what} file in "
                        f"{plugin.folder}/ (e.g. {plugin.folder}/{stem}.py is '{plugin.module_prefix}.{stem}:{attr}')"
                        ".") from None
        raise _fail(plugin, value, f"importing `{module_name}` failed because it imports `{missing}`, which cannot "
                    f"be found; install that package (and add it to requirements.txt) or fix the import.") from None


def _check_tracked(plugin: Plugin, value: str, module) -> None:
    file = getattr(module, "__file__", None)
    path = Path(file).resolve() if file else None
    installed = path is not None and bool({"site-packages", "dist-packages"} & set(path.parts))  # e.g. ./.venv
    if path is None or installed or not path.is_relative_to(REPO_ROOT):
        warnings.warn(f"`{plugin.key}` = {value!r} comes from {path or 'a module without a file'}, outside the "
                      "repository: DVC does not track it, so changing that code will not rerun any stage. Pin "
                      f"its version in requirements.txt, or copy the code into {plugin.folder}/.", UntrackedCodeWarning,
                      stacklevel=4)
        return
    rel = path.relative_to(REPO_ROOT)
    if not any(rel.is_relative_to(d) for d in (plugin.folder, plugin.package)):  # code those stages depend on
        raise _fail(plugin, value, f"{rel} is outside {plugin.folder}/, the folder dvc.yaml tracks for "
                    f"{plugin.what} code, so an edit to it would not rerun {plugin.stages}; move the file into "
                    f"{plugin.folder}/.")


def import_object(plugin: Plugin, value: str):
    """The object ``value`` = 'module.path:Name' names (a function, a class, ...), imported as described above."""
    module_name, _, name = value.partition(":")
    module = _import(plugin, value, module_name)
    _check_tracked(plugin, value, module)
    if not hasattr(module, name):
        available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
        raise _fail(plugin, value, f"module `{module_name}` ({getattr(module, '__file__', '?')}) has no attribute "
                    f"`{name}`; the functions and classes it defines are: {', '.join(available) or 'none'}.")
    return getattr(module, name)
