"""The database's migrations: each one whole or not at all, and a start after a failure recovers."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from localopen.core.store.db import MIGRATIONS, StorageError, connect, salvage, storage_error


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_fresh_database_gets_every_migration(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    connect(db).close()
    assert _version(db) == len(MIGRATIONS)
    assert {"bench_results", "models", "conversations", "messages", "load_failures"} <= _tables(db)


def test_a_migration_that_fails_half_way_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    conn = connect(db)
    with conn:
        conn.execute("INSERT INTO load_failures VALUES ('m.gguf', 'machine', 'too big', 'now')")
    conn.close()
    broken = [*MIGRATIONS, "CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);"]
    with pytest.raises(StorageError, match=f"still at schema {len(MIGRATIONS)}"):
        connect(db, broken)
    assert _version(db) == len(MIGRATIONS)
    assert "half_done" not in _tables(db)  # the first statement was rolled back with the failure
    # The next start (with a working migration) finishes, and the data is all there.
    fixed = [*MIGRATIONS, "CREATE TABLE IF NOT EXISTS half_done (x);"]
    conn = connect(db, fixed)
    assert _version(db) == len(fixed) and "half_done" in _tables(db)
    assert conn.execute("SELECT message FROM load_failures").fetchone()[0] == "too big"


def test_a_database_left_half_upgraded_by_an_older_version_is_finished(tmp_path: Path) -> None:
    """Older versions ran migrations outside a transaction: tables of migration 4 could exist while
    the schema still said 3. The next start must finish the upgrade, not fail on every start."""
    db = tmp_path / "db.sqlite3"
    connect(db, MIGRATIONS[:3]).close()
    with sqlite3.connect(db) as conn:
        conn.executescript(MIGRATIONS[3])  # applied, but the version was never bumped
    assert _version(db) == 3
    connect(db).close()
    assert _version(db) == len(MIGRATIONS)


def test_a_database_from_a_newer_version_says_what_to_do(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    connect(db, [*MIGRATIONS, "CREATE TABLE future (x);"]).close()
    with pytest.raises(StorageError, match="newer localopen"):
        connect(db)


def test_a_damaged_database_is_kept_and_what_can_be_read_is_saved(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    db.write_bytes(b"this is not SQLite" * 500)  # 8 KB of garbage
    with pytest.raises(StorageError, match="repair-db") as damaged:
        connect(db)
    assert damaged.value.damaged
    kept, saved = salvage(db)
    assert kept.read_bytes() == b"this is not SQLite" * 500 and saved == 0  # nothing deleted, nothing readable
    assert _version(db) == len(MIGRATIONS)  # a new, working database


def test_salvage_copies_every_row_that_can_still_be_read(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    conn = connect(db)
    with conn:
        conn.execute(
            "INSERT INTO file_hashes(path, size, mtime_ns, sha256) VALUES (?, 1, 2, 'abc'), (?, 3, 4, 'def')",
            ("/m/a.gguf", "/m/b.gguf"),
        )
    conn.close()
    kept, saved = salvage(db)
    assert saved == 2 and kept.exists()
    with sqlite3.connect(db) as fresh:
        assert fresh.execute("SELECT count(*) FROM file_hashes").fetchone()[0] == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_storage_is_said_as_read_only_not_as_damage(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="read-only") as refused:
            connect(folder / "db.sqlite3")
        assert not refused.value.damaged and "damaged" not in str(refused.value)
    finally:
        folder.chmod(0o700)


def test_faults_are_told_apart_in_words(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    full = storage_error(db, sqlite3.OperationalError("database or disk is full"))
    assert "is full" in str(full) and not full.damaged
    read_only = storage_error(db, sqlite3.OperationalError("attempt to write a readonly database"))
    assert "read-only" in str(read_only) and "move" not in str(read_only)
    assert storage_error(db, sqlite3.DatabaseError("database disk image is malformed")).damaged


def test_repair_db_from_the_command_line(tmp_path: Path) -> None:
    import subprocess

    from cli_helpers import exe

    home = tmp_path / "home"
    env = {**os.environ, "LOCALOPEN_HOME": str(home)}
    assert subprocess.run([*exe(), "models"], env=env, capture_output=True).returncode == 0
    database = next(home.rglob("*.sqlite3"))
    database.write_bytes(b"\0garbage" * 1000)
    for side in database.parent.glob(database.name + "-*"):
        side.unlink()
    broken = subprocess.run([*exe(), "models"], env=env, capture_output=True, text=True)
    assert broken.returncode == 1 and "repair-db" in broken.stderr and "unexpected" not in broken.stderr
    repaired = subprocess.run([*exe(), "repair-db"], env=env, capture_output=True, text=True)
    assert repaired.returncode == 0 and "kept as" in repaired.stdout
    assert subprocess.run([*exe(), "models"], env=env, capture_output=True).returncode == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux) to fill the disk")
def test_a_log_that_cannot_be_written_is_said_once_never_as_tracebacks(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import logging

    from localopen.core.logs import setup_logging
    from localopen.core.paths import AppPaths

    paths = AppPaths(data=tmp_path / "data", cache=tmp_path / "cache", logs=tmp_path / "logs", config=tmp_path)
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        setup_logging(paths, "full.log")
        handler = next(h for h in root.handlers if getattr(h, "baseFilename", "").endswith("full.log"))
        handler.stream = open("/dev/full", "w")  # noqa: SIM115 - every write fails: disk full
        for n in range(40):
            logging.getLogger("localopen.test").warning("message %s", n)
        err = capfd.readouterr().err
        assert err.count("cannot write its log") == 1 and "Logging error" not in err and "Traceback" not in err
    finally:
        root.handlers[:] = saved


def test_damaged_pages_behind_a_sound_first_page_are_found_at_start(tmp_path: Path) -> None:
    """The schema opens, the tables' pages are garbage (a bad sector): said at start with the
    repair, not as an unexpected error in the middle of a task; repair-db then finds it."""
    import subprocess

    from cli_helpers import exe

    home = tmp_path / "home"
    env = {**os.environ, "LOCALOPEN_HOME": str(home)}
    assert subprocess.run([*exe(), "models"], env=env, capture_output=True).returncode == 0
    database = next(home.rglob("*.sqlite3"))
    with sqlite3.connect(database) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    data[page:] = b"\xa5" * (len(data) - page)
    database.write_bytes(bytes(data))
    with sqlite3.connect(database) as conn:  # the first page still opens
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    broken = subprocess.run([*exe(), "models"], env=env, capture_output=True, text=True)
    assert broken.returncode == 1 and "damaged" in broken.stderr and "repair-db" in broken.stderr
    assert "unexpected" not in broken.stderr
    repaired = subprocess.run([*exe(), "repair-db"], env=env, capture_output=True, text=True)
    assert repaired.returncode == 0 and "kept as" in repaired.stdout
    assert subprocess.run([*exe(), "models"], env=env, capture_output=True).returncode == 0


def test_a_models_folder_is_walked_safely(tmp_path: Path) -> None:
    """Links that loop and links to nothing are passed over, a linked folder is searched once, the
    system's own folders never; a folder too large to be a models folder is refused in words."""
    from localopen.core.store import folders

    models = tmp_path / "models"
    (models / "org" / "repo").mkdir(parents=True)
    (models / "org" / "repo" / "a.gguf").write_bytes(b"GGUF")
    other = tmp_path / "other-disk"
    other.mkdir()
    (other / "b.gguf").write_bytes(b"GGUF")
    (models / "linked").symlink_to(other)
    (models / "loop").symlink_to(models)  # a link back to the folder itself
    (models / "gone.gguf").symlink_to(tmp_path / "nowhere.gguf")
    found = sorted(p.name for p in folders.files_under(models) if p.suffix == ".gguf")
    assert found == ["a.gguf", "b.gguf", "gone.gguf"]  # each real folder once; the dangling link is named only
    for n in range(8):
        (tmp_path / "big" / f"d{n}").mkdir(parents=True)
    with pytest.raises(folders.FolderTooLarge, match="too large to search for models"):
        list(folders.files_under(tmp_path / "big", max_folders=5))
    assert folders.system_folder(Path("/")) and folders.system_folder(Path("/proc"))
    assert not folders.system_folder(models)


def test_a_models_folder_set_to_the_disks_root_is_refused_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_helpers import run
    from localopen.core import paths as paths_mod
    from localopen.core.store import folders

    refused = run("settings", "models_dir", "/")
    assert refused.returncode == 1 and "system's own folder" in refused.stderr
    for n in range(8):
        (tmp_path / "big" / f"d{n}").mkdir(parents=True)
    paths_mod.save_settings(paths_mod.app_paths(), {"models_dir": str(tmp_path / "big")})
    monkeypatch.setattr(folders, "MAX_FOLDERS", 5)
    from localopen.app.context import AppContext
    from localopen.app.models.library import scan

    with pytest.raises(folders.FolderTooLarge, match="Choose the folder your models are in"):
        scan(AppContext())
