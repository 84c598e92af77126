//! The monitoring application: projects and their keys, error events from Sentry SDKs and
//! native clients grouped and counted, and the groups' lifecycle.

use std::sync::Arc;

use portico_runtime::{
    cache::{Cache, CacheRegistry, CacheSettings},
    db::{Db, DbError, now_ms},
    outbox::Outbox,
};
use serde_json::{Value, json};

use crate::{
    alerts::AlertSettings,
    domain::{
        alert::Links,
        envelope,
        event::{ErrorEvent, Level},
        group::GroupStatus,
        grouping,
    },
    error::MonitoringError,
    store::{self, GroupFilter, GroupRow, NewEvent, ProjectRow, Recorded},
};

/// Longest project name.
const MAX_NAME: usize = 100;
/// Most groups per page.
pub const MAX_PAGE: u32 = 100;
/// Name of the project native events go to when they name none.
const DEFAULT_PROJECT: &str = "default";

/// What the application is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where clients reach Portico (the DSNs point there).
    pub public_url: String,
    /// How long event payloads are kept.
    pub retention_ms: i64,
    /// The evaluator, the probes, notices and links.
    pub alerts: AlertSettings,
}

/// A native error event (`POST /v1/monitoring/errors`).
#[derive(Clone, Debug, Default)]
pub struct NativeError {
    /// 0: the default project.
    pub project_id: i64,
    pub message: String,
    pub kind: String,
    pub frames: Vec<grouping::Frame>,
    pub fingerprint: Vec<String>,
    pub level: String,
    pub release: String,
    pub environment: String,
    pub tags: Vec<(String, String)>,
    pub user_id: String,
    pub occurred_at_ms: i64,
}

/// What an ingest did: the event's id and group (empty when there was no error event).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    pub event_id: String,
    pub group_id: String,
}

/// A page of groups with their affected-user counts.
#[derive(Clone, Debug)]
pub struct GroupPage {
    pub groups: Vec<(GroupRow, i64)>,
    pub next_cursor: Option<String>,
}

/// The monitoring application. Clones share everything.
#[derive(Clone)]
pub struct Monitoring {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: Settings,
    /// Project id → public key (keys never change, so entries are never stale).
    keys: Cache<Option<String>>,
    /// Notices (mail, webhooks) waiting to go.
    outbox: Outbox,
    /// Signs the links in notices (its key is read once).
    links: tokio::sync::OnceCell<Arc<Links>>,
}

fn invalid(field: &str, why: &str) -> MonitoringError {
    MonitoringError::Invalid(vec![(field.into(), why.into())])
}

/// A new public key: 32 hex characters from the OS's generator.
fn new_public_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Equal without timing revealing how much of a guess was right.
fn same_key(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

impl Monitoring {
    /// The application over `db`.
    pub fn new(db: Db, settings: Settings, caches: &CacheSettings, registry: &CacheRegistry) -> Self {
        let keys = Cache::new(
            "monitoring.project_keys",
            10_000,
            caches.l1_ttl,
            caches.ttl,
            None,
            registry,
        );
        Monitoring {
            inner: Arc::new(Inner {
                outbox: Outbox::new(db.clone()),
                db,
                settings,
                keys,
                links: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Its database.
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Its outbox (mail and webhook notices).
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// The alerting settings.
    pub fn alert_settings(&self) -> &AlertSettings {
        &self.inner.settings.alerts
    }

    /// Where clients reach Portico (links in notices point there).
    pub(crate) fn public_url(&self) -> &str {
        &self.inner.settings.public_url
    }

    pub(crate) fn link_signer(&self) -> &tokio::sync::OnceCell<Arc<Links>> {
        &self.inner.links
    }

    /// The DSN of a project: `{public_url}/sentry/{id}` with the key as user.
    pub fn dsn(&self, project: &ProjectRow) -> String {
        let base = self.inner.settings.public_url.trim_end_matches('/');
        match base.split_once("://") {
            Some((scheme, rest)) => format!("{scheme}://{}@{rest}/sentry/{}", project.public_key, project.id),
            None => format!("{base}/sentry/{}", project.id),
        }
    }

    /// Makes a project.
    pub async fn create_project(&self, name: &str) -> Result<ProjectRow, MonitoringError> {
        let name = name.trim().to_string();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(invalid("name", "must be 1 to 100 characters"));
        }
        self.make_project(name, false).await
    }

    async fn make_project(&self, name: String, is_default: bool) -> Result<ProjectRow, MonitoringError> {
        let mut attempt = 0;
        loop {
            let (name, key) = (name.clone(), new_public_key());
            let made = self
                .inner
                .db
                .write(move |conn| {
                    Ok::<_, MonitoringError>(ProjectRow::create(conn, &name, &key, is_default, now_ms())?)
                })
                .await;
            match made {
                // Two creations took the same next id at once (PostgreSQL): take the next.
                Err(MonitoringError::Db(DbError::Query(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )))) if attempt < 5 => attempt += 1,
                other => return other,
            }
        }
    }

    /// Every project.
    pub async fn projects(&self) -> Result<Vec<ProjectRow>, MonitoringError> {
        self.inner
            .db
            .run(|conn| Ok::<_, MonitoringError>(ProjectRow::all(conn)?))
            .await
    }

    /// The default project, made on first use (one per database: concurrent first uses
    /// agree, as the creation is serialised and re-read).
    async fn default_project(&self) -> Result<i64, MonitoringError> {
        let found = self
            .inner
            .db
            .run(|conn| Ok::<_, MonitoringError>(ProjectRow::default_project(conn)?))
            .await?;
        if let Some(p) = found {
            return Ok(p.id);
        }
        let key = new_public_key();
        self.inner
            .db
            .write(move |conn| {
                if let Some(p) = ProjectRow::default_project(conn)? {
                    return Ok::<_, MonitoringError>(p.id);
                }
                Ok(ProjectRow::create(conn, DEFAULT_PROJECT, &key, true, now_ms())?.id)
            })
            .await
    }

    /// The project's public key (`None`: no such project), cached.
    async fn key_of(&self, project_id: i64) -> Result<Option<String>, MonitoringError> {
        let cache_key = project_id.to_string();
        if let Some(key) = self.inner.keys.get(&cache_key).await {
            return Ok(key);
        }
        let key = self
            .inner
            .db
            .run(move |conn| Ok::<_, MonitoringError>(ProjectRow::find(conn, project_id)?.map(|p| p.public_key)))
            .await?;
        if key.is_some() {
            self.inner.keys.set(&cache_key, key.clone()).await;
        }
        Ok(key)
    }

    /// What a Sentry SDK posts: an envelope (or, `store`, one event) for `project_id`, with
    /// the key in `auth` (an `X-Sentry-Auth` header or a query string), else in the envelope
    /// header's `dsn`.
    pub async fn ingest_sentry(
        &self,
        project_id: i64,
        auth: &str,
        body: &[u8],
        store: bool,
    ) -> Result<Ingested, MonitoringError> {
        let key = envelope::sentry_key(auth).unwrap_or("");
        let expected = self.key_of(project_id).await?;
        let (events, header_id): (Vec<&[u8]>, Option<String>) = if store {
            check_key(expected.as_deref(), key)?;
            (vec![body], None)
        } else {
            let envelope = envelope::parse(body).map_err(|e| MonitoringError::Envelope(e.to_string()))?;
            let given = if key.is_empty() {
                envelope.dsn_key().unwrap_or("")
            } else {
                key
            };
            check_key(expected.as_deref(), given)?;
            let header_id = crate::domain::event::event_id(&envelope.header["event_id"]);
            let events: Vec<&[u8]> = envelope.events().collect();
            // Sentry's rule, and what keeps a project's budget (counted per request) a budget
            // of events: one event per envelope.
            if events.len() > 1 {
                return Err(MonitoringError::Envelope(format!(
                    "an envelope carries at most one event item, this one has {}: send each event in its own",
                    events.len()
                )));
            }
            (events, header_id)
        };
        // An envelope of sessions or client reports only holds no error: nothing to record.
        let Some(raw) = events.first() else {
            return Ok(Ingested::default());
        };
        let value: Value = serde_json::from_slice(raw)
            .map_err(|e| MonitoringError::Envelope(format!("the event is not JSON ({e})")))?;
        let mut event = ErrorEvent::from_json(&value).map_err(|e| MonitoringError::Envelope(e.to_string()))?;
        if event.event_id.is_none() {
            event.event_id = header_id;
        }
        self.record(project_id, event, String::from_utf8_lossy(raw).into_owned())
            .await
    }

    /// A native error event; without a project it goes to the default project.
    pub async fn ingest_native(&self, e: NativeError) -> Result<Ingested, MonitoringError> {
        let mut bad = Vec::new();
        if e.message.trim().is_empty() && e.kind.trim().is_empty() {
            bad.push(("message".to_string(), "a message or a type is required".to_string()));
        }
        if !e.level.is_empty() && Level::parse(&e.level).is_none() {
            bad.push(("level".into(), "must be debug, info, warning, error or fatal".into()));
        }
        if !bad.is_empty() {
            return Err(MonitoringError::Invalid(bad));
        }
        let project_id = if e.project_id == 0 {
            self.default_project().await?
        } else if self.key_of(e.project_id).await?.is_some() {
            e.project_id
        } else {
            return Err(invalid("projectId", "no such project"));
        };
        // The same shape a Sentry SDK sends, so one reader, one grouping and one stored form
        // serve both ingests.
        let frames: Vec<Value> = e
            .frames
            .iter()
            .map(|f| {
                json!({"module": f.module, "filename": f.filename, "function": f.function,
                       "context_line": f.context_line, "in_app": f.in_app, "lineno": f.lineno})
            })
            .collect();
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let mut event = json!({
            "event_id": uuid::Uuid::new_v4().simple().to_string(),
            "timestamp": if e.occurred_at_ms > 0 { e.occurred_at_ms as f64 / 1000.0 } else { now_ms() as f64 / 1000.0 },
            "level": nonempty(&e.level).unwrap_or_else(|| "error".into()),
            "platform": "native",
            "release": nonempty(&e.release),
            "environment": nonempty(&e.environment),
            "tags": Value::Object(e.tags.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()),
            "user": {"id": nonempty(&e.user_id)},
            "message": nonempty(&e.message),
        });
        if !e.kind.is_empty() || !frames.is_empty() {
            event["exception"] = json!({"values": [{
                "type": nonempty(&e.kind), "value": nonempty(&e.message),
                "stacktrace": {"frames": frames},
            }]});
        }
        if !e.fingerprint.is_empty() {
            event["fingerprint"] = json!(e.fingerprint);
        }
        let parsed = ErrorEvent::from_json(&event).map_err(|e| MonitoringError::Envelope(e.to_string()))?;
        self.record(project_id, parsed, event.to_string()).await
    }

    async fn record(&self, project_id: i64, event: ErrorEvent, payload: String) -> Result<Ingested, MonitoringError> {
        let grouping = grouping::group(&event.groupable);
        let received_at = now_ms();
        let new = NewEvent {
            project_id,
            event_id: event
                .event_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            hash: grouping.hash,
            title: event.title(),
            culprit: event.culprit(),
            level: event.level.as_str().to_string(),
            release: event.release.clone(),
            environment: event.environment.clone(),
            user_key: event.user.clone(),
            occurred_at: event.timestamp_ms.unwrap_or(received_at),
            received_at,
            payload,
        };
        let event_id = new.event_id.clone();
        let group_id = uuid::Uuid::now_v7().to_string();
        let recorded: Recorded = self
            .inner
            .db
            .write(move |conn| Ok::<_, MonitoringError>(store::record(conn, &new, &group_id)?))
            .await?;
        metrics::counter!("portico_monitoring_events_total",
            "outcome" => if recorded.duplicate { "duplicate" } else if recorded.new_group { "new_group" } else { "grouped" })
        .increment(1);
        if recorded.regression {
            tracing::info!(group = %recorded.group_id, "a resolved error group recurred and reopened");
            metrics::counter!("portico_monitoring_regressions_total").increment(1);
        }
        Ok(Ingested {
            event_id,
            group_id: recorded.group_id,
        })
    }

    /// A page of groups.
    pub async fn groups(
        &self,
        project_id: Option<i64>,
        status: Option<GroupStatus>,
        release: Option<String>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<GroupPage, MonitoringError> {
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| invalid("cursor", "is not a cursor this API gave"))?),
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let filter = GroupFilter {
            project_id,
            status: status.map(|s| s.as_str().to_string()),
            release,
            after,
            limit: i64::from(limit) + 1,
        };
        self.inner
            .db
            .run(move |conn| {
                let mut rows = store::groups(conn, &filter)?;
                let more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                let ids: Vec<String> = rows.iter().map(|g| g.id.clone()).collect();
                let users = store::users_affected(conn, &ids)?;
                let next_cursor = more
                    .then(|| rows.last().map(|g| encode_cursor(g.last_seen, &g.id)))
                    .flatten();
                let groups = rows
                    .into_iter()
                    .map(|g| {
                        let n = users.iter().find(|(id, _)| *id == g.id).map_or(0, |(_, n)| *n);
                        (g, n)
                    })
                    .collect();
                Ok::<_, MonitoringError>(GroupPage { groups, next_cursor })
            })
            .await
    }

    /// One group, its affected users and its latest event kept (id, payload).
    pub async fn group(&self, id: &str) -> Result<(GroupRow, i64, Option<(String, String)>), MonitoringError> {
        let id = id.to_string();
        self.inner
            .db
            .run(move |conn| {
                let group = store::group(conn, &id)?.ok_or(MonitoringError::NotFound("error group"))?;
                let users = store::users_affected(conn, std::slice::from_ref(&id))?
                    .first()
                    .map_or(0, |(_, n)| *n);
                let latest = store::latest_event(conn, &id)?;
                Ok((group, users, latest))
            })
            .await
    }

    /// Resolves, ignores or reopens a group.
    pub async fn set_status(&self, id: &str, status: GroupStatus) -> Result<(GroupRow, i64), MonitoringError> {
        let gid = id.to_string();
        let found = self
            .inner
            .db
            .write(move |conn| Ok::<_, MonitoringError>(store::set_status(conn, &gid, status.as_str())?))
            .await?;
        if !found {
            return Err(MonitoringError::NotFound("error group"));
        }
        let (group, users, _) = self.group(id).await?;
        Ok((group, users))
    }

    /// Erases a user's events (GDPR erasure).
    pub async fn erase_user(&self, user_id: &str) -> Result<u64, MonitoringError> {
        let user = user_id.to_string();
        let n = self
            .inner
            .db
            .write(move |conn| {
                Ok::<_, MonitoringError>(
                    store::erase_user(conn, &user)? + crate::analytics_store::erase_user(conn, &user)?,
                )
            })
            .await?;
        Ok(n as u64)
    }

    /// Drops event payloads past retention (their groups' counts stay).
    pub async fn purge(&self) -> Result<usize, MonitoringError> {
        let before = now_ms() - self.inner.settings.retention_ms;
        self.inner
            .db
            .write(move |conn| {
                Ok::<_, MonitoringError>(
                    store::purge_events(conn, before)?
                        + crate::analytics_store::purge(conn, before)?
                        + crate::routes_store::purge(conn, before)?,
                )
            })
            .await
    }
}

fn check_key(expected: Option<&str>, given: &str) -> Result<(), MonitoringError> {
    match expected {
        Some(expected) if !given.is_empty() && same_key(expected, given) => Ok(()),
        // An unknown project answers like a wrong key: ids cannot be probed.
        _ => Err(MonitoringError::BadKey),
    }
}

fn encode_cursor(last_seen: i64, id: &str) -> String {
    format!("{last_seen}.{id}")
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let (seen, id) = c.split_once('.')?;
    Some((seen.parse().ok()?, id.to_string()))
}
