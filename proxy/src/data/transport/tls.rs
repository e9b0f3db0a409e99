//! The TLS listener's certificates, picked per handshake by SNI.
//!
//! The control plane loads certificate/key pairs (`control::certificates`) and
//! publishes them here whole; a handshake reads the table in force without a
//! lock. A name the client asks for is matched exactly, then against the
//! wildcard one label up (`*.shop.example` covers `a.shop.example`, not
//! `shop.example` or `a.b.shop.example`, RFC 6125 §6.4.3); a name no
//! certificate has, or no SNI at all, gets the first pair.
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One loaded certificate chain with its signing key, and the DNS names it is
/// for (lowercase; `*.example.com` for a wildcard).
#[derive(Clone)]
pub struct Certificate {
    pub key: Arc<CertifiedKey>,
    pub names: Vec<String>,
}

#[derive(Default)]
struct Table {
    default: Option<Arc<CertifiedKey>>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the domain under the `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Table {
    fn build(certs: &[Certificate]) -> Self {
        let mut table = Table {
            default: certs.first().map(|c| Arc::clone(&c.key)),
            ..Table::default()
        };
        // When two pairs name the same host, the earlier one serves it.
        for cert in certs {
            for name in &cert.names {
                let (map, name) = match name.strip_prefix("*.") {
                    Some(domain) => (&mut table.wildcard, domain),
                    None => (&mut table.exact, name.as_str()),
                };
                map.entry(name.to_string())
                    .or_insert_with(|| Arc::clone(&cert.key));
            }
        }
        table
    }

    fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = server_name.and_then(|name| {
            let name = name.trim_end_matches('.');
            let lower;
            let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
                true => {
                    lower = name.to_ascii_lowercase();
                    lower.as_str()
                }
                false => name,
            };
            self.exact.get(name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        by_name.or(self.default.as_ref()).cloned()
    }
}

/// The certificates in force: rustls asks it for one per handshake.
pub struct CertStore {
    table: ArcSwap<Table>,
}

impl CertStore {
    pub fn new(certs: &[Certificate]) -> Self {
        Self {
            table: ArcSwap::from_pointee(Table::build(certs)),
        }
    }

    /// Puts a new set in force; handshakes under way keep the one they read.
    pub fn publish(&self, certs: &[Certificate]) {
        self.table.store(Arc::new(Table::build(certs)));
    }

    /// The certificate a handshake for `server_name` gets.
    pub fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.load().pick(server_name)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.load();
        f.debug_struct("CertStore")
            .field("exact", &table.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &table.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::sign::any_supported_type;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A certified key whose chain is a marker: only identity matters here.
    fn key(marker: u8) -> Arc<CertifiedKey> {
        let pair = rcgen::KeyPair::generate().expect("key");
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
        let signer = any_supported_type(&der).expect("signer");
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![marker])],
            signer,
        ))
    }

    fn cert(marker: u8, names: &[&str]) -> Certificate {
        Certificate {
            key: key(marker),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn marker(store: &CertStore, name: Option<&str>) -> u8 {
        store.pick(name).expect("a certificate").cert[0].as_ref()[0]
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_first_pair() {
        let store = CertStore::new(&[
            cert(1, &["a.test"]),
            cert(2, &["b.test", "*.shop.test"]),
            cert(3, &["x.shop.test", "a.test"]),
        ]);
        assert_eq!(marker(&store, Some("a.test")), 1, "the earlier pair wins");
        assert_eq!(marker(&store, Some("B.Test.")), 2, "case and a final dot");
        assert_eq!(
            marker(&store, Some("x.shop.test")),
            3,
            "exact before wildcard"
        );
        assert_eq!(marker(&store, Some("y.shop.test")), 2);
        assert_eq!(
            marker(&store, Some("shop.test")),
            1,
            "a wildcard is not its parent"
        );
        assert_eq!(marker(&store, Some("a.b.shop.test")), 1, "one label only");
        assert_eq!(marker(&store, Some("unknown.test")), 1);
        assert_eq!(marker(&store, None), 1);
        store.publish(&[cert(4, &["a.test"])]);
        assert_eq!(marker(&store, Some("b.test")), 4);
    }
}
