//! `client_certificate_hash`: the GOST R 34.11-2012 (256) hash of the certificate's DER bytes,
//! as upper-case hex. Hashing the PEM text instead is the classic mistake (ESIA answers
//! `ESIA-007053 clientSecretWrong`).

use base64::Engine as _;
use streebog::Digest as _;

/// The DER bytes of the first certificate in `pem`, or `der` itself if it is not PEM.
pub fn der_of(pem_or_der: &[u8]) -> Option<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(pem_or_der) else {
        return Some(pem_or_der.to_vec());
    };
    let Some(start) = text.find("-----BEGIN CERTIFICATE-----") else {
        return (!text.trim_start().starts_with("-----")).then(|| pem_or_der.to_vec());
    };
    let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body.find("-----END CERTIFICATE-----")?;
    let b64: String = body[..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Upper-case hex of the GOST R 34.11-2012 (256) hash of `bytes`.
pub fn streebog256_hex(bytes: &[u8]) -> String {
    streebog::Streebog256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// `client_certificate_hash` of a certificate (PEM or DER).
pub fn certificate_hash(pem_or_der: &[u8]) -> Option<String> {
    der_of(pem_or_der).map(|der| streebog256_hex(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streebog_matches_the_standards_example() {
        // GOST R 34.11-2012, example 1 (M1), as OpenSSL's GOST engine prints it.
        assert_eq!(
            streebog256_hex(b"012345678901234567890123456789012345678901234567890123456789012"),
            "9D151EEFD8590B89DAA6BA6CB74AF9275DD051026BB149A452FD84E5E57B5500"
        );
    }

    #[test]
    fn pem_is_hashed_as_its_der() {
        let der = b"\x30\x03\x02\x01\x05";
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        );
        assert_eq!(der_of(pem.as_bytes()).unwrap(), der);
        assert_eq!(certificate_hash(pem.as_bytes()), Some(streebog256_hex(der)));
        assert_ne!(
            certificate_hash(pem.as_bytes()),
            Some(streebog256_hex(pem.as_bytes())),
            "the PEM text is not what is hashed"
        );
    }
}
