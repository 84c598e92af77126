//! The run job: takes due runs (a lease per run, so replicas share the work and none is driven
//! twice), and moves each one step: upload the photo, start the task, poll it, fetch and store
//! the result as the caller's media. Every step's outcome is written before the next, so a
//! restart resumes each run where it was. A failed step waits with full-jitter backoff and
//! counts against the run's budget; an open breaker only defers it; a start whose answer was
//! lost is never sent again (the provider's webhook may still name its task); every run ends
//! `succeeded` or `failed` with a reason by its deadline.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use portico_effects::{
    definition::NodeField,
    params::NodeValue,
    run::{self, Failure, RunStatus},
};
use portico_proto::media::v1 as pb;
use portico_runtime::db::now_ms;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{
    EffectsApp,
    provider::ProviderError,
    service::webhook_token,
    store::{Ending, RunChange, RunRow},
};
use crate::error::MediaError;

/// Runs driven at once by one replica.
const PARALLEL: usize = 32;
/// The lease a step holds on its run: longer than any step can take (each call's timeout
/// with its repeats), so a crashed replica's runs are picked up after it.
const LEASE_MS: i64 = 5 * 60 * 1000;
/// Output types stored as the result.
const IMAGE_TYPES: [&str; 5] = ["png", "jpg", "jpeg", "webp", "image"];

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Drives runs until `stop`.
pub fn spawn(app: EffectsApp, stop: CancellationToken) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(PARALLEL));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = app.inner.wake.notified() => {}
                () = tokio::time::sleep(app.inner.config.tick) => {}
            }
            if let Err(e) = take_due(&app, &slots).await {
                tracing::warn!(error = %e, "the effects run job could not read due runs");
            }
        }
    });
}

/// Leases the due runs there are free slots for and drives each one step.
async fn take_due(app: &EffectsApp, slots: &Arc<Semaphore>) -> Result<(), MediaError> {
    let free = slots.available_permits();
    if free == 0 {
        return Ok(());
    }
    let now = now_ms();
    let ids = app
        .inner
        .db
        .run(move |conn| Ok::<_, MediaError>(RunRow::due(conn, now, free as i64)?))
        .await?;
    for id in ids {
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        let claim = id.clone();
        let claimed = app
            .inner
            .db
            .write(move |conn| Ok::<_, MediaError>(RunRow::claim(conn, &claim, now, now + LEASE_MS)?))
            .await?;
        if !claimed {
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = step(&app, &id).await {
                tracing::warn!(error = %e, run_id = %id, "an effect run step failed; it is retried");
                // The lease runs out and the run is taken again.
            }
        });
    }
    Ok(())
}

/// Ends `row` as `status`, counting it.
async fn end(
    app: &EffectsApp,
    row: &RunRow,
    status: RunStatus,
    error: Option<String>,
    result: Option<String>,
) -> Result<bool, MediaError> {
    let ending = Ending {
        status: status.as_str(),
        error: error.clone(),
        result_media_id: result,
        at: now_ms(),
    };
    let id = row.id.clone();
    let ended = app
        .inner
        .db
        .write(move |conn| Ok::<_, MediaError>(RunRow::finish(conn, &id, &ending)?))
        .await?;
    if ended {
        metrics::counter!("portico_effects_runs_total", "status" => status.as_str()).increment(1);
        metrics::histogram!("portico_effects_run_seconds", "status" => status.as_str())
            .record((now_ms() - row.created_at).max(0) as f64 / 1000.0);
        if let Some(why) = &error {
            tracing::info!(run_id = %row.id, error = %why, "effect run failed");
        }
    }
    Ok(ended)
}

/// Writes a step's change, releasing the lease; false when the run ended meanwhile.
/// (A change that names `claimed_until` keeps it: the step is not over.)
async fn advance(app: &EffectsApp, id: &str, mut change: RunChange) -> Result<bool, MediaError> {
    change.claimed_until = change.claimed_until.or(Some(0));
    change.updated_at = now_ms();
    let id = id.to_string();
    app.inner
        .db
        .write(move |conn| Ok::<_, MediaError>(RunRow::advance(conn, &id, &change)?))
        .await
}

/// A change that moves a run on to `step`, due at once, with a fresh step budget.
fn due_now(step: &str, progress: i32) -> RunChange {
    RunChange {
        step: Some(step.into()),
        progress: Some(Some(progress)),
        attempts: Some(0),
        next_at: Some(now_ms()),
        ..RunChange::default()
    }
}

/// Moves run `id` one step.
async fn step(app: &EffectsApp, id: &str) -> Result<(), MediaError> {
    let lookup = id.to_string();
    let Some(row) = app
        .inner
        .db
        .run(move |conn| Ok::<_, MediaError>(RunRow::get(conn, &lookup)?))
        .await?
    else {
        return Ok(());
    };
    if RunStatus::parse(&row.status).is_none_or(RunStatus::is_terminal) {
        return Ok(());
    }
    let now = now_ms();
    if now > row.deadline_at {
        let secs = (row.deadline_at - row.created_at) / 1000;
        end(
            app,
            &row,
            RunStatus::Failed,
            Some(format!("timed out: not done within {secs} s")),
            None,
        )
        .await?;
        return Ok(());
    }
    let outcome = match row.step.as_str() {
        "upload" => upload(app, &row).await,
        "start" => start(app, &row).await,
        "poll" => poll(app, &row).await,
        "fetch" => fetch(app, &row).await,
        _ => Ok(()),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(Setback::Provider(e)) => setback(app, &row, e).await,
        Err(Setback::Fatal(why)) => end(app, &row, RunStatus::Failed, Some(why), None).await.map(|_| ()),
        Err(Setback::Media(e)) => Err(e),
    }
}

/// Why a step did not move its run.
enum Setback {
    /// The provider failed; [`setback`] decides.
    Provider(ProviderError),
    /// The run cannot succeed: it fails with this reason.
    Fatal(String),
    /// Our own storage failed: the step is taken again when the lease runs out.
    Media(MediaError),
}

impl From<ProviderError> for Setback {
    fn from(e: ProviderError) -> Self {
        Setback::Provider(e)
    }
}

impl From<MediaError> for Setback {
    fn from(e: MediaError) -> Self {
        Setback::Media(e)
    }
}

/// A failed provider call: a refusal fails the run; an open breaker defers it without using
/// its budget; anything else waits with backoff, until the budget is spent.
async fn setback(app: &EffectsApp, row: &RunRow, e: ProviderError) -> Result<(), MediaError> {
    let config = &app.inner.config;
    let now = now_ms();
    match e.failure {
        Failure::Rejected => {
            end(
                app,
                row,
                RunStatus::Failed,
                Some(format!("the provider refused the {}: {}", e.call.as_str(), e.message)),
                None,
            )
            .await?;
        }
        Failure::BreakerOpen => {
            let wait = e.retry_in.unwrap_or(config.breaker.cool_down);
            advance(
                app,
                &row.id,
                RunChange {
                    next_at: Some(now + ms(wait)),
                    ..RunChange::default()
                },
            )
            .await?;
        }
        Failure::Connect | Failure::AnswerLost | Failure::Refused => {
            let attempts = u32::try_from(row.attempts).unwrap_or(0) + 1;
            if attempts >= config.run_attempts {
                let why = format!(
                    "the provider failed {attempts} times in a row ({} {}): {}",
                    e.call.as_str(),
                    e.failure.as_str(),
                    e.message
                );
                end(app, row, RunStatus::Failed, Some(why), None).await?;
                return Ok(());
            }
            let delay = run::backoff(attempts - 1, config.retry_base, config.retry_cap, rand::random::<f64>());
            advance(
                app,
                &row.id,
                RunChange {
                    attempts: Some(i32::try_from(attempts).unwrap_or(i32::MAX)),
                    next_at: Some(now + ms(delay)),
                    ..RunChange::default()
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Uploads the photo (its large JPEG variant: resized and stripped of metadata, so no location
/// or camera data leaves for the provider).
async fn upload(app: &EffectsApp, row: &RunRow) -> Result<(), Setback> {
    let photo = app
        .inner
        .media
        .get_variant(pb::GetVariantRequest {
            user_id: row.user_id.clone(),
            id: row.media_id.clone(),
            variant: "large".to_string(),
            format: "jpeg".to_string(),
        })
        .await;
    let photo = match photo {
        Ok(p) => p,
        Err(MediaError::NotFound(_)) => {
            return Err(Setback::Fatal("the photo was deleted before the run began".into()));
        }
        Err(e) => return Err(Setback::Media(e)),
    };
    let file = app
        .inner
        .provider
        .upload(&photo.content, "photo.jpg", "image/jpeg")
        .await?;
    advance(
        app,
        &row.id,
        RunChange {
            provider_file: Some(file),
            ..due_now("start", 10)
        },
    )
    .await?;
    app.inner.wake.notify_one();
    Ok(())
}

/// Starts the task: recorded as sent before it goes, so a crash or a lost answer is never
/// followed by a second start.
async fn start(app: &EffectsApp, row: &RunRow) -> Result<(), Setback> {
    let config = &app.inner.config;
    if row.start_sent > 0 {
        // An earlier start was sent and its answer lost: the task may exist. Only the
        // provider's webhook can name it; wait for that, then give up with the reason.
        let waited = now_ms() - row.updated_at;
        if config.webhook_base.is_some() && waited < ms(config.reconcile_grace) {
            advance(
                app,
                &row.id,
                RunChange {
                    next_at: Some(row.updated_at + ms(config.reconcile_grace)),
                    ..RunChange::default()
                },
            )
            .await?;
            return Ok(());
        }
        return Err(Setback::Fatal(
            "the provider's answer to starting the task was lost; the run is not started again, as the provider may have run it"
                .into(),
        ));
    }
    let image_node: NodeField =
        serde_json::from_str(&row.image_node).map_err(|e| Setback::Fatal(format!("stored run is unreadable: {e}")))?;
    let mut nodes: Vec<NodeValue> =
        serde_json::from_str(&row.nodes).map_err(|e| Setback::Fatal(format!("stored run is unreadable: {e}")))?;
    let Some(file) = &row.provider_file else {
        return Err(Setback::Fatal("the run has no uploaded photo".into()));
    };
    nodes.insert(0, NodeValue::image(&image_node, file));
    if !advance(
        app,
        &row.id,
        RunChange {
            start_sent: Some(row.start_sent + 1),
            claimed_until: Some(row.claimed_until),
            ..RunChange::default()
        },
    )
    .await?
    {
        return Ok(());
    }
    let webhook = config.webhook_base.as_ref().map(|base| {
        format!(
            "{base}/webhooks/effects/{}?token={}",
            row.id,
            webhook_token(&app.inner.webhook_key, &row.id)
        )
    });
    match app
        .inner
        .provider
        .start(&row.webapp_id, &nodes, webhook.as_deref())
        .await
    {
        Ok(task) => {
            let status = task.status.filter(|s| !s.is_terminal()).unwrap_or(RunStatus::Running);
            let wait = run::poll_after(status, 0, config.poll_first, config.poll_cap).unwrap_or(config.poll_first);
            advance(
                app,
                &row.id,
                RunChange {
                    step: Some("poll".into()),
                    status: Some(status.as_str().into()),
                    task_id: Some(task.task_id),
                    progress: Some(Some(25)),
                    attempts: Some(0),
                    polls: Some(0),
                    next_at: Some(now_ms() + ms(wait)),
                    ..RunChange::default()
                },
            )
            .await?;
            Ok(())
        }
        Err(e) if e.failure == Failure::AnswerLost => {
            // Possibly made: wait for a webhook (if one can come), never resubmit.
            advance(
                app,
                &row.id,
                RunChange {
                    next_at: Some(
                        now_ms()
                            + if config.webhook_base.is_some() {
                                ms(config.reconcile_grace)
                            } else {
                                0
                            },
                    ),
                    ..RunChange::default()
                },
            )
            .await?;
            Ok(())
        }
        Err(e) => {
            // Refused, not connected or shed by the breaker: no task was made, so it may be sent
            // again.
            advance(
                app,
                &row.id,
                RunChange {
                    start_sent: Some(row.start_sent),
                    claimed_until: Some(row.claimed_until),
                    ..RunChange::default()
                },
            )
            .await?;
            Err(e.into())
        }
    }
}

/// Reads the task's status, at most as often as it may move.
async fn poll(app: &EffectsApp, row: &RunRow) -> Result<(), Setback> {
    let config = &app.inner.config;
    let Some(task_id) = &row.task_id else {
        return Err(Setback::Fatal("the run has no task".into()));
    };
    match app.inner.provider.status(task_id).await? {
        RunStatus::Succeeded => {
            advance(
                app,
                &row.id,
                RunChange {
                    status: Some(RunStatus::Running.as_str().into()),
                    ..due_now("fetch", 90)
                },
            )
            .await?;
            app.inner.wake.notify_one();
            Ok(())
        }
        RunStatus::Failed => Err(Setback::Fatal("the provider reported that the task failed".into())),
        status => {
            let polls = u32::try_from(row.polls).unwrap_or(0) + 1;
            let wait = run::poll_after(status, polls, config.poll_first, config.poll_cap).unwrap_or(config.poll_cap);
            let status = if row.status == RunStatus::Running.as_str() {
                RunStatus::Running
            } else {
                status
            };
            advance(
                app,
                &row.id,
                RunChange {
                    status: Some(status.as_str().into()),
                    progress: Some(Some(if status == RunStatus::Running { 50 } else { 25 })),
                    polls: Some(i32::try_from(polls).unwrap_or(i32::MAX)),
                    attempts: Some(0),
                    next_at: Some(now_ms() + ms(wait)),
                    ..RunChange::default()
                },
            )
            .await?;
            Ok(())
        }
    }
}

/// Downloads the output (only from the provider's hosts) and stores it through the media
/// pipeline as the caller's new media: sniffed, re-encoded into variants, metadata stripped.
async fn fetch(app: &EffectsApp, row: &RunRow) -> Result<(), Setback> {
    let Some(task_id) = &row.task_id else {
        return Err(Setback::Fatal("the run has no task".into()));
    };
    let outputs = app.inner.provider.outputs(task_id).await?;
    let Some(output) = outputs
        .iter()
        .find(|o| IMAGE_TYPES.contains(&o.file_type.to_ascii_lowercase().as_str()))
        .or(outputs.first())
    else {
        return Err(Setback::Fatal("the provider's task finished without an output".into()));
    };
    if !app.inner.provider.may_download(&output.file_url) {
        return Err(Setback::Fatal(
            "the provider's output is not on the provider's host: not downloaded".into(),
        ));
    }
    let bytes = app.inner.provider.download(&output.file_url).await?;
    let filename = format!(
        "{}.{}",
        row.effect_name.trim(),
        output.file_type.trim().to_ascii_lowercase()
    );
    let media = match app
        .inner
        .media
        .ingest(
            &row.user_id,
            Bytes::from(bytes),
            Some(filename.chars().take(255).collect()),
        )
        .await
    {
        Ok(m) => m,
        Err(e) if e.is_client_error() => {
            return Err(Setback::Fatal(format!(
                "the provider's output is not a usable image: {e}"
            )));
        }
        Err(e) => return Err(Setback::Media(e)),
    };
    if !end(app, row, RunStatus::Succeeded, None, Some(media.id.clone())).await? {
        // Cancelled while the result was being stored: the result goes.
        let _ = app
            .inner
            .media
            .delete_media(pb::DeleteMediaRequest {
                user_id: row.user_id.clone(),
                id: media.id,
            })
            .await;
    }
    Ok(())
}

/// The provider's webhook said the task is over (`failure`: how it failed): the run fails, or
/// its next step (fetching the output) becomes due now. A start whose answer was lost adopts
/// the task the webhook names. False when it changed nothing.
pub(crate) async fn answered_by_webhook(
    app: &EffectsApp,
    row: &RunRow,
    task_id: Option<String>,
    failure: Option<String>,
) -> Result<bool, MediaError> {
    let known = row.task_id.clone().or(if row.start_sent > 0 { task_id } else { None });
    if known.is_none() {
        return Ok(false);
    }
    if let Some(why) = failure {
        return end(
            app,
            row,
            RunStatus::Failed,
            Some(format!("the provider reported: {why}")),
            None,
        )
        .await;
    }
    if !matches!(row.step.as_str(), "start" | "poll") {
        return Ok(false);
    }
    let moved = advance(
        app,
        &row.id,
        RunChange {
            status: Some(RunStatus::Running.as_str().into()),
            task_id: known,
            ..due_now("fetch", 90)
        },
    )
    .await?;
    if moved {
        metrics::counter!("portico_effects_webhooks_total").increment(1);
        app.inner.wake.notify_one();
    }
    Ok(moved)
}
