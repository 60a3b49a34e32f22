//! The OCT key pair and the certificates of its routes and AMC, loaded once at start. The PS's
//! certificates are the practices directory's (`crate::practices`), loaded when it is.

use std::collections::HashMap;
use std::path::PathBuf;

use svoct_mail::cms::{PrivateKeyAndCert, RecipientCert};

use super::PipelineError;
use crate::config::Config;

/// The keys and certificates the pipeline uses, loaded once at start.
pub struct Keys {
    pub(super) oct: PrivateKeyAndCert,
    certs: HashMap<PathBuf, RecipientCert>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("oct", &self.oct)
            .field("certificates", &self.certs.len())
            .finish()
    }
}

impl Keys {
    /// Loads the OCT key pair (the key file's permissions are checked) and every route and AMC
    /// certificate named by the configuration; an expired certificate is refused here.
    pub fn load(config: &Config) -> Result<Keys, PipelineError> {
        let oct = PrivateKeyAndCert::from_files(&config.keys.private_key, &config.keys.certificate).map_err(
            |source| PipelineError::Key {
                what: "OCT key pair",
                path: config.keys.private_key.clone(),
                source,
            },
        )?;
        let mut certs = HashMap::new();
        let paths = config
            .routes
            .iter()
            .filter_map(|r| r.certificate.as_ref())
            .chain(config.amc.iter().filter_map(|a| a.certificate.as_ref()));
        for path in paths {
            if certs.contains_key(path) {
                continue;
            }
            let cert = RecipientCert::from_file(path).map_err(|source| PipelineError::Key {
                what: "certificate",
                path: path.clone(),
                source,
            })?;
            cert.check_validity().map_err(|source| PipelineError::Key {
                what: "certificate",
                path: path.clone(),
                source,
            })?;
            certs.insert(path.clone(), cert);
        }
        Ok(Keys { oct, certs })
    }

    /// Keys from already loaded parts (tests, embedding).
    pub fn from_parts(oct: PrivateKeyAndCert, certs: Vec<(PathBuf, RecipientCert)>) -> Keys {
        Keys {
            oct,
            certs: certs.into_iter().collect(),
        }
    }

    pub(super) fn cert(&self, path: Option<&PathBuf>) -> Option<&RecipientCert> {
        path.and_then(|p| self.certs.get(p))
    }
}
