//! The files a route file's `backend.tls` sections name (CA certificates,
//! client certificate and key), read and checked when the route file is
//! loaded: never per request or per connection. A file that cannot be used is
//! a route-file error at the position that names it, so a reload with one
//! keeps the previous table. Called at start-up and from the reload's
//! blocking thread (`control/route_file.rs`): never on a runtime thread.
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use pingora::protocols::tls::CaType;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use ringress_routes::{FileRef, RouteError, RouteErrors, RouteTable, UpstreamTls};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::data::table::TlsClient;

/// The loaded `backend.tls` of each route that has one, by route name.
#[derive(Default)]
pub struct TlsFiles {
    by_route: HashMap<String, Arc<TlsClient>>,
}

impl TlsFiles {
    /// Loads every route's TLS files; relative paths are relative to the
    /// route file's directory (`origin`). Every bad file is reported.
    pub fn load(origin: &str, table: &RouteTable) -> Result<TlsFiles, RouteErrors> {
        let base = Path::new(origin).parent().unwrap_or(Path::new(""));
        let mut by_route = HashMap::new();
        let mut errors = Vec::new();
        for route in table.routes() {
            let Some(spec) = &route.backend.tls else {
                continue;
            };
            let mut fail = |file: &FileRef, message: String| {
                errors.push(RouteError {
                    file: origin.to_owned(),
                    line: file.line,
                    column: file.column,
                    route: Some(route.name.clone()),
                    message,
                })
            };
            if let Some(client) = load_one(spec, base, &mut fail) {
                by_route.insert(route.name.clone(), Arc::new(client));
            }
        }
        match errors.is_empty() {
            true => Ok(TlsFiles { by_route }),
            false => {
                errors.sort_by_key(|e| (e.line, e.column));
                Err(RouteErrors(errors))
            }
        }
    }

    pub fn get(&self, route: &str) -> Option<&Arc<TlsClient>> {
        self.by_route.get(route)
    }
}

fn load_one(
    spec: &UpstreamTls,
    base: &Path,
    fail: &mut impl FnMut(&FileRef, String),
) -> Option<TlsClient> {
    let mut ok = true;
    let ca = match &spec.ca {
        Some(file) => match load_ca(&base.join(&file.path)) {
            Ok(ca) => Some(ca),
            Err(why) => {
                fail(file, format!("backend.tls.ca {:?}: {why}", file.path));
                ok = false;
                None
            }
        },
        None => None,
    };
    let client_cert_key = match (&spec.client_certificate, &spec.client_key) {
        (Some(cert), Some(key)) => {
            // An absolute path replaces `base` in `join`.
            match load_cert_key(&base.join(&cert.path), &base.join(&key.path)) {
                Ok(pair) => Some(pair),
                Err((which, why)) => {
                    let (file, name) = match which {
                        Which::Certificate => (cert, "clientCertificate"),
                        Which::Key => (key, "clientKey"),
                    };
                    fail(file, format!("backend.tls.{name} {:?}: {why}", file.path));
                    ok = false;
                    None
                }
            }
        }
        // The routes crate requires both or neither.
        _ => None,
    };
    ok.then(|| TlsClient {
        server_name: spec.server_name.clone(),
        pool_key: pool_key(ca.as_deref()),
        ca,
        client_cert_key,
        verify: !spec.insecure_skip_verify,
    })
}

/// Tells pooled connections apart by the CAs they were verified against
/// (see [`TlsClient::pool_key`]); nonzero, so it never matches routes without
/// `tls`, whose peers keep pingora's default of 0.
fn pool_key(ca: Option<&CaType>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for cert in ca.into_iter().flatten() {
        cert.borrow_raw_cert().hash(&mut hasher);
    }
    hasher.finish().max(1)
}

/// Every certificate in a PEM file, each checked as pingora's connector
/// will use it (a trust anchor for rustls; `parse_x509` panics on bad DER).
fn load_ca(path: &Path) -> Result<Arc<CaType>, String> {
    let certs = read_certificates(path)?;
    let mut store = RootCertStore::empty();
    for cert in &certs {
        store
            .add(cert.clone())
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    let wrapped: Vec<WrappedX509> = certs
        .into_iter()
        .map(|c| WrappedX509::new(c.as_ref().to_vec(), parse_x509))
        .collect();
    Ok(Arc::from(wrapped))
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    for cert in &certs {
        x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| format!("bad certificate: {e}"))?;
    }
    Ok(certs)
}

enum Which {
    Certificate,
    Key,
}

/// The client certificate chain and its key, checked as rustls will use them
/// (pingora unwraps the key's conversion per connection: checked here once).
fn load_cert_key(cert: &Path, key: &Path) -> Result<Arc<CertKey>, (Which, String)> {
    let certs = read_certificates(cert).map_err(|why| (Which::Certificate, why))?;
    let key_text = std::fs::read(key).map_err(|e| (Which::Key, e.to_string()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_text)
        .map_err(|e| (Which::Key, format!("no PEM private key: {e}")))?;
    let raw_key = key_der.secret_der().to_vec();
    PrivateKeyDer::try_from(raw_key.clone()).map_err(|e| (Which::Key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (Which::Key, e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_client_auth_cert(certs.clone(), key_der)
        .map_err(|e| (Which::Key, format!("does not fit the certificate: {e}")))?;
    let chain = certs.into_iter().map(|c| c.as_ref().to_vec()).collect();
    Ok(Arc::new(CertKey::new(chain, raw_key)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(tag: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "ringress-upstream-tls-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    /// A self-signed certificate and its key, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn table(tls: &str) -> RouteTable {
        let yaml = format!(
            "routes:\n  - name: r\n    backend:\n      endpoints: [https://a:1]\n      tls:\n{tls}"
        );
        RouteTable::parse("unused", &yaml).unwrap()
    }

    #[test]
    fn relative_paths_are_beside_the_route_file() {
        let d = dir("relative");
        let (cert, key) = pair();
        std::fs::write(d.0.join("ca.pem"), &cert).unwrap();
        std::fs::write(d.0.join("c.pem"), &cert).unwrap();
        std::fs::write(d.0.join("k.pem"), &key).unwrap();
        let origin = d.0.join("routes.yaml").display().to_string();
        let files = TlsFiles::load(
            &origin,
            &table(
                "        ca: ca.pem\n        clientCertificate: c.pem\n        clientKey: k.pem\n",
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let loaded = files.get("r").expect("route r's files");
        assert_eq!(loaded.ca.as_ref().map(|ca| ca.len()), Some(1));
        assert!(loaded.client_cert_key.is_some());
        assert!(loaded.verify);
        assert!(files.get("other").is_none());
    }

    #[test]
    fn each_bad_file_is_an_error_at_the_line_naming_it() {
        let d = dir("bad");
        let (cert, _) = pair();
        let (_, other_key) = pair();
        std::fs::write(d.0.join("c.pem"), &cert).unwrap();
        std::fs::write(d.0.join("k.pem"), &other_key).unwrap();
        std::fs::write(d.0.join("empty.pem"), "").unwrap();
        let origin = d.0.join("routes.yaml").display().to_string();
        let errors = TlsFiles::load(
            &origin,
            &table("        ca: empty.pem\n        clientCertificate: c.pem\n        clientKey: k.pem\n"),
        )
        .err()
        .expect("errors");
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with(&format!(
                "{origin}:6:13: route \"r\": backend.tls.ca \"empty.pem\": no PEM certificate"
            )),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with(&format!(
                "{origin}:8:20: route \"r\": backend.tls.clientKey \"k.pem\": does not fit the certificate"
            )),
            "{}",
            lines[1]
        );
        let missing = TlsFiles::load(&origin, &table("        ca: nowhere.pem\n"))
            .err()
            .expect("a missing file");
        assert_eq!((missing.0[0].line, missing.0[0].column), (6, 13));
    }
}
