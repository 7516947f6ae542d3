"""The deploy files agree with each other and with the code: Procfile, Dockerfile, compose file,
the supervisord configuration of `make run`.

Docker does not run here, so these read the files. The compose file runs each Procfile process
with the Procfile's own text as its command (Compose fills in `${NAME:-default}` from the
environment `docker compose` runs in, as sh does under `make run`), so commands compare equal
without any rewriting.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import yaml

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "scheduler")
APP_ROLE_SQL = ROOT / "deploy" / "postgres" / "10-app-role.sql"
SUPERVISOR = ROOT / "deploy" / "supervisor"
BACKENDS = ("postgres", "redis", "mailpit")
IMAGE = "practice-platform:latest"

# `${NAME}`, `${NAME:-default}`, `${NAME:?message}`, `$NAME`; `$$` is Compose's escaped dollar.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


def read_procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        assert sep, f"Procfile line without a process name: {line!r}"
        assert name.strip() not in processes, f"Procfile names {name!r} twice"
        processes[name.strip()] = command.strip()
    return processes


class _RecordingEnvironment(dict[str, str]):
    """An environment that notes every variable asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)


def config_variables() -> set[str]:
    """The variables Settings reads, by asking it to read a complete production environment
    (production asks for the most) and noting what it looked up."""
    environment = _RecordingEnvironment({
        "APP_ENV": "production", "DATABASE_URL": "postgresql://app@db/platform",
        "REDIS_URL": "redis://cache:6379/0", "SECRET_KEY": "k" * 48,
        "MFA_ENCRYPTION_KEY": "bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0=",
        "WEBHOOK_URL": "https://receiver.example/hooks", "WEBHOOK_SECRET": "s" * 20,
    })
    Settings.from_env(environment)
    return environment.asked


def interpolated_names(value: object) -> set[str]:
    """Variables Compose interpolates anywhere in a parsed value (it interpolates values only)."""
    if isinstance(value, str):
        return {braced or bare for braced, bare in INTERPOLATION.findall(value)}
    if isinstance(value, dict):
        return set().union(*(interpolated_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(interpolated_names(v) for v in value))
    return set()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with backslash continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    return read_procfile()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def app_env(compose: dict) -> dict:
    return compose["x-app-env"]


# -- Procfile ------------------------------------------------------------------------------------

def test_procfile_has_the_contract_processes(procfile: dict[str, str]) -> None:
    assert set(procfile) == {"web", "worker", "scheduler", "release"}
    assert procfile["web"] == "gunicorn wsgi:app"
    assert procfile["scheduler"] == "python -m scheduler"
    worker = shlex.split(procfile["worker"])
    assert worker[:2] == ["dramatiq", "workers.boot"]


def test_procfile_variables_mean_the_same_to_compose_as_to_a_shell(
    procfile: dict[str, str],
) -> None:
    # Compose interpolation and sh agree on `${NAME:-default}`; other `$` forms could diverge
    # (Compose has no `$(...)`, `${#NAME}` ...), and would need the comparison below rethought.
    for name, command in procfile.items():
        leftover = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-[^}$]*\}", "", command)
        assert "$" not in leftover, f"Procfile {name}: unsupported `$` form in {command!r}"


# -- make run: supervisord ----------------------------------------------------------------------

def supervised_programs(config: str) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()  # supervisord expands %(...)s itself
    assert parser.read(SUPERVISOR / config)
    return {section.removeprefix("program:"): dict(parser[section])
            for section in parser.sections() if section.startswith("program:")}


def test_make_run_supervises_the_procfile_processes_with_their_procfile_commands(
    procfile: dict[str, str],
) -> None:
    programs = supervised_programs("procfile.conf")
    assert set(programs) == set(APP_SERVICES)
    for name, program in programs.items():
        # sh expands `${NAME:-default}` as honcho's did; exec leaves no shell between.
        assert shlex.split(program["command"]) == ["/bin/sh", "-c", f"exec {procfile[name]}"]
    [program] = supervised_programs("embedded.conf").values()
    assert program["command"] == "python -m assembly"


def test_supervised_programs_restart_and_leave_no_child_behind() -> None:
    for config in ("procfile.conf", "embedded.conf"):
        for name, program in supervised_programs(config).items():
            assert program["autorestart"] == "true", name
            assert program["killasgroup"] == "true", name
            # A second SIGTERM makes a dramatiq worker process quit at once: only the main
            # process gets the stop signal, and stops its children itself.
            assert program["stopasgroup"] == "false", name


# -- compose: processes --------------------------------------------------------------------------

def test_every_procfile_process_runs_as_a_compose_service_with_the_same_command(
    procfile: dict[str, str], services: dict,
) -> None:
    for name, command in procfile.items():
        if name == "release":
            continue
        assert name in services, f"Procfile process {name!r} has no compose service"
        assert services[name]["command"] == command


def test_migrate_runs_the_release_command_once_and_the_app_waits_for_it(
    procfile: dict[str, str], services: dict,
) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == procfile["release"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_app_services_are_built_from_the_one_dockerfile(services: dict) -> None:
    for name in (*APP_SERVICES, "migrate"):
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == IMAGE, name


def test_long_running_services_restart(services: dict) -> None:
    for name in (*APP_SERVICES, *BACKENDS):
        assert services[name]["restart"] == "unless-stopped", name


# -- compose: backends ---------------------------------------------------------------------------

def test_backends_have_healthchecks_and_the_app_waits_until_they_are_healthy(
    services: dict,
) -> None:
    probes = {"postgres": "pg_isready", "redis": "redis-cli ping", "mailpit": "readyz"}
    for name, probe in probes.items():
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert probe in " ".join(test[1:]), name
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    assert services["redis"]["image"].split(":")[0] == "redis"
    for app in APP_SERVICES:
        for backend in BACKENDS:
            condition = services[app]["depends_on"][backend]["condition"]
            assert condition == "service_healthy", (app, backend)


def test_postgres_keeps_its_data_in_a_named_volume(compose: dict, services: dict) -> None:
    mounts = services["postgres"]["volumes"]
    named = [m.split(":")[0] for m in mounts if m.endswith(":/var/lib/postgresql/data")]
    assert named and named[0] in compose["volumes"]


# -- compose: environment ------------------------------------------------------------------------

def test_app_services_share_one_environment(compose: dict, services: dict) -> None:
    # The same YAML anchor: PyYAML hands every alias the one object.
    for name in (*APP_SERVICES, "migrate"):
        assert services[name]["environment"] is compose["x-app-env"], name


def test_environment_points_at_the_compose_backends(app_env: dict, services: dict) -> None:
    assert app_env["APP_ENV"] == "production"

    database = urlsplit(app_env["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgresql"
    assert (database.hostname, database.port) == ("postgres", 5432)
    # The app is not the server's superuser: it is the plain role the init script creates.
    assert database.username != postgres["POSTGRES_USER"]
    role = re.search(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'(.*);", APP_ROLE_SQL.read_text())
    assert (database.username, database.password) == (role.group(1), role.group(2))
    assert "NOSUPERUSER" in role.group(3) and "NOBYPASSRLS" in role.group(3)
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    mount = f"./{APP_ROLE_SQL.relative_to(ROOT)}:/docker-entrypoint-initdb.d/10-app-role.sql:ro"
    assert mount in services["postgres"]["volumes"]

    redis = urlsplit(app_env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)

    smtp = urlsplit(app_env["SMTP_URL"])
    assert (smtp.scheme, smtp.hostname, smtp.port) == ("smtp", "mailpit", 1025)


def test_secret_key_must_be_given(app_env: dict) -> None:
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", app_env["SECRET_KEY"])


def test_environment_is_a_valid_production_configuration(app_env: dict) -> None:
    env = {name: str(value) for name, value in app_env.items()}
    env["SECRET_KEY"] = "x" * 48  # what the operator supplies
    env["MFA_ENCRYPTION_KEY"] = "bW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbW0="
    settings = Settings.from_env(env)
    assert settings.is_production
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.broker_url == app_env["REDIS_URL"]
    assert settings.smtp_url == app_env["SMTP_URL"]
    # Plain HTTP on localhost, no proxy: see the comment in docker-compose.yml.
    assert settings.trusted_proxies == 0
    assert settings.force_https is False


def test_every_variable_compose_names_is_one_the_app_reads(
    procfile: dict[str, str], compose: dict, services: dict,
) -> None:
    known = config_variables()
    assert {"APP_ENV", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "SECRET_KEY"} <= known
    for name in (*APP_SERVICES, "migrate"):
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name}: core/config.py reads no {sorted(unknown)}"
    # Interpolated names: settings, or the Procfile's own knobs inside the copied commands.
    procfile_knobs = set().union(*(interpolated_names(c) for c in procfile.values()))
    # The one knob that is compose's own: the database server's superuser password.
    unknown = interpolated_names(compose) - known - procfile_knobs - {"POSTGRES_PASSWORD"}
    assert not unknown, f"docker-compose.yml interpolates unknown {sorted(unknown)}"


# -- compose: web --------------------------------------------------------------------------------

def test_web_publishes_port_5000_and_probes_liveness(services: dict) -> None:
    web = services["web"]
    assert "5000:5000" in web["ports"]
    test = web["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # the slim image has no curl
    assert "http://127.0.0.1:5000/api/health/live" in test[3]


def test_gunicorn_listens_where_compose_looks() -> None:
    # Evaluate only the `bind = ...` line with an empty environment (compose sets no HOST or
    # PORT): importing gunicorn.conf.py whole would run its start-up checks.
    module = ast.parse((ROOT / "gunicorn.conf.py").read_text())
    [bind] = [node.value for node in module.body if isinstance(node, ast.Assign)
              and [getattr(t, "id", None) for t in node.targets] == ["bind"]]
    empty_os = SimpleNamespace(environ={})
    expression = compile(ast.Expression(bind), "gunicorn.conf.py", "eval")
    assert eval(expression, {"os": empty_os}) == "0.0.0.0:5000"


def test_the_probed_path_answers(client, services: dict) -> None:
    probe = re.search(r"http://[^'\"]+", services["web"]["healthcheck"]["test"][3]).group(0)
    assert client.get(urlsplit(probe).path).status_code == 200


# -- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_installs_the_lock_and_runs_web_by_default(procfile: dict[str, str]) -> None:
    instructions = dockerfile_instructions()
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in instructions:
        by_keyword.setdefault(keyword, []).append(arguments)

    assert by_keyword["FROM"] == ["python:3.11-slim"]
    runs = by_keyword["RUN"]
    assert any("pip install" in r and "--no-cache-dir" in r and "-r requirements.lock" in r
               for r in runs)
    assert "PYTHONUNBUFFERED=1" in " ".join(by_keyword["ENV"]).split()
    assert by_keyword["EXPOSE"] == ["5000"]
    # Exec form, equal to the Procfile's web command; no ENTRYPOINT so compose `command:`
    # replaces it whole; no HEALTHCHECK, which every process (not only web) would inherit.
    assert json.loads(by_keyword["CMD"][-1]) == shlex.split(procfile["web"])
    assert "ENTRYPOINT" not in by_keyword
    assert "HEALTHCHECK" not in by_keyword
    user = by_keyword["USER"][-1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "instance", ".env"} <= patterns
