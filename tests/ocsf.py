"""A validator for OCSF event records, driven by the compiled schema in the shared folder.

Why here and not a package: no PyPI package ships the OCSF schema data
(NOTES.md), and the test suite must check our alerts against the *real*
schema of the version they declare -- not against a list of our own keys.
`../shared/ocsf/ocsf-<version>.json` is class 2004 (Detection Finding) and
every object reachable from it, compiled from the official `ocsf/ocsf-schema`
release commits (its README says how).

What it checks, at every level of the record:

- attribute names: each key must be an attribute of the class or object,
  after the profile filter (an attribute that belongs to profiles is known
  only when one of them is declared in `metadata.profiles`) and the extension
  filter (platform-extension attributes only with that extension declared);
- requirements: `required` attributes present and not null; missing
  `recommended` ones are reported as warnings;
- types: dictionary types resolved to their base type (`timestamp_t` is a
  `long_t`, `ip_t` a `string_t` with a regex and a maximum length, `port_t` an
  `integer_t` in a range, ...), 32/64-bit integer ranges, floats that are
  floats, booleans that are not numbers, arrays where `is_array`, objects
  recursively, and no nulls (OCSF omits what it does not know);
- enums and their siblings (`severity_id` 4 comes with `severity` "High"; 99
  "Other" may carry any source value), deprecated attributes and values;
- constraints (`at_least_one`, `just_one`) of the class and every object;
- class facts: `category_uid`, `type_uid` = class_uid * 100 + activity_id,
  `metadata.version` = the schema version, declared profiles known to the
  schema and applicable to the class;
- observables: every `name` resolves to an attribute of the record (arrays
  are crossed implicitly, as OCSF names them: `evidences.src_endpoint.ip`),
  its `type_id` is the observable type the schema gives that attribute (by
  attribute, by dictionary type or by object), and a scalar observable's
  `value` is the value of one instance of that attribute.

Modelled on the OCSF server's event validator (ocsf/ocsf-server,
lib/schema/validator2.ex), stricter where that one only warns (enum
siblings, deprecation) or does not check yet (observable types and values).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from tests.shared_data import shared_path

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


@dataclass
class Report:
    """Errors make a record invalid; warnings are missing recommended attributes."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Schema:
    """One compiled OCSF version: class, objects, dictionary types, profiles, observables."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.version: str = data["version"]
        self.types: dict[str, dict[str, Any]] = data["types"]
        self.objects: dict[str, dict[str, Any]] = data["objects"]
        self.classes: dict[str, dict[str, Any]] = data["classes"]
        self.profiles: dict[str, Any] = data["profiles"]
        self.observable_types: dict[str, str] = data["observable_type_ids"]
        self.by_uid = {c["uid"]: c for c in self.classes.values()}

    @classmethod
    def from_file(cls, path: Path) -> Schema:
        return cls(orjson.loads(path.read_bytes()))

    # -- dictionary types -------------------------------------------------
    def type_chain(self, name: str) -> list[dict[str, Any]]:
        """The type and its ancestors (`ip_t` -> `string_t`), most specific first."""
        chain: list[dict[str, Any]] = []
        seen = set()
        while name and name not in seen:
            seen.add(name)
            spec = self.types.get(name)
            if spec is None:
                break
            chain.append({"name": name, **spec})
            name = spec.get("type", "")
        return chain

    def base_type(self, name: str) -> str:
        chain = self.type_chain(name)
        return chain[-1]["name"] if chain else name

    def type_observable(self, name: str) -> int | None:
        for spec in self.type_chain(name):
            if "observable" in spec:
                return int(spec["observable"])
        return None


@cache
def load_schema(version: str) -> Schema:
    """The compiled schema of `version` from the shared folder (fails in CI, skips elsewhere)."""
    return Schema.from_file(shared_path("ocsf", f"ocsf-{version}.json"))


class _Validation:
    def __init__(self, schema: Schema, record: dict[str, Any]) -> None:
        self.schema = schema
        self.record = record
        self.report = Report()
        meta = record.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        profiles = meta.get("profiles")
        self.profiles: set[str] = set(profiles) if isinstance(profiles, list) else set()
        exts = meta.get("extensions")
        self.extensions: set[str] = {
            e["name"] for e in exts if isinstance(e, dict) and isinstance(e.get("name"), str)
        } if isinstance(exts, list) else set()

    def error(self, path: str, message: str) -> None:
        self.report.errors.append(f"{path or '<record>'}: {message}")

    # -- profile and extension filter ---------------------------------------
    def known(self, spec: dict[str, Any]) -> bool:
        """Is an attribute part of the record's schema, given its profiles and extensions?"""
        profiles = spec.get("profiles")
        if profiles and not self.profiles.intersection(profiles):
            return False
        ext = spec.get("extension")
        return not (ext and ext not in self.extensions)

    def attributes(self, item: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {name: spec for name, spec in item.get("attributes", {}).items()
                if self.known(spec)}

    def constraints(self, item: dict[str, Any]) -> dict[str, list[str]]:
        ext = item.get("constraints_from_extension")
        if ext and ext not in self.extensions:
            return dict(item.get("constraints_without_extensions") or {})
        return dict(item.get("constraints") or {})

    # -- walking ------------------------------------------------------------
    def validate(self) -> Report:
        record, schema = self.record, self.schema
        uid = record.get("class_uid")
        cls = schema.by_uid.get(uid) if isinstance(uid, int) else None
        if cls is None:
            self.error("class_uid", f"no class {uid!r} in OCSF {schema.version}")
            return self.report
        self.check_profiles(cls)
        self.check_item(record, cls, "")
        self.check_class_facts(record, cls)
        self.check_observables(record, cls)
        return self.report

    def check_profiles(self, cls: dict[str, Any]) -> None:
        meta = self.record.get("metadata")
        declared = meta.get("profiles") if isinstance(meta, dict) else None
        if declared is None:
            return
        for profile in declared if isinstance(declared, list) else ():
            if profile not in self.schema.profiles:
                self.error("metadata.profiles", f"unknown profile {profile!r}")
            elif profile not in cls.get("profiles", ()):
                self.error("metadata.profiles",
                           f"profile {profile!r} does not apply to class {cls['caption']}")

    def check_item(self, value: dict[str, Any], item: dict[str, Any], path: str) -> None:
        attrs = self.attributes(item)
        if not item.get("attributes"):
            return  # the open "object" type (unmapped): anything goes
        for key, sub in value.items():
            where = f"{path}.{key}" if path else key
            spec = attrs.get(key)
            if spec is None:
                raw = item["attributes"].get(key)
                why = "not an attribute" if raw is None else (
                    f"needs profile {raw.get('profiles')} declared" if raw.get("profiles")
                    else f"needs extension {raw.get('extension')!r} declared")
                self.error(where, f"unknown attribute ({why} of "
                                  f"{item.get('caption', 'object')} in OCSF "
                                  f"{self.schema.version})")
                continue
            self.check_attribute(sub, spec, where, value)
        for key, spec in attrs.items():
            if value.get(key) is None and key not in value:
                req = spec.get("requirement")
                where = f"{path}.{key}" if path else key
                if req == "required":
                    self.error(where, "required attribute missing")
                elif req == "recommended":
                    self.report.warnings.append(where)
        for kind, names in self.constraints(item).items():
            present = [n for n in names if value.get(n) is not None]
            if kind == "at_least_one" and not present:
                self.error(path, f"constraint at_least_one of {names} not met")
            elif kind == "just_one" and len(present) != 1:
                self.error(path, f"constraint just_one of {names} not met ({present})")
            elif kind not in ("at_least_one", "just_one"):
                self.error(path, f"unknown constraint {kind!r}")

    def check_attribute(self, value: Any, spec: dict[str, Any], path: str,
                        parent: dict[str, Any]) -> None:
        if value is None:
            self.error(path, "null value (omit unknown attributes instead)")
            return
        if spec.get("deprecated"):
            self.error(path, f"deprecated attribute: {spec['deprecated']}")
        if spec.get("is_array"):
            if not isinstance(value, list):
                self.error(path, f"expected an array of {spec['type']}")
                return
            for i, element in enumerate(value):
                self.check_value(element, spec, f"{path}[{i}]")
        else:
            self.check_value(value, spec, path)
        if "enum" in spec:
            self.check_enum(value, spec, path, parent)

    def check_value(self, value: Any, spec: dict[str, Any], path: str) -> None:
        if value is None:
            self.error(path, "null value")
            return
        kind = spec["type"]
        if kind == "object_t":
            obj = self.schema.objects.get(spec["object_type"])
            if obj is None:
                self.error(path, f"object type {spec['object_type']!r} not in the schema")
            elif not isinstance(value, dict):
                self.error(path, f"expected an object ({spec['object_type']})")
            else:
                if obj.get("extension") and obj["extension"] not in self.extensions:
                    self.error(path, f"object {spec['object_type']} needs extension "
                                     f"{obj['extension']!r}")
                self.check_item(value, obj, path)
            return
        self.check_scalar(value, kind, path)

    def check_scalar(self, value: Any, kind: str, path: str) -> None:
        chain = self.schema.type_chain(kind)
        if not chain:
            self.error(path, f"type {kind!r} not in the schema dictionary")
            return
        base = chain[-1]["name"]
        ok = {
            "string_t": isinstance(value, str),
            "boolean_t": isinstance(value, bool),
            "integer_t": isinstance(value, int) and not isinstance(value, bool)
            and INT32[0] <= value <= INT32[1],
            "long_t": isinstance(value, int) and not isinstance(value, bool)
            and INT64[0] <= value <= INT64[1],
            "float_t": isinstance(value, float),
            "json_t": True,
        }.get(base)
        if ok is None:
            self.error(path, f"unhandled base type {base!r}")
            return
        if not ok:
            self.error(path, f"{value!r} is not a {kind}" + (f" ({base})" if base != kind else ""))
            return
        for spec in chain:
            if "max_len" in spec and isinstance(value, str) and len(value) > spec["max_len"]:
                self.error(path, f"longer than {spec['max_len']} ({spec['name']})")
            if "regex" in spec and isinstance(value, str) and not re.search(spec["regex"], value):
                self.error(path, f"{value!r} does not match {spec['name']}'s pattern")
            if "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
                self.error(path, f"{value!r} outside {spec['range']} ({spec['name']})")
            if "values" in spec and value not in spec["values"]:
                self.error(path, f"{value!r} not one of {spec['values']} ({spec['name']})")

    def check_enum(self, value: Any, spec: dict[str, Any], path: str,
                   parent: dict[str, Any]) -> None:
        enum: dict[str, str] = spec["enum"]
        deprecated: dict[str, str] = spec.get("enum_deprecated", {})
        values = value if isinstance(value, list) else [value]
        sibling = spec.get("sibling")
        for i, v in enumerate(values):
            key = str(v)
            if key not in enum:
                self.error(path, f"{v!r} is not a value of this enum ({sorted(enum)})")
                continue
            if key in deprecated:
                self.error(path, f"deprecated enum value {v!r}: {deprecated[key]}")
            if sibling and sibling in parent and key != "99":
                sib = parent[sibling]
                sib = sib[i] if isinstance(value, list) and isinstance(sib, list) \
                    and i < len(sib) else sib
                if sib != enum[key]:
                    self.error(f"{path.rsplit('.', 1)[0]}.{sibling}" if "." in path else sibling,
                               f"{sib!r} is not the caption {enum[key]!r} of {v!r}")

    def check_class_facts(self, record: dict[str, Any], cls: dict[str, Any]) -> None:
        if record.get("category_uid") != cls.get("category_uid"):
            self.error("category_uid", f"class {cls['uid']} is in category "
                                       f"{cls.get('category_uid')}")
        activity = record.get("activity_id")
        if isinstance(activity, int) and record.get("type_uid") != cls["uid"] * 100 + activity:
            self.error("type_uid", f"expected {cls['uid'] * 100 + activity}")
        meta = record.get("metadata")
        if isinstance(meta, dict) and meta.get("version") != self.schema.version:
            self.error("metadata.version", f"{meta.get('version')!r} is not the schema version "
                                           f"{self.schema.version}")

    # -- observables ----------------------------------------------------------
    def resolve(self, cls: dict[str, Any], name: str) -> dict[str, Any] | None:
        """The attribute spec an observable name points to (None if it points nowhere)."""
        item: dict[str, Any] | None = cls
        spec: dict[str, Any] | None = None
        for part in name.split("."):
            if item is None:
                return None
            spec = self.attributes(item).get(part)
            if spec is None:
                return None
            item = self.schema.objects.get(spec["object_type"]) \
                if spec["type"] == "object_t" else None
        return spec

    def observable_type(self, spec: dict[str, Any]) -> int | None:
        if "observable" in spec:
            return int(spec["observable"])
        if spec["type"] == "object_t":
            obj = self.schema.objects.get(spec["object_type"], {})
            return int(obj["observable"]) if "observable" in obj else None
        return self.schema.type_observable(spec["type"])

    def check_observables(self, record: dict[str, Any], cls: dict[str, Any]) -> None:
        observables = record.get("observables")
        if not isinstance(observables, list):
            return
        for i, obs in enumerate(observables):
            where = f"observables[{i}]"
            if not isinstance(obs, dict) or not isinstance(obs.get("name"), str):
                continue  # shape errors were reported by the attribute walk
            name = obs["name"]
            spec = self.resolve(cls, name)
            if spec is None:
                self.error(where, f"name {name!r} does not refer to an attribute of the class")
                continue
            expected = self.observable_type(spec)
            if expected is None:
                if obs.get("type_id") != 99:
                    self.error(where, f"{name!r} has no observable type in OCSF "
                                      f"{self.schema.version}: type_id must be 99 (Other)")
            elif obs.get("type_id") != expected:
                caption = self.schema.observable_types.get(str(expected))
                self.error(where, f"type_id {obs.get('type_id')!r} for {name!r}; the schema "
                                  f"says {expected} ({caption})")
            if spec["type"] != "object_t" and "value" in obs:
                found = list(values_at(record, name.split(".")))
                if obs["value"] not in [str(v) if not isinstance(v, str) else v for v in found]:
                    self.error(where, f"value {obs['value']!r} is not the value of any {name!r} "
                                      f"in the record ({found})")
            elif spec["type"] == "object_t" and "value" in obs:
                self.error(where, f"{name!r} is an object: an observable of it has no value")


def values_at(value: Any, parts: list[str]) -> Iterator[Any]:
    """Every value at a dotted path, crossing arrays implicitly."""
    if isinstance(value, list):
        for element in value:
            yield from values_at(element, parts)
        return
    if not parts:
        yield value
        return
    if isinstance(value, dict) and parts[0] in value:
        yield from values_at(value[parts[0]], parts[1:])


def validate(record: dict[str, Any], schema: Schema | None = None) -> Report:
    """Validate one record against `schema` (default: the version it declares)."""
    if schema is None:
        meta = record.get("metadata")
        version = meta.get("version") if isinstance(meta, dict) else None
        if not isinstance(version, str):
            return Report(errors=["metadata.version: missing, cannot pick a schema"])
        schema = load_schema(version)
    return _Validation(schema, record).validate()
