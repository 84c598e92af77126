//! A fake RunningHub over HTTP: the five calls as RunningHub documents them (JSON bodies
//! carrying `apiKey`, answers in `{code, msg, data}`), tasks that run for a few status polls
//! and then succeed, an output file to download, and faults on demand (answer 500, hang past
//! the client's timeout).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpResponse, web};
use portico_testkit::http::Served;
use serde_json::{Value, json};

pub const KEY: &str = "rh-test-key-0123456789abcdef";

/// What a call may be made to do instead of answering.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer this HTTP status with an empty body.
    Status(u16),
    /// Do the work, then hang for this long before answering (the answer is lost).
    HangAfter(Duration),
}

#[derive(Default)]
struct State {
    /// Every call as (path, body), `apiKey` included.
    calls: Vec<(String, String)>,
    /// Polls each task still needs before it succeeds.
    remaining: HashMap<String, u32>,
    faults: HashMap<String, Vec<Fault>>,
    next: u64,
}

#[derive(Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    /// Status polls before a new task succeeds.
    pub polls: u32,
    pub base: Arc<Mutex<String>>,
    /// The output's bytes.
    pub output: Arc<Vec<u8>>,
    /// Where outputs say they are, instead of this server.
    pub output_url: Arc<Mutex<Option<String>>>,
    /// Random faults on every call: the share answered 500, the share that hang for the
    /// duration before answering, and a latency added to every answer.
    pub flaky: Arc<Mutex<Option<Flaky>>>,
}

/// Random faults, as a flaky provider has them.
#[derive(Clone, Copy, Debug)]
pub struct Flaky {
    pub fail: f64,
    pub hang: f64,
    pub hang_for: Duration,
    pub latency: Duration,
}

pub struct FakeRunningHub {
    pub url: String,
    pub fake: Fake,
    _served: Served,
}

fn ok(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"code": 0, "msg": "success", "data": data}))
}

impl Fake {
    /// The next calls to `path` fail as listed, in order.
    pub fn fail(&self, path: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(path.to_string())
            .or_default()
            .extend_from_slice(faults);
    }

    /// How many calls reached `path`.
    pub fn count(&self, path: &str) -> usize {
        self.bodies(path).len()
    }

    /// The bodies of the calls to `path`.
    pub fn bodies(&self, path: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Every call so far.
    pub fn total(&self) -> usize {
        self.state.lock().unwrap().calls.len()
    }

    fn take_fault(&self, path: &str) -> Option<Fault> {
        if let Some(f) = *self.flaky.lock().unwrap() {
            let roll: f64 = rand::random();
            if roll < f.fail {
                return Some(Fault::Status(500));
            }
            if roll < f.fail + f.hang {
                return Some(Fault::HangAfter(f.hang_for));
            }
        }
        let mut s = self.state.lock().unwrap();
        let list = s.faults.get_mut(path)?;
        (!list.is_empty()).then(|| list.remove(0))
    }

    /// Records the call; the fault to apply, if any.
    fn arrive(&self, path: &str, body: &[u8]) -> Option<Fault> {
        self.state
            .lock()
            .unwrap()
            .calls
            .push((path.to_string(), String::from_utf8_lossy(body).into_owned()));
        self.take_fault(path)
    }

    fn answer(&self, path: &str, body: &[u8]) -> HttpResponse {
        if path == "/task/openapi/upload" {
            let text = String::from_utf8_lossy(body);
            if !text.contains(KEY) {
                return HttpResponse::Ok().json(json!({"code": 412, "msg": "TOKEN_INVALID", "data": null}));
            }
            return ok(json!({"fileName": "api/uploaded-photo.png", "fileType": "image"}));
        }
        let Ok(req) = serde_json::from_slice::<Value>(body) else {
            return HttpResponse::BadRequest().finish();
        };
        if req["apiKey"] != KEY {
            return HttpResponse::Ok().json(json!({"code": 412, "msg": "TOKEN_INVALID", "data": null}));
        }
        let mut s = self.state.lock().unwrap();
        match path {
            "/task/openapi/ai-app/run" => {
                s.next += 1;
                let id = format!("19{:017}", s.next);
                s.remaining.insert(id.clone(), self.polls);
                ok(json!({"taskId": id, "taskStatus": "QUEUED", "clientId": "c"}))
            }
            "/task/openapi/status" => {
                let id = req["taskId"].as_str().unwrap_or_default().to_string();
                match s.remaining.get_mut(&id) {
                    None => HttpResponse::Ok().json(json!({"code": 807, "msg": "APIKEY_TASK_NOT_FOUND", "data": null})),
                    Some(0) => ok(json!("SUCCESS")),
                    Some(n) => {
                        *n -= 1;
                        ok(json!("RUNNING"))
                    }
                }
            }
            "/task/openapi/outputs" => {
                let base = self.base.lock().unwrap().clone();
                let url = self
                    .output_url
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or(format!("{base}/files/output.png"));
                ok(json!([{"fileUrl": url, "fileType": "png", "taskCostTime": "3"}]))
            }
            "/task/openapi/cancel" => ok(Value::Null),
            _ => HttpResponse::NotFound().finish(),
        }
    }
}

async fn latency(fake: &Fake) {
    let latency = fake.flaky.lock().unwrap().map(|f| f.latency);
    if let Some(d) = latency {
        tokio::time::sleep(d).await;
    }
}

async fn call(fake: web::Data<Fake>, req: actix_web::HttpRequest, body: web::Bytes) -> HttpResponse {
    let path = req.path().to_string();
    latency(&fake).await;
    match fake.arrive(&path, &body) {
        Some(Fault::Status(code)) => HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish(),
        Some(Fault::HangAfter(d)) => {
            let answer = fake.answer(&path, &body);
            tokio::time::sleep(d).await;
            answer
        }
        None => fake.answer(&path, &body),
    }
}

async fn file(fake: web::Data<Fake>, req: actix_web::HttpRequest) -> HttpResponse {
    let path = req.path().to_string();
    latency(&fake).await;
    match fake.arrive(&path, &[]) {
        Some(Fault::Status(code)) => HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish(),
        _ => HttpResponse::Ok()
            .content_type("image/png")
            .body(fake.output.as_ref().clone()),
    }
}

impl FakeRunningHub {
    /// Listens on an ephemeral port; tasks succeed after `polls` status polls.
    pub async fn start(polls: u32, output: Vec<u8>) -> FakeRunningHub {
        let fake = Fake {
            polls,
            output: Arc::new(output),
            ..Fake::default()
        };
        let data = web::Data::new(fake.clone());
        let served = Served::start(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/files/{name}", web::get().to(file))
                .default_service(web::post().to(call))
        });
        *fake.base.lock().unwrap() = served.url.clone();
        FakeRunningHub {
            url: served.url.clone(),
            fake,
            _served: served,
        }
    }
}
