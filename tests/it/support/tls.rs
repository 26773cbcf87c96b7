//! An HTTPS receiver (the sink's TLS listener) that counts what it accepts: what the mTLS and
//! egress proxy tests deliver to.

use hookline_loadtest::tls::TlsListener;
pub use hookline_loadtest::tls::{Issued, TestCa};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Answers 200 to every request; with `client_ca`, only to callers whose client certificate
/// that CA signed. Counts requests and refused handshakes.
pub struct TlsReceiver {
    pub addr: SocketAddr,
    received: Arc<AtomicUsize>,
    handshake_errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsReceiver {
    pub async fn start(server: &Issued, client_ca: Option<&TestCa>) -> TlsReceiver {
        let listener = TlsListener::bind("127.0.0.1:0", server, client_ca).await.unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let handshake_errors = listener.errors();
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let app = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        TlsReceiver {
            addr,
            received,
            handshake_errors,
            task,
        }
    }

    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().unwrap().clone()
    }
}
