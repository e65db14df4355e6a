//! The cluster's certificate authority and the masters' serving certificates.
//!
//! `ctl init` makes a CA (ECDSA P-256, ten years) and a serving certificate
//! for the first master signed by it; a joining master receives the CA (key
//! included, as kubeadm's control-plane join with uploaded certificates does)
//! and signs its own serving certificate. Clients trust the CA alone: the
//! admin kubeconfig carries it as `certificate-authority-data`, and join
//! tokens carry its SHA-256 fingerprint, so a joining machine checks it
//! talks to the right cluster before it sends its token.
//!
//! Files, under `DATA_DIR/pki/`: `ca.crt`, `ca.key`, `server.crt`, `server.key`
//! (keys readable by the owner only).

use crate::client::kubeconfig::write_private;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Key or certificate generation failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM file is not what it should be.
    #[error("{0}")]
    Pem(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A CA certificate and key, PEM-encoded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Authority {
    /// CA certificate.
    pub cert_pem: String,
    /// CA private key.
    pub key_pem: String,
}

/// A serving certificate and key, PEM-encoded.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Serving {
    /// Certificate signed by the CA.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "flotilla-ca");
    name.push(DnType::OrganizationName, "flotilla");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

impl Authority {
    /// Makes a new CA.
    ///
    /// # Errors
    /// When key generation fails.
    pub fn generate() -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a serving certificate for `hosts` (DNS names or IP addresses).
    ///
    /// # Errors
    /// When the CA key is unreadable or signing fails.
    pub fn issue(&self, hosts: &[String]) -> Result<Serving, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        // The issuer is the CA's name and key: rebuilding its parameters
        // signs exactly as the original certificate would.
        let ca = ca_params()?.self_signed(&ca_key)?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            hosts.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = name;
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok(Serving {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// `sha256:<hex>` of the DER of the first certificate in `pem`.
///
/// # Errors
/// When `pem` holds no certificate.
pub fn fingerprint(pem: &str) -> Result<String, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::Pem("no certificate in the CA PEM".into()))?
        .map_err(|e| PkiError::Pem(format!("bad CA PEM: {e}")))?;
    Ok(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(der.as_ref()))
    ))
}

/// The `pki` directory of a data directory.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), PkiError> {
    write_private(path, text.as_bytes()).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

/// Writes the CA and a serving certificate for `hosts` under `data_dir/pki`.
///
/// # Errors
/// When a file cannot be written or signing fails.
pub fn install(data_dir: &Path, ca: &Authority, hosts: &[String]) -> Result<(), PkiError> {
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|source| PkiError::Io {
        path: dir.clone(),
        source,
    })?;
    let serving = ca.issue(hosts)?;
    write(&dir.join("ca.crt"), &ca.cert_pem)?;
    write(&dir.join("ca.key"), &ca.key_pem)?;
    write(&dir.join("server.crt"), &serving.cert_pem)?;
    write(&dir.join("server.key"), &serving.key_pem)
}

/// The CA stored under `data_dir/pki`.
///
/// # Errors
/// When the files are missing or unreadable.
pub fn load_authority(data_dir: &Path) -> Result<Authority, PkiError> {
    let dir = dir(data_dir);
    Ok(Authority {
        cert_pem: read(&dir.join("ca.crt"))?,
        key_pem: read(&dir.join("ca.key"))?,
    })
}

/// The serving certificate stored under `data_dir/pki`.
///
/// # Errors
/// When the files are missing or unreadable.
pub fn load_serving(data_dir: &Path) -> Result<Serving, PkiError> {
    let dir = dir(data_dir);
    Ok(Serving {
        cert_pem: read(&dir.join("server.crt"))?,
        key_pem: read(&dir.join("server.key"))?,
    })
}

/// A rustls server configuration for a serving certificate.
///
/// # Errors
/// When the PEM is malformed.
pub fn server_config(serving: &Serving) -> Result<rustls::ServerConfig, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(serving.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(format!("bad serving certificate: {e}")))?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| PkiError::Pem(format!("bad serving key: {e}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Pem(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PkiError::Pem(format!("serving certificate and key do not match: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        let ca = Authority::generate().expect("ca");
        let serving = ca
            .issue(&["127.0.0.1".into(), "localhost".into()])
            .expect("issue");
        assert!(server_config(&serving).is_ok());
        let fp = fingerprint(&ca.cert_pem).expect("fingerprint");
        assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64);
        assert_ne!(fp, fingerprint(&serving.cert_pem).expect("fp"));
        assert!(fingerprint("not pem").is_err());
    }
}
