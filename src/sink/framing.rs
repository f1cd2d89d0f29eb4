//! RFC 6587 TCP framing as tokio-util encoders: LF-terminated
//! ("non-transparent") and octet counting (`LEN SP MSG`).

use bytes::{BufMut, BytesMut};
use tokio_util::codec::Encoder;

use super::Framing;

/// An error from framing a message.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// With LF framing a line feed inside the message would end it early
    /// and start a forged second message.
    #[error("message rejected: contains a line feed, which LF framing cannot carry")]
    LineFeed,
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that `message` can be LF-framed.
pub fn check_lf(message: &[u8]) -> Result<(), FramingError> {
    match message.contains(&b'\n') {
        true => Err(FramingError::LineFeed),
        false => Ok(()),
    }
}

/// Writes each message followed by `\n`, and rejects a message that
/// already contains one, unlike `LinesCodec`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LfEncoder;

impl Encoder<&[u8]> for LfEncoder {
    type Error = FramingError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        check_lf(item)?;
        dst.reserve(item.len() + 1);
        dst.put_slice(item);
        dst.put_u8(b'\n');
        Ok(())
    }
}

/// Writes `LEN SP MSG` with LEN the message's length in bytes, in ASCII
/// decimal without leading zeros. Any byte may appear in MSG.
#[derive(Clone, Copy, Debug, Default)]
pub struct OctetCountingEncoder;

impl Encoder<&[u8]> for OctetCountingEncoder {
    type Error = FramingError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        let length = item.len().to_string();
        dst.reserve(length.len() + 1 + item.len());
        dst.put_slice(length.as_bytes());
        dst.put_u8(b' ');
        dst.put_slice(item);
        Ok(())
    }
}

/// The encoder an output's [`Framing`] selects, as one type so a single
/// `FramedWrite` type serves both.
#[derive(Clone, Copy, Debug)]
pub enum FrameEncoder {
    Lf(LfEncoder),
    OctetCounting(OctetCountingEncoder),
}

impl FrameEncoder {
    pub fn new(framing: Framing) -> Self {
        match framing {
            Framing::Lf => FrameEncoder::Lf(LfEncoder),
            Framing::OctetCounting => FrameEncoder::OctetCounting(OctetCountingEncoder),
        }
    }
}

impl Encoder<&[u8]> for FrameEncoder {
    type Error = FramingError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        match self {
            FrameEncoder::Lf(encoder) => encoder.encode(item, dst),
            FrameEncoder::OctetCounting(encoder) => encoder.encode(item, dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(
        mut encoder: impl Encoder<&'static [u8], Error = FramingError>,
        item: &'static [u8],
    ) -> Vec<u8> {
        let mut dst = BytesMut::new();
        let result = encoder.encode(item, &mut dst);
        assert!(result.is_ok(), "encoding failed");
        dst.to_vec()
    }

    #[test]
    fn lf_encoder_appends_line_feed() {
        assert_eq!(frame(LfEncoder, b"<13>1 a"), b"<13>1 a\n");
    }

    #[test]
    fn lf_encoder_rejects_line_feed() {
        let mut dst = BytesMut::new();
        let result = LfEncoder.encode(b"a\n<13>1 forged".as_slice(), &mut dst);
        assert!(matches!(result, Err(FramingError::LineFeed)));
        assert!(dst.is_empty(), "nothing written");
    }

    #[test]
    fn lf_encoder_keeps_carriage_return() {
        assert_eq!(frame(LfEncoder, b"a\rb"), b"a\rb\n");
    }

    #[test]
    fn octet_counting_prefixes_byte_length() {
        let cases: [(&[u8], &[u8]); 3] = [
            (b"", b"0 "),
            (b"abc", b"3 abc"),
            ("\u{fc}\n".as_bytes(), "3 \u{fc}\n".as_bytes()),
        ];
        for (item, expected) in cases {
            let mut dst = BytesMut::new();
            let result = OctetCountingEncoder.encode(item, &mut dst);
            assert!(result.is_ok());
            assert_eq!(dst.as_ref(), expected, "{item:?}");
        }
    }
}
