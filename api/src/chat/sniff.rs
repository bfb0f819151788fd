//! What a sent file is, judged by its first bytes (never by its name or the type the browser
//! declared), and the name it is kept under.

/// The kinds of file the chat takes: photos and PDF documents (analyses, conclusions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Jpeg,
    Png,
    Webp,
    Heic,
    Pdf,
}

/// What the refusal of any other file says.
pub const ACCEPTED: &str = "only photos (JPEG, PNG, WebP, HEIC) and PDF documents can be sent";

impl FileKind {
    /// The kind of `bytes`, or `None` for anything else.
    pub fn detect(bytes: &[u8]) -> Option<FileKind> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(FileKind::Jpeg);
        }
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(FileKind::Png);
        }
        if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            return Some(FileKind::Webp);
        }
        // ISO base media: a `ftyp` box first, with an image brand of HEIF (iPhones' photos).
        if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
            let brand = &bytes[8..12];
            if [b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"]
                .iter()
                .any(|b| brand == *b)
            {
                return Some(FileKind::Heic);
            }
            return None;
        }
        // A PDF's header may follow a little garbage (the spec's readers look in the first KiB).
        let head = &bytes[..bytes.len().min(1024)];
        if head.windows(5).any(|w| w == b"%PDF-") {
            return Some(FileKind::Pdf);
        }
        None
    }

    pub fn mime(self) -> &'static str {
        match self {
            FileKind::Jpeg => "image/jpeg",
            FileKind::Png => "image/png",
            FileKind::Webp => "image/webp",
            FileKind::Heic => "image/heic",
            FileKind::Pdf => "application/pdf",
        }
    }

    pub fn parse_mime(mime: &str) -> Option<FileKind> {
        [
            FileKind::Jpeg,
            FileKind::Png,
            FileKind::Webp,
            FileKind::Heic,
            FileKind::Pdf,
        ]
        .into_iter()
        .find(|k| k.mime() == mime)
    }

    /// The extension a file of this kind is stored and offered with.
    pub fn extension(self) -> &'static str {
        match self {
            FileKind::Jpeg => "jpg",
            FileKind::Png => "png",
            FileKind::Webp => "webp",
            FileKind::Heic => "heic",
            FileKind::Pdf => "pdf",
        }
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            FileKind::Jpeg => &["jpg", "jpeg"],
            FileKind::Png => &["png"],
            FileKind::Webp => &["webp"],
            FileKind::Heic => &["heic", "heif"],
            FileKind::Pdf => &["pdf"],
        }
    }
}

/// Longest kept file name, in characters.
const NAME_CHARS: usize = 120;

/// The name a file is kept and offered under: the last part of what the sender gave (no
/// folders), without control characters or quotes, at most 120 characters, and ending in an
/// extension of its real kind (a `scan.exe` that is a PDF becomes `scan.exe.pdf`).
pub fn clean_name(raw: &str, kind: FileKind) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>' | ':' | '*' | '?' | '|'))
        .collect::<String>()
        .trim()
        .trim_start_matches('.')
        .to_owned();
    if name.is_empty() {
        name = "file".to_owned();
    }
    let fits = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| kind.extensions().contains(&ext.to_lowercase().as_str()));
    let suffix = if fits {
        String::new()
    } else {
        format!(".{}", kind.extension())
    };
    let room = NAME_CHARS.saturating_sub(suffix.chars().count());
    if name.chars().count() > room {
        // Keep the end, where the extension is, when it fits; else the beginning.
        name = if fits {
            let ext_len = name
                .rsplit_once('.')
                .map_or(0, |(_, e)| e.chars().count() + 1);
            let stem: String = name.chars().take(room - ext_len).collect();
            let ext: String = name.chars().skip(name.chars().count() - ext_len).collect();
            stem + &ext
        } else {
            name.chars().take(room).collect()
        };
    }
    name + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_their_bytes() {
        assert_eq!(
            FileKind::detect(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Some(FileKind::Jpeg)
        );
        assert_eq!(
            FileKind::detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(FileKind::Png)
        );
        assert_eq!(
            FileKind::detect(b"RIFF\x10\0\0\0WEBPVP8 "),
            Some(FileKind::Webp)
        );
        assert_eq!(
            FileKind::detect(b"\0\0\0\x18ftypheic\0\0\0\0"),
            Some(FileKind::Heic)
        );
        assert_eq!(
            FileKind::detect(b"%PDF-1.7\n%\xe2\xe3"),
            Some(FileKind::Pdf)
        );
        assert_eq!(
            FileKind::detect(b"\xef\xbb\xbf%PDF-1.4\n"),
            Some(FileKind::Pdf)
        );
    }

    #[test]
    fn anything_else_is_refused_whatever_its_name_says() {
        for bytes in [
            &b"MZ\x90\0\x03\0\0\0"[..],                  // a Windows program
            b"<html><script>alert(1)</script>",          // a page
            b"<svg xmlns='http://www.w3.org/2000/svg'>", // SVG can carry scripts
            b"PK\x03\x04\x14\0\0\0",                     // a zip (or .docx)
            b"\0\0\0\x18ftypmp42\0\0\0\0",               // a video
            b"GIF89a",
            b"",
            b"%PD",
        ] {
            assert_eq!(FileKind::detect(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn names_lose_folders_and_get_their_real_extension() {
        assert_eq!(
            clean_name("C:\\Users\\me\\Анализ крови.pdf", FileKind::Pdf),
            "Анализ крови.pdf"
        );
        assert_eq!(clean_name("../../etc/passwd", FileKind::Pdf), "passwd.pdf");
        assert_eq!(clean_name("scan.exe", FileKind::Pdf), "scan.exe.pdf");
        assert_eq!(clean_name("IMG_1.JPEG", FileKind::Jpeg), "IMG_1.JPEG");
        assert_eq!(clean_name("photo.png", FileKind::Jpeg), "photo.png.jpg");
        assert_eq!(clean_name("", FileKind::Png), "file.png");
        assert_eq!(clean_name("..", FileKind::Png), "file.png");
        assert_eq!(clean_name("a\"b\n<c>.pdf", FileKind::Pdf), "abc.pdf");
        let long = format!("{}.pdf", "я".repeat(300));
        let kept = clean_name(&long, FileKind::Pdf);
        assert_eq!(kept.chars().count(), 120);
        assert!(kept.ends_with(".pdf"));
    }
}
