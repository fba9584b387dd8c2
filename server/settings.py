"""How a setting is declared, read and described: the machinery behind server/config.py.

A setting is a field of the Config dataclass made by `setting(...)`: its
environment variable, its default, its kind (which values it takes, and how
a raw string becomes one) and one line of doc. Reading the environment and
writing docs/configuration.md's tables both walk the same fields.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SETTING = "setting"  # the key of a field's metadata that holds its Setting


class ConfigError(ValueError):
    """A configuration variable has a value the service cannot use."""


@dataclasses.dataclass(frozen=True)
class Section:
    """A heading of docs/configuration.md, and the page that tells more."""

    title: str
    page: str | None = None


@dataclasses.dataclass(frozen=True)
class Setting:
    env: str
    kind: Kind
    doc: str
    section: Section


def setting(section: Section, env: str, default: Any, kind: Kind, doc: str) -> Any:
    """A Config field read from `env` (unset or empty: `default`)."""
    return dataclasses.field(default=default, metadata={SETTING: Setting(env, kind, doc, section)})


def read(fields: tuple[dataclasses.Field, ...], env: Mapping[str, str]) -> dict[str, Any]:
    """Every field's value from `env`, in declaration order (a default may build on an earlier value)."""
    values: dict[str, Any] = {}
    for field in fields:
        if SETTING not in field.metadata:
            raise TypeError(f"Config.{field.name} is not declared with setting(...): see server/config.py")
        declared: Setting = field.metadata[SETTING]
        raw = env.get(declared.env, "")
        values[field.name] = (declared.kind.parse(declared.env, raw) if raw.strip()
                              else declared.kind.fallback(field.default, values))
    return values


# Kinds: each parses a raw value (not blank) or raises ConfigError naming the variable,
# and says for the docs which values it takes and how its default reads.

class Kind:
    def parse(self, name: str, raw: str) -> Any:
        raise NotImplementedError

    def fallback(self, default: Any, values: dict[str, Any]) -> Any:
        return default

    def allowed(self) -> str:
        return ""

    def show(self, default: Any) -> str:
        if default is None or default == ():
            return "(none)"
        return f"`{default:g}`" if isinstance(default, float) else f"`{default}`"


@dataclasses.dataclass(frozen=True)
class Text(Kind):
    what: str = "text"

    def parse(self, name: str, raw: str) -> str:
        return raw

    def allowed(self) -> str:
        return self.what


@dataclasses.dataclass(frozen=True)
class Whole(Kind):
    low: int
    high: int | None = None

    def parse(self, name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
        if value < self.low or (self.high is not None and value > self.high):
            raise ConfigError(f"{name} must be {self._bounds(str)}, got {value}")
        return value

    def allowed(self) -> str:
        return f"whole number {self._bounds(self._amount)}"

    def _bounds(self, show) -> str:
        if self.high is None:
            return f"at least {show(self.low)}"
        return f"from {show(self.low)} to {show(self.high)}"

    def _amount(self, value: int) -> str:
        return str(value)


@dataclasses.dataclass(frozen=True)
class Bytes(Whole):
    """A whole number of bytes, shown in KiB, MiB or GiB where it is a whole one."""

    def show(self, default: Any) -> str:
        return self._amount(default)

    def allowed(self) -> str:
        return f"bytes, {self._bounds(self._amount)}"

    def _amount(self, value: int) -> str:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value >= size and value % size == 0:
                return f"{value // size} {unit}"
        return str(value)


@dataclasses.dataclass(frozen=True)
class Positive(Kind):
    """A number greater than 0 (seconds, a share)."""

    def parse(self, name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not value > 0:
            raise ConfigError(f"{name} must be greater than 0, got {raw!r}")
        return value

    def allowed(self) -> str:
        return "number above 0"


@dataclasses.dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]

    def parse(self, name: str, raw: str) -> str:
        for choice in self.choices:
            if raw.strip().lower() == choice.lower():
                return choice
        raise ConfigError(f"{name} must be one of {', '.join(self.choices)}, got {raw.strip()!r}")

    def allowed(self) -> str:
        return " \\| ".join(f"`{c}`" for c in self.choices)


@dataclasses.dataclass(frozen=True)
class Flag(Kind):
    def parse(self, name: str, raw: str) -> bool:
        word = raw.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be on or off (also true/false, yes/no, 1/0), got {raw!r}")

    def allowed(self) -> str:
        return "`on` \\| `off`"

    def show(self, default: Any) -> str:
        return "`on`" if default else "`off`"


@dataclasses.dataclass(frozen=True)
class Folder(Kind):
    """A path, made absolute against the directory the process starts in. With `under`,
    the default is that earlier setting's folder joined with `leaf`."""

    under: str | None = None
    leaf: str = ""

    def parse(self, name: str, raw: str) -> Path:
        if "\x00" in raw:
            raise ConfigError(f"{name} is not a usable path")
        return Path(raw).expanduser().absolute()

    def fallback(self, default: Any, values: dict[str, Any]) -> Path:
        return values[self.under] / self.leaf if self.under else Path(default).absolute()

    def allowed(self) -> str:
        return "path"

    def show(self, default: Any) -> str:
        return f"`{self.under.upper()}/{self.leaf}`" if self.under else f"`./{default}`"


@dataclasses.dataclass(frozen=True)
class DatabaseUrl(Kind):
    def parse(self, name: str, raw: str) -> str:
        if urlsplit(raw).scheme not in ("postgres", "postgresql"):
            raise ConfigError(f"{name} must be a postgresql:// URL")
        return raw

    def allowed(self) -> str:
        return "`postgresql://...` URL"


@dataclasses.dataclass(frozen=True)
class BaseUrl(Kind):
    """An http(s) URL that others are built on: kept without a trailing `/`."""

    def parse(self, name: str, raw: str) -> str:
        url = raw.strip().rstrip("/")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ConfigError(f"{name} must be a URL starting with http:// or https://")
        return url

    def allowed(self) -> str:
        return "`http(s)://...` URL"


class _List(Kind):
    """A comma-separated list; each item checked by `item`."""

    def parse(self, name: str, raw: str) -> tuple[str, ...]:
        return tuple(self.item(name, part.strip()) for part in raw.split(",") if part.strip())

    def item(self, name: str, item: str) -> str:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Addresses(_List):
    """IP addresses, as aiohttp reports a peer (request.remote)."""

    def item(self, name: str, item: str) -> str:
        try:
            return str(ipaddress.ip_address(item))
        except ValueError:
            raise ConfigError(f"{name} holds {item!r}, which is not an IP address") from None

    def allowed(self) -> str:
        return "IP addresses, comma-separated"


@dataclasses.dataclass(frozen=True)
class HostNames(_List):
    """Host names, lower case; `*` for any."""

    def item(self, name: str, item: str) -> str:
        item = item.lower()
        if item != "*" and not all(c.isalnum() or c in ".-_[]:" for c in item):
            raise ConfigError(f"{name} holds {item!r}, which is not a host name")
        return item

    def allowed(self) -> str:
        return "host names, comma-separated, or `*`"


@dataclasses.dataclass(frozen=True)
class Origins(_List):
    """Origins, each scheme://host[:port] with nothing after."""

    def item(self, name: str, item: str) -> str:
        item = item.rstrip("/")
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise ConfigError(f"{name} holds {item!r}; an origin is scheme://host[:port], "
                              "e.g. https://dash.example.com")
        return item

    def allowed(self) -> str:
        return "origins (`https://host[:port]`), comma-separated"


def markdown(fields: tuple[dataclasses.Field, ...]) -> str:
    """docs/configuration.md's tables: one per section, in the order the fields declare them."""
    sections: dict[Section, list[Setting]] = {}
    defaults: dict[str, Any] = {}
    for field in fields:
        declared: Setting = field.metadata[SETTING]
        sections.setdefault(declared.section, []).append(declared)
        defaults[declared.env] = field.default
    out = []
    for section, settings in sections.items():
        out += [f"### {section.title}", ""]
        if section.page:
            out += [f"More in [{section.page}]({section.page}).", ""]
        out += ["| variable | default | values | meaning |", "| --- | --- | --- | --- |"]
        for s in settings:
            out.append(f"| `{s.env}` | {s.kind.show(defaults[s.env])} | {s.kind.allowed()} | {s.doc} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
