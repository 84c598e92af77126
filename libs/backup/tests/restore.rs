//! Backups and restores on real databases (SQLite, and PostgreSQL when PORTICO_TEST_PG_URL is
//! set) and a real directory target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::{QueryableByName, RunQueryDsl, connection::SimpleConnection, sql_types::BigInt};
use portico_backup::{BackupError, Component, Plan, Retention, Target};
use portico_runtime::db::{Db, DbError, is_postgres};
use portico_testkit::{Backend, TestDb, each_backend};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn notes(db: &Db) -> i64 {
    db.run(|c| {
        Ok::<_, DbError>(
            diesel::sql_query("SELECT count(*) AS n FROM notes")
                .get_result::<Count>(c)?
                .n,
        )
    })
    .await
    .unwrap()
}

async fn add_notes(db: &Db, n: usize) {
    db.write(move |c| {
        for i in 0..n {
            c.batch_execute(&format!("INSERT INTO notes (body) VALUES ('note {i}')"))?;
        }
        Ok::<_, DbError>(())
    })
    .await
    .unwrap();
}

/// Two components, each a database migrated with the runtime's schema plus a table of notes.
struct Deployment {
    dbs: Vec<TestDb>,
    media_dir: std::path::PathBuf,
    backups_dir: std::path::PathBuf,
}

impl Deployment {
    async fn new(backend: Backend) -> Deployment {
        let dbs = vec![TestDb::new(backend, "bk_alpha"), TestDb::new(backend, "bk_omega")];
        for t in &dbs {
            let db = Db::connect(&t.url, portico_runtime::outbox::MIGRATIONS, 2)
                .await
                .unwrap();
            let ddl = if is_postgres(&t.url) {
                "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
            } else {
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"
            };
            db.run(move |c| c.batch_execute(ddl).map_err(DbError::from))
                .await
                .unwrap();
            add_notes(&db, 3).await;
            db.close();
        }
        let root = std::env::temp_dir().join(format!("portico-backup-test-{}", uuid()));
        let media_dir = root.join("media");
        std::fs::create_dir_all(media_dir.join("u/1")).unwrap();
        std::fs::write(media_dir.join("u/1/a.webp"), b"first object").unwrap();
        std::fs::write(media_dir.join("u/1/b.jpg"), b"second object").unwrap();
        Deployment {
            dbs,
            media_dir,
            backups_dir: root.join("backups"),
        }
    }

    fn plan(&self, known: Vec<String>) -> Plan {
        Plan {
            components: ["alpha", "omega"]
                .iter()
                .zip(&self.dbs)
                .map(|(name, t)| Component {
                    name: name.to_string(),
                    url: t.url.clone(),
                    known_migrations: known.clone(),
                })
                .collect(),
            media: Some(Target::open(self.media_dir.to_str().unwrap()).unwrap()),
        }
    }

    fn known(&self) -> Vec<String> {
        portico_runtime::outbox::MIGRATIONS
            .versions(is_postgres(&self.dbs[0].url))
            .unwrap()
    }

    fn target(&self) -> Target {
        Target::open(self.backups_dir.to_str().unwrap()).unwrap()
    }

    async fn db(&self, i: usize) -> Db {
        Db::connect(&self.dbs[i].url, portico_runtime::outbox::MIGRATIONS, 2)
            .await
            .unwrap()
    }

    async fn counts(&self) -> (i64, i64) {
        let (a, b) = (self.db(0).await, self.db(1).await);
        let counts = (notes(&a).await, notes(&b).await);
        a.close();
        b.close();
        counts
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

const KEEP: Retention = Retention {
    keep: 7,
    max_age_days: 30,
};

each_backend!(a_backup_restores_every_database_and_object, |backend| {
    let d = Deployment::new(backend).await;
    let plan = d.plan(d.known());
    let target = d.target();
    let m = portico_backup::backup(&plan, &target, KEEP).await.unwrap();
    assert_eq!(m.databases.len(), 2);
    let expected_backend = if backend == Backend::Postgres {
        "postgresql"
    } else {
        "sqlite"
    };
    assert!(m.databases.iter().all(|e| e.backend == expected_backend && e.bytes > 0));
    assert_eq!(
        m.databases[0].migrations,
        d.known(),
        "{backend:?}: the schema level is recorded"
    );
    assert_eq!(m.objects.as_ref().map(|o| o.count), Some(2));

    // Everything changes after the backup: rows added, an object lost.
    let a = d.db(0).await;
    add_notes(&a, 5).await;
    a.close();
    std::fs::remove_file(d.media_dir.join("u/1/a.webp")).unwrap();
    assert_eq!(d.counts().await, (8, 3));

    let r = portico_backup::restore(&plan, &target, None).await.unwrap();
    assert_eq!(r.id, m.id);
    assert_eq!(r.objects_copied, 1);
    assert_eq!(d.counts().await, (3, 3), "{backend:?}: both databases are as they were");
    assert_eq!(std::fs::read(d.media_dir.join("u/1/a.webp")).unwrap(), b"first object");

    // A database that is gone entirely comes back too.
    if backend == Backend::Sqlite {
        let path = portico_runtime::db::sqlite_path(&d.dbs[1].url).unwrap().to_string();
        std::fs::remove_file(&path).unwrap();
    } else {
        let admin = std::env::var("PORTICO_TEST_PG_URL").unwrap();
        let name = d.dbs[1].url.rsplit('/').next().unwrap().to_string();
        let mut conn = <diesel::PgConnection as diesel::Connection>::establish(&admin).unwrap();
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .unwrap();
    }
    portico_backup::restore(&plan, &target, Some(&m.id)).await.unwrap();
    assert_eq!(d.counts().await, (3, 3), "{backend:?}");
});

each_backend!(a_damaged_or_newer_backup_is_refused_and_nothing_changes, |backend| {
    let d = Deployment::new(backend).await;
    let plan = d.plan(d.known());
    let target = d.target();
    let m = portico_backup::backup(&plan, &target, KEEP).await.unwrap();
    let a = d.db(0).await;
    add_notes(&a, 2).await;
    a.close();

    // A build that does not know every migration of the backup refuses it.
    let older = d.plan(d.known()[..1].to_vec());
    let e = portico_backup::restore(&older, &target, None).await.unwrap_err();
    assert!(
        matches!(&e, BackupError::Verify(m) if m.contains("newer Portico")),
        "{e}"
    );

    // One flipped byte in the second database's dump: refused before the first is touched.
    let dump = d.backups_dir.join("backups").join(&m.id).join(&m.databases[1].file);
    let mut bytes = std::fs::read(&dump).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&dump, &bytes).unwrap();
    let e = portico_backup::restore(&plan, &target, None).await.unwrap_err();
    assert!(matches!(&e, BackupError::Verify(m) if m.contains("omega")), "{e}");
    assert_eq!(d.counts().await, (5, 3), "{backend:?}: nothing was restored");

    // A manifest edited after the fact does not match its checksum.
    let manifest = d.backups_dir.join("backups").join(&m.id).join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"omega\"", "\"other\"");
    std::fs::write(&manifest, text).unwrap();
    let e = portico_backup::restore(&plan, &target, Some(&m.id)).await.unwrap_err();
    assert!(e.to_string().contains("manifest"), "{e}");
    let listed = portico_backup::list(&target).await.unwrap();
    assert!(listed.iter().all(|(_, m)| m.is_err()));
    assert!(
        portico_backup::restore(&plan, &target, None).await.is_err(),
        "no complete backup is left"
    );
    assert_eq!(d.counts().await, (5, 3));
});

#[tokio::test]
async fn objects_are_copied_once_and_retention_keeps_the_newest() {
    let d = Deployment::new(Backend::Sqlite).await;
    let plan = d.plan(d.known());
    let target = d.target();
    let keep_two = Retention {
        keep: 2,
        max_age_days: 30,
    };
    let mut ids = Vec::new();
    for i in 0..3 {
        std::fs::write(d.media_dir.join(format!("u/1/new-{i}.webp")), format!("object {i}")).unwrap();
        ids.push(portico_backup::backup(&plan, &target, keep_two).await.unwrap().id);
        // Ids are per second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let listed: Vec<String> = portico_backup::list(&target)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(listed, ids[1..].to_vec(), "the oldest went");
    let stored = |dir: &std::path::Path| {
        walk(dir)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/objects/"))
            .count()
    };
    assert_eq!(stored(&d.backups_dir), 5, "each object once: a, b and three new ones");
    // An object deleted from media and out of every kept backup goes from the target too.
    std::fs::remove_file(d.media_dir.join("u/1/new-0.webp")).unwrap();
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        portico_backup::backup(&plan, &target, keep_two).await.unwrap();
    }
    assert_eq!(stored(&d.backups_dir), 4);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
