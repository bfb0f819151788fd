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

/// A `gost2012_256` key and a self-signed certificate for it, made with OpenSSL's GOST engine
/// in `dir` (kept if there already): for development and the demo, never production (ESIA
/// wants a certificate from an accredited CA, the key in a certified provider). Returns the
/// key file and the certificate (PEM). Blocking: it runs `openssl`.
pub fn development_certificate(
    dir: &std::path::Path,
    subject: &str,
) -> Result<(std::path::PathBuf, Vec<u8>), String> {
    let key = dir.join("esia-key.pem");
    let cert = dir.join("esia-cert.pem");
    if !(key.is_file() && cert.is_file()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let run = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map_err(|e| format!("openssl: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "openssl {}: {}",
                    args.first().unwrap_or(&""),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(&[
            "genpkey",
            "-engine",
            "gost",
            "-algorithm",
            "gost2012_256",
            "-pkeyopt",
            "paramset:A",
            "-out",
            "esia-key.pem",
        ])?;
        run(&[
            "req",
            "-engine",
            "gost",
            "-new",
            "-x509",
            "-key",
            "esia-key.pem",
            "-out",
            "esia-cert.pem",
            "-days",
            "3650",
            "-subj",
            subject,
            "-md_gost12_256",
        ])?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600));
        }
    }
    let pem = std::fs::read(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok((key, pem))
}

/// A public key (PEM) for RS256 checks from a file holding one, or a certificate (its key is
/// read out with `openssl x509 -pubkey`). Blocking.
pub fn public_key_pem(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("PUBLIC KEY-----") {
        return Ok(bytes);
    }
    let mut args = vec!["x509", "-pubkey", "-noout", "-in"];
    let p = path.to_string_lossy().into_owned();
    args.push(&p);
    if !text.contains("-----BEGIN") {
        args.extend(["-inform", "DER"]);
    }
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .output()
            .map_err(|e| format!("openssl: {e}"))
    };
    let mut out = run(&args)?;
    if !out.status.success() {
        // A GOST certificate needs the GOST engine to be read.
        let mut gost = vec!["x509", "-engine", "gost"];
        gost.extend_from_slice(&args[1..]);
        out = run(&gost)?;
    }
    if !out.status.success() {
        return Err(format!(
            "{}: neither a public key nor a certificate: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
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
