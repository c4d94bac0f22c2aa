//! The room's one rustls client configuration (ring provider, verification always on). The
//! daemon builds it once at start-up and shares it: the Meet REST client, the LiveKit
//! WebSocket, TURN over TLS, and the calendar's HTTPS sources all trust the same authorities.

use std::sync::Arc;

pub use rustls::ClientConfig;

use crate::config::TlsRoots;

/// The trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An extra CA file could not be read or parsed.
    #[error("cannot read the CA certificate file {path}: {reason}; fix or remove it from the TLS roots setting")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No certificate authority at all: every TLS connection would fail.
    #[error("no trusted certificate authority: install the `ca-certificates` package or configure a CA file")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the client configuration from the system store and/or extra PEM files.
pub fn client_config(roots: &TlsRoots) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    if roots.system {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "skipping an unreadable system certificate");
        }
        let (added, ignored) = store.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system trust store loaded");
    }
    for path in &roots.extra_pem_files {
        let ca_error = |reason: String| TlsError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let data = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut reader = std::io::BufReader::new(data.as_slice());
        let mut count = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            store
                .add(cert)
                .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
            count += 1;
        }
        if count == 0 {
            return Err(ca_error("no PEM certificate in it".into()));
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
