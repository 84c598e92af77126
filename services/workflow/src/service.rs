//! The workflow service: the analyser, the result cache, history and quotas, served over gRPC.

use std::{num::NonZeroUsize, sync::Arc, time::Instant};

use portico_proto::workflow::v1::{self as pb, workflow_service_server::WorkflowService};
use portico_runtime::{
    Problem,
    cache::{Cache, CacheRegistry},
    db::{Db, now_ms},
    grpc,
};
use portico_workflow_analyzer::{Limits, Workflow, analyze, parse, rules};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use crate::{
    domain::{self, Computed, Quotas, Tier},
    error::WorkflowError,
    store::{self, AnalysisRow},
};

/// Fully qualified gRPC name, for health reporting.
pub const SERVICE_NAME: &str = "portico.workflow.v1.WorkflowService";
const SVC: &str = "workflow";
/// Default and largest history page.
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;
/// Documents at least this large are parsed and analysed on the blocking pool, under the
/// [`Cpu`] semaphore, so a big workflow never stalls the other calls on the same runtime worker.
///
/// Smaller ones stay inline, on the runtime worker that received them, on purpose. The stall is
/// short: a 64 KiB workflow (~600 steps) parses in ~0.6 ms and analyses in ~0.1 ms (the
/// analyser's benchmarks, 2-core dev box). It is bounded already: a worker runs one at a time,
/// so at most `PORTICO_WORKER_THREADS` run at once, over documents their requests already hold.
/// And small analyses never queue for a permit behind a burst of large documents.
const INLINE_BYTES: usize = 64 * 1024;

/// The workflow application: analyser limits, result cache, store and quotas.
#[derive(Clone)]
pub struct Workflows {
    db: Db,
    /// Keyed by content hash and shared by every user: an entry holds findings, never a user id.
    results: Cache<Arc<Computed>>,
    cpu: Cpu,
    limits: Limits,
    quotas: Quotas,
    /// Users whose quota is spent, with the end of that window and the limit they hit:
    /// refused without a database read or any parsing until then, unless their limit has
    /// changed (a new tier). Only a hint; the count in the database decides.
    spent: moka::sync::Cache<String, (i64, u32)>,
}

/// A caller as the gateway identified them.
struct Caller {
    user_id: String,
    tier: Tier,
}

impl Workflows {
    /// The application over `db`, with its result cache registered in `registry`.
    pub fn new(
        db: Db,
        caches: &portico_runtime::cache::CacheSettings,
        registry: &CacheRegistry,
        limits: Limits,
        quotas: Quotas,
    ) -> Self {
        let results = Cache::new(
            "workflow.results",
            10_000,
            caches.l1_ttl,
            caches.ttl,
            caches.redis.clone(),
            registry,
        );
        Workflows {
            db,
            results,
            cpu: Cpu::new(Cpu::cores()),
            limits,
            quotas,
            spent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_millis(domain::HOUR_MS as u64))
                .build(),
        }
    }

    async fn analyze(&self, req: pb::AnalyzeRequest) -> Result<pb::AnalyzeResponse, WorkflowError> {
        let caller = caller(req.caller)?;
        let limit = self.quotas.for_tier(caller.tier);
        let (window_start, window_end) = domain::window(now_ms());
        // Refuse a quota known to be spent before doing any work for it.
        if self.spent.get(&caller.user_id) == Some((window_end, limit)) {
            return Err(self.quota_spent(caller.tier, limit, window_end));
        }

        let started = Instant::now();
        let limits = self.limits;
        let format = pb::InputFormat::try_from(req.format).unwrap_or(pb::InputFormat::Unspecified);
        let document = req.document;
        let (workflow, hash) = self
            .cpu
            .run(document.len(), move || read_document(format, &document, limits))
            .await??;
        let name = workflow.name.clone();
        let key = hash.clone();
        let (computed, cached) = match self.results.get(&key).await {
            Some(hit) => (hit, true),
            None => {
                let steps = workflow.steps.len();
                let computed = self
                    .cpu
                    .run(steps * 200, move || Arc::new(Computed::from(analyze(&workflow))))
                    .await?;
                self.results.set(&key, computed.clone()).await;
                (computed, false)
            }
        };
        metrics::histogram!("portico_workflow_analysis_seconds", "cached" => bool_label(cached))
            .record(started.elapsed().as_secs_f64());

        let row = AnalysisRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: caller.user_id.clone(),
            name,
            content_hash: hash,
            health_score: i32::from(computed.health_score),
            grade: computed.grade.clone(),
            issue_count: i32::try_from(computed.issues.len()).unwrap_or(i32::MAX),
            steps: i32::try_from(computed.steps).unwrap_or(i32::MAX),
            result: serde_json::to_string(&*computed).map_err(|e| WorkflowError::Task(e.to_string()))?,
            cached,
            created_at: now_ms(),
        };
        let limit_i32 = i32::try_from(limit).unwrap_or(i32::MAX);
        let mut outcome = self.record(row.clone(), window_start, limit_i32).await;
        if matches!(&outcome, Err(WorkflowError::Db(e)) if e.is_unique_violation()) {
            // Two first analyses of the hour raced to open the quota window; the row exists now.
            outcome = self.record(row.clone(), window_start, limit_i32).await;
        }
        let Some(used) = outcome? else {
            self.spent.insert(caller.user_id.clone(), (window_end, limit));
            return Err(self.quota_spent(caller.tier, limit, window_end));
        };
        metrics::counter!("portico_workflow_analyses_total", "cached" => bool_label(cached), "grade" => computed.grade.clone())
            .increment(1);
        Ok(pb::AnalyzeResponse {
            analysis: Some(self.to_proto(&row, &computed, caller.tier)),
            quota: Some(pb::Quota {
                limit,
                remaining: limit.saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)),
                resets_at_ms: window_end,
            }),
        })
    }

    /// Takes one analysis from the quota and records the row, in one transaction.
    async fn record(&self, row: AnalysisRow, window_start: i64, limit: i32) -> Result<Option<i32>, WorkflowError> {
        self.db
            .write(move |conn| {
                let Some(used) = store::take_quota(conn, &row.user_id, window_start, limit)? else {
                    return Ok::<_, WorkflowError>(None);
                };
                row.insert(conn)?;
                Ok(Some(used))
            })
            .await
    }

    /// Erases everything held about `user_id` (account deletion): every analysis and every
    /// quota row, in one write transaction, then the user's entry in the spent-quota hint.
    /// Returns the rows removed; erasing again finds nothing and returns 0.
    ///
    /// The result cache is left alone: it is keyed by content hash, shared by every user who
    /// submits the same workflow, and holds no user id, so nothing in it leads back to the user
    /// once their history rows are gone (entries expire with the cache TTL).
    pub async fn erase_user(&self, user_id: String) -> Result<u64, WorkflowError> {
        let uid = user_id.clone();
        let removed = self
            .db
            .write(move |conn| Ok::<_, WorkflowError>(store::erase_user(conn, &uid)?))
            .await?;
        // The hint holds only the id, an hour's end and a limit, and lives in this process alone:
        // another replica's copy (or one put back by a call still in flight for the user) can
        // only refuse a user the gateway has already deleted, and lapses when the hour ends.
        self.spent.invalidate(&user_id);
        tracing::info!(removed, "erased a user's analyses and quota");
        Ok(removed)
    }

    fn quota_spent(&self, tier: Tier, limit: u32, window_end: i64) -> WorkflowError {
        metrics::counter!("portico_workflow_quota_rejections_total").increment(1);
        WorkflowError::Quota {
            limit,
            retry_after_secs: domain::retry_after_secs(now_ms(), window_end),
            resets_at_ms: window_end,
            pro_limit: (tier == Tier::Free).then_some(self.quotas.pro),
        }
    }

    async fn get(&self, req: pb::GetAnalysisRequest) -> Result<pb::Analysis, WorkflowError> {
        let caller = caller(req.caller)?;
        let id = analysis_id(&req.id)?;
        let uid = caller.user_id.clone();
        let row = self
            .db
            .run(move |conn| Ok::<_, WorkflowError>(AnalysisRow::find(conn, &uid, &id)?))
            .await?
            .ok_or(WorkflowError::NotFound)?;
        let computed: Computed = serde_json::from_str(&row.result).map_err(|e| WorkflowError::Task(e.to_string()))?;
        Ok(self.to_proto(&row, &computed, caller.tier))
    }

    async fn delete(&self, req: pb::DeleteAnalysisRequest) -> Result<pb::DeleteAnalysisResponse, WorkflowError> {
        let caller = caller(req.caller)?;
        let id = analysis_id(&req.id)?;
        let deleted = self
            .db
            .write(move |conn| Ok::<_, WorkflowError>(AnalysisRow::delete(conn, &caller.user_id, &id)?))
            .await?;
        if deleted {
            Ok(pb::DeleteAnalysisResponse {})
        } else {
            Err(WorkflowError::NotFound)
        }
    }

    async fn list(&self, req: pb::ListAnalysesRequest) -> Result<pb::ListAnalysesResponse, WorkflowError> {
        let caller = caller(req.caller)?;
        let limit = match req.limit {
            0 => DEFAULT_PAGE,
            n if n <= MAX_PAGE => n,
            _ => return Err(WorkflowError::field("limit", "must be between 1 and 100")),
        };
        let before = match req.cursor.trim() {
            "" => None,
            raw => Some(
                domain::decode_cursor(raw)
                    .ok_or_else(|| WorkflowError::field("cursor", "is not a cursor from a previous page"))?,
            ),
        };
        let uid = caller.user_id;
        let mut rows = self
            .db
            .run(move |conn| {
                Ok::<_, WorkflowError>(store::AnalysisRow::page(
                    conn,
                    &uid,
                    before.as_deref(),
                    i64::from(limit) + 1,
                )?)
            })
            .await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| domain::encode_cursor(&r.id))
        } else {
            None
        };
        Ok(pb::ListAnalysesResponse {
            items: rows
                .into_iter()
                .map(|r| pb::AnalysisSummary {
                    id: r.id,
                    name: r.name,
                    health_score: u32::try_from(r.health_score).unwrap_or(0),
                    grade: r.grade,
                    issue_count: u32::try_from(r.issue_count).unwrap_or(0),
                    steps: u32::try_from(r.steps).unwrap_or(0),
                    created_at_ms: r.created_at,
                    cached: r.cached,
                })
                .collect(),
            next_cursor,
        })
    }

    fn to_proto(&self, row: &AnalysisRow, computed: &Computed, tier: Tier) -> pb::Analysis {
        let (issues, hidden_issues, upgrade) = domain::gate(tier, computed, &self.quotas);
        pb::Analysis {
            id: row.id.clone(),
            name: row.name.clone(),
            health_score: u32::from(computed.health_score),
            grade: computed.grade.clone(),
            issues,
            hidden_issues,
            stats: Some(pb::Stats {
                steps: computed.steps,
                triggers: computed.triggers,
                branches: computed.branches,
                max_depth: computed.max_depth,
            }),
            upgrade,
            created_at_ms: row.created_at,
            cached: row.cached,
            content_hash: row.content_hash.clone(),
        }
    }
}

fn bool_label(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn caller(caller: Option<pb::Caller>) -> Result<Caller, WorkflowError> {
    let caller = caller.ok_or_else(|| WorkflowError::field("caller", "is required"))?;
    if caller.user_id.trim().is_empty() {
        return Err(WorkflowError::field("caller.userId", "is required"));
    }
    Ok(Caller {
        tier: Tier::from_proto(caller.tier),
        user_id: caller.user_id,
    })
}

/// Ids are UUIDs; anything else cannot name an analysis (and must not reach a query as is).
fn analysis_id(raw: &str) -> Result<String, WorkflowError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| WorkflowError::NotFound)
}

/// Parses a document in `format` and hashes its canonical form.
fn read_document(
    format: pb::InputFormat,
    document: &[u8],
    limits: Limits,
) -> Result<(Workflow, String), WorkflowError> {
    let workflow = match format {
        pb::InputFormat::Json | pb::InputFormat::Unspecified => parse(document, limits),
        pb::InputFormat::Bpmn => portico_workflow_analyzer::bpmn::parse(document, limits),
    }
    .map_err(|problems| WorkflowError::from_problems(problems, limits, format == pb::InputFormat::Bpmn))?;
    let hash = domain::content_hash(&workflow);
    Ok((workflow, hash))
}

/// Where parsing and analysis run: inline when small, else on tokio's blocking pool under a
/// semaphore with one permit per core, so a burst of large documents queues for the cores
/// instead of taking a blocking thread each (up to tokio's 512), starving the runtime's workers
/// of CPU and holding every document's parse tree in memory at once.
#[derive(Clone)]
struct Cpu {
    permits: Arc<Semaphore>,
}

impl Cpu {
    fn new(permits: usize) -> Self {
        Cpu {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// The cores this process may use.
    fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
    }

    /// Runs `work` inline when it is small (`cost` below [`INLINE_BYTES`]), otherwise on the
    /// blocking pool once a permit is free. The permit moves into the blocking task: if the
    /// caller gives up (a deadline, a dropped connection) the work still runs to its end, and
    /// its core stays counted until then.
    async fn run<T: Send + 'static>(
        &self,
        cost: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkflowError> {
        if cost < INLINE_BYTES {
            return Ok(work());
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| WorkflowError::Task(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| WorkflowError::Task(e.to_string()))
    }
}

fn rule_catalogue() -> pb::ListRulesResponse {
    pb::ListRulesResponse {
        rules: rules()
            .iter()
            .map(|r| pb::Rule {
                id: r.id.to_string(),
                severity: domain::severity_to_proto(r.severity.as_str()) as i32,
                title: r.title.to_string(),
                description: r.description.to_string(),
                weight: r.severity.weight(),
            })
            .collect(),
    }
}

/// Implements `WorkflowService` by routing each RPC through [`grpc::handle`] to a method.
macro_rules! workflow_rpcs {
    ($($name:ident, $method:literal, $req:ty => $resp:ty, |$app:ident, $m:ident| $body:expr;)*) => {
        #[tonic::async_trait]
        impl WorkflowService for Workflows {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let $app = self;
                    grpc::handle(SVC, $method, request, |$m| async move { $body.await.map_err(Problem::from) }).await
                }
            )*
        }
    };
}

workflow_rpcs! {
    analyze, "Analyze", pb::AnalyzeRequest => pb::AnalyzeResponse, |app, m| app.analyze(m);
    list_analyses, "ListAnalyses", pb::ListAnalysesRequest => pb::ListAnalysesResponse, |app, m| app.list(m);
    get_analysis, "GetAnalysis", pb::GetAnalysisRequest => pb::Analysis, |app, m| app.get(m);
    delete_analysis, "DeleteAnalysis", pb::DeleteAnalysisRequest => pb::DeleteAnalysisResponse, |app, m| app.delete(m);
    list_rules, "ListRules", pb::ListRulesRequest => pb::ListRulesResponse, |_app, _m| async { Ok::<_, WorkflowError>(rule_catalogue()) };
    get_schema, "GetSchema", pb::GetSchemaRequest => pb::Schema, |_app, _m| async {
        Ok::<_, WorkflowError>(pb::Schema { json: portico_workflow_analyzer::SCHEMA.to_string() })
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{
        Condvar, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// A gate the blocking jobs wait at until the test opens it.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Gate {
        fn wait(&self) {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    /// Counts jobs running now and the most ever running at once.
    #[derive(Default)]
    struct Running {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_work_runs_at_most_one_job_per_permit() {
        const PERMITS: usize = 2;
        const JOBS: usize = 8;
        let cpu = Cpu::new(PERMITS);
        let gate = Arc::new(Gate::default());
        let running = Arc::new(Running::default());
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let calls: Vec<_> = (0..JOBS)
            .map(|i| {
                let (cpu, gate, running, started) = (cpu.clone(), gate.clone(), running.clone(), started.clone());
                tokio::spawn(async move {
                    cpu.run(INLINE_BYTES, move || {
                        let now = running.now.fetch_add(1, Ordering::SeqCst) + 1;
                        running.most.fetch_max(now, Ordering::SeqCst);
                        started.send(i).unwrap();
                        gate.wait();
                        running.now.fetch_sub(1, Ordering::SeqCst);
                        i
                    })
                    .await
                })
            })
            .collect();
        // Two jobs hold the two permits and wait at the gate; the other six wait for a permit,
        // not on a blocking thread.
        for _ in 0..PERMITS {
            starts.recv().await.unwrap();
        }
        assert_eq!(cpu.permits.available_permits(), 0);
        assert_eq!(running.now.load(Ordering::SeqCst), PERMITS);
        gate.open();
        let mut done = Vec::new();
        for call in calls {
            done.push(call.await.unwrap().unwrap());
        }
        assert_eq!(done, (0..JOBS).collect::<Vec<_>>());
        assert_eq!(
            running.most.load(Ordering::SeqCst),
            PERMITS,
            "never more jobs than permits"
        );
        assert_eq!(cpu.permits.available_permits(), PERMITS, "every permit came back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_keeps_the_permit_until_its_work_ends() {
        let cpu = Cpu::new(1);
        let gate = Arc::new(Gate::default());
        let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
        let call = {
            let (cpu, gate) = (cpu.clone(), gate.clone());
            tokio::spawn(async move {
                cpu.run(INLINE_BYTES, move || {
                    started.send(()).unwrap();
                    gate.wait();
                })
                .await
            })
        };
        starts.recv().await.unwrap();
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        // The work is still running on its blocking thread, so its core is still taken.
        assert_eq!(cpu.permits.available_permits(), 0);
        gate.open();
        // The next large job gets the permit once that work has ended.
        assert_eq!(cpu.run(INLINE_BYTES, || 7).await.unwrap(), 7);
        assert_eq!(cpu.permits.available_permits(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn small_work_runs_inline_without_a_permit() {
        let cpu = Cpu::new(1);
        let held = cpu.permits.clone().acquire_owned().await.unwrap();
        // With the only permit held, small work still runs, on the caller's thread.
        let caller = std::thread::current().id();
        let ran_on = cpu
            .run(INLINE_BYTES - 1, move || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(ran_on, caller);
        drop(held);
        assert!(Cpu::cores() >= 1);
    }
}
