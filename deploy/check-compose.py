#!/usr/bin/env python3
"""Static checks of docker-compose.yml, without a Docker engine.

Usage: python3 deploy/check-compose.py [path/to/docker-compose.yml]

Parses the compose file with PyYAML (YAML anchors and `<<` merges resolve as compose
resolves them) and checks that:

- every service sets `image` or `build`, and every build context and Dockerfile exists;
- every `depends_on` target is a service;
- every bind-mounted file or directory exists, and every named volume is declared;
- every `${VAR:?...}` required variable, and every other interpolated variable, is
  documented in deploy/README.md;
- the gateway and every service get PORTICO_INTERNAL_TOKEN;
- the gateway gets PORTICO_KEY_ENCRYPTION_KEY, no longer-removed settings
  (PORTICO_ADMIN_EMAILS, PORTICO_TRUST_FORWARDED), and does not publish its operators'
  listener (PORTICO_ADMIN_ADDR);
- no two published host ports collide.

Exits 1 with one line per problem, 0 when everything holds.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:
    sys.exit(
        "check-compose: PyYAML is required (python3 -c 'import yaml' fails).\n"
        "Install it with `pip install pyyaml` or your package manager (python3-yaml)."
    )

# ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?msg}, ${VAR?msg}, ${VAR:+x}; `$${` is an escaped `$`.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?")

# Services that must carry the internal token.
TOKEN_SERVICES = ("gateway", "beta", "media", "workflow", "billing", "monitoring")
TOKEN_VAR = "PORTICO_INTERNAL_TOKEN"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    compose_path = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else root / "docker-compose.yml"
    base = compose_path.parent
    readme_path = base / "deploy" / "README.md"

    if not compose_path.is_file():
        print(f"check-compose: {compose_path} not found")
        return 1
    text = compose_path.read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        print(f"check-compose: {compose_path.name} is not valid YAML: {e}")
        return 1
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        print(f"check-compose: {compose_path.name} has no `services` mapping")
        return 1

    services: dict = doc["services"]
    declared_volumes = set((doc.get("volumes") or {}).keys())
    errors: list[str] = []

    for name, svc in services.items():
        if not isinstance(svc, dict):
            errors.append(f"service {name}: not a mapping")
            continue
        check_image_or_build(name, svc, base, errors)
        check_depends_on(name, svc, services, errors)
        check_volumes(name, svc, base, declared_volumes, errors)

    check_variables_documented(text, readme_path, errors)
    check_internal_token(services, errors)
    check_gateway(services, errors)
    check_port_collisions(services, errors)

    if errors:
        print(f"check-compose: {len(errors)} problem(s) in {compose_path.name}:")
        for e in errors:
            print(f"  - {e}")
        return 1
    ports = sum(len(published_ports(s)) for s in services.values() if isinstance(s, dict))
    print(
        f"check-compose: OK: {len(services)} services, {len(declared_volumes)} named volumes, "
        f"{ports} published ports, variables documented in {readme_path.relative_to(base)}"
    )
    return 0


def check_image_or_build(name: str, svc: dict, base: Path, errors: list[str]) -> None:
    build = svc.get("build")
    if not svc.get("image") and not build:
        errors.append(f"service {name}: neither `image` nor `build` is set")
    if build:
        context = build if isinstance(build, str) else build.get("context", ".")
        context_dir = (base / context).resolve()
        if not context_dir.is_dir():
            errors.append(f"service {name}: build context {context} does not exist")
            return
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if not (context_dir / dockerfile).is_file():
            errors.append(f"service {name}: {dockerfile} not found in build context {context}")


def check_depends_on(name: str, svc: dict, services: dict, errors: list[str]) -> None:
    deps = svc.get("depends_on") or []
    # Short form is a list of names; long form maps names to {condition: ...}.
    targets = list(deps.keys()) if isinstance(deps, dict) else list(deps)
    for target in targets:
        if target not in services:
            errors.append(f"service {name}: depends_on `{target}`, which is not a service")
        elif target == name:
            errors.append(f"service {name}: depends on itself")


def check_volumes(name: str, svc: dict, base: Path, declared: set, errors: list[str]) -> None:
    for entry in svc.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            source = parts[0] if len(parts) > 1 else None  # "/path" alone is an anonymous volume
            kind = "bind" if source and (source.startswith((".", "/", "~"))) else "volume"
        elif isinstance(entry, dict):
            source = entry.get("source")
            kind = entry.get("type", "volume")
        else:
            errors.append(f"service {name}: unreadable volume entry {entry!r}")
            continue
        if not source:
            continue
        if kind == "bind":
            if INTERPOLATION.search(source):
                continue  # depends on the environment; cannot be checked statically
            path = Path(source).expanduser()
            path = path if path.is_absolute() else (base / path)
            if not path.exists():
                errors.append(f"service {name}: bind mount source {source} does not exist")
        elif kind == "volume" and source not in declared:
            errors.append(f"service {name}: named volume `{source}` is not declared under top-level `volumes`")


def check_variables_documented(text: str, readme_path: Path, errors: list[str]) -> None:
    # Comments are not interpolated by compose; ignore them.
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    required: set[str] = set()
    optional: set[str] = set()
    for match in INTERPOLATION.finditer(body):
        var, op = match.group(1), match.group(2) or ""
        (required if "?" in op else optional).add(var)
    if not readme_path.is_file():
        errors.append(f"{readme_path} not found: cannot check that variables are documented")
        return
    readme = readme_path.read_text(encoding="utf-8")
    for var in sorted(required):
        if not re.search(rf"\b{re.escape(var)}\b", readme):
            errors.append(f"required variable {var} (${{{var}:?...}}) is not documented in {readme_path.name}")
    for var in sorted(optional - required):
        if not re.search(rf"\b{re.escape(var)}\b", readme):
            errors.append(f"variable {var} is interpolated but not documented in {readme_path.name}")


def environment_of(svc: dict) -> dict[str, str | None]:
    env = svc.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): (None if v is None else str(v)) for k, v in env.items()}
    result: dict[str, str | None] = {}
    for item in env:
        key, sep, value = str(item).partition("=")
        result[key] = value if sep else None  # `KEY` alone passes the host's value through
    return result


def check_internal_token(services: dict, errors: list[str]) -> None:
    for name in TOKEN_SERVICES:
        svc = services.get(name)
        if not isinstance(svc, dict):
            errors.append(f"service {name} is missing")
            continue
        env = environment_of(svc)
        if TOKEN_VAR not in env:
            if svc.get("env_file"):
                errors.append(f"service {name}: {TOKEN_VAR} is not in `environment` (env_file is not checked)")
            else:
                errors.append(f"service {name}: {TOKEN_VAR} is not set")
        elif env[TOKEN_VAR] is not None and not env[TOKEN_VAR].strip():
            errors.append(f"service {name}: {TOKEN_VAR} is empty")


def check_gateway(services: dict, errors: list[str]) -> None:
    svc = services.get("gateway")
    if not isinstance(svc, dict):
        return
    env = environment_of(svc)
    if "PORTICO_KEY_ENCRYPTION_KEY" not in env:
        errors.append("service gateway: PORTICO_KEY_ENCRYPTION_KEY is not set (production refuses to start)")
    for removed in ("PORTICO_ADMIN_EMAILS", "PORTICO_TRUST_FORWARDED"):
        if removed in env:
            errors.append(f"service gateway: {removed} is no longer read and stops the gateway at start")
    admin = env.get("PORTICO_ADMIN_ADDR") or "127.0.0.1:9090"
    admin_port = admin.rpartition(":")[2]
    for entry in svc.get("ports") or []:
        target = str(entry.get("target")) if isinstance(entry, dict) else str(entry).partition("/")[0].rpartition(":")[2]
        if target == admin_port:
            errors.append(f"service gateway: publishes its operators' listener (port {admin_port}); keep it internal")


def published_ports(svc: dict) -> list[tuple[str, int, str]]:
    """(host_ip, host_port, protocol) for every port published on the host."""
    result = []
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            if published is None:
                continue
            host_ip = str(entry.get("host_ip") or "0.0.0.0")
            protocol = str(entry.get("protocol") or "tcp")
            result.extend((host_ip, p, protocol) for p in port_range(str(published)))
            continue
        spec, _, protocol = str(entry).partition("/")
        protocol = protocol or "tcp"
        # [host_ip:]host_port:container_port, or container_port alone (ephemeral host port).
        # Brackets around IPv6 host addresses are kept intact.
        m = re.fullmatch(r"(?:(\[[^\]]+\]|[^:]+):)?([^:]+):([^:]+)", spec)
        if not m:
            continue
        host_ip, host = m.group(1) or "0.0.0.0", m.group(2)
        result.extend((host_ip, p, protocol) for p in port_range(host))
    return result


def port_range(spec: str) -> list[int]:
    low, _, high = spec.partition("-")
    try:
        start, end = int(low), int(high or low)
    except ValueError:
        return []  # interpolated or malformed; not checkable
    return list(range(start, end + 1))


def check_port_collisions(services: dict, errors: list[str]) -> None:
    wildcard = {"0.0.0.0", "::", "[::]"}
    seen: list[tuple[str, int, str, str]] = []
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        for host_ip, port, protocol in published_ports(svc):
            for other_ip, other_port, other_protocol, other in seen:
                overlap = host_ip == other_ip or host_ip in wildcard or other_ip in wildcard
                if port == other_port and protocol == other_protocol and overlap:
                    errors.append(
                        f"host port {port}/{protocol} is published by both {other} ({other_ip}) "
                        f"and {name} ({host_ip})"
                    )
            seen.append((host_ip, port, protocol, name))


if __name__ == "__main__":
    sys.exit(main())
