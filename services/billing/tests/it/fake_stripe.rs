//! A fake Stripe over HTTP: answers the calls the billing service makes with Stripe-shaped
//! objects, records every request (method, path, headers, form), keeps subscription state so
//! re-fetches agree with the events it builds, and can be told to fail.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix_web::{App, HttpRequest, HttpResponse, web};
use portico_testkit::http::Served;
use serde_json::{Value, json};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub form: Vec<(String, String)>,
}

impl Recorded {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    customers: BTreeMap<String, Value>,
    sessions: BTreeMap<String, Value>,
    subscriptions: BTreeMap<String, Value>,
    /// Idempotency keys already answered, with their answers (as Stripe replays them).
    answered: HashMap<String, Value>,
    next: u64,
}

#[derive(Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    fail_next: Arc<AtomicUsize>,
    refuse_next: Arc<AtomicUsize>,
}

pub struct FakeStripe {
    pub url: String,
    pub fake: Fake,
    _served: Served,
}

fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"type": kind, "code": code, "message": message}}))
}

impl Fake {
    fn id(&self, prefix: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        format!("{prefix}_fake{}", s.next)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The next `n` requests answer 409 with `Stripe-Should-Retry: false` and a card error
    /// naming its parameter (Stripe's way of saying a retry cannot help).
    pub fn refuse_next(&self, n: usize) {
        self.refuse_next.store(n, Ordering::SeqCst);
    }

    /// The next `n` requests answer 500 (Stripe's `api_error`).
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn session(&self, id: &str) -> Value {
        self.state.lock().unwrap().sessions[id].clone()
    }

    /// Changes a subscription as Stripe would (its next fetch answers the new state).
    pub fn update_subscription(&self, id: &str, f: impl FnOnce(&mut Value)) -> Value {
        let mut s = self.state.lock().unwrap();
        let sub = s.subscriptions.get_mut(id).unwrap();
        f(sub);
        sub.clone()
    }

    /// The customer pays the checkout: the subscription exists and is active.
    pub fn complete_checkout(&self, session_id: &str) -> Value {
        let sub_id = self.id("sub");
        let mut s = self.state.lock().unwrap();
        let session = s.sessions.get_mut(session_id).unwrap();
        session["status"] = json!("complete");
        session["subscription"] = json!(sub_id);
        let now = chrono::Utc::now().timestamp();
        let sub = json!({
            "id": sub_id, "object": "subscription", "status": "active",
            "customer": session["customer"], "cancel_at_period_end": false,
            "metadata": {"user_id": session["client_reference_id"]},
            "items": {"object": "list", "data": [{"price": {"id": session["price"]}, "current_period_end": now + 30 * 86_400}]},
        });
        s.subscriptions.insert(sub_id, sub.clone());
        sub
    }

    fn record(&self, req: &HttpRequest, body: &[u8]) {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).unwrap_or_default();
        self.state.lock().unwrap().requests.push(Recorded {
            method: req.method().to_string(),
            path: req.uri().to_string(),
            headers,
            form,
        });
    }

    fn answer(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        self.record(req, body);
        if self.refuse_next.load(Ordering::SeqCst) > 0 {
            self.refuse_next.fetch_sub(1, Ordering::SeqCst);
            return HttpResponse::Conflict()
                .insert_header(("Stripe-Should-Retry", "false"))
                .json(
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                    "param": "customer", "message": "No such customer: 'cus_gone'"}}),
                );
        }
        if self.fail_next.load(Ordering::SeqCst) > 0 {
            self.fail_next.fetch_sub(1, Ordering::SeqCst);
            return error(500, "api_error", None, "Something went wrong on Stripe's end.");
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some("Bearer sk_test_fake") {
            return error(401, "invalid_request_error", None, "Invalid API Key provided");
        }
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(k) = &key
            && let Some(prior) = self.state.lock().unwrap().answered.get(k).cloned()
        {
            return HttpResponse::Ok()
                .insert_header(("Idempotent-Replayed", "true"))
                .json(prior);
        }
        let form: BTreeMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        let path = req.path().to_string();
        let method = req.method().as_str().to_string();
        let answer = match (method.as_str(), path.as_str()) {
            ("POST", "/v1/customers") => {
                let id = self.id("cus");
                let c = json!({"id": id, "object": "customer", "email": form.get("email"),
                    "metadata": {"user_id": form.get("metadata[user_id]")}});
                self.state.lock().unwrap().customers.insert(id, c.clone());
                c
            }
            ("POST", "/v1/checkout/sessions") => {
                let Some(price) = form.get("line_items[0][price]") else {
                    return error(
                        400,
                        "invalid_request_error",
                        Some("parameter_missing"),
                        "Missing line_items",
                    );
                };
                let id = self.id("cs");
                let s = json!({"id": id, "object": "checkout.session", "url": format!("https://checkout.stripe.test/c/{id}"),
                    "customer": form.get("customer"), "client_reference_id": form.get("client_reference_id"),
                    "mode": form.get("mode"), "price": price, "status": "open"});
                self.state.lock().unwrap().sessions.insert(id, s.clone());
                s
            }
            ("POST", "/v1/billing_portal/sessions") => {
                json!({"id": self.id("bps"), "object": "billing_portal.session", "url": "https://billing.stripe.test/p/session"})
            }
            ("GET", "/v1/subscriptions") => {
                let data: Vec<Value> = self.state.lock().unwrap().subscriptions.values().cloned().collect();
                json!({"object": "list", "data": data, "has_more": false})
            }
            (m, p) if p.starts_with("/v1/subscriptions/") => {
                let id = p.trim_start_matches("/v1/subscriptions/").to_string();
                let mut s = self.state.lock().unwrap();
                let Some(sub) = s.subscriptions.get_mut(&id) else {
                    return error(
                        404,
                        "invalid_request_error",
                        Some("resource_missing"),
                        "No such subscription",
                    );
                };
                match m {
                    "POST" if form.get("cancel_at_period_end").map(String::as_str) == Some("true") => {
                        sub["cancel_at_period_end"] = json!(true);
                    }
                    "DELETE" => sub["status"] = json!("canceled"),
                    _ => {}
                }
                sub.clone()
            }
            _ => return error(404, "invalid_request_error", None, "Unrecognized request URL"),
        };
        if let Some(k) = key {
            self.state.lock().unwrap().answered.insert(k, answer.clone());
        }
        HttpResponse::Ok().json(answer)
    }
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let fake = Fake::default();
        let shared = fake.clone();
        let served = Served::start(move || {
            let fake = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let fake = fake.clone();
                async move { fake.answer(&req, &body) }
            }))
        });
        FakeStripe {
            url: served.url.clone(),
            fake,
            _served: served,
        }
    }
}

/// A Stripe event around `object`.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created, "livemode": false,
        "api_version": "2026-10-28.endive", "data": {"object": object}})
}
