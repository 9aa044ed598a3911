"""Offline validation of the Kubernetes manifests under deploy/: Istio custom resources against
the CRDs of istio/api 1.30.0 (tests/data/istio/, openAPIV3Schema + their CEL rules) and core
objects against the published Kubernetes JSON schemas of the pinned `kubernetes-validate`.

Both are strict, like `kubectl apply --validate=strict` (server-side field validation): a field
the schema does not define is an error, not silently pruned. That is what catches a typo.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import celpy
import jsonschema
import kubernetes_validate
import yaml
from celpy import celtypes

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "tests/data/istio"
#: The Kubernetes version whose core schemas the core objects are checked against.
KUBERNETES_VERSION = "1.33.0"


class Invalid(Exception):
    """A manifest that the API server would refuse; the message names the object and field."""


def load_documents(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc]


@lru_cache(maxsize=None)
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema, for every CRD version in tests/data/istio/."""
    out = {}
    for path in sorted(CRD_DIR.glob("*-crd.yaml")):
        for crd in load_documents(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


# --- structural schema -> JSON Schema ---------------------------------------------------------

def closed(schema: dict) -> dict:
    """The CRD schema as a JSON Schema that refuses unknown fields: every object with
    `properties` (and no `x-kubernetes-preserve-unknown-fields`) gets
    `additionalProperties: false`; `nullable` admits null. CEL rules are left in place
    (jsonschema ignores unknown keywords) and checked by `check_cel`."""
    s = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if node.get("nullable") and "type" in node:
            node["type"] = [node["type"], "null"]
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    walk(sub)
            elif key != "x-kubernetes-validations":
                walk(value)

    walk(s)
    # apiVersion, kind and metadata are the API server's; metadata is checked for its shape
    # by the core schemas (ObjectMeta) in `check_metadata`.
    s.setdefault("properties", {}).update(
        apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"})
    return s


# --- CEL rules (x-kubernetes-validations) -----------------------------------------------------

def _is_url(value: celtypes.Value) -> celtypes.BoolType:
    text = str(value)
    try:
        parts = urlsplit(text)
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(bool(parts.scheme) and text.startswith(parts.scheme + ":"))


class _Url(celtypes.StringType):
    """The value of Kubernetes' `url()` (its CEL URL library), carried as its text."""


def _url(value: celtypes.Value) -> _Url:
    if not _is_url(value):
        raise ValueError(f"url(): not a URL: {value}")
    return _Url(str(value))


#: Kubernetes' CEL extensions these CRDs use (URL and strings libraries); the rest of their
#: rules (has, size, all, exists_one, matches, int, duration, ...) are standard CEL.
K8S_CEL_FUNCTIONS = {
    "isURL": _is_url,
    "url": _url,
    "getScheme": lambda u: celtypes.StringType(urlsplit(str(u)).scheme),
    "getHost": lambda u: celtypes.StringType(urlsplit(str(u)).netloc),
    "substring": lambda s, start, end: celtypes.StringType(str(s)[int(start):int(end)]),
}


@lru_cache(maxsize=None)
def program(rule: str) -> celpy.Runner:
    """The compiled rule, with the Kubernetes extensions; cached (rules repeat)."""
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=K8S_CEL_FUNCTIONS)


def cel_rules_of(schema: dict, value: object, path: str = ""):
    """Yields (path, rule, message, value) for every CEL rule whose schema node has a value in
    `value`, walking the schema and the object together (properties, items, map values)."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule["rule"], rule.get("message", rule["rule"]), value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                yield from cel_rules_of(props[key], sub, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from cel_rules_of(schema["additionalProperties"], sub, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from cel_rules_of(schema["items"], item, f"{path}[{i}]")


def check_cel(schema: dict, obj: dict, where: str) -> int:
    """Evaluates every applicable rule (transition rules with `oldSelf` do not apply to a
    create); returns how many ran. A false rule or an error in evaluating one is Invalid."""
    ran = 0
    for path, rule, message, value in cel_rules_of(schema, obj):
        if "oldSelf" in rule:
            continue
        try:
            result = program(rule).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as err:  # cel-python raises several types; any is a failure here
            raise Invalid(f"{where}{path}: CEL rule {rule!r} could not run: {err}") from err
        if not isinstance(result, celtypes.BoolType) or not bool(result):
            raise Invalid(f"{where}{path}: {message}")
        ran += 1
    return ran


# --- entry points -----------------------------------------------------------------------------

def check_metadata(obj: dict, where: str) -> None:
    """metadata against ObjectMeta (via a ConfigMap wrapper, the smallest core object)."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    try:
        kubernetes_validate.validate(probe, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise Invalid(f"{where}: metadata: {err.message}") from err
    if not obj.get("metadata", {}).get("name"):
        raise Invalid(f"{where}: metadata.name is required")


def validate(obj: dict, where: str = "") -> str:
    """Validates one object; returns what it was checked against. Raises Invalid."""
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    where = f"{where}{kind}/{obj.get('metadata', {}).get('name', '?')}"
    schema = crd_schemas().get((api, kind))
    if schema is None:
        if "istio.io" in api:
            raise Invalid(f"{where}: no CRD schema for {api} {kind} in {CRD_DIR}")
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError,
                kubernetes_validate.SchemaNotFoundError) as err:
            raise Invalid(f"{where}: {getattr(err, 'message', err)}") from err
        return f"kubernetes {KUBERNETES_VERSION} schema"
    errors = sorted(jsonschema.Draft7Validator(closed(schema)).iter_errors(obj),
                    key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.absolute_path)
        raise Invalid(f"{where}: {field}: {first.message}")
    check_metadata(obj, where)
    ran = check_cel(schema, obj, where)
    return f"CRD {api} {kind} ({ran} CEL rules)"
