//! What a route points at: a Service port, named the way EndpointSlices name it.

use std::fmt;

/// A Service port whose ready endpoints feed one ring.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceTarget {
    pub namespace: String,
    pub name: String,
    pub port: PortSpec,
}

/// How a route picks the port out of an EndpointSlice's `ports`.
///
/// EndpointSlices carry the Service port's *name* and the *target* (pod) port number, so a
/// route names the port (as Skipper does after reading the Service) or gives the pod's port
/// number. The Service object itself is never read: discovery needs EndpointSlice RBAC only.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSpec {
    Name(String),
    Number(u16),
}

impl ServiceTarget {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, port: PortSpec) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            port,
        }
    }

    /// The label selector Kubernetes' EndpointSlice controller puts on a Service's slices.
    pub fn label_selector(&self) -> String {
        format!("{SERVICE_NAME_LABEL}={}", self.name)
    }
}

/// Set by the EndpointSlice controller on every slice it manages for a Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

impl fmt::Display for ServiceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Name(name) => f.write_str(name),
            PortSpec::Number(number) => write!(f, "{number}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_namespace_name_port() {
        let by_name = ServiceTarget::new("shop", "catalog", PortSpec::Name("http".into()));
        let by_number = ServiceTarget::new("shop", "catalog", PortSpec::Number(8080));
        assert_eq!(by_name.to_string(), "shop/catalog:http");
        assert_eq!(by_number.to_string(), "shop/catalog:8080");
        assert_eq!(
            by_name.label_selector(),
            "kubernetes.io/service-name=catalog"
        );
    }
}
