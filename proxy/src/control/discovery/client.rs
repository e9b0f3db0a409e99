//! Building the Kubernetes client.

use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::{InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

/// Why no Kubernetes client could be built.
#[derive(Debug)]
pub enum ClientError {
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor an in-cluster service account.
    Infer(InferConfigError),
    /// The kubeconfig given explicitly could not be read or used.
    Kubeconfig(PathBuf, KubeconfigError),
    /// The configuration was found but no client could be made from it.
    Build(kube::Error),
}

/// A client configured as kube usually infers it (`KUBECONFIG` or `~/.kube/config`, else the
/// in-cluster service account), unless `kubeconfig` names a file, which then decides alone.
///
/// Nothing is contacted here: an unreachable API server shows up later as watch errors.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        None => Config::infer().await.map_err(ClientError::Infer)?,
        Some(path) => {
            let failed = |error| ClientError::Kubeconfig(path.to_path_buf(), error);
            let file = Kubeconfig::read_from(path).map_err(failed)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(failed)?
        }
    };
    Client::try_from(config).map_err(ClientError::Build)
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Infer(error) => {
                write!(f, "no Kubernetes configuration found: {error}")
            }
            ClientError::Kubeconfig(path, error) => {
                write!(f, "kubeconfig {}: {error}", path.display())
            }
            ClientError::Build(error) => write!(f, "Kubernetes client: {error}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Infer(error) => Some(error),
            ClientError::Kubeconfig(_, error) => Some(error),
            ClientError::Build(error) => Some(error),
        }
    }
}
