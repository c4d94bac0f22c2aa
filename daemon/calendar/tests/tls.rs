//! HTTPS calendars: certificate verification is always on. A Radicale serving a certificate
//! from a private authority is refused when no TLS configuration is given (no authority is
//! trusted), and read when the daemon's TLS configuration trusts that authority.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use visio_room_calendar::{Source, SourceError, SourceOptions, SourceSpec};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/deps.d/calendar.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private certificate authority and a certificate for 127.0.0.1 it signed.
fn private_authority(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Room test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
}

fn trusting(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn an_unknown_certificate_authority_is_refused_and_a_configured_one_is_trusted() {
    init_logs();
    let pki = tempfile::tempdir().unwrap();
    private_authority(pki.path());
    let tls = trusting(&pki.path().join("ca.pem"));
    let server = Radicale::start_https(
        &pki.path().join("server.pem"),
        &pki.path().join("server.key"),
        tls.clone(),
    );
    server.mkcalendar("/room-3/meetings/").await;
    server
        .put(
            "/room-3/meetings/a.ics",
            &event("a", hours_from_now(2), 30, "Secure", None, None),
        )
        .await;
    let spec = SourceSpec::CalDav {
        url: server.base.clone(),
        auth: server.auth(),
    };

    let mut untrusted = Source::new(spec.clone()).unwrap();
    let error = untrusted.fetch().await.unwrap_err();
    assert!(
        matches!(error, SourceError::Unreachable { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("certificate") && text.contains(&untrusted.describe()),
        "{text}"
    );

    let options = SourceOptions {
        tls: Some(tls),
        ..SourceOptions::default()
    };
    let mut configured = Source::with_options(spec, options).unwrap();
    let texts = changed(configured.fetch().await.unwrap());
    assert!(texts[0].contains("SUMMARY:Secure"));
}
