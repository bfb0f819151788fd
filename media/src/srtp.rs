//! SRTP and SRTCP keyed by str0m's DTLS handshake, for packets sent and read past str0m.
//!
//! str0m does ICE, DTLS, RTCP and the SDP for every transport. The SFU's egress and ingress
//! (`egress.rs`, `ingress.rs`) and the benchmark's generator protect and open media themselves:
//! pushing every packet through str0m costs more than the forwarding itself. A DTLS provider
//! that wraps str0m's own hands over the DTLS-SRTP keying material (RFC 5764) when the handshake
//! exports it, and [`Srtp`] protects and unprotects RTP and RTCP with it exactly as RFC 3711 and
//! RFC 7714 define, using the same provider's AES ciphers (what str0m itself does).

use std::cell::RefCell;
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
pub struct KeySlot(OnceLock<Keys>);

/// DTLS-SRTP keying material and which half is whose. Its `Debug` shows the profile only.
pub struct Keys {
    material: Vec<u8>,
    profile: SrtpProfile,
    /// This side was the DTLS client: it sends with the first ("client write") key.
    client: bool,
}

impl Keys {
    pub fn profile(&self) -> SrtpProfile {
        self.profile
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("profile", &self.profile)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl KeySlot {
    /// The keys, once the handshake exported them.
    pub fn keys(&self) -> Option<&Keys> {
        self.0.get()
    }
}

thread_local! {
    /// The slot the next DTLS instance made on this thread fills (see [`capture`]).
    static NEXT_SLOT: RefCell<Option<Arc<KeySlot>>> = const { RefCell::new(None) };
}

/// Build an `Rtc` (in `build`) whose DTLS handshake fills `slot`. The `Rtc` must use
/// [`provider`]: str0m makes the DTLS instance while it builds the `Rtc`, on this thread.
pub fn capture<T>(slot: &Arc<KeySlot>, build: impl FnOnce() -> T) -> T {
    /// Clears the hand-off however `build` ends (a panic too): no later instance takes it.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            NEXT_SLOT.with_borrow_mut(|next| *next = None);
        }
    }
    NEXT_SLOT.with_borrow_mut(|next| *next = Some(slot.clone()));
    let _clear = Clear;
    build()
}

/// str0m's default crypto provider, whose DTLS instances made inside [`capture`] hand over
/// their keying material. One for the whole process.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    static CAPTURING: CapturingProvider = CapturingProvider;
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                dtls_provider: &CAPTURING,
                ..default_provider().clone()
            })
        })
        .clone()
}

fn default_provider() -> &'static CryptoProvider {
    static DEFAULT: OnceLock<CryptoProvider> = OnceLock::new();
    DEFAULT.get_or_init(str0m::crypto::from_feature_flags)
}

#[derive(Debug)]
struct CapturingProvider;

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
        Ok(match NEXT_SLOT.with_borrow_mut(Option::take) {
            Some(slot) => Box::new(Capturing { inner, slot }),
            None => inner,
        })
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
#[doc(hidden)]
pub fn test_keys(profile: SrtpProfile, len: usize) -> (Keys, Keys) {
    let material: Vec<u8> = (0..len as u8).collect();
    let side = |client| Keys {
        material: material.clone(),
        profile,
        client,
    };
    (side(true), side(false))
}

/// SRTP key derivation labels (RFC 3711 §4.3.1): RTP's, then RTCP's.
const LABELS_RTP: [u8; 3] = [0, 1, 2];
const LABELS_RTCP: [u8; 3] = [3, 4, 5];

/// Bytes of the E flag and SRTCP index (RFC 3711 §3.4).
const SRTCP_INDEX_LEN: usize = 4;
/// The RTCP header and sender SSRC, sent in the clear.
const SRTCP_HEADER_LEN: usize = 8;

/// Whose write key a context uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What this side sends.
    Outbound,
    /// What the other side sends.
    Inbound,
}

/// The session keys of one direction of SRTP or SRTCP, to encrypt or to decrypt with.
pub struct Srtp {
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
    /// The RTP context of `direction`, to protect (`encrypt`) or to unprotect with. `None` for
    /// a profile this module does not know, or keying material of the wrong length.
    pub fn rtp(keys: &Keys, direction: Direction, encrypt: bool) -> Option<Srtp> {
        Srtp::new(keys, direction, encrypt, LABELS_RTP)
    }

    /// The RTCP context of `direction`, to protect (`encrypt`) or to unprotect with.
    pub fn rtcp(keys: &Keys, direction: Direction, encrypt: bool) -> Option<Srtp> {
        Srtp::new(keys, direction, encrypt, LABELS_RTCP)
    }

    fn new(keys: &Keys, direction: Direction, encrypt: bool, labels: [u8; 3]) -> Option<Srtp> {
        // Each side sends with its own write key: the client's or the server's.
        let client = (direction == Direction::Outbound) == keys.client;
        let srtp = default_provider().srtp_provider;
        let [key_label, auth_label, salt_label] = labels;
        // The material is client key, server key, client salt, server salt (RFC 5764 §4.2).
        let split = |key_len: usize, salt_len: usize| {
            if keys.material.len() != 2 * (key_len + salt_len) {
                return None;
            }
            let (k, s) = if client {
                (0, 2 * key_len)
            } else {
                (key_len, 2 * key_len + salt_len)
            };
            Some((
                &keys.material[k..k + key_len],
                &keys.material[s..s + salt_len],
            ))
        };
        let cipher = match keys.profile {
            SrtpProfile::AES128_CM_SHA1_80 => {
                let (master, master_salt) =
                    split(Aes128CmSha1_80::KEY_LEN, Aes128CmSha1_80::SALT_LEN)?;
                Cipher::Cm {
                    auth: derive(master, master_salt, auth_label),
                    salt: derive(master, master_salt, salt_label),
                    aes: srtp
                        .aes_128_cm_sha1_80()
                        .create_cipher(derive(master, master_salt, key_label), encrypt),
                }
            }
            SrtpProfile::AEAD_AES_128_GCM => {
                let (master, master_salt) = split(AeadAes128Gcm::KEY_LEN, AeadAes128Gcm::SALT_LEN)?;
                Cipher::Gcm {
                    salt: derive(master, master_salt, salt_label),
                    aes: Gcm::Aes128(
                        srtp.aead_aes_128_gcm()
                            .create_cipher(derive(master, master_salt, key_label), encrypt),
                    ),
                }
            }
            SrtpProfile::AEAD_AES_256_GCM => {
                let (master, master_salt) = split(AeadAes256Gcm::KEY_LEN, AeadAes256Gcm::SALT_LEN)?;
                Cipher::Gcm {
                    salt: derive(master, master_salt, salt_label),
                    aes: Gcm::Aes256(
                        srtp.aead_aes_256_gcm()
                            .create_cipher(derive(master, master_salt, key_label), encrypt),
                    ),
                }
            }
            _ => return None,
        };
        Some(Srtp { cipher })
    }

    /// Bytes SRTP adds to an RTP packet (SRTCP adds the 4-byte index too).
    pub fn overhead(&self) -> usize {
        match self.cipher {
            Cipher::Cm { .. } => Aes128CmSha1_80::HMAC_TAG_LEN,
            Cipher::Gcm { .. } => AeadAes128Gcm::TAG_LEN,
        }
    }

    /// Append the protected form of the RTP packet `header` + `payload` (packet index `index`:
    /// roll-over counter and sequence number) to `out`.
    pub fn protect(
        &mut self,
        header: &[u8],
        payload: &[u8],
        ssrc: u32,
        index: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), str0m::crypto::CryptoError> {
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
    pub fn unprotect(
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

    /// Protect the compound RTCP packet `plain` as SRTCP packet number `index` (encrypted, E set),
    /// into `out`.
    pub fn protect_rtcp(
        &mut self,
        plain: &[u8],
        index: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), str0m::crypto::CryptoError> {
        out.clear();
        if plain.len() < SRTCP_HEADER_LEN {
            return Ok(());
        }
        let index = index & 0x7fff_ffff;
        let e_and_index = (0x8000_0000 | index).to_be_bytes();
        let ssrc = u32::from_be_bytes([plain[4], plain[5], plain[6], plain[7]]);
        let (header, body) = plain.split_at(SRTCP_HEADER_LEN);
        out.extend_from_slice(header);
        match &mut self.cipher {
            Cipher::Cm { auth, salt, aes } => {
                // header | encrypted body | E + index | tag over all before it (RFC 3711 §3.4).
                out.resize(plain.len(), 0);
                let iv = Aes128CmSha1_80::rtp_iv(*salt, ssrc, index as u64);
                aes.encrypt(&iv, body, &mut out[SRTCP_HEADER_LEN..])?;
                out.extend_from_slice(&e_and_index);
                let tag_at = out.len();
                out.resize(tag_at + Aes128CmSha1_80::HMAC_TAG_LEN, 0);
                Aes128CmSha1_80::rtcp_hmac(sha1_hmac, auth, out, tag_at);
            }
            Cipher::Gcm { salt, aes } => {
                // header | encrypted body and tag | E + index; the AAD is the header and the
                // E + index (RFC 7714 §9).
                let iv = AeadAes128Gcm::rtcp_iv(*salt, ssrc, index);
                let mut aad = [0u8; AeadAes128Gcm::RTCP_AAD_LEN];
                aad[..SRTCP_HEADER_LEN].copy_from_slice(header);
                aad[SRTCP_HEADER_LEN..].copy_from_slice(&e_and_index);
                out.resize(plain.len() + AeadAes128Gcm::TAG_LEN, 0);
                aes.encrypt(&iv, &aad, body, &mut out[SRTCP_HEADER_LEN..])?;
                out.extend_from_slice(&e_and_index);
            }
        }
        Ok(())
    }

    /// Verify and decrypt the SRTCP packet `packet` into `out` (the compound RTCP packet);
    /// returns its SRTCP index, `None` if it does not authenticate or is not encrypted.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Option<u32> {
        out.clear();
        let tag_len = self.overhead();
        if packet.len() < SRTCP_HEADER_LEN + SRTCP_INDEX_LEN + tag_len {
            return None;
        }
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let header = &packet[..SRTCP_HEADER_LEN];
        match &mut self.cipher {
            Cipher::Cm { auth, salt, aes } => {
                let (signed, tag) = packet.split_at(packet.len() - tag_len);
                if !Aes128CmSha1_80::rtcp_verify(sha1_hmac, auth, signed, tag) {
                    return None;
                }
                let (sealed, e_and_index) = signed.split_at(signed.len() - SRTCP_INDEX_LEN);
                let e_and_index = u32::from_be_bytes(e_and_index.try_into().ok()?);
                if e_and_index & 0x8000_0000 == 0 {
                    return None;
                }
                let index = e_and_index & 0x7fff_ffff;
                out.extend_from_slice(header);
                out.resize(sealed.len(), 0);
                let iv = Aes128CmSha1_80::rtp_iv(*salt, ssrc, index as u64);
                aes.decrypt(
                    &iv,
                    &sealed[SRTCP_HEADER_LEN..],
                    &mut out[SRTCP_HEADER_LEN..],
                )
                .ok()?;
                Some(index)
            }
            Cipher::Gcm { salt, aes } => {
                let (sealed, e_and_index) = packet.split_at(packet.len() - SRTCP_INDEX_LEN);
                let e_and_index_bytes: [u8; 4] = e_and_index.try_into().ok()?;
                let e_and_index = u32::from_be_bytes(e_and_index_bytes);
                if e_and_index & 0x8000_0000 == 0 {
                    return None;
                }
                let index = e_and_index & 0x7fff_ffff;
                let iv = AeadAes128Gcm::rtcp_iv(*salt, ssrc, index);
                out.extend_from_slice(header);
                out.resize(sealed.len() - tag_len, 0);
                aes.decrypt(
                    &iv,
                    &[header, &e_and_index_bytes],
                    &sealed[SRTCP_HEADER_LEN..],
                    &mut out[SRTCP_HEADER_LEN..],
                )
                .ok()?;
                Some(index)
            }
        }
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

    const PROFILES: [(SrtpProfile, usize); 3] = [
        (SrtpProfile::AES128_CM_SHA1_80, 2 * (16 + 14)),
        (SrtpProfile::AEAD_AES_128_GCM, 2 * (16 + 12)),
        (SrtpProfile::AEAD_AES_256_GCM, 2 * (32 + 12)),
    ];

    /// What one side protects, the other side unprotects — for every profile, with the key
    /// halves each side picks — and a changed byte fails authentication.
    #[test]
    fn each_profile_round_trips_between_client_and_server() {
        for (profile, len) in PROFILES {
            let (client, server) = test_keys(profile, len);
            let header = [0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
            let payload = b"a frame of media";
            let index = (3u64 << 16) | 0x1234;
            for (from, to) in [(&client, &server), (&server, &client)] {
                let mut packet = Vec::new();
                Srtp::rtp(from, Direction::Outbound, true)
                    .unwrap()
                    .protect(&header, payload, 0xcafe_babe, index, &mut packet)
                    .unwrap();
                assert_ne!(&packet[12..12 + payload.len()], payload, "{profile:?}");
                let mut rx = Srtp::rtp(to, Direction::Inbound, false).unwrap();
                let mut plain = Vec::new();
                rx.unprotect(&packet, 12, 0xcafe_babe, index, &mut plain)
                    .unwrap_or_else(|| panic!("{profile:?} does not authenticate"));
                assert_eq!(plain, payload, "{profile:?}");
                // The other direction's keys, another roll-over counter or a changed byte:
                // rejected.
                let mut own = Srtp::rtp(from, Direction::Inbound, false).unwrap();
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

    /// SRTCP: what one side protects the other unprotects, with its index; the RTP keys, a
    /// changed byte or a cleared E flag are rejected; the sender can read back what it sent.
    #[test]
    fn rtcp_round_trips_for_every_profile() {
        // A receiver report (sender SSRC 0xcafebabe) with one report block.
        let mut rr = vec![0x81, 201, 0, 7, 0xca, 0xfe, 0xba, 0xbe];
        rr.extend((0..24).map(|i| i as u8));
        for (profile, len) in PROFILES {
            let (client, server) = test_keys(profile, len);
            for (from, to) in [(&client, &server), (&server, &client)] {
                let mut packet = Vec::new();
                Srtp::rtcp(from, Direction::Outbound, true)
                    .unwrap()
                    .protect_rtcp(&rr, 77, &mut packet)
                    .unwrap();
                assert_eq!(&packet[..8], &rr[..8], "{profile:?}: header in the clear");
                assert_ne!(&packet[8..32], &rr[8..], "{profile:?}: body encrypted");
                let mut plain = Vec::new();
                let mut rx = Srtp::rtcp(to, Direction::Inbound, false).unwrap();
                assert_eq!(
                    rx.unprotect_rtcp(&packet, &mut plain),
                    Some(77),
                    "{profile:?}"
                );
                assert_eq!(plain, rr, "{profile:?}");
                let mut own = Srtp::rtcp(from, Direction::Outbound, false).unwrap();
                assert_eq!(own.unprotect_rtcp(&packet, &mut plain), Some(77));
                assert_eq!(
                    plain, rr,
                    "{profile:?}: the sender reads its own packet back"
                );
                let mut rtp_keys = Srtp::rtp(to, Direction::Inbound, false).unwrap();
                assert_eq!(rtp_keys.unprotect_rtcp(&packet, &mut plain), None);
                let mut changed = packet.clone();
                changed[10] ^= 1;
                assert_eq!(rx.unprotect_rtcp(&changed, &mut plain), None);
                let e_at = match profile {
                    SrtpProfile::AES128_CM_SHA1_80 => packet.len() - 10 - 4,
                    _ => packet.len() - 4,
                };
                let mut clear = packet.clone();
                clear[e_at] &= 0x7f;
                assert_eq!(rx.unprotect_rtcp(&clear, &mut plain), None);
            }
        }
    }

    /// RFC 7714 §10.3 (AEAD_AES_128_GCM, an RTCP sender report): the protected packet is the
    /// RFC's byte for byte, and unprotects to the plaintext.
    #[test]
    fn rtcp_matches_rfc_7714() {
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.split_whitespace().collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        // The RFC gives session keys, not DTLS keying material: the ciphers are made from them.
        let key: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let salt: [u8; 12] = hex("517569642070726f2071756f").try_into().unwrap();
        let context = |encrypt| Srtp {
            cipher: Cipher::Gcm {
                salt,
                aes: Gcm::Aes128(
                    default_provider()
                        .srtp_provider
                        .aead_aes_128_gcm()
                        .create_cipher(key, encrypt),
                ),
            },
        };
        let plain = hex(
            "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
             deadbeef deadbeef deadbeef deadbeef deadbeef",
        );
        let expected = hex(
            "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
             c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
             45d9eade 800005d4",
        );
        let mut out = Vec::new();
        context(true)
            .protect_rtcp(&plain, 0x05d4, &mut out)
            .unwrap();
        assert_eq!(out, expected);
        let mut back = Vec::new();
        assert_eq!(context(false).unprotect_rtcp(&out, &mut back), Some(0x05d4));
        assert_eq!(back, plain);
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
        let key: [u8; 16] = derive(&master, &salt, LABELS_RTP[0]);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let session_salt: [u8; 14] = derive(&master, &salt, LABELS_RTP[2]);
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let auth: [u8; 20] = derive(&master, &salt, LABELS_RTP[1]);
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }
}
