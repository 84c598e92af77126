//! A fake HTTP server a test plays a provider with (Stripe, RunningHub): an actix-web server
//! on an ephemeral loopback port, running on the test's runtime and stopped when dropped.

use std::net::SocketAddr;

use actix_web::dev::{Server, ServerHandle};

/// A running fake; stops when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    handle: ServerHandle,
}

impl Served {
    /// Runs `server` (bound to `addr`) on the current runtime.
    pub fn spawn(server: Server, addr: SocketAddr) -> Served {
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
