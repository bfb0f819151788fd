//! SRTP for the generator's own media path, keyed by str0m's DTLS handshake.
//!
//! str0m does ICE, DTLS and RTCP for every synthetic peer, but pushing the media itself through
//! a full str0m peer cost the generator ~8 µs per datagram — at 200 rooms more than a core, on
//! the same two cores as the server it measures. So the media bypasses it: a DTLS provider that
//! wraps str0m's default one hands over the DTLS-SRTP keying material (RFC 5764) when the
//! handshake exports it, and [`Srtp`] protects and unprotects RTP with it exactly as RFC 3711 and
//! RFC 7714 define, using the same provider's AES ciphers (what str0m itself would do).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::config::{CryptoProvider, DtlsCert};
use str0m::crypto::dtls::{
    DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{
    AeadAes128Gcm, AeadAes128GcmCipher, AeadAes256Gcm, AeadAes256GcmCipher, Aes128CmSha1_80,
    Aes128CmSha1_80Cipher,
};

/// The keying material one DTLS handshake exported, once it has.
#[derive(Debug, Default)]
pub(crate) struct KeySlot(OnceLock<Keys>);

#[derive(Debug)]
struct Keys {
    material: Vec<u8>,
    profile: SrtpProfile,
    /// This side was the DTLS client: it sends with the first ("client write") key.
    client: bool,
}

impl KeySlot {
    /// SRTP contexts for sending and receiving, once the handshake exported its keys.
    pub(crate) fn srtp(&self) -> anyhow::Result<Option<(Srtp, Srtp)>> {
        let Some(keys) = self.0.get() else {
            return Ok(None);
        };
        Ok(Some((Srtp::new(keys, true)?, Srtp::new(keys, false)?)))
    }
}

/// A crypto provider for one `Rtc`: str0m's default, whose DTLS fills `slot`.
pub(crate) fn provider(slot: Arc<KeySlot>) -> Arc<CryptoProvider> {
    // `CryptoProvider` holds `&'static` components: one small provider per transport is leaked
    // (a few dozen bytes per synthetic peer of a benchmark run).
    let dtls: &'static CapturingProvider = Box::leak(Box::new(CapturingProvider { slot }));
    Arc::new(CryptoProvider {
        dtls_provider: dtls,
        ..default_provider().clone()
    })
}

fn default_provider() -> &'static CryptoProvider {
    static DEFAULT: OnceLock<CryptoProvider> = OnceLock::new();
    DEFAULT.get_or_init(str0m::crypto::from_feature_flags)
}

#[derive(Debug)]
struct CapturingProvider {
    slot: Arc<KeySlot>,
}

impl DtlsProvider for CapturingProvider {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        default_provider().dtls_provider.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        dtls_version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, str0m::crypto::CryptoError> {
        let inner = default_provider()
            .dtls_provider
            .new_dtls(cert, now, dtls_version, mtu)?;
        Ok(Box::new(Capturing {
            inner,
            slot: self.slot.clone(),
        }))
    }
}

#[derive(Debug)]
struct Capturing {
    inner: Box<dyn DtlsInstance>,
    slot: Arc<KeySlot>,
}

impl DtlsInstance for Capturing {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let output = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &output {
            let _ = self.slot.0.set(Keys {
                material: material.to_vec(),
                profile: *profile,
                client: self.inner.is_active(),
            });
        }
        output
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// Both ends' keys of one handshake whose keying material is `len` counting bytes, for tests:
/// (client's, server's).
#[cfg(test)]
fn test_keys(profile: SrtpProfile, len: usize) -> (Keys, Keys) {
    let material: Vec<u8> = (0..len as u8).collect();
    let side = |client| Keys {
        material: material.clone(),
        profile,
        client,
    };
    (side(true), side(false))
}

/// The contexts of both ends of one handshake, for tests: (client's tx, rx), (server's tx, rx).
#[cfg(test)]
pub(crate) fn test_pairs(profile: SrtpProfile, len: usize) -> ((Srtp, Srtp), (Srtp, Srtp)) {
    let (client, server) = test_keys(profile, len);
    let pair = |keys: &Keys| {
        (
            Srtp::new(keys, true).unwrap(),
            Srtp::new(keys, false).unwrap(),
        )
    };
    (pair(&client), pair(&server))
}

/// SRTP key derivation labels (RFC 3711 §4.3.1).
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;

/// One direction of SRTP (RTP only: the generator's RTCP stays with str0m).
pub(crate) struct Srtp {
    cipher: Cipher,
}

enum Cipher {
    Cm {
        auth: [u8; Aes128CmSha1_80::HMAC_KEY_LEN],
        salt: [u8; Aes128CmSha1_80::SALT_LEN],
        aes: Box<dyn Aes128CmSha1_80Cipher>,
    },
    /// AEAD-AES-GCM with a 128- or 256-bit key: the same salt, IV and tag (RFC 7714).
    Gcm {
        salt: [u8; AeadAes128Gcm::SALT_LEN],
        aes: Gcm,
    },
}

enum Gcm {
    Aes128(Box<dyn AeadAes128GcmCipher>),
    Aes256(Box<dyn AeadAes256GcmCipher>),
}

impl Gcm {
    fn encrypt(
        &mut self,
        iv: &[u8; 12],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(), str0m::crypto::CryptoError> {
        match self {
            Gcm::Aes128(aes) => aes.encrypt(iv, aad, input, output),
            Gcm::Aes256(aes) => aes.encrypt(iv, aad, input, output),
        }
    }

    fn decrypt(
        &mut self,
        iv: &[u8; 12],
        aads: &[&[u8]],
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, str0m::crypto::CryptoError> {
        match self {
            Gcm::Aes128(aes) => aes.decrypt(iv, aads, input, output),
            Gcm::Aes256(aes) => aes.decrypt(iv, aads, input, output),
        }
    }
}

/// HMAC-SHA1 of the provider, for AES-CM's authentication tag.
fn sha1_hmac(key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
    default_provider()
        .sha1_hmac_provider
        .sha1_hmac(key, payloads)
}

impl Srtp {
    /// The context that protects what this side sends (`tx`) or unprotects what it receives.
    fn new(keys: &Keys, tx: bool) -> anyhow::Result<Srtp> {
        // Each side sends with its own write key: the client's or the server's.
        let client = tx == keys.client;
        let provider = default_provider();
        let srtp = provider.srtp_provider;
        // The material is client key, server key, client salt, server salt (RFC 5764 §4.2).
        let split = |key_len: usize, salt_len: usize| {
            anyhow::ensure!(
                keys.material.len() == 2 * (key_len + salt_len),
                "keying material of {} bytes for {:?}",
                keys.material.len(),
                keys.profile
            );
            let (k, s) = if client {
                (0, 2 * key_len)
            } else {
                (key_len, 2 * key_len + salt_len)
            };
            Ok((
                &keys.material[k..k + key_len],
                &keys.material[s..s + salt_len],
            ))
        };
        let cipher = match keys.profile {
            SrtpProfile::AES128_CM_SHA1_80 => {
                let (master, master_salt) =
                    split(Aes128CmSha1_80::KEY_LEN, Aes128CmSha1_80::SALT_LEN)?;
                Cipher::Cm {
                    auth: derive(master, master_salt, LABEL_RTP_AUTH),
                    salt: derive(master, master_salt, LABEL_RTP_SALT),
                    aes: srtp
                        .aes_128_cm_sha1_80()
                        .create_cipher(derive(master, master_salt, LABEL_RTP_KEY), tx),
                }
            }
            SrtpProfile::AEAD_AES_128_GCM => {
                let (master, master_salt) = split(AeadAes128Gcm::KEY_LEN, AeadAes128Gcm::SALT_LEN)?;
                Cipher::Gcm {
                    salt: derive(master, master_salt, LABEL_RTP_SALT),
                    aes: Gcm::Aes128(
                        srtp.aead_aes_128_gcm()
                            .create_cipher(derive(master, master_salt, LABEL_RTP_KEY), tx),
                    ),
                }
            }
            SrtpProfile::AEAD_AES_256_GCM => {
                let (master, master_salt) = split(AeadAes256Gcm::KEY_LEN, AeadAes256Gcm::SALT_LEN)?;
                Cipher::Gcm {
                    salt: derive(master, master_salt, LABEL_RTP_SALT),
                    aes: Gcm::Aes256(
                        srtp.aead_aes_256_gcm()
                            .create_cipher(derive(master, master_salt, LABEL_RTP_KEY), tx),
                    ),
                }
            }
            other => anyhow::bail!("SRTP profile {other:?} is not supported"),
        };
        Ok(Srtp { cipher })
    }

    /// Bytes SRTP adds to an RTP packet.
    pub(crate) fn overhead(&self) -> usize {
        match self.cipher {
            Cipher::Cm { .. } => Aes128CmSha1_80::HMAC_TAG_LEN,
            Cipher::Gcm { .. } => AeadAes128Gcm::TAG_LEN,
        }
    }

    /// Append the protected form of the RTP packet `header` + `payload` (packet index `index`:
    /// roll-over counter and sequence number) to `out`.
    pub(crate) fn protect(
        &mut self,
        header: &[u8],
        payload: &[u8],
        ssrc: u32,
        index: u64,
        out: &mut Vec<u8>,
    ) -> anyhow::Result<()> {
        let start = out.len();
        out.extend_from_slice(header);
        let body = out.len();
        out.resize(body + payload.len() + self.overhead(), 0);
        let (roc, seq) = ((index >> 16) as u32, index as u16);
        match &mut self.cipher {
            Cipher::Cm { auth, salt, aes } => {
                let iv = Aes128CmSha1_80::rtp_iv(*salt, ssrc, index);
                aes.encrypt(&iv, payload, &mut out[body..body + payload.len()])?;
                let tag_at = body + payload.len() - start;
                Aes128CmSha1_80::rtp_hmac(sha1_hmac, auth, &mut out[start..], index, tag_at);
            }
            Cipher::Gcm { salt, aes } => {
                // The same IV for both key sizes (RFC 7714 §8.1).
                let iv = AeadAes128Gcm::rtp_iv(*salt, ssrc, roc, seq);
                aes.encrypt(&iv, header, payload, &mut out[body..])?;
            }
        }
        Ok(())
    }

    /// Verify and decrypt the payload of the SRTP packet `packet` whose RTP header is
    /// `header_len` bytes, into `out`; `None` if it does not authenticate.
    pub(crate) fn unprotect(
        &mut self,
        packet: &[u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
        out: &mut Vec<u8>,
    ) -> Option<()> {
        let overhead = self.overhead();
        if packet.len() < header_len + overhead {
            return None;
        }
        let (header, rest) = packet.split_at(header_len);
        let payload_len = rest.len() - overhead;
        out.clear();
        out.resize(payload_len, 0);
        let (roc, seq) = ((index >> 16) as u32, index as u16);
        match &mut self.cipher {
            Cipher::Cm { auth, salt, aes } => {
                let (signed, tag) = packet.split_at(packet.len() - overhead);
                if !Aes128CmSha1_80::rtp_verify(sha1_hmac, auth, signed, index, tag) {
                    return None;
                }
                let iv = Aes128CmSha1_80::rtp_iv(*salt, ssrc, index);
                aes.decrypt(&iv, &rest[..payload_len], out).ok()?;
            }
            Cipher::Gcm { salt, aes } => {
                let iv = AeadAes128Gcm::rtp_iv(*salt, ssrc, roc, seq);
                aes.decrypt(&iv, &[header], rest, out).ok()?;
            }
        }
        Some(())
    }
}

/// The SRTP key derivation function (RFC 3711 §4.3.3: AES in counter mode over the master salt
/// with the label at byte 7, key derivation rate 0) for a `N`-byte session key, auth key or salt.
fn derive<const N: usize>(master: &[u8], master_salt: &[u8], label: u8) -> [u8; N] {
    let srtp = default_provider().srtp_provider;
    let mut out = [0u8; N];
    let mut input = [0u8; 16];
    input[..master_salt.len()].copy_from_slice(master_salt);
    input[7] ^= label;
    for (round, chunk) in out.chunks_mut(16).enumerate() {
        input[14..].copy_from_slice(&(round as u16).to_be_bytes());
        let mut block = [0u8; 32];
        if master.len() == 32 {
            srtp.srtp_aes_256_ecb_round(master, &input, &mut block);
        } else {
            srtp.srtp_aes_128_ecb_round(master, &input, &mut block);
        }
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one side protects, the other side unprotects — for every profile, with the key
    /// halves each side picks — and a changed byte fails authentication.
    #[test]
    fn each_profile_round_trips_between_client_and_server() {
        for (profile, len) in [
            (SrtpProfile::AES128_CM_SHA1_80, 2 * (16 + 14)),
            (SrtpProfile::AEAD_AES_128_GCM, 2 * (16 + 12)),
            (SrtpProfile::AEAD_AES_256_GCM, 2 * (32 + 12)),
        ] {
            let (client, server) = test_keys(profile, len);
            let header = [0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
            let payload = b"a frame of media";
            let index = (3u64 << 16) | 0x1234;
            for (from, to) in [(&client, &server), (&server, &client)] {
                let mut packet = Vec::new();
                Srtp::new(from, true)
                    .unwrap()
                    .protect(&header, payload, 0xcafe_babe, index, &mut packet)
                    .unwrap();
                assert_ne!(&packet[12..12 + payload.len()], payload, "{profile:?}");
                let mut rx = Srtp::new(to, false).unwrap();
                let mut plain = Vec::new();
                rx.unprotect(&packet, 12, 0xcafe_babe, index, &mut plain)
                    .unwrap_or_else(|| panic!("{profile:?} does not authenticate"));
                assert_eq!(plain, payload, "{profile:?}");
                // The other direction's keys, another roll-over counter or a changed byte:
                // rejected.
                let mut own = Srtp::new(from, false).unwrap();
                assert!(
                    own.unprotect(&packet, 12, 0xcafe_babe, index, &mut plain)
                        .is_none()
                );
                assert!(
                    rx.unprotect(&packet, 12, 0xcafe_babe, index + (1 << 16), &mut plain)
                        .is_none()
                );
                packet[14] ^= 1;
                assert!(
                    rx.unprotect(&packet, 12, 0xcafe_babe, index, &mut plain)
                        .is_none()
                );
            }
        }
    }

    /// RFC 3711 appendix B.3: the key derivation test vectors.
    #[test]
    fn key_derivation_matches_rfc_3711() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let key: [u8; 16] = derive(&master, &salt, LABEL_RTP_KEY);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let session_salt: [u8; 14] = derive(&master, &salt, LABEL_RTP_SALT);
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let auth: [u8; 20] = derive(&master, &salt, LABEL_RTP_AUTH);
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }
}
