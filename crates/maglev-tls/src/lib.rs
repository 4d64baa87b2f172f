//! TLS client configurations for probing servers (HTTP/1.1 over TLS): the
//! system CA store, or, for `insecure` probes, any certificate whose
//! handshake signature checks out. One small crate so that maglevd's
//! probes and maglevt share them without maglevt linking the health
//! engine.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The two TLS client configurations, built once and shared.
#[derive(Debug, Clone, Default)]
pub struct TlsConfigs {
    verified: Arc<OnceLock<Arc<ClientConfig>>>,
    insecure: Arc<OnceLock<Arc<ClientConfig>>>,
}

/// A TLS client configuration for HTTP probes (ALPN http/1.1): the system
/// CA store, or with `insecure` any certificate whose handshake signature
/// checks out. Built once per kind and shared by every user in the
/// process (maglevd's probes, maglevt).
pub fn client_config(insecure: bool) -> Arc<ClientConfig> {
    static SHARED: OnceLock<TlsConfigs> = OnceLock::new();
    SHARED.get_or_init(TlsConfigs::default).get(insecure)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfigs {
    /// The configuration for verified or `insecure` probing, built on
    /// first use.
    pub fn get(&self, insecure: bool) -> Arc<ClientConfig> {
        let slot = if insecure {
            &self.insecure
        } else {
            &self.verified
        };
        Arc::clone(slot.get_or_init(|| {
            let builder = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions");
            let mut config = if insecure {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
                    .with_no_client_auth()
            } else {
                // The system store, so an internal CA installed on the host
                // is trusted like any other.
                let mut roots = RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::warn!(error = %e, "loading system CA certificates");
                }
                roots.add_parsable_certificates(native.certs);
                builder.with_root_certificates(roots).with_no_client_auth()
            };
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        }))
    }
}

/// `insecure: true`: accept any certificate, still checking that the
/// server holds the key of the one it sent.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
