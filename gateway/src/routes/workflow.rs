//! `/v1/workflows/*`: the workflow analyser, answered by the workflow service.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use portico_proto::workflow::v1 as pb;
use portico_runtime::grpc::outgoing;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Rid, User, rfc3339};
use crate::{
    AppState,
    auth::{Principal, Tier},
    envelope::{ApiError, ApiResult, Document, DocumentFormat, ok},
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

fn severity_name(value: i32) -> &'static str {
    match pb::Severity::try_from(value).unwrap_or(pb::Severity::Unspecified) {
        pb::Severity::Critical => "critical",
        pb::Severity::High => "high",
        pb::Severity::Medium => "medium",
        pb::Severity::Low => "low",
        pb::Severity::Info | pb::Severity::Unspecified => "info",
    }
}

fn analysis_json(a: pb::Analysis) -> Value {
    let stats = a.stats.unwrap_or_default();
    let issues: Vec<Value> = a
        .issues
        .into_iter()
        .map(|f| {
            json!({
                "rule": f.rule,
                "severity": severity_name(f.severity),
                "title": f.title,
                "message": f.message,
                "stepId": f.step_id,
                "suggestion": f.suggestion,
            })
        })
        .collect();
    let mut data = json!({
        "analysisId": a.id,
        "name": a.name,
        "healthScore": a.health_score,
        "grade": a.grade,
        "issues": issues,
        "hiddenIssues": a.hidden_issues,
        "stats": {
            "steps": stats.steps,
            "triggers": stats.triggers,
            "branches": stats.branches,
            "maxDepth": stats.max_depth,
        },
        "cached": a.cached,
        "contentHash": a.content_hash,
        "createdAt": rfc3339(a.created_at_ms),
    });
    if let Some(u) = a.upgrade {
        data["upgrade"] = json!({ "plan": u.plan, "message": u.message, "url": u.url });
    }
    data
}

/// POST /workflows/analyze: the body is the workflow, JSON or BPMN 2.0 XML by Content-Type.
pub async fn analyze(state: web::Data<AppState>, user: User, rid: Rid, doc: Document) -> ApiResult {
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
    let mut data = analysis_json(r.analysis.unwrap_or_default());
    if let Some(q) = r.quota {
        data["quota"] = json!({
            "limit": q.limit,
            "remaining": q.remaining,
            "resetsAt": rfc3339(q.resets_at_ms),
        });
    }
    Ok(ok(data))
}

/// `?limit=&cursor=` of the history.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// 1–100, default 20.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// GET /workflows/history
pub async fn history(state: web::Data<AppState>, user: User, rid: Rid, query: web::Query<HistoryQuery>) -> ApiResult {
    let q = query.into_inner();
    let limit = match q.limit {
        None => 0,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(ApiError::fields([("limit", "must be between 1 and 100")])),
    };
    let r = state
        .workflow()?
        .list_analyses(outgoing(
            pb::ListAnalysesRequest {
                caller: caller(&user.0),
                limit,
                cursor: q.cursor.unwrap_or_default(),
            },
            &rid.0,
        ))
        .await?
        .into_inner();
    let items: Vec<Value> = r
        .items
        .into_iter()
        .map(|i| {
            json!({
                "analysisId": i.id,
                "name": i.name,
                "healthScore": i.health_score,
                "grade": i.grade,
                "issueCount": i.issue_count,
                "steps": i.steps,
                "cached": i.cached,
                "createdAt": rfc3339(i.created_at_ms),
            })
        })
        .collect();
    Ok(ok(json!({ "items": items, "nextCursor": r.next_cursor })))
}

/// GET /workflows/analyses/{id}
pub async fn get(state: web::Data<AppState>, user: User, rid: Rid, id: web::Path<String>) -> ApiResult {
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
    Ok(ok(analysis_json(a)))
}

/// DELETE /workflows/analyses/{id}
pub async fn delete(state: web::Data<AppState>, user: User, rid: Rid, id: web::Path<String>) -> ApiResult {
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
    Ok(ok(json!({ "deleted": true })))
}

/// GET /workflows/rules
pub async fn rules(state: web::Data<AppState>, rid: Rid) -> ApiResult {
    let r = state
        .workflow()?
        .list_rules(outgoing(pb::ListRulesRequest {}, &rid.0))
        .await?
        .into_inner();
    let rules: Vec<Value> = r
        .rules
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "severity": severity_name(r.severity),
                "title": r.title,
                "description": r.description,
                "weight": r.weight,
            })
        })
        .collect();
    Ok(ok(json!({ "rules": rules })))
}

/// GET /workflows/schema: in the envelope, or the bare document for
/// `Accept: application/schema+json` (what schema tooling asks for).
pub async fn schema(state: web::Data<AppState>, rid: Rid, req: HttpRequest) -> ApiResult {
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
        return Ok(HttpResponse::Ok().content_type("application/schema+json").body(s.json));
    }
    let schema: Value = serde_json::from_str(&s.json).map_err(ApiError::internal)?;
    Ok(ok(schema))
}
