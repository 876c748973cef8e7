"""The `generator` params value -> a `pdiff.generative.protocol.Generator`.

The built-ins by name (`BUILTINS`, whose names are the schema's one list, `pdiff.core.config.BUILTIN_GENERATORS`),
or your own by import path, ``"user.generators.<file>:<Class>"``: a subclass of `Generator` in a file under
user/generators/, imported the way ``model.arch`` imports your own model (`pdiff.core.plugins`); its name is the
path. The stages resolve the name and call the generator; none of them knows which one it is.
"""
from __future__ import annotations

from pdiff import PdiffError
from pdiff.core.config import BUILTIN_GENERATORS, check_generator
from pdiff.core.plugins import Plugin, import_object
from pdiff.generative.builtins import ConvAE, Tokens
from pdiff.generative.protocol import Generator

BUILTINS: dict[str, type[Generator]] = {cls.name: cls for cls in (ConvAE, Tokens)}
if tuple(BUILTINS) != BUILTIN_GENERATORS:
    raise PdiffError(f"pdiff/generative/registry.py registers {list(BUILTINS)}, but pdiff/core/config.py's "
                     f"BUILTIN_GENERATORS lists {list(BUILTIN_GENERATORS)}; keep the two the same.")

GENERATOR = Plugin(key="generator", what="generator", example=("my_generator", "MyGenerator"),
                   stages="the stages that fit, sample or decode with it", package="pdiff/generative",
                   subdir="generators")


def resolve(name: str) -> Generator:
    """A fresh generator for the `generator` params value ``name``."""
    check_generator(name)  # the params check: a registered name or the import-path form
    if name in BUILTINS:
        return BUILTINS[name]()
    cls = import_object(GENERATOR, name)
    if not (isinstance(cls, type) and issubclass(cls, Generator)):
        what = f"the class {cls.__name__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise PdiffError(f"params: `generator` = {name!r} names {what}, not a subclass of "
                         "pdiff.generative.protocol.Generator; name the class that implements fit_prior and "
                         "load_sampler (docs/own-generator.md).")
    try:
        generator = cls()
    except TypeError as exc:  # e.g. an abstract method not implemented, or arguments required
        raise PdiffError(f"params: `generator` = {name!r} cannot be made as {cls.__name__}(): {exc}. A generator "
                         "takes no arguments and implements fit_prior and load_sampler (docs/own-generator.md).") \
            from None
    generator.name = name
    return generator


def require_conditional(generator: Generator, stage: str) -> Generator:
    """The generator, if it is conditional; otherwise the one-paragraph refusal of the task stage ``stage``."""
    if not generator.conditional:
        conditional = [f"`{name}`" for name, cls in BUILTINS.items() if cls.conditional]
        raise PdiffError(f"`{stage}` cannot use `generator: {generator.name}`: it is not conditional. The task "
                         "stages (task_pipeline: [run]) fit the generator's prior with each snapshot's task code as "
                         "its condition and sample models for given task codes, so a generator for them must set "
                         "`conditional = True`, fit its prior with `ctx.condition` (a Condition: the codes, one "
                         "per snapshot) and take `cond` (one code per vector) and `guidance` in `Sampler.sample` "
                         "(docs/own-generator.md, \"Conditioning\"). The conditional built-ins are "
                         f"{' and '.join(conditional)}: set `generator` to one of them for "
                         "the task stages.")
    return generator
