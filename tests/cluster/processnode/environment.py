"""A container's environment as the kubelet builds it (`makeEnvironmentVariables`).

Order: the `kubernetes` service variables, then `envFrom`, then `env` (later wins), with
`$(VAR)` references expanded against what came before. The service variables point at the local
apiserver itself rather than a ClusterIP, since no kube-proxy routes one (KUBELET.md section 7).
Secrets and ConfigMaps are read with the node's own identity, so the Node authorizer allows only
those the pod references, as for a kubelet.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .rest import ApiClient, ApiError, path_of


class ConfigError(RuntimeError):
    """A reference that cannot be resolved yet: reported as CreateContainerConfigError."""


@dataclass(frozen=True)
class ServiceEndpoint:
    host: str
    port: int


def service_env(endpoint: ServiceEndpoint) -> dict[str, str]:
    """The variables of the `default/kubernetes` Service, which every container gets."""
    host, port = endpoint.host, str(endpoint.port)
    # Named after the real port, as they would be for a Service on that port.
    prefix = f"KUBERNETES_PORT_{port}_TCP"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        prefix: f"tcp://{host}:{port}",
        f"{prefix}_PROTO": "tcp",
        f"{prefix}_PORT": port,
        f"{prefix}_ADDR": host,
    }


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` is a `$`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Mapping[str, Any], field_path: str, host_ip: str) -> str:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    match = _SUBSCRIPT.match(field_path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        # The process shares the host's network: its IP is the node's, as for hostNetwork pods.
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": host_ip,
        "status.podIPs": host_ip,
    }
    if field_path not in simple:
        raise ConfigError(f'unsupported fieldPath "{field_path}"')
    return str(simple[field_path] or "")


_SUFFIXES: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|([a-zA-Z]*))$")


def parse_quantity(text: str | int | float) -> Fraction:
    match = _QUANTITY.match(str(text).strip())
    if not match or (match.group(3) or "") not in _SUFFIXES:
        raise ConfigError(f"invalid quantity {text!r}")
    number = Fraction(match.group(1))
    if match.group(2):
        return number * Fraction(10) ** int(match.group(2))
    return number * _SUFFIXES[match.group(3) or ""]


def resource_value(
    container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str]
) -> str:
    """`resourceFieldRef`: a limit falls back to the node's allocatable, rounded up."""
    kind, _, resource = str(ref["resource"]).partition(".")
    resources = container.get("resources", {})
    value = resources.get(kind, {}).get(resource)
    if value is None:
        value = allocatable.get(resource, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        raise ConfigError(f"divisor of {ref['resource']} is zero")
    return str(math.ceil(parse_quantity(value) / divisor))


class _Lookups:
    """Reads each Secret/ConfigMap once per container start."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, str] | None] = {}

    def data(self, kind: str, name: str) -> dict[str, str] | None:
        key = (kind, name)
        if key not in self._cache:
            resource = "secrets" if kind == "Secret" else "configmaps"
            try:
                obj = self.api.get(
                    path_of("api", "v1", "namespaces", self.namespace, resource, name)
                )
            except ApiError as err:
                if not err.not_found:
                    raise ConfigError(str(err)) from err
                self._cache[key] = None
            else:
                if kind == "Secret":
                    raw = obj.get("data") or {}
                    self._cache[key] = {
                        k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()
                    }
                else:
                    self._cache[key] = {**(obj.get("binaryData") or {}), **(obj.get("data") or {})}
        return self._cache[key]

    def missing(self, kind: str, name: str) -> ConfigError:
        return ConfigError(f'{kind.lower()} "{name}" not found')

    def value(self, kind: str, ref: Mapping[str, Any]) -> str | None:
        name, key, optional = ref.get("name", ""), ref["key"], bool(ref.get("optional"))
        data = self.data(kind, name)
        if data is None:
            if optional:
                return None
            raise self.missing(kind, name)
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key]


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    api: ApiClient,
    endpoint: ServiceEndpoint,
    host_ip: str,
    allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The variables the pod spec gives this container; raises ConfigError when unresolvable."""
    namespace = pod["metadata"]["namespace"]
    lookups = _Lookups(api, namespace)
    services = service_env(endpoint)
    env: dict[str, str] = dict(services)
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field not in source:
                continue
            ref = source[field]
            data = lookups.data(kind, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise lookups.missing(kind, ref.get("name", ""))
            env.update({f"{prefix}{k}": v for k, v in data.items()})
    for var in container.get("env", []):
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], host_ip)
        elif "resourceFieldRef" in source:
            value = resource_value(container, source["resourceFieldRef"], allocatable)
        elif "secretKeyRef" in source:
            value = lookups.value("Secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = lookups.value("ConfigMap", source["configMapKeyRef"])
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env
