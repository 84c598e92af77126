//! `/v1/workflows/*`: the workflow analyser, answered by the workflow service.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use chrono::{DateTime, Utc};
use portico_proto::workflow::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{Rid, User, at};
use crate::{
    AppState,
    auth::{Principal, Tier},
    contract::{
        Deleted, Raw, Reply, ValidQuery,
        doc::{Input, Output, RequestDoc, ResponseDoc, Schemas, envelope},
    },
    envelope::{ApiError, Document, DocumentFormat, ok},
};

fn caller(p: &Principal) -> Option<pb::Caller> {
    Some(pb::Caller {
        user_id: p.user_id.clone(),
        tier: match p.tier {
            Tier::Free => pb::Tier::Free,
            Tier::Pro => pb::Tier::Pro,
            Tier::Enterprise => pb::Tier::Enterprise,
        } as i32,
    })
}

/// How severe a finding is.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Breaks the workflow.
    Critical,
    /// Likely to hurt.
    High,
    /// Worth fixing.
    Medium,
    /// Minor.
    Low,
    /// For information.
    Info,
}

impl Severity {
    fn from_proto(value: i32) -> Severity {
        match pb::Severity::try_from(value).unwrap_or(pb::Severity::Unspecified) {
            pb::Severity::Critical => Severity::Critical,
            pb::Severity::High => Severity::High,
            pb::Severity::Medium => Severity::Medium,
            pb::Severity::Low => Severity::Low,
            pb::Severity::Info | pb::Severity::Unspecified => Severity::Info,
        }
    }
}

/// One finding.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    /// The rule (see `/v1/workflows/rules`).
    #[schema(example = "infinite-loop")]
    rule: String,
    /// How severe.
    severity: Severity,
    /// Short title.
    title: String,
    /// What is wrong.
    message: String,
    /// The step it concerns (absent for the whole workflow).
    step_id: Option<String>,
    /// How to fix it.
    suggestion: String,
}

/// Size and shape of the workflow.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Steps.
    steps: u32,
    /// Triggers.
    triggers: u32,
    /// Conditional branches.
    branches: u32,
    /// Longest path from a trigger.
    max_depth: u32,
}

/// What Pro would show a free caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upgrade {
    /// The plan.
    plan: String,
    /// What it unlocks.
    message: String,
    /// Where to get it.
    url: String,
}

/// The caller's hourly analysis quota after this call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Analyses per hour on the caller's plan.
    limit: u32,
    /// Left this hour.
    remaining: u32,
    /// When the hour ends.
    resets_at: Option<DateTime<Utc>>,
}

/// One analysis (findings as the reader's plan shows them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// Its id.
    analysis_id: String,
    /// The workflow's name.
    name: Option<String>,
    /// 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    health_score: u32,
    /// Excellent, Good, Fair, High Risk or Critical.
    #[schema(example = "Good")]
    grade: String,
    /// The findings the plan shows, most severe first.
    issues: Vec<Issue>,
    /// Findings the plan hides.
    hidden_issues: u32,
    /// Size and shape.
    stats: Stats,
    /// Whether the result came from the content-hash cache.
    cached: bool,
    /// SHA-256 of the canonical workflow, hex.
    content_hash: String,
    /// When it was made.
    created_at: Option<DateTime<Utc>>,
    /// What Pro would show (free callers).
    #[serde(skip_serializing_if = "Option::is_none")]
    upgrade: Option<Upgrade>,
    /// The quota after this call (analyze only).
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<Quota>,
}

impl From<pb::Analysis> for Analysis {
    fn from(a: pb::Analysis) -> Self {
        let stats = a.stats.unwrap_or_default();
        Analysis {
            analysis_id: a.id,
            name: a.name,
            health_score: a.health_score,
            grade: a.grade,
            issues: a
                .issues
                .into_iter()
                .map(|f| Issue {
                    rule: f.rule,
                    severity: Severity::from_proto(f.severity),
                    title: f.title,
                    message: f.message,
                    step_id: f.step_id,
                    suggestion: f.suggestion,
                })
                .collect(),
            hidden_issues: a.hidden_issues,
            stats: Stats {
                steps: stats.steps,
                triggers: stats.triggers,
                branches: stats.branches,
                max_depth: stats.max_depth,
            },
            cached: a.cached,
            content_hash: a.content_hash,
            created_at: at(a.created_at_ms),
            upgrade: a.upgrade.map(|u| Upgrade {
                plan: u.plan,
                message: u.message,
                url: u.url,
            }),
            quota: None,
        }
    }
}

/// The workflow format's own JSON Schema as components: each of its `$defs` becomes a
/// schema of its own (`step` → `WorkflowStep`) and every reference points there, so client
/// generators that only follow `#/components/schemas/…` read it whole.
fn workflow_schema(schemas: &mut Schemas) -> Value {
    fn component(def: &str) -> String {
        let mut name = String::from("Workflow");
        let mut chars = def.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
        name
    }
    let mut workflow: Value = serde_json::from_str(portico_workflow_analyzer::SCHEMA).unwrap_or_default();
    crate::contract::doc::rewrite_refs(&mut workflow, "#/$defs/", &|def| {
        format!("#/components/schemas/{}", component(def))
    });
    if let Some(Value::Object(defs)) = workflow.as_object_mut().and_then(|w| w.remove("$defs")) {
        for (def, schema) in defs {
            schemas.add_named(&component(&def), schema);
        }
    }
    schemas.add_named("Workflow", workflow)
}

/// The body of an analysis: a workflow as JSON (the platform's format) or BPMN 2.0 XML.
pub struct WorkflowDocument;

impl RequestDoc for WorkflowDocument {
    fn document(schemas: &mut Schemas) -> Input {
        let json = workflow_schema(schemas);
        Input {
            body: Some(json!({
                "required": true,
                "content": {
                    "application/json": { "schema": json },
                    "application/xml": { "schema": { "type": "string", "description": "A BPMN 2.0 process (see the README for how it maps to steps)" } },
                },
            })),
            parameters: Vec::new(),
        }
    }
}

/// POST /workflows/analyze: the body is the workflow, JSON or BPMN 2.0 XML by Content-Type.
pub async fn analyze(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    doc: Document,
) -> Result<Reply<Analysis>, ApiError> {
    let format = match doc.format {
        DocumentFormat::Json => pb::InputFormat::Json,
        DocumentFormat::Xml => pb::InputFormat::Bpmn,
    };
    let r = state
        .workflow()?
        .analyze(outgoing(
            pb::AnalyzeRequest {
                caller: caller(&user.0),
                document: doc.bytes,
                format: format as i32,
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let mut analysis = Analysis::from(r.analysis.unwrap_or_default());
    analysis.quota = r.quota.map(|q| Quota {
        limit: q.limit,
        remaining: q.remaining,
        resets_at: at(q.resets_at_ms),
    });
    Ok(Reply(analysis))
}

/// `?limit=&cursor=` of the history.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Page size, 1 to 100 (default 20).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page: the id of the analysis to continue after.
    #[schema(
        format = "uuid",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
}

/// One analysis in the history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSummary {
    /// Its id.
    analysis_id: String,
    /// The workflow's name.
    name: Option<String>,
    /// 0 to 100.
    health_score: u32,
    /// The grade.
    grade: String,
    /// Findings in all (whatever the plan shows).
    issue_count: u32,
    /// Steps.
    steps: u32,
    /// From the cache.
    cached: bool,
    /// When.
    created_at: Option<DateTime<Utc>>,
}

/// A page of the history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// This page.
    items: Vec<AnalysisSummary>,
    /// Pass it back as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// GET /workflows/history
pub async fn history(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    query: ValidQuery<HistoryQuery>,
) -> Result<Reply<HistoryPage>, ApiError> {
    let q = query.0;
    let r = state
        .workflow()?
        .list_analyses(outgoing(
            pb::ListAnalysesRequest {
                caller: caller(&user.0),
                limit: q.limit.unwrap_or(0),
                cursor: q.cursor.unwrap_or_default(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let items = r
        .items
        .into_iter()
        .map(|i| AnalysisSummary {
            analysis_id: i.id,
            name: i.name,
            health_score: i.health_score,
            grade: i.grade,
            issue_count: i.issue_count,
            steps: i.steps,
            cached: i.cached,
            created_at: at(i.created_at_ms),
        })
        .collect();
    Ok(Reply(HistoryPage {
        items,
        next_cursor: r.next_cursor,
    }))
}

/// GET /workflows/analyses/{id}
pub async fn get(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    id: web::Path<String>,
) -> Result<Reply<Analysis>, ApiError> {
    let a = state
        .workflow()?
        .get_analysis(outgoing(
            pb::GetAnalysisRequest {
                caller: caller(&user.0),
                id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    Ok(Reply(a.into()))
}

/// DELETE /workflows/analyses/{id}
pub async fn delete(
    state: web::Data<AppState>,
    user: User,
    rid: Rid,
    id: web::Path<String>,
) -> Result<Reply<Deleted>, ApiError> {
    state
        .workflow()?
        .delete_analysis(outgoing(
            pb::DeleteAnalysisRequest {
                caller: caller(&user.0),
                id: id.into_inner(),
            },
            &rid.0,
        ))
        .await?;
    Ok(Reply(Deleted::YES))
}

/// One rule of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rule {
    /// Its id (the `rule` of findings).
    id: String,
    /// How severe its findings are.
    severity: Severity,
    /// Short title.
    title: String,
    /// What it looks for.
    description: String,
    /// How much a finding lowers the score.
    weight: u32,
}

/// The rule catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleCatalogue {
    /// Every rule.
    rules: Vec<Rule>,
}

/// GET /workflows/rules
pub async fn rules(state: web::Data<AppState>, rid: Rid) -> Result<Reply<RuleCatalogue>, ApiError> {
    let r = state
        .workflow()?
        .list_rules(outgoing(pb::ListRulesRequest {}, &rid.0))
        .await?
        .into_inner();
    Ok(Reply(RuleCatalogue {
        rules: r
            .rules
            .into_iter()
            .map(|r| Rule {
                id: r.id,
                severity: Severity::from_proto(r.severity),
                title: r.title,
                description: r.description,
                weight: r.weight,
            })
            .collect(),
    }))
}

/// The workflow format's JSON Schema, in the envelope or bare.
pub struct SchemaDocument;

impl ResponseDoc for SchemaDocument {
    fn document(_: &mut Schemas) -> Output {
        Output {
            status: 200,
            response: json!({
                "description": "The JSON Schema (draft 2020-12) of the workflow document: in the envelope, or bare for `Accept: application/schema+json`.",
                "content": {
                    "application/json": { "schema": envelope(json_schema_document()) },
                    "application/schema+json": { "schema": json_schema_document() },
                },
            }),
            others: Vec::new(),
        }
    }
}

/// A JSON Schema document (itself described by the draft 2020-12 meta-schema).
fn json_schema_document() -> Value {
    json!({
        "type": "object",
        "required": ["$schema"],
        "properties": { "$schema": { "type": "string", "format": "uri" } },
        "externalDocs": { "url": "https://json-schema.org/draft/2020-12/schema" },
    })
}

/// GET /workflows/schema: in the envelope, or the bare document for
/// `Accept: application/schema+json` (what schema tooling asks for).
pub async fn schema(state: web::Data<AppState>, rid: Rid, req: HttpRequest) -> Result<Raw<SchemaDocument>, ApiError> {
    let s = state
        .workflow()?
        .get_schema(outgoing(pb::GetSchemaRequest {}, &rid.0))
        .await?
        .into_inner();
    let bare = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/schema+json"));
    if bare {
        return Ok(Raw::new(
            HttpResponse::Ok().content_type("application/schema+json").body(s.json),
        ));
    }
    let schema: Value = serde_json::from_str(&s.json).map_err(ApiError::internal)?;
    Ok(Raw::new(ok(schema)))
}
