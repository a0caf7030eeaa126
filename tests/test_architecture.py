"""The layers of docs/architecture.md, checked on the source: accounts only through the
directory port, workflows only through each feature's door modules, activities only through
its steps modules, no SQL above them, no feature module over 500 lines without a reason."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCT = [
    path
    for folder in ("reclaim", "api", "activities", "workflows")
    for path in sorted((REPO / folder).rglob("*.py"))
] + [REPO / "worker.py"]


def _imports(path: Path) -> set[str]:
    """Every module a file imports (`from a.b import c` counts as a.b and a.b.c)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _attributes(path: Path) -> set[str]:
    """Every `x.name` a file uses, but the standard library's `signal.signal`."""
    return {
        node.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute)
        and not (isinstance(node.value, ast.Name) and node.value.id == "signal")
    }


def _where(paths: list[Path], test: object) -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in paths if test(p))  # type: ignore[operator]


def test_only_the_sql_directory_and_the_migrations_import_the_account_tables():
    importers = _where(PRODUCT, lambda p: "reclaim.directory.tables" in _imports(p))

    assert importers == [
        "reclaim/directory/sql.py",
        "reclaim/directory/sql_factors.py",  # its TOTP and recovery codes, likewise
        "reclaim/directory/sql_passkeys.py",  # the SQL directory's passkeys, in its transaction
        "reclaim/directory/sql_status.py",  # its account status and record, likewise
        "reclaim/store/migrations/__init__.py",
    ]


def test_only_the_outside_directories_and_the_migrations_import_the_account_links():
    importers = _where(PRODUCT, lambda p: "reclaim.directory.links" in _imports(p))

    assert importers == [
        "reclaim/directory/__init__.py",  # hands each outside directory its links
        "reclaim/directory/http.py",
        "reclaim/directory/ldap.py",
        "reclaim/store/migrations/__init__.py",
    ]


# Each feature's modules by who calls them, in one place. A feature's door modules are what
# routes, pages, the console, the CLI and `Services` call for a case: the only ones that start,
# update, signal or query its workflows. Its queue modules list and count its workflows from
# visibility (a door may too). Its steps modules are what its activities call. Lifecycle is
# one service module, its door and its steps (403 lines: split it when it grows).
DOORS = {
    "lifecycle": ["reclaim/lifecycle/service.py"],
    "recovery": [
        "reclaim/recovery/cases.py",
        "reclaim/recovery/door.py",
        "reclaim/recovery/oversight.py",
    ],
    "support": ["reclaim/support/claims.py"],
}
QUEUES = {
    "support": ["reclaim/support/queue.py"],
}
STEPS = {
    "lifecycle": ["reclaim/lifecycle/service.py"],
    "recovery": ["reclaim/recovery/steps.py"],
    "support": ["reclaim/support/steps.py"],
}
# The client's interceptor: passes the doors' own calls on, timeouts cut to the request's
# deadline; it makes none of its own.
INTERCEPTOR = "reclaim/temporal/deadline.py"


def _modules(*by_feature: dict[str, list[str]]) -> list[str]:
    return sorted({path for modules in by_feature for paths in modules.values() for path in paths})


def test_the_feature_modules_named_here_exist():
    for path in _modules(DOORS, QUEUES, STEPS):
        assert (REPO / path).is_file(), path


def test_only_door_modules_start_signal_update_or_query_workflows():
    calls = {"start_workflow", "get_workflow_handle", "execute_update", "signal", "query"}
    callers = _where(
        [p for p in PRODUCT if not p.is_relative_to(REPO / "workflows")],
        lambda p: _attributes(p) & calls,
    )

    assert callers == sorted([*_modules(DOORS), INTERCEPTOR])


def test_only_door_and_queue_modules_list_or_count_workflows():
    calls = {"list_workflows", "count_workflows"}
    callers = _where(
        [p for p in PRODUCT if not p.is_relative_to(REPO / "workflows")],
        lambda p: _attributes(p) & calls,
    )

    allowed = [
        *_modules(DOORS, QUEUES),
        INTERCEPTOR,
        "reclaim/services.py",  # every kind of case, for operators (`reclaim cases list`)
        # the running cases' histories, replayed read-only (`reclaim workflows check-replay`)
        "reclaim/temporal/replay_check.py",
    ]
    assert set(callers) <= set(allowed), sorted(set(callers) - set(allowed))


def test_activities_call_only_a_features_steps_modules():
    """Of a feature's package an activity imports its contracts and its steps modules; the
    doors, queues and the rest are for the routes, pages, console and CLI."""
    features = tuple(f"reclaim.{feature}." for feature in DOORS)
    steps = {path.removesuffix(".py").replace("/", ".") for path in _modules(STEPS)}

    def outside_steps(module: str) -> bool:
        if not module.startswith(features) or module.split(".")[2] == "contracts":
            return False
        return ".".join(module.split(".")[:3]) not in steps

    imported = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if outside_steps(m))
        for p in sorted((REPO / "activities").glob("*.py"))
    }

    assert {path: found for path, found in imported.items() if found} == {}


MAX_LINES = 500
# Modules of a feature package allowed over MAX_LINES: {path: (limit, reason)}.
LONG_MODULES: dict[str, tuple[int, str]] = {}


def test_no_feature_module_is_over_500_lines():
    """A module of a feature package (reclaim/recovery, reclaim/support, reclaim/lifecycle)
    has at most MAX_LINES lines: past that, split it by who calls it (door, queue, steps...).

    To let one module grow past it, add it (or raise its limit) in LONG_MODULES with the
    reason, in the commit that makes it grow, and say why in the commit message; an entry
    whose module is back under MAX_LINES, or gone, fails here until it is removed."""
    found = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for feature in DOORS
        for p in sorted((REPO / "reclaim" / feature).rglob("*.py"))
    }

    too_long = {
        path: lines
        for path, lines in found.items()
        if lines > LONG_MODULES.get(path, (MAX_LINES, ""))[0]
    }
    stale = [path for path in LONG_MODULES if found.get(path, 0) <= MAX_LINES]
    assert too_long == {}
    assert stale == []


def test_routes_the_cli_and_activities_call_services_not_sql_or_temporal():
    above = [
        p
        for p in PRODUCT
        if p.is_relative_to(REPO / "api")
        or p.is_relative_to(REPO / "activities")
        or p.is_relative_to(REPO / "reclaim" / "cli")
    ]
    forbidden = (
        "sqlmodel",
        "temporalio.client",
        "reclaim.store.models",
        "reclaim.directory.sql",
        "reclaim.directory.ldap",
        "reclaim.directory.http",
        "reclaim.directory.links",
    )

    offenders = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if m.startswith(forbidden))
        for p in above
    }

    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_api_routes_read_no_credential_themselves():
    """Session, claim token, staff key or single sign-on token, codec caller, metrics token:
    each is a dependency of api/auth.py, which the routes declare."""
    routes = sorted((REPO / "api" / "routes").glob("*.py"))

    def reads_credentials(path: Path) -> bool:
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        return "hmac" in _imports(path) or bool(names & {"bearer", "authorization"})

    assert routes
    assert _where(routes, reads_credentials) == []


def test_workflows_import_only_contracts_and_case_texts():
    allowed = (
        "__future__",
        "asyncio",
        "collections.abc",
        "datetime",
        "hmac",
        "temporalio",
        "workflows.",
        "reclaim.contracts",
        "reclaim.recovery.contracts",
        "reclaim.support.contracts",
        "reclaim.lifecycle.contracts",
        "reclaim.temporal.search_attributes",
        "reclaim.temporal.case_text",
        "reclaim.temporal",
    )
    imported = {
        str(p.relative_to(REPO)): sorted(m for m in _imports(p) if not m.startswith(allowed))
        for p in sorted((REPO / "workflows").glob("*.py"))
    }

    assert {path: found for path, found in imported.items() if found} == {}


# What would make a workflow behave differently on replay: the clock, randomness, ids, files.
_NONDETERMINISTIC_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "open"}
_NONDETERMINISTIC_MODULES = {"random", "secrets", "uuid", "os", "time", "socket", "pathlib"}


def test_workflows_and_what_they_import_never_read_the_clock_randomness_or_files():
    """Production runs workflows outside Temporal's sandbox (RECLAIM_WORKFLOW_SANDBOX), so
    this is checked on the source, for workflows/ and every module of ours they import; the
    tests run them inside the sandbox too. `workflow.now()` is the clock they may read."""
    sources = sorted((REPO / "workflows").glob("*.py"))
    ours = {
        m
        for p in sources
        for m in _imports(p)
        if m.startswith("reclaim.") and (REPO / (m.replace(".", "/") + ".py")).exists()
    }
    sources += [REPO / (m.replace(".", "/") + ".py") for m in sorted(ours)]
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                owner = func.value if isinstance(func, ast.Attribute) else None
                is_workflow_clock = isinstance(owner, ast.Name) and owner.id == "workflow"
                if name in _NONDETERMINISTIC_CALLS and not is_workflow_clock:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(func)}()")
        found += [
            f"{path.relative_to(REPO)} imports {m}"
            for m in _imports(path)
            if m.split(".")[0] in _NONDETERMINISTIC_MODULES
        ]
    assert len(sources) > 4 and found == []
