//! The TLS side of the connections to etcd: reading and checking the PEM files of an
//! [`EtcdTls`] (each error names its file), and what to tell the operator when a connection
//! fails in a way TLS explains (a server certificate refused, a client certificate refused, plain
//! text sent to a TLS server).

use std::path::Path;

use etcd_client::{Certificate, Identity, TlsOptions};

use super::EtcdTls;

/// The PEM labels of a certificate.
const CERT_LABELS: &[&str] = &["CERTIFICATE"];
/// The PEM labels of the private keys rustls reads (PKCS#8, PKCS#1 RSA, SEC1 EC; not encrypted).
const KEY_LABELS: &[&str] = &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// Reads the files of `tls` into the client's TLS options. Fails, naming the file, when one
/// cannot be read or holds no PEM block of the kind it must hold (a certificate in the CA and
/// certificate files, an unencrypted private key in the key file).
pub(super) fn options(tls: &EtcdTls) -> Result<TlsOptions, String> {
    let ca = read(&tls.ca_file, "TLS CA file", CERT_LABELS, "PEM certificate")?;
    let cert = read(
        &tls.cert_file,
        "TLS certificate file",
        CERT_LABELS,
        "PEM certificate",
    )?;
    let key = read(
        &tls.key_file,
        "TLS key file",
        KEY_LABELS,
        "unencrypted PEM private key (PKCS#8, RSA or EC)",
    )?;
    Ok(TlsOptions::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key)))
}

/// The bytes of `path`, which must hold a PEM block with one of `labels`.
fn read(path: &Path, what: &str, labels: &[&str], kind: &str) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("reading the {what} {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !labels
        .iter()
        .any(|label| text.contains(&format!("-----BEGIN {label}-----")))
    {
        return Err(format!(
            "the {what} {} holds no {kind} (no \"-----BEGIN {}-----\" line)",
            path.display(),
            labels.first().copied().unwrap_or_default()
        ));
    }
    Ok(bytes)
}

/// Why setting up the connections failed: the client refused the TLS material (a key that does
/// not match its certificate, a block it cannot parse).
pub(super) fn setup_failed(tls: Option<&EtcdTls>, detail: &str) -> String {
    match tls {
        Some(tls) => format!(
            "setting up TLS with the certificate file {}, the key file {} and the CA file {}: \
             {detail}",
            tls.cert_file.display(),
            tls.key_file.display(),
            tls.ca_file.display()
        ),
        None => format!("setting up the connections: {detail}"),
    }
}

/// `detail` (why a connection failed), with what TLS has to do with it when the failure looks
/// like a TLS one.
pub(super) fn explain(tls: Option<&EtcdTls>, detail: &str) -> String {
    // etcd's verdict on this client, during the handshake ("received fatal alert:
    // BadCertificate"); with TLS 1.3 it often comes after it, as a closed connection (below).
    if detail.contains("fatal alert") {
        return match tls {
            Some(tls) => format!(
                "TLS handshake failed, etcd refused this client's certificate {}: {detail} \
                 (etcd accepts only client certificates signed by a CA of its \
                 --trusted-ca-file)",
                tls.cert_file.display()
            ),
            None => format!(
                "TLS handshake failed, etcd ended it: {detail} (it may require a client \
                 certificate: give TLS files)"
            ),
        };
    }
    // This client's verdict on etcd's certificate ("invalid peer certificate: UnknownIssuer").
    if detail.contains("certificate") {
        let hint = match tls {
            Some(tls) => format!(
                "the CA file {} must hold the CA that signed etcd's certificate, and the \
                 certificate must name the endpoint's host or IP",
                tls.ca_file.display()
            ),
            None => "no TLS files are configured, so no CA is trusted: give the CA file of \
                     the CA that signed etcd's certificate"
                .to_owned(),
        };
        return format!("TLS handshake failed, etcd's certificate was refused: {detail} ({hint})");
    }
    let closed = ["connection closed", "broken pipe", "connection reset"]
        .iter()
        .any(|m| detail.contains(m));
    if !closed {
        return detail.to_owned();
    }
    match tls {
        Some(tls) => format!(
            "{detail} (etcd closed the TLS connection; an etcd that requires client \
             certificates does so right after the handshake when it refuses this client's \
             certificate {}: is it signed by a CA of etcd's --trusted-ca-file?)",
            tls.cert_file.display()
        ),
        None => format!(
            "{detail} (etcd closed the connection; an etcd serving TLS on this port does so to \
             plain-text clients: if it does, use an https:// endpoint and TLS files)"
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    const ENCRYPTED: &str =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";

    /// TLS files with these contents in `dir`.
    fn files(dir: &Path, ca: &str, cert: &str, key: &str) -> EtcdTls {
        let tls = EtcdTls::new(dir.join("ca"), dir.join("cert"), dir.join("key"));
        std::fs::write(&tls.ca_file, ca).unwrap();
        std::fs::write(&tls.cert_file, cert).unwrap();
        std::fs::write(&tls.key_file, key).unwrap();
        tls
    }

    #[test]
    fn pem_files_of_the_right_kind_are_read() {
        let dir = tempfile::tempdir().unwrap();
        options(&files(dir.path(), CERT, CERT, KEY)).unwrap();
        let rsa = KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY");
        options(&files(dir.path(), CERT, CERT, &rsa)).unwrap();
    }

    #[test]
    fn each_file_of_the_wrong_kind_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (KEY, CERT, KEY, "ca", "TLS CA file"),
            (CERT, KEY, KEY, "cert", "TLS certificate file"),
            (CERT, CERT, CERT, "key", "TLS key file"),
            (CERT, CERT, ENCRYPTED, "key", "unencrypted"),
            ("", CERT, KEY, "ca", "no PEM certificate"),
        ];
        for (ca, cert, key, file, says) in cases {
            let err = options(&files(dir.path(), ca, cert, key)).unwrap_err();
            let path = dir.path().join(file);
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path(), CERT, CERT, KEY);
        std::fs::remove_file(&tls.key_file).unwrap();
        let err = options(&tls).unwrap_err();
        assert!(err.contains("TLS key file"), "{err}");
        assert!(err.contains(&tls.key_file.display().to_string()), "{err}");
    }

    #[test]
    fn failures_are_explained_by_what_tls_does() {
        let tls = EtcdTls::new("/ca.pem", "/c.pem", "/k.pem");
        let refused = explain(Some(&tls), "invalid peer certificate: BadSignature");
        assert!(refused.starts_with("TLS handshake failed"), "{refused}");
        assert!(refused.contains("/ca.pem"), "{refused}");
        let closed = explain(Some(&tls), "operation was canceled: connection closed");
        assert!(closed.contains("/c.pem"), "{closed}");
        let alert = explain(Some(&tls), "received fatal alert: BadCertificate");
        assert!(
            alert.contains("refused this client's certificate /c.pem"),
            "{alert}"
        );
        let plain = explain(
            None,
            "transport error: stream closed because of a broken pipe",
        );
        assert!(plain.contains("https://"), "{plain}");
        assert_eq!(explain(None, "tcp connect error"), "tcp connect error");
    }
}
