"""Sphinx extension: write reference/config.md from r2dservice's traitlets classes.

Runs when the builder starts, before Sphinx reads the sources, so the reference is
always the configuration of the code beside the docs: every configurable class the
application exposes (`configurable_classes()`, the list `--generate-config` uses),
every setting with its type, default and help.

Run it alone with `python docs/_ext/r2dconfig.py [out.md]`.
"""

from __future__ import annotations

import inspect
import os
import re
import sys

import traitlets

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.dirname(HERE)
OUT = os.path.join(DOCS, "reference", "config.md")

HEADER = """\
# Configuration reference

```{{note}}
This page is generated from the code when the documentation is built
(`docs/_ext/r2dconfig.py`); edit the settings' help in the code, not here.
```

Every setting goes into the configuration file (`r2dservice -f r2dservice_config.py`)
as `c.<Class>.<setting> = <value>`, or on the command line as
`--<Class>.<setting>=<value>`. `r2dservice --generate-config` writes the same list as a
commented file. See {{doc}}`../configuration` for what to set first.

Classes: {classes}.
"""


def classes() -> list[type]:
    from r2dservice.app import configurable_classes

    seen, out = set(), []
    for cls in configurable_classes():
        if cls not in seen:
            seen.add(cls)
            out.append(cls)
    return out


def type_name(trait: traitlets.TraitType) -> str:
    name = type(trait).__name__
    if isinstance(trait, (traitlets.Enum, traitlets.CaselessStrEnum)):
        name = "one of " + ", ".join(repr(v) for v in trait.values)
    elif isinstance(trait, traitlets.Union):
        name = " or ".join(type_name(t) for t in trait.trait_types)
    elif isinstance(trait, traitlets.Dict):
        key = getattr(trait, "_key_trait", None)
        value = getattr(trait, "_value_trait", None)
        if key is not None or value is not None:
            name += "({} -> {})".format(
                type_name(key) if key is not None else "any",
                type_name(value) if value is not None else "any",
            )
    elif isinstance(trait, traitlets.Container):
        inner = getattr(trait, "_trait", None)
        if inner is not None:
            name += f"({type_name(inner)})"
    elif isinstance(trait, (traitlets.Instance, traitlets.Type)):
        klass = trait.klass if isinstance(trait, traitlets.Instance) else trait.klass
        if isinstance(klass, type):
            klass = klass.__name__
        if klass:
            name += f"({str(klass).rsplit('.', 1)[-1]})"
    if trait.allow_none:
        name += " or None"
    return name


def dynamic_default(cls: type, name: str) -> bool:
    """True when the default is computed by a @default method (environment, other settings)."""
    return any(name in vars(k).get("_trait_default_generators", {}) for k in cls.__mro__)


def default_repr(cls: type, name: str, trait: traitlets.TraitType) -> str:
    if dynamic_default(cls, name):
        return "computed when the service starts (see the description)"
    try:
        value = trait.default_value_repr()
    except Exception:  # pragma: no cover - traitlets' repr of exotic defaults
        return "(see the description)"
    # Classes render as "<class 'pkg.mod.Name'>": show the import path instead.
    value = re.sub(r"<class '([\w.]+)'>", r"\1", value)
    return code(value)


def code(text: str) -> str:
    """`text` as an inline code span, whatever backticks it holds."""
    ticks = "`"
    while ticks in text:
        ticks += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


_SPECIAL = re.compile(r"([\\*_\[\]<>#|{}~$])")


def escape_markdown(text: str) -> str:
    """Help text as Markdown: code spans stay, other Markdown/HTML syntax is escaped."""
    out = []
    for i, part in enumerate(re.split(r"(`+[^`]*`+)", text)):
        out.append(part if i % 2 else _SPECIAL.sub(r"\\\1", part))
    return "".join(out)


# Help written in reStructuredText (traitlets' and JupyterHub's own classes).
_RST = re.compile(r"``|^\s*\.\. [\w-]+::|::\s*$", re.MULTILINE)


def help_markdown(help_text: str) -> str:
    text = inspect.cleandoc(help_text or "")
    if not text:
        return "(no description)"
    if _RST.search(text):
        fence = "````" if "```" in text else "```"
        return f"{fence}{{eval-rst}}\n{text}\n{fence}"
    paragraphs = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in para.splitlines()]
        if any(ln.startswith(("- ", "* ")) for ln in lines[1:]):
            # keep line structure for lists
            paragraphs.append("\n".join(escape_markdown(ln) for ln in lines))
        else:
            paragraphs.append(escape_markdown(" ".join(lines)))
    return "\n\n".join(paragraphs)


def anchor(cls_name: str, trait_name: str = "") -> str:
    base = f"config-{cls_name}".lower()
    return f"{base}-{trait_name}".lower().replace("_", "-") if trait_name else base


def class_section(cls: type, documented: set[type]) -> list[str]:
    own = cls.class_own_traits(config=True)
    inherited_from_undocumented = {}
    see_also = {}
    for name, trait in sorted(cls.class_traits(config=True).items()):
        if name in own:
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if owner in documented:
            see_also.setdefault(owner.__name__, []).append(name)
        else:
            inherited_from_undocumented[name] = trait
    traits = {**own, **inherited_from_undocumented}
    lines = [f"({anchor(cls.__name__)})=", f"## {cls.__name__}", ""]
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    if first:
        lines += [escape_markdown(first), ""]
    lines += [f"Module: {code(cls.__module__)}.", ""]
    for owner, names in see_also.items():
        refs = ", ".join(code(n) for n in names)
        lines += [
            f"Also takes the settings of {{ref}}`{owner} <{anchor(owner)}>` ({refs}): "
            f"`c.{cls.__name__}.<setting>` sets one of them for this class only.",
            "",
        ]
    if not traits:
        lines += ["No settings of its own.", ""]
    for name, trait in sorted(traits.items()):
        lines += [
            f"({anchor(cls.__name__, name)})=",
            f"### {code(f'c.{cls.__name__}.{name}')}",
            "",
            f"- Type: {code(type_name(trait))}",
            f"- Default: {default_repr(cls, name, trait)}",
            "",
            help_markdown(trait.help),
            "",
        ]
    return lines


def render() -> str:
    found = classes()
    documented = set(found)
    names = ", ".join(f"{{ref}}`{c.__name__} <{anchor(c.__name__)}>`" for c in found)
    lines = [HEADER.format(classes=names)]
    for cls in found:
        lines += class_section(cls, documented)
    return "\n".join(lines).rstrip() + "\n"


def write(path: str = OUT) -> bool:
    """Write the reference; returns True if it changed (untouched files keep Sphinx's cache)."""
    text = render()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


def _on_builder_inited(app) -> None:
    write(os.path.join(app.srcdir, "reference", "config.md"))


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(DOCS))
    target = sys.argv[1] if len(sys.argv) > 1 else OUT
    write(target)
    print(f"wrote {target}")
