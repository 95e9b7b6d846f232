//! TLS 1.3 where the identity *is* the peer's ed25519 key.
//!
//! Both sides present an RFC 7250 raw public key: the "certificate" is the
//! DER SubjectPublicKeyInfo of the node's ed25519 key, and the handshake
//! signature is checked against it. There is no CA and no trust on first
//! use: a client dials a [`PeerId`] and the handshake fails unless the
//! server proves possession of exactly that key; a server learns each
//! client's [`PeerId`] from the client's key, which it proved the same way.

use std::sync::Arc;

use errand_core::{PeerId, SecretKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The ALPN protocol every Errand connection negotiates.
pub const ALPN: &[u8] = b"errand/1";

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an ed25519 PKCS#8 v1 private key; the seed follows.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The SubjectPublicKeyInfo of a peer's key.
pub fn spki(peer: &PeerId) -> Vec<u8> {
    let mut v = SPKI_PREFIX.to_vec();
    v.extend_from_slice(&peer.0);
    v
}

/// The peer whose key a SubjectPublicKeyInfo holds.
pub fn peer_of_spki(der: &[u8]) -> Option<PeerId> {
    let key = der.strip_prefix(&SPKI_PREFIX[..])?;
    Some(PeerId(key.try_into().ok()?))
}

fn pkcs8(key: &SecretKey) -> PrivateKeyDer<'static> {
    let seed = key.seed();
    let mut v = PKCS8_PREFIX.to_vec();
    v.extend_from_slice(seed.as_ref());
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(v))
}

/// The crypto provider: rustls with ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Our key as a rustls raw-public-key certified key.
pub fn certified_key(
    key: &SecretKey,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let signing = provider.key_provider.load_private_key(pkcs8(key))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(spki(&key.peer_id()))],
        signing,
    )))
}

/// Checks handshake signatures against the presented raw key, and (as a
/// client) that the key is the peer we dialled.
#[derive(Debug)]
pub struct PeerVerifier {
    expected: Option<PeerId>,
}

impl PeerVerifier {
    /// For clients: accept only `peer`.
    pub fn expecting(peer: PeerId) -> Arc<PeerVerifier> {
        Arc::new(PeerVerifier {
            expected: Some(peer),
        })
    }

    /// For servers: accept any client that proves its key.
    pub fn any_peer() -> Arc<PeerVerifier> {
        Arc::new(PeerVerifier { expected: None })
    }

    fn check_key(&self, der: &[u8]) -> Result<PeerId, rustls::Error> {
        let peer = peer_of_spki(der).ok_or_else(|| {
            rustls::Error::General("peer did not present an ed25519 raw public key".into())
        })?;
        match self.expected {
            Some(want) if want != peer => Err(rustls::Error::General(format!(
                "peer presented key {peer}, expected {want}"
            ))),
            _ => Ok(peer),
        }
    }

    fn verify13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        let peer = self.check_key(cert.as_ref())?;
        let sig: [u8; 64] = dss
            .signature()
            .try_into()
            .map_err(|_| rustls::Error::General("ed25519 signature is not 64 bytes".into()))?;
        peer.verify(message, &errand_core::Signature(sig))
            .map_err(|_| rustls::Error::General("bad handshake signature".into()))?;
        Ok(HandshakeSignatureValid::assertion())
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check_key(end_entity.as_ref())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check_key(end_entity.as_ref())?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

/// The rustls server configuration for `key`.
pub fn server_config(key: &SecretKey) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = provider();
    let certified = certified_key(key, &provider)?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(PeerVerifier::any_peer())
        .with_cert_resolver(Arc::new(
            rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified),
        ));
    c.alpn_protocols = vec![ALPN.to_vec()];
    Ok(c)
}

/// The rustls client configuration for dialling `peer` as `key`.
pub fn client_config(key: &SecretKey, peer: PeerId) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = provider();
    let certified = certified_key(key, &provider)?;
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(PeerVerifier::expecting(peer))
        .with_client_cert_resolver(Arc::new(
            rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified),
        ));
    c.alpn_protocols = vec![ALPN.to_vec()];
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trips_and_rejects_other_keys() {
        let k = SecretKey::from_seed([5; 32]).peer_id();
        assert_eq!(peer_of_spki(&spki(&k)), Some(k));
        assert_eq!(peer_of_spki(&spki(&k)[1..]), None);
        let mut rsa = spki(&k);
        rsa[8] = 0x71;
        assert_eq!(peer_of_spki(&rsa), None);
    }

    #[test]
    fn ring_accepts_our_pkcs8() {
        let key = SecretKey::from_seed([6; 32]);
        let ck = certified_key(&key, &provider()).unwrap();
        assert_eq!(ck.cert[0].as_ref(), spki(&key.peer_id()).as_slice());
    }
}
