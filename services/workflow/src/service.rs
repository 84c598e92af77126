//! The workflow service: the analyser, the result cache, history and quotas, served over gRPC.

use std::{sync::Arc, time::Instant};

use portico_proto::workflow::v1::{self as pb, workflow_service_server::WorkflowService};
use portico_runtime::{
    Problem,
    cache::{Cache, CacheRegistry},
    db::{Db, now_ms},
    grpc,
};
use portico_workflow_analyzer::{Limits, Workflow, analyze, parse, rules};
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
/// Documents at least this large are parsed and analysed on the blocking pool, so a big
/// workflow never stalls the other calls on the same runtime worker.
const INLINE_BYTES: usize = 64 * 1024;

/// The workflow application: analyser limits, result cache, store and quotas.
#[derive(Clone)]
pub struct Workflows {
    db: Db,
    results: Cache<Arc<Computed>>,
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
        let (workflow, hash) = cpu(document.len(), move || read_document(format, &document, limits)).await??;
        let name = workflow.name.clone();
        let key = hash.clone();
        let (computed, cached) = match self.results.get(&key).await {
            Some(hit) => (hit, true),
            None => {
                let steps = workflow.steps.len();
                let computed = cpu(steps * 200, move || Arc::new(Computed::from(analyze(&workflow)))).await?;
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
    .map_err(|problems| WorkflowError::from_problems(problems, limits.max_steps, format == pb::InputFormat::Bpmn))?;
    let hash = domain::content_hash(&workflow);
    Ok((workflow, hash))
}

/// Runs CPU work inline when it is small (`cost` below [`INLINE_BYTES`]), on the blocking pool
/// otherwise.
async fn cpu<T: Send + 'static>(cost: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, WorkflowError> {
    if cost < INLINE_BYTES {
        Ok(work())
    } else {
        tokio::task::spawn_blocking(work)
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
