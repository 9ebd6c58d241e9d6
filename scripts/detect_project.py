"""Look at an existing Python project before adding ChatKit to it, without importing or running any of it.

    python scripts/detect_project.py .                 # a short summary with advice
    python scripts/detect_project.py ~/src/api --json  # everything as JSON

It reads the code with `ast` and the config files as text, and reports:
  - FastAPI apps (module, uvicorn target), routers, include_router calls, the lifespan;
  - ChatKitServer subclasses, /chatkit routes and Store implementations already there;
  - the database stack (asyncpg, psycopg, SQLAlchemy async, SQLModel, none) and where it is created;
  - the auth pattern: a dependency that returns the user, pyjwt, python-jose, JWKS, Better Auth,
    session cookies, fastapi-users, none;
  - environment variables (.env.example, os.environ/os.getenv, pydantic BaseSettings);
  - pinned versions (requirements*.txt, pyproject.toml, poetry.lock, uv.lock, Pipfile.lock, a local
    .venv), with a warning when openai-chatkit or openai-agents differ from the verified ones;
  - advice: which dependency, pool or engine to reuse, and where to include the ChatKit router.

The JSON's keys: fastapi, chatkit, database, auth, env, versions, advice (plus root, python_files,
test_files_skipped: tests are not scanned, and unparsed). Standard library only. Exit status: 0
after a scan, 2 when PATH is not a directory.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKILL_README = Path(__file__).resolve().parent.parent / "README.md"
# The verified versions when this script travels without the skill's README (a test keeps them equal).
VERIFIED_FALLBACK = {"openai-chatkit": ("1.6.5", "~=1.6.5"), "openai-agents": ("0.24.0", "==0.24.0")}
CHECKED_PACKAGES = ("openai-chatkit", "openai-agents")  # the two whose API changes break the skill's code
SKIP_DIRS = set(
    ".git .hg .svn node_modules __pycache__ .venv venv .tox .nox .mypy_cache .ruff_cache .pytest_cache "
    "site-packages build dist .idea .vscode .eggs".split()
)
MAX_FILE_BYTES = 2_000_000
ENV_EXAMPLES = (".env.example", ".env.sample", ".env.template", ".env.dist", "example.env", "env.example")
BETTER_AUTH_JWKS = "/api/auth/jwks"
BETTER_AUTH_COOKIE = "better-auth.session_token"
USER_NAME = re.compile(r"user|principal|identity|account|current|auth|caller|login|^me$|claims|token", re.I)
DB_URL_NAME = re.compile(r"DATABASE|DB_|_DB$|POSTGRES|^PG|DSN|SQLALCHEMY", re.I)

# Calls that create a database handle, by qualified name: (stack, what it makes).
DB_CALLS = {
    "asyncpg.create_pool": ("asyncpg", "pool"),
    "asyncpg.connect": ("asyncpg", "connection"),
    "psycopg_pool.AsyncConnectionPool": ("psycopg", "async pool"),
    "psycopg_pool.ConnectionPool": ("psycopg", "pool"),
    "psycopg.AsyncConnection.connect": ("psycopg", "async connection"),
    "psycopg.connect": ("psycopg", "connection"),
    "psycopg2.connect": ("psycopg2", "connection"),
    "psycopg2.pool.SimpleConnectionPool": ("psycopg2", "pool"),
    "psycopg2.pool.ThreadedConnectionPool": ("psycopg2", "pool"),
    "sqlalchemy.ext.asyncio.create_async_engine": ("sqlalchemy-async", "AsyncEngine"),
    "sqlalchemy.ext.asyncio.async_sessionmaker": ("sqlalchemy-async", "async_sessionmaker"),
    "sqlalchemy.create_engine": ("sqlalchemy-sync", "Engine"),
    "sqlalchemy.orm.sessionmaker": ("sqlalchemy", "sessionmaker"),
    "sqlmodel.create_engine": ("sqlmodel", "Engine (sync)"),
    "databases.Database": ("databases", "Database"),
}
DB_CALL_NAMES = {name.split(".")[-1] for name in DB_CALLS}
USER_HEADER = re.compile(r"user|account|identity|principal|member", re.IGNORECASE)
AUTH_SCHEMES = {"OAuth2PasswordBearer", "OAuth2AuthorizationCodeBearer", "HTTPBearer", "APIKeyCookie", "APIKeyHeader"}
ROUTE_METHODS = {"get", "post", "put", "patch", "delete", "api_route", "websocket"}


def _unparse(node: ast.AST | None) -> str:
    return "" if node is None else ast.unparse(node)


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _arg(call: ast.Call, index: int, name: str) -> ast.expr | None:
    return call.args[index] if len(call.args) > index else _kwarg(call, name)


@dataclass
class Function:
    name: str
    where: str
    module: str
    returns: str
    features: set[str] = field(default_factory=set)  # what its body does: "decodes a token", "raises 401"...
    creates_app: bool = False


@dataclass
class Scan:
    """Everything found, before it is summarised."""

    root: Path
    files: int = 0
    test_files: int = 0
    unparsed: list[str] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    apps: list[dict[str, Any]] = field(default_factory=list)
    app_calls: list[dict[str, Any]] = field(default_factory=list)  # x = some_factory() at module level
    routers: list[dict[str, Any]] = field(default_factory=list)
    includes: list[dict[str, Any]] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)
    startup_hooks: list[str] = field(default_factory=list)
    classes: list[dict[str, Any]] = field(default_factory=list)  # every class: name, bases, where
    db_created: list[dict[str, Any]] = field(default_factory=list)
    db_models: Counter[str] = field(default_factory=Counter)
    db_urls: list[str] = field(default_factory=list)
    imports: Counter[str] = field(default_factory=Counter)  # top-level modules imported
    depends: Counter[str] = field(default_factory=Counter)  # Depends(x)/Security(x): x's last name
    aliases: list[dict[str, Any]] = field(default_factory=list)  # X = Annotated[T, Depends(fn)]
    annotations: Counter[str] = field(default_factory=Counter)  # names used in parameter annotations
    auth_schemes: list[str] = field(default_factory=list)
    fastapi_users_deps: list[dict[str, Any]] = field(default_factory=list)
    jwks_urls: list[str] = field(default_factory=list)
    cookies: dict[str, list[str]] = field(default_factory=dict)  # cookie name (or "?") -> where
    user_headers: dict[str, list[str]] = field(default_factory=dict)  # header naming the user -> where
    session_middleware: list[str] = field(default_factory=list)
    better_auth: list[str] = field(default_factory=list)  # evidence
    env_reads: dict[str, list[str]] = field(default_factory=dict)
    env_files: dict[str, list[str]] = field(default_factory=dict)
    js_packages: dict[str, str] = field(default_factory=dict)


def module_location(root: Path, path: Path) -> tuple[str, str]:
    """(dotted module, the directory to run uvicorn from), climbing packages that have __init__.py."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while directory != root and (directory / "__init__.py").exists():
        parts.insert(0, directory.name)
        directory = directory.parent
    if directory == root and (root / "__init__.py").exists():
        parts.insert(0, root.name)
        directory = root.parent
    app_dir = os.path.relpath(directory, root)
    return ".".join(parts), "." if app_dir == "." else Path(app_dir).as_posix()


class ModuleVisitor(ast.NodeVisitor):
    def __init__(self, scan: Scan, rel: str, module: str, app_dir: str) -> None:
        self.scan, self.rel, self.module, self.app_dir = scan, rel, module, app_dir
        self.names: dict[str, str] = {}  # local name -> qualified name, from the imports
        self.stack: list[Function] = []
        self.target: str | None = None  # what the expression being visited is assigned to

    def at(self, node: ast.AST) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', 0)}"

    def qual(self, node: ast.AST | None) -> str:
        if isinstance(node, ast.Name):
            return self.names.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            return f"{self.qual(node.value)}.{node.attr}"
        if isinstance(node, ast.Subscript):  # ChatKitServer[Ctx], FastAPIUsers[User, int]
            return self.qual(node.value)
        if isinstance(node, ast.Call):
            return self.qual(node.func) + "()"
        return ""

    def feature(self, name: str) -> None:
        if self.stack:
            self.stack[-1].features.add(name)

    # Imports -----------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            self.names[alias.asname or top] = alias.name if alias.asname else top
            self.scan.imports[alias.name.split(".")[0]] += 1
            self.scan.imports[alias.name] += 1

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            package = self.module.split(".") if self.rel.endswith("__init__.py") else self.module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            base = ".".join([*package, *([node.module] if node.module else [])])
        else:
            self.scan.imports[base.split(".")[0]] += 1
            self.scan.imports[base] += 1
        for alias in node.names:
            self.names[alias.asname or alias.name] = f"{base}.{alias.name}" if base else alias.name

    # Definitions -------------------------------------------------------------------------------
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [self.qual(base) for base in node.bases]
        info = {"name": node.name, "module": self.module, "where": self.at(node), "bases": bases}
        self.scan.classes.append(info)
        keywords = {k.arg: _unparse(k.value) for k in node.keywords}
        if any(b in ("sqlmodel.SQLModel", "SQLModel") for b in bases) and keywords.get("table") == "True":
            self.scan.db_models["sqlmodel"] += 1
        if any(b.endswith(("DeclarativeBase", "declarative_base()")) for b in bases):
            self.scan.db_models["sqlalchemy"] += 1
        if any(b.split(".")[-1] == "BaseSettings" for b in bases):
            self.settings_fields(node)
        self.generic_visit(node)

    def settings_fields(self, node: ast.ClassDef) -> None:
        """pydantic BaseSettings: every annotated field is an env var, with the class's env_prefix."""
        prefix = ""
        for statement in node.body:
            value = statement.value if isinstance(statement, ast.Assign) else None
            if isinstance(value, ast.Call) and _string(_kwarg(value, "env_prefix")):
                prefix = _string(_kwarg(value, "env_prefix")) or ""
            if isinstance(statement, ast.ClassDef) and statement.name == "Config":
                for inner in statement.body:
                    if isinstance(inner, ast.Assign) and _unparse(inner.targets[0]) == "env_prefix":
                        prefix = _string(inner.value) or ""
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
                if name != "model_config":
                    self.scan.env_reads.setdefault((prefix + name).upper(), []).append(self.at(statement))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        function = Function(node.name, self.at(node), self.module, _unparse(node.returns))
        self.scan.functions.append(function)
        for decorator in node.decorator_list:
            self.route_decorator(decorator, node)
        self.stack.append(function)
        positional = [*node.args.posonlyargs, *node.args.args]
        defaults = [None] * (len(positional) - len(node.args.defaults)) + list(node.args.defaults)
        keyword_only = zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
        for argument, default in [*zip(positional, defaults, strict=True), *keyword_only]:
            if isinstance(argument.annotation, ast.Name):
                self.scan.annotations[argument.annotation.id] += 1
            for part in [default, *ast.walk(argument.annotation or ast.Pass())]:
                # `session: str = Cookie()` or Annotated[str, Cookie()]: the parameter names the cookie
                if isinstance(part, ast.Call) and self.qual(part.func).split(".")[-1] == "Cookie":
                    self.cookie(_string(_kwarg(part, "alias")) or argument.arg, self.at(argument))
                # `x_shop_user: str = Header()`: a gateway or the frontend names the user in a header
                if isinstance(part, ast.Call) and self.qual(part.func).split(".")[-1] == "Header":
                    header = _string(_kwarg(part, "alias")) or argument.arg.replace("_", "-")
                    if USER_HEADER.search(header):
                        self.scan.user_headers.setdefault(header, []).append(self.at(argument))
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def route_decorator(self, decorator: ast.expr, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
            return
        method = decorator.func.attr
        if method == "on_event":
            self.scan.startup_hooks.append(f"{node.name} ({self.at(node)}, {_unparse(decorator.args[0])})")
        if method in ROUTE_METHODS and (path := _string(_arg(decorator, 0, "path"))) is not None:
            owner = _unparse(decorator.func.value)
            self.scan.routes.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "function": node.name,
                    "on": owner,
                    "module": self.module,
                    "where": self.at(node),
                }
            )

    # Assignments: who gets the app, the router, the pool ---------------------------------------
    def visit_Assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        value = node.value
        if value is None:
            return
        self.target = _unparse(targets[0])
        call = value.value if isinstance(value, ast.Await) else value
        if isinstance(call, ast.Call):
            self.assigned_call(self.target, call, node)
        if isinstance(value, ast.Subscript) and self.qual(value.value).split(".")[-1] == "Annotated":
            elements = value.slice.elts if isinstance(value.slice, ast.Tuple) else []
            for element in elements[1:]:
                if isinstance(element, ast.Call) and self.qual(element.func).split(".")[-1] in ("Depends", "Security"):
                    dependency = _unparse(element.args[0]) if element.args else ""
                    self.scan.aliases.append(
                        {
                            "name": self.target,
                            "type": _unparse(elements[0]),
                            "dependency": dependency,
                            "where": self.at(node),
                        }
                    )
            self.target = None
            return  # its Depends() counts once per parameter annotated with the alias, not here
        self.visit(value)
        self.target = None

    visit_AnnAssign = visit_Assign  # type: ignore[assignment]

    def assigned_call(self, target: str, call: ast.Call, node: ast.AST) -> None:
        name = self.qual(call.func)
        last = name.split(".")[-1]
        function = self.stack[-1].name if self.stack else None
        if last == "FastAPI" and name in ("fastapi.FastAPI", "FastAPI"):
            lifespan = _unparse(_kwarg(call, "lifespan")) or None
            app = {"name": target, "module": self.module, "app_dir": self.app_dir, "where": self.at(node)}
            self.scan.apps.append({**app, "lifespan": lifespan, "factory": function})
            if self.stack:
                self.stack[-1].creates_app = True
        elif last == "APIRouter" and name in ("fastapi.APIRouter", "APIRouter"):
            prefix, lifespan = _string(_kwarg(call, "prefix")) or "", _unparse(_kwarg(call, "lifespan")) or None
            router = {"name": target, "module": self.module, "where": self.at(node), "function": function}
            self.scan.routers.append({**router, "prefix": prefix, "lifespan": lifespan})
        elif not self.stack and isinstance(call.func, ast.Name):
            self.scan.app_calls.append(
                {"name": target, "callee": name, "module": self.module, "app_dir": self.app_dir, "where": self.at(node)}
            )
        if last == "current_user" and any(q.startswith("fastapi_users") for q in self.names.values()):
            self.scan.fastapi_users_deps.append({"name": target, "module": self.module, "where": self.at(node)})

    def visit_withitem(self, node: ast.withitem) -> None:
        self.target = _unparse(node.optional_vars) if node.optional_vars is not None else None
        self.visit(node.context_expr)
        self.target = None

    # Calls ---------------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        name = self.qual(node.func)
        last = name.split(".")[-1]
        where = self.at(node)
        function = self.stack[-1].name if self.stack else None
        if name in DB_CALLS or (last in DB_CALL_NAMES and self.db_alias(name)):
            stack, kind = DB_CALLS.get(name) or DB_CALLS[self.db_alias(name)]
            url = _string(_arg(node, 0, "url")) or _string(_arg(node, 0, "dsn"))
            self.scan.db_created.append(
                {
                    "stack": stack,
                    "kind": kind,
                    "call": name,
                    "target": self.target,
                    "function": function,
                    "module": self.module,
                    "where": where,
                    "url": _redact(url),
                }
            )
        elif last in ("Depends", "Security") and node.args:
            self.scan.depends[self.qual(node.args[0]).split(".")[-1] or _unparse(node.args[0])] += 1
        elif last == "include_router" and node.args:
            owner = _unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            include = {"router": _unparse(node.args[0]), "on": owner, "prefix": _string(_kwarg(node, "prefix")) or ""}
            self.scan.includes.append({**include, "module": self.module, "where": where, "function": function})
        elif last == "add_api_route" and (path := _string(_arg(node, 0, "path"))) is not None:
            endpoint = _unparse(_arg(node, 1, "endpoint"))
            route = {"method": "API_ROUTE", "path": path, "function": endpoint, "on": ""}
            self.scan.routes.append({**route, "module": self.module, "where": where})
        elif last == "add_middleware" and node.args and self.qual(node.args[0]).endswith("SessionMiddleware"):
            self.scan.session_middleware.append(where)
            self.cookie(_string(_kwarg(node, "session_cookie")) or "session", where)
        elif last in AUTH_SCHEMES:
            self.scan.auth_schemes.append(f"{last} ({where})")
            if last == "APIKeyCookie":
                self.cookie(_string(_kwarg(node, "name")), where)
        elif last in ("PyJWKClient", "JsonWebKey", "KeySet", "PyJWKSet"):
            self.scan.jwks_urls.append(_unparse(_arg(node, 0, "uri")) + f" ({where})")
            self.feature("jwks")
        elif last in ("getenv", "get") and name.endswith(("os.getenv", "os.environ.get", "environ.get", "getenv")):
            if variable := _string(_arg(node, 0, "key")):
                self.scan.env_reads.setdefault(variable, []).append(where)
        elif name.endswith("cookies.get") or last == "set_cookie":
            self.cookie(_string(_arg(node, 0, "key")), where)
        if name.endswith(("jwt.decode", "jwt.get_unverified_header")):  # pyjwt, python-jose, authlib
            self.feature("decodes a token")
            if name == "jwt.decode" and _kwarg(node, "audience") is not None:
                self.feature("checks audience")
        if last == "process" and any(q.startswith("chatkit.") for q in self.names.values()):
            self.feature("calls process()")  # most likely ChatKitServer.process: an endpoint under another path
        if last == "HTTPException" and "401" in _unparse(_arg(node, 0, "status_code")).replace("HTTP_401", "401"):
            self.feature("raises 401")
        self.generic_visit(node)

    def db_alias(self, name: str) -> str:
        """The DB_CALLS key for a call reached through another path of the same package, or ""."""
        last = name.split(".")[-1]
        if name.split(".")[0] not in ("asyncpg", "psycopg", "psycopg_pool", "psycopg2", "sqlalchemy", "sqlmodel"):
            return ""
        return next((k for k in DB_CALLS if k.split(".")[-1] == last and k.split(".")[0] == name.split(".")[0]), "")

    def cookie(self, name: str | None, where: str) -> None:
        self.scan.cookies.setdefault(name or "?", []).append(where)
        self.feature("reads a cookie")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.value, ast.Attribute) and node.value.attr == "cookies" and (name := _string(node.slice)):
            self.cookie(name, self.at(node))
        if self.qual(node.value) == "os.environ" and (variable := _string(node.slice)):
            self.scan.env_reads.setdefault(variable, []).append(self.at(node))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "session" and isinstance(node.value, ast.Name) and node.value.id in ("request", "req"):
            self.feature("reads request.session")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Constant):  # a bare string is a docstring: prose, not configuration
            self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            text = node.value
            if BETTER_AUTH_JWKS in text or BETTER_AUTH_COOKIE in text or "better-auth" in text.lower():
                self.scan.better_auth.append(f"{text[:80]!r} ({self.at(node)})")
            if re.match(r"^(postgres(ql)?|sqlite|mysql)(\+\w+)?://", text):
                self.scan.db_urls.append(_redact(text) or "")
            if "jwks" in text.lower() and text.startswith(("http", "/")):
                self.scan.jwks_urls.append(f"{text} ({self.at(node)})")


def _redact(url: str | None) -> str | None:
    return None if url is None else re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


# Walking the tree --------------------------------------------------------------------------------
def is_test(rel: str) -> bool:
    """Tests build throwaway apps and fake stores: they say little about how the app is wired."""
    parts = rel.split("/")
    name = parts[-1]
    return (
        bool({"tests", "test"} & set(parts[:-1]))
        or name.startswith("test_")
        or name in ("conftest.py",)
        or (name.endswith("_test.py"))
    )


def walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d for d in subdirs if d not in SKIP_DIRS and not (Path(directory, d) / "pyvenv.cfg").exists()
        )
        found += [Path(directory, f) for f in sorted(files)]
    return found


def scan_python(scan: Scan, path: Path) -> None:
    rel = path.relative_to(scan.root).as_posix()
    if is_test(rel):
        scan.test_files += 1
        return
    if path.stat().st_size > MAX_FILE_BYTES:
        scan.unparsed.append(f"{rel} (too large)")
        return
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)  # parse only: nothing is imported or executed
    except (SyntaxError, ValueError) as exc:
        scan.unparsed.append(f"{rel} ({type(exc).__name__})")
        return
    scan.files += 1
    module, app_dir = module_location(scan.root, path)
    ModuleVisitor(scan, rel, module, app_dir).visit(tree)


def read_env_example(scan: Scan, path: Path) -> None:
    names = []
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if match:
            names.append(match[1])
            if re.match(r"^['\"]?(postgres(ql)?|sqlite|mysql)(\+\w+)?://", match[2]):
                scan.db_urls.append(_redact(match[2].strip("'\"")) or "")
            if BETTER_AUTH_JWKS in match[2] or match[1].startswith("BETTER_AUTH"):
                scan.better_auth.append(f"{match[1]} ({path.relative_to(scan.root).as_posix()})")
    scan.env_files[path.relative_to(scan.root).as_posix()] = names


def read_package_json(scan: Scan, path: Path) -> None:
    try:
        data = json.loads(path.read_text(errors="replace"))
    except ValueError:
        return
    for section in ("dependencies", "devDependencies"):
        for name, spec in (data.get(section) or {}).items():
            if name == "better-auth" or name.startswith(("@openai/chatkit", "better-auth")):
                scan.js_packages[name] = str(spec)
    if "better-auth" in scan.js_packages:
        scan.better_auth.append(f"package.json depends on better-auth ({path.relative_to(scan.root).as_posix()})")


# Versions ------------------------------------------------------------------------------------------
def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")


def parse_requirement(line: str) -> tuple[str, str] | None:
    line = line.split(" #")[0].strip()
    if not line or line.startswith(("#", "-", "git+", "http")):
        return None
    match = _REQUIREMENT.match(line)
    return (normalize(match[1]), match[3].strip().replace(" ", "")) if match else None


def exact(spec: str) -> str | None:
    match = re.fullmatch(r"===?([0-9][0-9A-Za-z.+!-]*)", spec)
    return match[1] if match else None


def read_versions(root: Path, files: list[Path]) -> dict[str, list[dict[str, str | None]]]:
    """package -> [{file, spec, version}], from every dependency file and lock file found."""
    found: dict[str, list[dict[str, str | None]]] = {}

    def add(name: str, spec: str, source: Path, version: str | None = None) -> None:
        rel = source.relative_to(root).as_posix()
        found.setdefault(normalize(name), []).append({"file": rel, "spec": spec, "version": version or exact(spec)})

    for path in files:
        name = path.name
        try:
            if re.fullmatch(r"requirements.*\.(txt|in)", name):
                for line in path.read_text(errors="replace").splitlines():
                    if parsed := parse_requirement(line):
                        add(*parsed, path)
            elif name == "pyproject.toml":
                data = tomllib.loads(path.read_text(errors="replace"))
                project = data.get("project", {})
                lines = list(project.get("dependencies", []))
                lines += [d for group in project.get("optional-dependencies", {}).values() for d in group]
                groups = data.get("dependency-groups", {}).values()
                lines += [d for group in groups for d in group if isinstance(d, str)]
                for line in lines:
                    if parsed := parse_requirement(line):
                        add(*parsed, path)
                poetry = data.get("tool", {}).get("poetry", {})
                tables = [poetry.get("dependencies", {})]
                tables += [g.get("dependencies", {}) for g in poetry.get("group", {}).values()]
                for table in tables:
                    for package, spec in table.items():
                        spec = spec.get("version", "") if isinstance(spec, dict) else str(spec)
                        version = spec if re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", spec) else None  # poetry: bare = exact
                        if package.lower() != "python":
                            add(package, spec, path, version)
            elif name in ("poetry.lock", "uv.lock", "pdm.lock"):
                for package in tomllib.loads(path.read_text(errors="replace")).get("package", []):
                    add(package["name"], f"=={package['version']} (locked)", path, package["version"])
            elif name == "Pipfile.lock":
                data = json.loads(path.read_text(errors="replace"))
                for section in ("default", "develop"):
                    for package, info in data.get(section, {}).items():
                        add(package, info.get("version", ""), path)
        except (ValueError, KeyError, TypeError, AttributeError):  # a malformed file: report what we can
            continue
    for venv in [root / d for d in (".venv", "venv", "env")]:
        for info in sorted(venv.glob("lib/python*/site-packages/*.dist-info")) + sorted(
            venv.glob("Lib/site-packages/*.dist-info")
        ):
            package, _, version = info.name[: -len(".dist-info")].partition("-")
            if normalize(package) in CHECKED_PACKAGES:
                add(package, f"=={version} (installed)", info.parent, version)
    return found


def verified_versions() -> dict[str, tuple[str, str]]:
    """(version, pin) per package, from the skill's README table ("| openai-chatkit | 1.6.5 (pin `~=1.6.5`) |")."""
    if not SKILL_README.exists():
        return dict(VERIFIED_FALLBACK)
    verified = {}
    for match in re.finditer(
        r"^\| *([a-z][\w.-]*)(?:\\?\[\w+\])? *\| *([0-9][\w.]*)(?: *\(pin `([^`]+)`\))? *\|",
        SKILL_README.read_text(),
        re.MULTILINE,
    ):
        verified[normalize(match[1])] = (match[2], match[3] or f"=={match[2]}")
    return verified or dict(VERIFIED_FALLBACK)


def version_warnings(versions: dict[str, list[dict[str, str | None]]]) -> list[str]:
    verified = verified_versions()
    warnings = []
    for package in CHECKED_PACKAGES:
        good, pin = verified.get(package, VERIFIED_FALLBACK[package])
        entries = versions.get(package, [])
        resolved = any("(locked)" in (e["spec"] or "") or "(installed)" in (e["spec"] or "") for e in entries)
        for entry in entries:
            version, spec, where = entry["version"], entry["spec"] or "(any version)", entry["file"]
            if version is not None and version != good:
                warnings.append(f"{package} {version} in {where}: the skill is verified with {good}; pin {pin}")
            elif version is None and not resolved and spec.replace(" ", "") != pin:  # a lock file decides
                warnings.append(f"{package} {spec} in {where} is not pinned: verified with {good}; pin {pin}")
    return warnings


# Putting it together -------------------------------------------------------------------------------
def detect(root: Path) -> dict[str, Any]:
    root = root.resolve()
    scan = Scan(root)
    files = walk(root)
    for path in files:
        if path.suffix == ".py":
            scan_python(scan, path)
        elif path.name in ENV_EXAMPLES:
            read_env_example(scan, path)
        elif path.name == "package.json":
            read_package_json(scan, path)
    versions = read_versions(root, files)
    report = {
        "root": str(root),
        "python_files": scan.files,
        "test_files_skipped": scan.test_files,
        "unparsed": scan.unparsed,
        "fastapi": fastapi_section(scan),
        "chatkit": chatkit_section(scan),
        "database": database_section(scan, versions),
        "auth": auth_section(scan, versions),
        "env": {"files": scan.env_files, "read_in_code": {k: v[:3] for k, v in sorted(scan.env_reads.items())}},
        "versions": {
            "packages": {k: v for k, v in sorted(versions.items()) if k in CHECKED_PACKAGES or _relevant(k)},
            "verified": {k: v[0] for k, v in verified_versions().items()},
            "warnings": version_warnings(versions),
            "frontend": scan.js_packages,
        },
    }
    report["advice"] = advice(report)
    return report


def _relevant(package: str) -> bool:
    return package in {
        "openai",
        "fastapi",
        "uvicorn",
        "httpx",
        "asyncpg",
        "psycopg",
        "psycopg2",
        "psycopg2-binary",
        "psycopg-pool",
        "sqlalchemy",
        "sqlmodel",
        "pyjwt",
        "python-jose",
        "authlib",
        "fastapi-users",
        "pydantic",
        "pydantic-settings",
        "starlette",
        "itsdangerous",
        "databases",
    }


def fastapi_section(scan: Scan) -> dict[str, Any]:
    apps: list[dict[str, Any]] = []
    factories = {(a["module"], a["factory"]): a for a in scan.apps if a["factory"]}
    called = set()
    for call in scan.app_calls:  # app = create_app() at module level, create_app being a factory found
        module, _, function = call["callee"].rpartition(".")
        made = factories.get((module or call["module"], function))
        if made:
            called.add((made["module"], made["factory"]))
            apps.append(
                {
                    **call,
                    "lifespan": made["lifespan"],
                    "factory": f"{made['module']}.{made['factory']}",
                    "uvicorn": f"{call['module']}:{call['name']}",
                    "created_at": made["where"],
                }
            )
    for app in scan.apps:
        if app["factory"] and (app["module"], app["factory"]) in called:
            continue
        target = f"{app['module']}:{app['factory'] or app['name']}"
        apps.append({**app, "uvicorn": target + (" --factory" if app["factory"] else "")})
    for app in apps:
        app["run_from"] = app.pop("app_dir")
        app["include_router_calls"] = sum(i["module"] == app["module"] for i in scan.includes)
    # The main app first: the one that includes the most routers, then the shortest module path.
    apps.sort(key=lambda a: (-a["include_router_calls"], a["module"].count("."), a["where"]))
    lifespans = []
    for owner in [*apps, *scan.routers]:
        if owner.get("lifespan"):
            defined = [f.where for f in scan.functions if f.name == owner["lifespan"].split(".")[-1]]
            kind = "app" if owner in apps else "router"
            lifespans.append(
                {"name": owner["lifespan"], "of": f"{kind} {owner['name']}", "where": defined[0] if defined else None}
            )
    return {
        "apps": apps,
        "routers": scan.routers,
        "include_router": scan.includes,
        "lifespans": lifespans,
        "startup_hooks": scan.startup_hooks,
    }


def chatkit_section(scan: Scan) -> dict[str, Any]:
    servers = _subclasses(scan, "ChatKitServer")
    stores = _subclasses(scan, "Store") + _subclasses(scan, "AttachmentStore")
    endpoints = {(f.module, f.name) for f in scan.functions if "calls process()" in f.features}
    routes = [r for r in scan.routes if "chatkit" in r["path"].lower() or (r["module"], r["function"]) in endpoints]
    routes += [
        {
            "method": "INCLUDE",
            "path": i["prefix"],
            "function": i["router"],
            "on": i["on"],
            "module": i["module"],
            "where": i["where"],
        }
        for i in scan.includes
        if "chatkit" in i["prefix"].lower()
    ]
    return {"servers": servers, "stores": stores, "routes": routes, "imports_chatkit": scan.imports["chatkit"] > 0}


def _subclasses(scan: Scan, base: str) -> list[dict[str, Any]]:
    """Classes deriving from chatkit's `base`, directly or through a class of the project."""
    found: dict[str, dict[str, Any]] = {}
    names = {base}
    while True:
        new = [
            c
            for c in scan.classes
            if c["name"] not in found
            and any(
                b.split(".")[-1] in names and (b.startswith("chatkit.") or b.split(".")[-1] != base) for b in c["bases"]
            )
        ]
        if not new:
            return [{k: c[k] for k in ("name", "module", "where")} for c in found.values()]
        for c in new:
            found[c["name"]] = c
            names.add(c["name"])


def database_section(scan: Scan, versions: dict[str, Any]) -> dict[str, Any]:
    stacks = sorted({c["stack"] for c in scan.db_created})
    if scan.db_models["sqlmodel"] or "sqlmodel" in scan.imports:
        stacks = sorted({*stacks, "sqlmodel"})
    for module, stack in (("asyncpg", "asyncpg"), ("psycopg", "psycopg"), ("psycopg_pool", "psycopg")):
        if scan.imports[module] and stack not in stacks:
            stacks.append(stack)
    drivers = sorted({m[1] for url in scan.db_urls if (m := re.match(r"^(\w+(?:\+\w+)?)://", url))})
    return {
        "stack": stacks or ["none"],
        "created": scan.db_created,
        "url_schemes": drivers,
        "models": dict(scan.db_models),
        "packages": sorted(
            p
            for p in versions
            if p in {"asyncpg", "psycopg", "psycopg2", "psycopg2-binary", "sqlalchemy", "sqlmodel", "databases"}
        ),
    }


def auth_section(scan: Scan, versions: dict[str, Any]) -> dict[str, Any]:
    used = Counter(scan.depends)
    for alias in scan.aliases:  # a parameter annotated with the alias uses its dependency
        used[alias["dependency"].split(".")[-1]] += scan.annotations[alias["name"]]
    dependencies = []
    for function in scan.functions:
        signals = function.features - {"jwks"}
        if function.name not in used and not function.name.startswith("get_current"):
            continue
        if not (USER_NAME.search(function.name) or signals):
            continue
        if function.creates_app or re.search(r"(^|_)(db|database|session_?local|engine)($|_)", function.name):
            if not signals:
                continue
        dependencies.append(
            {
                "name": function.name,
                "module": function.module,
                "where": function.where,
                "returns": function.returns,
                "uses": used[function.name],
                "does": sorted(function.features),
            }
        )
    for dep in scan.fastapi_users_deps:
        dependencies.append({**dep, "returns": "the fastapi-users user model", "uses": used[dep["name"]], "does": []})
    dependencies.sort(key=lambda d: (-d["uses"], "current" not in d["name"], d["where"]))
    patterns = []
    if dependencies:
        patterns.append("user-dependency")
    features = set().union(*(f.features for f in scan.functions)) if scan.functions else set()
    if scan.imports["jwt"] or "pyjwt" in versions:
        patterns.append("pyjwt")
    if scan.imports["jose"] or "python-jose" in versions:
        patterns.append("python-jose")
    if scan.imports["authlib"] or "authlib" in versions:
        patterns.append("authlib")
    jwks_env = [f"{name} ({where[0]})" for name, where in scan.env_reads.items() if "JWKS" in name.upper()]
    jwks_env += [f"{name} ({file})" for file, names in scan.env_files.items() for name in names if "JWKS" in name]
    if scan.jwks_urls or jwks_env:
        patterns.append("jwks")
    if scan.better_auth:
        patterns.append("better-auth")
    cookie_auth = [n for n in scan.cookies if n != "?"] or list(scan.cookies)
    if scan.session_middleware or cookie_auth or "reads request.session" in features:
        patterns.append("session-cookie")
    if scan.imports["fastapi_users"] or "fastapi-users" in versions:
        patterns.append("fastapi-users")
    if scan.user_headers:
        patterns.append("user-header")
    return {
        "patterns": patterns or ["none"],
        "dependencies": dependencies,
        "annotated_aliases": scan.aliases,
        "schemes": scan.auth_schemes,
        "jwks": sorted(set(scan.jwks_urls)) + jwks_env,
        "cookies": {name: where[:3] for name, where in scan.cookies.items()},
        "session_middleware": scan.session_middleware,
        "better_auth": scan.better_auth[:5],
        "user_headers": {name: where[:3] for name, where in scan.user_headers.items()},
    }


def advice(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    fastapi, chatkit, db, auth = report["fastapi"], report["chatkit"], report["database"], report["auth"]
    if chatkit["servers"] or chatkit["routes"]:
        where = ", ".join(f"{s['name']} ({s['where']})" for s in chatkit["servers"]) or chatkit["routes"][0]["where"]
        lines.append(
            f"ChatKit is already here: {where}. Fix and extend it (SKILL.md 'Fixing an existing server') "
            "instead of adding a second server."
        )
        for store in chatkit["stores"]:
            lines.append(
                f"Run the Store contract suite against {store['name']} ({store['where']}): "
                "references/store-implementations.md."
            )
    if chatkit["routes"]:
        pass  # the endpoint exists: no router to add
    elif not fastapi["apps"]:
        lines.append(
            "No FastAPI app found: copy a level folder as the app (examples/level1: no model, one app.py; "
            "examples/level2: an agent; examples/level3: users and PostgreSQL)."
        )
    else:
        app = fastapi["apps"][0]
        included = [i for i in fastapi["include_router"] if i["module"] == app["module"]]
        place = f"next to its include_router calls ({included[0]['where']})" if included else f"({app['where']})"
        made = f" (made by {app['factory']}())" if app["factory"] else ""
        lines.append(
            f"Include the ChatKit router in `{app['name']}`{made} in {app['module']} {place}; "
            f"run it as `uvicorn {app['uvicorn']}` in {app['run_from'].rstrip('/')}/."
        )
        if len(fastapi["apps"]) > 1:
            lines.append(f"{len(fastapi['apps'])} FastAPI apps: ask which one serves the frontend.")
    for lifespan in [x for x in fastapi["lifespans"] if x["of"].startswith("app ")][:1]:
        lines.append(
            f"Keep the app's lifespan {lifespan['name']} ({lifespan['where'] or '?'}): an included router's "
            "lifespan runs inside it; open nothing twice."
        )
    if auth["dependencies"]:
        dep = auth["dependencies"][0]
        returns = f" (returns {dep['returns']})" if dep["returns"] else ""
        lines.append(
            f"Reuse the auth dependency {dep['name']} from {dep['module']} ({dep['where']}){returns}: the /chatkit "
            "route takes it and builds the ChatKit context from the user it returns; add no second login. "
            "Level 3's current_user= wants a user id (str) or a RequestContext: wrap a dependency that returns "
            "a User or a dict of claims, and map its tenant or team claim too "
            "(references/production.md#into-an-app-you-already-have)."
        )
    if "fastapi-users" in auth["patterns"]:
        lines.append("fastapi-users: its current_user(...) dependency returns the user model; use str(user.id).")
    if "better-auth" in auth["patterns"]:
        lines.append(
            "Better Auth: verify its JWT with JWT_JWKS_URL=<baseURL>/api/auth/jwks and set JWT_AUDIENCE and "
            "JWT_ISSUER to its baseURL; the user id is `sub`; its session cookie is not a JWT "
            "(references/production.md#better-auth)."
        )
    elif "jwks" in auth["patterns"] and auth["jwks"]:
        lines.append(f"Tokens are checked against a JWKS ({auth['jwks'][0]}): Level 3's JWT_JWKS_URL takes that URL.")
    elif "session-cookie" in auth["patterns"] and not auth["dependencies"]:
        names = ", ".join(n for n in auth["cookies"] if n != "?") or "a session"
        lines.append(f"Users log in with a session cookie ({names}): resolve the user from it in one dependency.")
    if "session-cookie" in auth["patterns"]:
        lines.append("Cookie auth: the ChatKit frontend must send credentials, and CORS must list origins explicitly.")
    for header, where in list(auth["user_headers"].items())[:1]:
        lines.append(
            f"Users are named by the {header} header ({where[0]}): every ChatKit read and write must be scoped by "
            "it. Both levels' add_chatkit(app, current_user=...) take a dependency that returns it (Level 2 "
            "keeps each user's threads apart in memory). "
            "Refuse a request without it (401); never fall back to a shared 'anonymous' user."
        )
    if auth["patterns"] == ["none"]:
        lines.append(
            "No auth found: Level 1 or 2 (no users; Level 1 when no model should answer), or Level 3 with its own "
            "JWT auth (references/production.md)."
        )
    created = [
        c for c in db["created"] if c["kind"] in ("pool", "async pool", "AsyncEngine", "Engine", "Engine (sync)")
    ]
    for handle in created[:2]:
        name = handle["target"] or (f"returned by {handle['function']}()" if handle["function"] else handle["call"])
        inside = f" in {handle['function']}()" if handle["function"] and handle["target"] else ""
        if handle["stack"] == "asyncpg":
            tip = "pass it to Level 3's PostgresStore; don't open a second pool"
        elif handle["stack"] == "sqlalchemy-async":
            tip = "build the ChatKit store on this AsyncEngine; don't create a second engine"
            others = [u for u in db["url_schemes"] if not u.endswith("+asyncpg")]
            if others:
                tip += f" (its URLs use {', '.join(others)}; a PostgreSQL store wants postgresql+asyncpg://)"
        elif handle["kind"] in ("async pool", "async connection"):
            tip = "the Level 3 store speaks asyncpg: open an asyncpg pool on the same database, or port its SQL"
            tip += " (references/store-implementations.md)"
        else:
            lines.append(
                f"The app's {handle['stack']} {handle['kind']} {name} ({handle['where']}) is synchronous: the ChatKit "
                "store needs async access, an AsyncEngine or an asyncpg pool on the same database URL."
            )
            continue
        lines.append(f"Reuse the {handle['stack']} {handle['kind']} {name}{inside} ({handle['where']}): {tip}.")
    if db["stack"] == ["none"]:
        lines.append("No database: Level 2 keeps threads in memory; Level 3 needs PostgreSQL (DATABASE_URL).")
    env_names = set(report["env"]["read_in_code"]) | {n for names in report["env"]["files"].values() for n in names}
    db_names = sorted(n for n in env_names if (DB_URL_NAME.search(n) and "URL" in n) or n.endswith("DSN"))
    if db_names and "DATABASE_URL" not in db_names:
        lines.append(f"The database URL is in {', '.join(db_names)}: read that, not a new DATABASE_URL.")
    lines += [f"Versions: {w}." for w in report["versions"]["warnings"]]
    return lines


# Output --------------------------------------------------------------------------------------------
def summary(report: dict[str, Any]) -> str:
    out = [f"{report['root']}: {report['python_files']} Python files"]

    def row(label: str, items: list[str]) -> None:
        out.append(f"{label:<10}{items[0] if items else 'none'}")
        out.extend(f"{'':<10}{item}" for item in items[1:8])
        if len(items) > 8:
            out.append(f"{'':<10}... {len(items) - 8} more (--json lists all)")

    fastapi, chatkit, db, auth = report["fastapi"], report["chatkit"], report["database"], report["auth"]
    row("App", [f"{a['name']} ({a['where']}): uvicorn {a['uvicorn']} (from {a['run_from']})" for a in fastapi["apps"]])
    row("Lifespan", [f"{x['name']} of {x['of']} ({x['where'] or '?'})" for x in fastapi["lifespans"]])
    included = [
        f"{i['on']}.include_router({i['router']}) at {i['prefix'] or '/'} ({i['where']})"
        for i in fastapi["include_router"]
    ]
    row("Routers", included or [f"{r['name']} in {r['module']} ({r['where']})" for r in fastapi["routers"]])
    row(
        "ChatKit",
        [f"server {s['name']} ({s['where']})" for s in chatkit["servers"]]
        + [f"store {s['name']} ({s['where']})" for s in chatkit["stores"]]
        + [f"{r['method']} {r['path']} ({r['where']})" for r in chatkit["routes"]],
    )
    created = [f"{c['stack']} {c['kind']} {c['target'] or ''} ({c['where']})".replace("  ", " ") for c in db["created"]]
    row("Database", [", ".join(db["stack"]), *created])
    deps = [f"dependency {d['name']} ({d['where']}) -> {d['returns'] or '?'}" for d in auth["dependencies"]]
    row("Auth", [", ".join(auth["patterns"]), *deps])
    env = report["env"]
    reads = ", ".join(list(env["read_in_code"])[:12])
    files = [f"{file}: {', '.join(names)}" for file, names in env["files"].items()]
    row("Env", files + ([f"read in code: {reads}"] if reads else []))
    pins = [
        f"{name} {e['spec'] or '(any)'} ({e['file']})"
        for name, entries in report["versions"]["packages"].items()
        if name in CHECKED_PACKAGES
        for e in entries
    ]
    row("Versions", pins or ["openai-chatkit and openai-agents not listed yet"])
    if report["unparsed"]:
        row("Skipped", report["unparsed"])
    out.append("Advice")
    out += [f"  - {line}" for line in report["advice"]]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, nargs="?", default=Path("."), help="the project's folder (default: .)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args(argv)
    if not args.path.is_dir():
        print(f"not a directory: {args.path}", file=sys.stderr)
        return 2
    report = detect(args.path)
    print(json.dumps(report, indent=2) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
