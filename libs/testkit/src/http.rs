//! A fake HTTP server a test plays a provider with (Stripe, RunningHub): an actix-web server
//! on an ephemeral loopback port, running on the test's runtime and stopped when dropped.

use actix_web::{
    App, HttpServer,
    body::MessageBody,
    dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse},
};

/// A running fake; stops when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    handle: ServerHandle,
}

impl Served {
    /// Serves the app `factory` makes on an ephemeral loopback port (one worker, no signal
    /// handling), on the current runtime.
    pub fn start<F, T, B>(factory: F) -> Served
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        #[allow(clippy::expect_used)] // test support: a loopback port that cannot be bound is a broken machine
        let server = HttpServer::new(factory)
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("a loopback port");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Served {
            url: format!("http://{addr}"),
            handle,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}
