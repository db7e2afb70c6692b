//! TLS for `https://` server urls: rustls with ring, trusting the system's
//! root certificates (or those of `SSL_CERT_FILE` / `SSL_CERT_DIR`, which
//! replace them) plus the certificates of the spec's `server.ca_file`. A
//! certificate that does not verify fails the connection; there is no
//! switch to skip verification (a measurement through an unverified hop is
//! not one an auditor can trust).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use assay_core::config::BackendConfig;

/// ring, not aws-lc-rs: no C/CMake build in CI, and the remote cache's S3
/// client (object_store) already uses it. rustls deprecates it for lacking
/// post-quantum key exchange, which benchmark traffic does not need.
pub(super) fn crypto_provider() -> rustls::crypto::CryptoProvider {
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

/// The certificates of a PEM file, or why it holds none.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// At spec load: each server backend's `ca_file` resolved against the
/// spec's folder and read. Returns (JSON pointer, message) of each file
/// that cannot be used.
pub fn read_ca_files(backends: &mut [BackendConfig], dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (i, b) in backends.iter_mut().enumerate() {
        let Some(opts) = b.server.as_mut() else {
            continue;
        };
        let Some(file) = &opts.ca_file else {
            continue;
        };
        let path: PathBuf = dir.join(file);
        match read_ca_file(&path) {
            Ok(_) => opts.ca_path = Some(path),
            Err(message) => found.push((format!("/backends/{i}/server/ca_file"), message)),
        }
    }
    found
}

/// The client's TLS configuration: the system's roots, plus those of
/// `ca_file` when given. No trusted root at all is an error, not a client
/// that fails every handshake.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (system, _ignored) = roots.add_parsable_certificates(found.certs);
    let mut private = 0;
    if let Some(path) = ca_file {
        for cert in read_ca_file(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("https: {} is not a usable CA: {e}", path.display()))?;
            private += 1;
        }
    }
    if system + private == 0 {
        let why = found
            .errors
            .first()
            .map_or(String::new(), |e| format!(" ({e})"));
        return Err(format!(
            "https: no trusted root certificates could be loaded{why}; install the system's \
             CA bundle (Debian: ca-certificates), point SSL_CERT_FILE at a PEM bundle, or \
             name the server's CA in server.ca_file"
        ));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(crypto_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("https: cannot configure TLS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = read_ca_file(&missing).unwrap_err();
        assert!(
            err.contains("cannot read") && err.contains("missing.pem"),
            "{err}"
        );
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, include_str!("../../../../testkit/src/tls/ca.pem")).unwrap();
        assert_eq!(read_ca_file(&ca).unwrap().len(), 1);
        assert!(client_config(Some(&ca)).is_ok());
    }
}
