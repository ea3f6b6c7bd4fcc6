use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::Connection;

use super::BackupError;
use super::postgres::{advice, find_in, without_password};
use super::sqlite::{backup, backup_waiting};

/// A WAL database as the collector keeps it, with a table `t` of rows 1..=n.
fn database(path: &Path, n: i64) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)")
        .unwrap();
    c.execute(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?1) \
         INSERT INTO t SELECT i, zeroblob(1000) FROM s",
        [n],
    )
    .unwrap();
    c
}

fn rows(path: &Path) -> (i64, i64, String) {
    let c = Connection::open(path).unwrap();
    let (count, max) = c
        .query_row("SELECT count(*), coalesce(max(n), 0) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    (count, max, check)
}

/// While another connection commits a row at a time, the copy holds every row committed
/// before it began and is a prefix (no row without the ones before it), passes SQLite's
/// integrity check, and is mode 0600.
#[test]
fn a_copy_taken_while_another_connection_writes_is_whole_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    drop(database(&db, 20_000));
    let committed = Arc::new(AtomicI64::new(20_000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = Connection::open(&db).unwrap();
            // A commit without an fsync each: many commits during the copy.
            c.pragma_update(None, "synchronous", "NORMAL").unwrap();
            let mut n = committed.load(Ordering::SeqCst);
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                c.execute("INSERT INTO t VALUES (?1, zeroblob(1000))", [n])
                    .unwrap();
                committed.store(n, Ordering::SeqCst);
            }
        })
    };
    while committed.load(Ordering::SeqCst) < 20_100 {
        std::thread::yield_now();
    }
    let before = committed.load(Ordering::SeqCst);
    let to = dir.path().join("backup.db");
    let done = backup(&db, &to, false).unwrap();
    let after = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let (count, max, check) = rows(&to);
    assert_eq!(check, "ok");
    assert!(
        max >= before && max <= after,
        "{before} <= {max} <= {after}"
    );
    assert_eq!(count, max, "a prefix of the rows, none missing");
    let meta = std::fs::metadata(&to).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(done.bytes, meta.len());
    // No partial file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn an_existing_file_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    drop(database(&db, 10));
    let to = dir.path().join("backup.db");
    std::fs::write(&to, "keep me").unwrap();
    let e = backup(&db, &to, false).unwrap_err();
    assert!(matches!(e, BackupError::Exists { .. }), "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read_to_string(&to).unwrap(), "keep me");
    backup(&db, &to, true).unwrap();
    assert_eq!(rows(&to).0, 10);
    // The database itself is never the destination, even when forced.
    let e = backup(&db, &db, true).unwrap_err();
    assert!(matches!(e, BackupError::IsTheDatabase { .. }), "{e}");
    assert_eq!(rows(&db).0, 10);
}

#[test]
fn what_cannot_be_read_or_written_is_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    let to = dir.path().join("backup.db");
    let e = backup(&db, &to, false).unwrap_err();
    assert!(matches!(e, BackupError::NoDatabase { .. }), "{e}");
    assert!(!to.exists());

    std::fs::write(&db, vec![b'x'; 8192]).unwrap();
    let e = backup(&db, &to, false).unwrap_err();
    assert!(matches!(e, BackupError::NotADatabase { .. }), "{e}");
    assert!(!to.exists());

    std::fs::remove_file(&db).unwrap();
    drop(database(&db, 1));
    let e = backup(&db, &dir.path().join("no/such/folder/b.db"), false).unwrap_err();
    assert!(
        e.to_string().starts_with("cannot create a file in ") && e.to_string().contains("folder"),
        "{e}"
    );
}

/// A connection that holds the database exclusively: the copy waits its busy time, then says
/// so and writes nothing.
#[test]
fn a_database_held_exclusively_is_reported_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    let holder = database(&db, 10);
    holder
        .pragma_update(None, "locking_mode", "EXCLUSIVE")
        .unwrap();
    holder
        .execute("INSERT INTO t VALUES (11, NULL)", [])
        .unwrap();
    let to = dir.path().join("backup.db");
    let e = backup_waiting(&db, &to, false, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(e, BackupError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("try again"), "{e}");
    assert!(!to.exists());
    drop(holder);
    backup(&db, &to, false).unwrap();
    assert_eq!(rows(&to).0, 11);
}

/// A destination on a full disk (a 1 MiB tmpfs; skipped where this test may not mount one):
/// the error says so and no file is left.
#[test]
fn a_full_disk_is_reported_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    drop(database(&db, 4_000));
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    let to = small.join("backup.db");
    let e = backup(&db, &to, false);
    let left: Vec<_> = std::fs::read_dir(&small).unwrap().collect();
    let unmounted = std::process::Command::new("umount").arg(&small).status();
    let e = e.unwrap_err();
    assert!(matches!(e, BackupError::DiskFull { .. }), "{e}");
    assert!(e.to_string().contains("is full"), "{e}");
    assert!(left.is_empty(), "{left:?}");
    assert!(unmounted.unwrap().success());
}

#[test]
fn the_pg_dump_advice_keeps_the_user_and_never_the_password() {
    let url =
        "postgres://lookout:s3cr3t-pass@db.internal:5432/lookout?sslmode=require&sslpassword=k3y";
    let a = advice(url, Path::new("/backups/it's.dump"), None);
    let text = a.to_string();
    assert!(!text.contains("s3cr3t") && !text.contains("k3y"), "{text}");
    assert_eq!(
        a.dump,
        "pg_dump --format=custom --no-owner --file='/backups/it'\\''s.dump' \
         'postgres://lookout@db.internal:5432/lookout?sslmode=require&sslpassword=***'"
    );
    assert!(a.restore.starts_with("pg_restore "), "{}", a.restore);
    assert!(text.contains("pg_dump is not on PATH"), "{text}");
    assert_eq!(
        without_password("postgresql://db/lookout"),
        "postgresql://db/lookout"
    );
    assert_eq!(
        without_password("postgres://u@h/d?password=p"),
        "postgres://u@h/d?password=***"
    );
}

#[test]
fn pg_dump_is_found_only_as_an_executable_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(a.join("pg_dump")).unwrap();
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("pg_dump"), "#!/bin/sh\n").unwrap();
    let path = std::env::join_paths([&a, &b]).unwrap();
    assert_eq!(
        find_in(&path, "pg_dump"),
        None,
        "a folder, a file not executable"
    );
    std::fs::set_permissions(b.join("pg_dump"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(find_in(&path, "pg_dump"), Some(b.join("pg_dump")));
}

/// A stopped collector's database (no `-wal`, no `-shm`) is left that way: files the backup's
/// user made there could keep the collector's user from opening it.
#[test]
fn a_stopped_database_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lookout.db");
    drop(database(&db, 100));
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(), ["lookout.db"]);
    backup(&db, &dir.path().join("copy.db"), false).unwrap();
    assert_eq!(names(), ["copy.db", "lookout.db"]);
}
