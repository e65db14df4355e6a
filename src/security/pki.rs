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
//! Agents' serving certificates come from a second CA, the *agent CA*, which
//! only the masters' log client trusts (as kubelet serving certificates are
//! not signed by the CA kubectl trusts). An agent certificate is bound to its
//! node: its one name is the node's name (a DNS name, never an IP address),
//! and the masters connect to the node's address while verifying that name.
//! So a worker token cannot buy a certificate that passes for a master with
//! kubectl, `ctl`, agents or Raft peers, nor one that passes for another node.
//!
//! Files, under `DATA_DIR/pki/`: `ca.crt`, `ca.key`, `server.crt`,
//! `server.key`, `agent-ca.crt`, `agent-ca.key`, all written owner-only
//! from creation.

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

/// Common name of the cluster CA.
const CLUSTER_CA_NAME: &str = "flotilla-ca";
/// Common name of the agent CA.
const AGENT_CA_NAME: &str = "flotilla-agent-ca";

fn ca_params(common_name: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
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
    /// Makes a new cluster CA.
    ///
    /// # Errors
    /// When key generation fails.
    pub fn generate() -> Result<Authority, PkiError> {
        Authority::generate_named(CLUSTER_CA_NAME)
    }

    /// Makes a new agent CA (see the module docs).
    ///
    /// # Errors
    /// When key generation fails.
    pub fn generate_agent() -> Result<Authority, PkiError> {
        Authority::generate_named(AGENT_CA_NAME)
    }

    fn generate_named(common_name: &str) -> Result<Authority, PkiError> {
        let key = KeyPair::generate()?;
        let cert = ca_params(common_name)?.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a master's serving certificate for `hosts` (DNS names or IP
    /// addresses) with this, the cluster CA.
    ///
    /// # Errors
    /// When the CA key is unreadable or signing fails.
    pub fn issue(&self, hosts: &[String]) -> Result<Serving, PkiError> {
        self.sign(
            CLUSTER_CA_NAME,
            hosts,
            vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// Signs the serving certificate of node `node`'s agent with this, the
    /// agent CA: its only name is the node's name, a DNS name (node names are
    /// DNS-1123 subdomains), for server authentication only.
    ///
    /// # Errors
    /// When the name is not a DNS name, the CA key is unreadable or signing fails.
    pub fn issue_node(&self, node: &str) -> Result<Serving, PkiError> {
        if node.is_empty() || node.parse::<std::net::IpAddr>().is_ok() {
            return Err(PkiError::Pem(format!(
                "an agent certificate names its node, and {node:?} is not a node name"
            )));
        }
        self.sign(
            AGENT_CA_NAME,
            &[node.to_owned()],
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    fn sign(
        &self,
        issuer_name: &str,
        hosts: &[String],
        usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
    ) -> Result<Serving, PkiError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        // The issuer is the CA's name and key: rebuilding its parameters
        // signs exactly as the original certificate would.
        let ca = ca_params(issuer_name)?.self_signed(&ca_key)?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        let mut name = DistinguishedName::new();
        name.push(
            DnType::CommonName,
            hosts.first().cloned().unwrap_or_default(),
        );
        params.distinguished_name = name;
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        params.extended_key_usages = usages;
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
    Ok(der_fingerprint(der.as_ref()))
}

fn der_fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// The CA a join token pins: `pem` (fetched over a connection not yet
/// trusted) must hold exactly one certificate, and its fingerprint must be
/// `expected`. Returns that certificate alone, re-encoded, so what is
/// trusted afterwards is exactly what was hashed: a bundle that adds a
/// second certificate (a man in the middle's own CA beside the real one) is
/// refused, and anything else in the PEM (keys, comments) is dropped.
///
/// # Errors
/// No certificate, more than one, unreadable PEM, or another fingerprint.
pub fn pinned(pem: &str, expected: &str) -> Result<String, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let certificates = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(format!("bad CA PEM: {e}")))?;
    let [der] = certificates.as_slice() else {
        return Err(PkiError::Pem(format!(
            "the CA bundle holds {} certificates; a join token pins exactly one",
            certificates.len()
        )));
    };
    let actual = der_fingerprint(der.as_ref());
    if actual != expected {
        return Err(PkiError::Pem(format!(
            "the CA is {actual}, but the token names {expected}"
        )));
    }
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    Ok(out)
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

/// Writes the CA, the agent CA and a serving certificate for `hosts` under
/// `data_dir/pki`.
///
/// # Errors
/// When a file cannot be written or signing fails.
pub fn install(
    data_dir: &Path,
    ca: &Authority,
    agent_ca: &Authority,
    hosts: &[String],
) -> Result<(), PkiError> {
    let dir = dir(data_dir);
    crate::security::create_private_dir(&dir).map_err(|source| PkiError::Io {
        path: dir.clone(),
        source,
    })?;
    let serving = ca.issue(hosts)?;
    write(&dir.join("ca.crt"), &ca.cert_pem)?;
    write(&dir.join("ca.key"), &ca.key_pem)?;
    write(&dir.join("agent-ca.crt"), &agent_ca.cert_pem)?;
    write(&dir.join("agent-ca.key"), &agent_ca.key_pem)?;
    write(&dir.join("server.crt"), &serving.cert_pem)?;
    write(&dir.join("server.key"), &serving.key_pem)
}

/// The agent CA stored under `data_dir/pki`; made and stored there when
/// missing (a data directory from before agent CAs existed).
///
/// # Errors
/// When the files are unreadable or cannot be written.
pub fn load_or_create_agent_authority(data_dir: &Path) -> Result<Authority, PkiError> {
    let dir = dir(data_dir);
    let (cert, key) = (dir.join("agent-ca.crt"), dir.join("agent-ca.key"));
    if cert.exists() && key.exists() {
        return Ok(Authority {
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
        });
    }
    tracing::info!("no agent CA in {}: making one", dir.display());
    let agent_ca = Authority::generate_agent()?;
    write(&key, &agent_ca.key_pem)?;
    write(&cert, &agent_ca.cert_pem)?;
    Ok(agent_ca)
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

    #[test]
    fn a_pin_trusts_exactly_one_certificate() {
        let real = Authority::generate().expect("ca");
        let other = Authority::generate().expect("ca");
        let pin = fingerprint(&real.cert_pem).expect("fp");
        let pinned_pem = pinned(&real.cert_pem, &pin).expect("the real CA alone passes");
        assert_eq!(fingerprint(&pinned_pem).expect("fp"), pin);
        let bundle = format!("{}{}", real.cert_pem, other.cert_pem);
        assert!(
            pinned(&bundle, &pin).is_err(),
            "a second certificate slipped in"
        );
        assert!(pinned(&other.cert_pem, &pin).is_err());
        assert!(pinned("", &pin).is_err());
    }

    #[test]
    fn node_certificates_name_the_node_only() {
        let agents = Authority::generate_agent().expect("agent ca");
        assert!(agents.issue_node("w1").is_ok());
        assert!(agents.issue_node("10.0.0.1").is_err());
        assert!(agents.issue_node("").is_err());
    }
}
