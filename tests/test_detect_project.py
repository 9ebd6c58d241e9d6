"""scripts/detect_project.py on small fixture projects, one per pattern (tests/fixtures/projects/)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from detect_project import VERIFIED_FALLBACK, detect, verified_versions

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = ROOT / "tests" / "fixtures" / "projects"


def scan(name: str) -> dict[str, Any]:
    return detect(PROJECTS / name)


def advice_about(report: dict[str, Any], *words: str) -> list[str]:
    return [line for line in report["advice"] if all(word in line for word in words)]


def test_asyncpg_pool_in_the_lifespan_and_a_pyjwt_dependency() -> None:
    report = scan("asyncpg_pyjwt")
    [app] = report["fastapi"]["apps"]
    assert (app["name"], app["uvicorn"], app["run_from"]) == ("app", "app.main:app", ".")
    assert report["fastapi"]["lifespans"] == [{"name": "lifespan", "of": "app app", "where": "app/main.py:14"}]
    [include] = report["fastapi"]["include_router"]
    assert (include["router"], include["prefix"], include["where"]) == ("orders.router", "/orders", "app/main.py:23")
    assert [r["module"] for r in report["fastapi"]["routers"]] == ["app.routes.orders"]

    assert report["database"]["stack"] == ["asyncpg"]
    [pool] = report["database"]["created"]
    assert (pool["kind"], pool["target"], pool["function"], pool["where"]) == (
        "pool",
        "app.state.pool",
        "lifespan",
        "app/main.py:15",
    )

    auth = report["auth"]
    assert auth["patterns"] == ["user-dependency", "pyjwt"]
    dependency = auth["dependencies"][0]
    assert (dependency["name"], dependency["module"], dependency["returns"]) == ("get_current_user", "app.auth", "str")
    assert dependency["uses"] == 2 and "decodes a token" in dependency["does"] and "raises 401" in dependency["does"]

    assert report["env"]["files"] == {".env.example": ["PG_DSN", "JWT_SECRET"]}
    assert set(report["env"]["read_in_code"]) == {"PG_DSN", "JWT_SECRET"}
    assert advice_about(report, "Reuse the auth dependency get_current_user", "app/auth.py:10")
    assert advice_about(report, "Reuse the asyncpg pool app.state.pool", "PostgresStore")
    assert advice_about(report, "include_router", "app/main.py:23", "uvicorn app.main:app")
    assert advice_about(report, "PG_DSN")
    assert report["versions"]["warnings"] == []  # neither chatkit nor agents is installed yet: nothing to compare


def test_sqlalchemy_async_engine_and_python_jose_in_a_src_layout_with_poetry() -> None:
    report = scan("sqlalchemy_jose")
    [app] = report["fastapi"]["apps"]
    assert (app["uvicorn"], app["run_from"], app["factory"]) == ("shop.main:app", "src", "shop.main.create_app")

    assert report["database"]["stack"] == ["sqlalchemy-async"]
    engine = next(c for c in report["database"]["created"] if c["kind"] == "AsyncEngine")
    assert (engine["target"], engine["module"]) == ("engine", "shop.db")
    assert report["database"]["models"] == {"sqlalchemy": 1}
    assert advice_about(report, "Reuse the sqlalchemy-async AsyncEngine engine", "src/shop/db.py:7")

    auth = report["auth"]
    assert auth["patterns"] == ["user-dependency", "python-jose"]
    assert [d["name"] for d in auth["dependencies"]] == ["get_current_user"]
    assert auth["dependencies"][0]["returns"] == "User" and auth["dependencies"][0]["uses"] == 2  # via CurrentUser
    assert auth["annotated_aliases"][0]["name"] == "CurrentUser"
    assert any(s.startswith("OAuth2PasswordBearer") for s in auth["schemes"])
    # pydantic-settings fields are env vars, with the class's env_prefix
    assert {"SHOP_DATABASE_URL", "SHOP_SECRET_KEY"} <= set(report["env"]["read_in_code"])

    warnings = report["versions"]["warnings"]
    assert any(w.startswith("openai-chatkit 1.2.0 in poetry.lock") and "~=1.6.5" in w for w in warnings)


def test_sqlmodel_with_a_session_cookie_and_uv_lock() -> None:
    report = scan("sqlmodel_cookies")
    assert report["database"]["stack"] == ["sqlmodel"]
    assert report["database"]["models"] == {"sqlmodel": 2}
    assert report["database"]["created"][0]["kind"] == "Engine (sync)"
    assert advice_about(report, "is synchronous")

    auth = report["auth"]
    assert auth["patterns"] == ["user-dependency", "session-cookie"]
    assert [d["name"] for d in auth["dependencies"]] == ["current_user"]  # get_session is the database's
    assert "reads request.session" in auth["dependencies"][0]["does"]
    assert auth["session_middleware"] == ["main.py:14"]
    assert "notes_session" in auth["cookies"]
    assert advice_about(report, "Cookie auth")
    # a range in pyproject.toml, but uv.lock resolves the verified version: no warning
    assert report["versions"]["warnings"] == []
    assert report["versions"]["packages"]["openai-agents"][1]["version"] == "0.24.0"


def test_fastapi_users_current_active_user_is_the_dependency() -> None:
    report = scan("fastapi_users")
    auth = report["auth"]
    assert "fastapi-users" in auth["patterns"]
    # get_user_db and get_user_manager carry "user" in their names but hand out the database and the manager
    assert [d["name"] for d in auth["dependencies"]] == ["current_active_user"]
    assert advice_about(report, "str(user.id)")
    assert report["database"]["stack"] == ["sqlalchemy-async"]
    assert report["fastapi"]["lifespans"][0]["where"] == "app/app.py:11"


def test_better_auth_jwks_from_a_python_api_next_to_the_frontend() -> None:
    report = scan("better_auth")
    [app] = report["fastapi"]["apps"]
    assert (app["uvicorn"], app["run_from"]) == ("main:app", "api")
    auth = report["auth"]
    assert auth["patterns"] == ["user-dependency", "pyjwt", "jwks", "better-auth"]
    assert auth["dependencies"][0]["name"] == "get_user_id"
    assert "checks audience" in auth["dependencies"][0]["does"]
    assert report["versions"]["frontend"] == {"better-auth": "^1.2.7"}
    assert advice_about(report, "JWT_JWKS_URL=<baseURL>/api/auth/jwks", "JWT_AUDIENCE")


def test_an_existing_chatkit_server_with_its_own_store_and_old_pins() -> None:
    report = scan("chatkit_existing")
    chatkit = report["chatkit"]
    assert [s["name"] for s in chatkit["servers"]] == ["SupportServer"]
    assert [s["name"] for s in chatkit["stores"]] == ["SqliteStore"]
    assert [(r["method"], r["path"], r["where"]) for r in chatkit["routes"]] == [("POST", "/chatkit", "main.py:12")]
    assert advice_about(report, "ChatKit is already here", "Fixing an existing server")
    assert advice_about(report, "contract suite", "SqliteStore")
    assert not advice_about(report, "Include the ChatKit router")
    assert report["versions"]["warnings"] == [
        "openai-chatkit 1.5.2 in requirements.txt: the skill is verified with 1.6.5; pin ~=1.6.5",
        "openai-agents 0.20.0 in requirements.txt: the skill is verified with 0.24.0; pin ==0.24.0",
    ]


def test_a_plain_app_has_no_database_and_no_auth() -> None:
    report = scan("plain")
    assert report["fastapi"]["apps"][0]["uvicorn"] == "main:app"
    assert report["database"]["stack"] == ["none"]
    assert report["auth"]["patterns"] == ["none"]
    assert report["chatkit"] == {"servers": [], "stores": [], "routes": [], "imports_chatkit": False}
    assert advice_about(report, "No auth found") and advice_about(report, "No database")


def test_an_empty_directory(tmp_path: Path) -> None:
    report = detect(tmp_path)
    assert report["python_files"] == 0 and report["fastapi"]["apps"] == []
    assert report["database"]["stack"] == ["none"] and report["auth"]["patterns"] == ["none"]
    assert advice_about(report, "No FastAPI app found")
    out = subprocess.run([sys.executable, "scripts/detect_project.py", str(tmp_path)], cwd=ROOT, capture_output=True)
    assert out.returncode == 0 and b"No FastAPI app found" in out.stdout


def test_it_never_imports_or_runs_the_project() -> None:
    """service.py and setup.py write IMPORTED and exit when run; the scan only parses them."""
    project = PROJECTS / "executes_nothing"
    out = subprocess.run(
        [sys.executable, "scripts/detect_project.py", str(project), "--json"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert not (project / "IMPORTED").exists()
    assert json.loads(out.stdout)["fastapi"]["apps"][0]["uvicorn"] == "service:app"


def test_json_and_summary_from_the_command_line() -> None:
    command = [sys.executable, "scripts/detect_project.py", str(PROJECTS / "asyncpg_pyjwt")]
    as_json = json.loads(subprocess.run([*command, "--json"], cwd=ROOT, capture_output=True, check=True).stdout)
    assert as_json["auth"]["dependencies"][0]["name"] == "get_current_user"
    summary = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert re.search(r"^App +app \(app/main.py:22\): uvicorn app.main:app", summary, re.MULTILINE)
    assert "\nAdvice\n" in summary
    missing = subprocess.run([*command[:2], "no/such/dir"], cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 2


def test_the_repositorys_own_examples() -> None:
    """A sanity check on real code: every level's server, store, endpoint and Level 3's pool and auth."""
    report = detect(ROOT / "examples")
    assert {s["name"] for s in report["chatkit"]["servers"]} == {"HelloServer", "AgentServer", "ProductionServer"}
    stores = {s["name"] for s in report["chatkit"]["stores"]}
    expected = {"MemoryStore", "PostgresStore", "SQLAlchemyStore", "PostgresStoreWithAttachments"}
    assert stores == expected | {"PostgresAttachmentStore"}
    assert len(report["chatkit"]["routes"]) == 3
    assert {a["uvicorn"] for a in report["fastapi"]["apps"]} == {f"level{n}.app:app" for n in (1, 2, 3)}
    assert report["database"]["stack"] == ["asyncpg"]
    assert report["auth"]["dependencies"][0]["name"] == "get_current_user"
    assert {"pyjwt", "jwks"} <= set(report["auth"]["patterns"]) and "better-auth" not in report["auth"]["patterns"]
    assert report["versions"]["warnings"] == []


@pytest.mark.parametrize("package", sorted(VERIFIED_FALLBACK))
def test_the_fallback_versions_are_the_readmes(package: str) -> None:
    """The versions the script uses when copied without README.md are the ones README.md lists."""
    assert verified_versions()[package] == VERIFIED_FALLBACK[package]


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_psycopg_pool_app_factory_installed_versions_and_unparsable_files(tmp_path: Path) -> None:
    """The cases without a fixture project: a psycopg pool, a factory-only app, a .venv, broken and test files."""
    project = write(
        tmp_path,
        {
            "service/__init__.py": "",
            "service/web.py": (
                "from fastapi import FastAPI\n"
                "from psycopg_pool import AsyncConnectionPool\n\n"
                "def create_app() -> FastAPI:\n"
                "    app = FastAPI()\n"
                "    app.state.db = AsyncConnectionPool('postgresql://localhost/app', open=False)\n"
                "    return app\n"
            ),
            "service/broken.py": "def half(:\n",
            "tests/conftest.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
            ".venv/pyvenv.cfg": "home = /usr/bin\n",
            ".venv/lib/python3.11/site-packages/openai_chatkit-1.6.5.dist-info/METADATA": "",
            ".venv/lib/python3.11/site-packages/openai_agents-0.19.0.dist-info/METADATA": "",
            ".venv/lib/python3.11/site-packages/fastapi/app.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
        },
    )
    report = detect(project)
    [app] = report["fastapi"]["apps"]  # the test app and the .venv's code are not the project's
    assert app["uvicorn"] == "service.web:create_app --factory"
    assert report["test_files_skipped"] == 1
    assert report["unparsed"] == ["service/broken.py (SyntaxError)"]
    [pool] = report["database"]["created"]
    assert (pool["stack"], pool["kind"], pool["target"]) == ("psycopg", "async pool", "app.state.db")
    assert advice_about(report, "app.state.db", "the Level 3 store speaks asyncpg")
    assert report["versions"]["warnings"] == [
        "openai-agents 0.19.0 in .venv/lib/python3.11/site-packages: the skill is verified with 0.24.0; pin ==0.24.0"
    ]


def test_a_chatkit_endpoint_under_another_path_or_a_prefix_is_found(tmp_path: Path) -> None:
    project = write(
        tmp_path,
        {
            "api.py": (
                "from chatkit.server import StreamingResult\n"
                "from fastapi import APIRouter, FastAPI, Request\n\n"
                "from assistant import server\n\n"
                "router = APIRouter()\n\n\n"
                "@router.post('/api/assistant')\n"
                "async def assistant(request: Request):\n"
                "    result = await server.process(await request.body(), {})\n"
                "    return isinstance(result, StreamingResult)\n\n\n"
                "app = FastAPI()\n"
                "app.include_router(router)\n"
                "app.include_router(router, prefix='/chatkit')\n"
            ),
        },
    )
    routes = detect(project)["chatkit"]["routes"]
    assert [(r["method"], r["path"], r["function"]) for r in routes] == [
        ("POST", "/api/assistant", "assistant"),
        ("INCLUDE", "/chatkit", "router"),
    ]


def test_a_cookie_parameter_names_the_cookie(tmp_path: Path) -> None:
    project = write(
        tmp_path,
        {
            "web.py": (
                "from typing import Annotated\n\n"
                "from fastapi import Cookie, Depends, FastAPI, HTTPException\n\n"
                "app = FastAPI()\n\n\n"
                "async def current_account(sid: Annotated[str | None, Cookie(alias='__Host-sid')] = None) -> str:\n"
                "    if sid is None:\n"
                "        raise HTTPException(401)\n"
                "    return sid\n\n\n"
                "async def theme(theme: str = Cookie('light')) -> str:\n"
                "    return theme\n\n\n"
                "@app.get('/me')\n"
                "async def me(account: str = Depends(current_account)) -> str:\n"
                "    return account\n"
            ),
        },
    )
    auth = detect(project)["auth"]
    assert set(auth["cookies"]) == {"__Host-sid", "theme"}
    assert [(d["name"], d["does"]) for d in auth["dependencies"]] == [
        ("current_account", ["raises 401", "reads a cookie"])
    ]
    assert auth["patterns"] == ["user-dependency", "session-cookie"]
