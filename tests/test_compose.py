"""docker-compose.yml: it parses, passes Compose's own validation (``docker compose config``
or ``docker-compose config``, which need no engine), names only files that exist, and agrees
with the image and the command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.cli import build_parser
from proxy.config import OPTIONS
from tests.dockerfile import stages
from tests.needs import missing

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
PLANNED_VARIABLES = {"SMARTDOC_PROXY_ALLOW"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_validates_the_file_against_its_schema() -> None:
    command = compose_command()
    if command is None:
        missing("neither `docker compose` nor `docker-compose` is installed (.ci/run installs it)")
    for profile in ([], ["--profile", "demo"]):
        result = subprocess.run(
            [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *profile,
             "config", "--quiet"],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr


def test_every_file_it_names_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        context = ROOT / service["build"]
        assert (context / "Dockerfile").is_file(), name
        for env_file in service.get("env_file", []):
            assert (ROOT / env_file).is_file(), env_file
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), volume


def test_the_secret_file_lives_where_git_and_the_image_build_ignore_it(
    compose: dict[str, Any],
) -> None:
    (secret,) = compose["secrets"].values()
    path = ROOT / secret["file"]

    # The file itself is the operator's; its folder exists and keeps it out of git.
    ignore = (path.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore
    # .dockerignore is an allow-list ("*", then "!" exceptions): nothing lets the folder in.
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in dockerignore
    assert not any(line.startswith(f"!{path.parent.name}") for line in dockerignore)


def test_the_proxy_reads_the_compose_secret_as_its_secret_file(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    (secret,) = proxy["secrets"]

    assert secret in compose["secrets"]
    assert proxy["environment"]["SMARTDOC_CLIENT_SECRET_FILE"] == f"/run/secrets/{secret}"
    assert "profiles" not in proxy


def test_the_demo_profile_runs_the_demo_with_no_credentials(compose: dict[str, Any]) -> None:
    demo = compose["services"]["demo"]

    assert demo["profiles"] == ["demo"]
    args = build_parser().parse_args(demo["command"])
    assert args.command.__name__ == "run_demo"
    assert args.listen == "0.0.0.0:8080"
    assert "secrets" not in demo
    assert not any("SECRET" in key for key in demo.get("environment", {}))


def test_both_publish_on_loopback_only_with_a_read_only_root(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service["read_only"] is True, name
        assert all(port.startswith("127.0.0.1:") for port in service["ports"]), name


def test_its_variables_are_options_of_the_proxy(compose: dict[str, Any]) -> None:
    known = {option.env for option in OPTIONS} | PLANNED_VARIABLES
    for service in compose["services"].values():
        assert set(service.get("environment", {})) <= known


def test_its_default_user_is_the_image_s(compose: dict[str, Any]) -> None:
    image_user = stages(ROOT / "Dockerfile")[-1].last("USER")
    uid, gid = image_user.split(":")

    assert (
        compose["services"]["proxy"]["user"] == f"${{SMARTDOC_UID:-{uid}}}:${{SMARTDOC_GID:-{gid}}}"
    )
