//! The QR code of a fiscal receipt, in the FNS format every receipt carries
//! (`t=YYYYMMDDTHHMM&s=1500.00&fn=ФН&i=ФД&fp=ФП&n=1`): the FNS app «Проверка чеков» and the
//! OFDs read it (`shared/reference/integrations.md` §5.2). Drawn as a PNG for e-mail (mail
//! clients show PNG; many block SVG).

use jiff::civil::DateTime;

/// What the receipt records (тег 1054 «признак расчёта»): 1 приход, 2 возврат прихода.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Income = 1,
    IncomeReturn = 2,
}

/// The fields of the FNS QR payload.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    /// When it was registered, in the cash register's local time.
    pub at: DateTime,
    pub total_kopecks: i64,
    /// ФН.
    pub storage_number: &'a str,
    /// ФД.
    pub document_number: &'a str,
    /// ФП.
    pub attribute: &'a str,
    pub operation: Operation,
}

/// The payload, e.g. `t=20261207T0126&s=1500.00&fn=9961440300462123&i=1001&fp=4624051342&n=1`.
pub fn payload(f: &Fields<'_>) -> String {
    format!(
        "t={:04}{:02}{:02}T{:02}{:02}&s={}.{:02}&fn={}&i={}&fp={}&n={}",
        f.at.year(),
        f.at.month(),
        f.at.day(),
        f.at.hour(),
        f.at.minute(),
        f.total_kopecks / 100,
        f.total_kopecks % 100,
        f.storage_number,
        f.document_number,
        f.attribute,
        f.operation as u8
    )
}

/// Pixels per module and the quiet zone around the code, in modules (the standard's 4).
const SCALE: usize = 4;
const QUIET: usize = 4;

/// `data` as a black-on-white PNG QR code (error correction M). `None` if it does not fit.
pub fn png(data: &str) -> Option<Vec<u8>> {
    let code = qrcode::QrCode::with_error_correction_level(data, qrcode::EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..width {
        for x in 0..width {
            if colors[y * width + x] == qrcode::Color::Dark {
                for dy in 0..SCALE {
                    let row = ((y + QUIET) * SCALE + dy) * side;
                    let start = row + (x + QUIET) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(&pixels).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_the_fns_format() {
        let f = Fields {
            at: jiff::civil::date(2026, 12, 7).at(1, 26, 59, 0),
            total_kopecks: 150_005,
            storage_number: "9961440300462123",
            document_number: "1001",
            attribute: "4624051342",
            operation: Operation::IncomeReturn,
        };
        assert_eq!(
            payload(&f),
            "t=20261207T0126&s=1500.05&fn=9961440300462123&i=1001&fp=4624051342&n=2"
        );
    }

    #[test]
    fn the_png_is_a_qr_code_of_the_payload() {
        let data = "t=20261207T0126&s=1500.00&fn=9961440300462123&i=1001&fp=4624051342&n=1";
        let bytes = png(data).expect("fits");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, data);
    }
}
