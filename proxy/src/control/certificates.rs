//! The TLS listener's certificate/key files: loaded at start (a bad pair is a
//! start-up error), then re-read when they change, without a restart.
//!
//! Files are polled rather than watched with inotify: a Kubernetes Secret
//! volume updates by swapping a `..data` symlink, which a watch on the file
//! itself misses. A changed pair that does not load (a key that does not match
//! its certificate, a half-written file) keeps the pair in force, with a log
//! line and `ringress_tls_certificate_reloads_total{result="failed"}`; it is
//! tried again once either file changes again.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::data::transport::tls::{CertStore, Certificate};

/// One `--tls-cert`/`--tls-key` pair.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPair {
    fn label(&self) -> String {
        self.cert.display().to_string()
    }
}

/// A pair as loaded: its files' bytes (to see a change) and the result.
struct Loaded {
    bytes: (Vec<u8>, Vec<u8>),
    cert: Certificate,
}

/// The certificates of the pairs, in the order given (the first is the default).
fn in_force(loaded: &[Loaded]) -> Vec<Certificate> {
    loaded.iter().map(|l| l.cert.clone()).collect()
}

/// Reads and checks a pair's files.
fn read(pair: &CertPair) -> Result<(Vec<u8>, Vec<u8>), String> {
    let cert = std::fs::read(&pair.cert).map_err(|e| format!("{}: {e}", pair.cert.display()))?;
    let key = std::fs::read(&pair.key).map_err(|e| format!("{}: {e}", pair.key.display()))?;
    Ok((cert, key))
}

/// A certificate chain and its key from PEM bytes, with the names it is for.
pub fn parse(pair: &CertPair, cert_pem: &[u8], key_pem: &[u8]) -> Result<Certificate, String> {
    let cert_file = pair.cert.display();
    let key_file = pair.key.display();
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_file}: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!("{cert_file}: no PEM certificate in it"));
    };
    let names = names(leaf).map_err(|e| format!("{cert_file}: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("{key_file}: {e}"))?;
    let signer = any_supported_type(&key).map_err(|e| format!("{key_file}: {e}"))?;
    let certified = CertifiedKey::new(chain, signer);
    certified
        .keys_match()
        .map_err(|e| format!("{key_file} is not the key of {cert_file}: {e}"))?;
    Ok(Certificate {
        key: Arc::new(certified),
        names,
    })
}

/// The DNS names a leaf certificate is for: its subjectAltName DNS entries, or
/// its subject CN when it has none (old certificates), lowercase.
fn names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("not a readable X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// When a certificate stops being valid, in Unix seconds.
fn not_after(cert: &Certificate) -> Option<f64> {
    let leaf = cert.key.end_entity_cert().ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp() as f64)
}

/// Metrics of the certificate files.
#[derive(Clone)]
pub struct CertMetrics {
    reloads: IntCounterVec,
    expiry: GaugeVec,
}

impl CertMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            reloads: IntCounterVec::new(
                Opts::new(
                    "ringress_tls_certificate_reloads_total",
                    "Changed TLS certificate/key pairs: applied, or failed (the previous pair stays).",
                ),
                &["result"],
            )?,
            expiry: GaugeVec::new(
                Opts::new(
                    "ringress_tls_certificate_expiry_timestamp_seconds",
                    "Unix time at which the certificate in force from this file expires.",
                ),
                &["certificate"],
            )?,
        };
        registry.register(Box::new(metrics.reloads.clone()))?;
        registry.register(Box::new(metrics.expiry.clone()))?;
        Ok(metrics)
    }
}

/// The pairs in force and the files they came from.
pub struct Certificates {
    pairs: Vec<CertPair>,
    loaded: Vec<Loaded>,
    /// The bytes of a pair's last failed attempt, so it is not retried (and
    /// logged) every poll until a file changes again.
    failed: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    pub store: Arc<CertStore>,
    metrics: CertMetrics,
}

impl Certificates {
    /// Loads every pair; any that does not load is an error naming its file.
    pub fn load(pairs: Vec<CertPair>, metrics: CertMetrics) -> Result<Self, String> {
        let mut loaded = Vec::with_capacity(pairs.len());
        for pair in &pairs {
            let bytes = read(pair)?;
            let cert = parse(pair, &bytes.0, &bytes.1)?;
            if cert.names.is_empty() {
                log::warn!(
                    "{}: the certificate names no DNS host; it serves only as the default",
                    pair.label()
                );
            }
            loaded.push(Loaded { bytes, cert });
        }
        let certs = in_force(&loaded);
        let me = Self {
            failed: vec![None; pairs.len()],
            pairs,
            loaded,
            store: Arc::new(CertStore::new(&certs)),
            metrics,
        };
        me.record_expiry();
        Ok(me)
    }

    fn record_expiry(&self) {
        for (pair, loaded) in self.pairs.iter().zip(&self.loaded) {
            if let Some(t) = not_after(&loaded.cert) {
                self.metrics
                    .expiry
                    .with_label_values(&[&pair.label()])
                    .set(t);
            }
        }
    }

    /// Re-reads every pair; publishes the set if any pair changed and loaded.
    /// Blocking file I/O: call it off the runtime's threads.
    pub fn refresh(&mut self) {
        let mut changed = false;
        for i in 0..self.pairs.len() {
            let pair = &self.pairs[i];
            let bytes = match read(pair) {
                Ok(bytes) => bytes,
                // Mid-swap, a file can be missing for a moment: try next poll.
                Err(e) => {
                    log::debug!("TLS pair not readable now: {e}");
                    continue;
                }
            };
            if bytes == self.loaded[i].bytes || self.failed[i].as_ref() == Some(&bytes) {
                continue;
            }
            match parse(pair, &bytes.0, &bytes.1) {
                Ok(cert) => {
                    log::info!("TLS certificate {} reloaded", pair.label());
                    self.metrics.reloads.with_label_values(&["applied"]).inc();
                    self.loaded[i] = Loaded { bytes, cert };
                    self.failed[i] = None;
                    changed = true;
                }
                Err(e) => {
                    log::error!("TLS certificate not reloaded, the previous one stays: {e}");
                    self.metrics.reloads.with_label_values(&["failed"]).inc();
                    self.failed[i] = Some(bytes);
                }
            }
        }
        if changed {
            self.store.publish(&in_force(&self.loaded));
            self.record_expiry();
        }
    }
}

/// Polls the files every `interval` for as long as the process runs.
pub async fn watch(certificates: Certificates, interval: Duration) {
    let mut certificates = Some(certificates);
    loop {
        tokio::time::sleep(interval).await;
        let Some(mut certs) = certificates.take() else {
            return;
        };
        // File reads and key parsing are blocking work: not on a thread that serves requests.
        certificates = tokio::task::spawn_blocking(move || {
            certs.refresh();
            certs
        })
        .await
        .ok();
    }
}
