//! Byte-level encodings the MIME message needs: base64 (RFC 4648) for bodies
//! and encoded words, RFC 2047 encoded words for non-ASCII header text, and a
//! stable 64-bit hash for file names and message ids.
//!
//! Each is a few lines; writing them here keeps the crate's dependency set
//! to what the workspace already pins (and keeps Cargo.lock untouched).

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, on one line.
pub(crate) fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, symbol) in symbols.iter().enumerate() {
            // A chunk of k bytes yields k + 1 significant symbols.
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[*symbol as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 broken into CRLF-terminated lines of 76 characters, the most a
/// MIME body line may carry (RFC 2045 §6.8).
pub(crate) fn base64_lines(bytes: &[u8]) -> String {
    let encoded = base64(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    // The encoding is pure ASCII, so byte chunks are char boundaries.
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// FNV-1a, 64 bits: stable across builds and platforms (unlike std's
/// `DefaultHasher`), so the same idempotency key always names the same file.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Header text made safe for one header line: control characters (CR and LF
/// above all, which would let a merchant's subject inject headers) become
/// spaces, runs of whitespace collapse.
pub(crate) fn single_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The most raw bytes one encoded word carries: `=?UTF-8?B?` + 60 base64
/// symbols + `?=` is 72 characters, under RFC 2047's 75.
const ENCODED_WORD_BYTES: usize = 45;

/// Folded lines stay under RFC 5322's recommended 78 characters.
const LINE: usize = 78;

/// Header text for one header: printable ASCII as-is, folded at spaces onto
/// continuation lines when long; anything else as RFC 2047
/// `=?UTF-8?B?...?=` words, also folded. `room` is what is left on the first
/// line after the header name.
pub(crate) fn header_text(text: &str, room: usize) -> String {
    let text = single_line(text);
    let plain = text.bytes().all(|b| (0x20..0x7f).contains(&b));
    // "=?" in plain text would be read back as the start of an encoded word;
    // a word too long for any line cannot be folded.
    if plain && !text.contains("=?") && text.split(' ').all(|word| word.len() < LINE) {
        return fold(&text, room);
    }
    let mut words = Vec::new();
    let mut start = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let next = index + c.len_utf8();
        if next - start > ENCODED_WORD_BYTES {
            words.push(&text[start..end]);
            start = end;
        }
        end = next;
    }
    if start < text.len() {
        words.push(&text[start..]);
    }
    words
        .iter()
        .map(|word| format!("=?UTF-8?B?{}?=", base64(word.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Greedy folding at spaces: the space starts the continuation line, so
/// unfolding (removing CRLF) gives the text back.
fn fold(text: &str, room: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut line_length = 0;
    let mut limit = room;
    for (index, word) in text.split(' ').enumerate() {
        if index > 0 {
            if line_length + 1 + word.len() > limit {
                out.push_str("\r\n");
                line_length = 0;
                limit = LINE;
            }
            out.push(' ');
            line_length += 1;
        }
        out.push_str(word);
        line_length += word.len();
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Test-only decoder, to read back what the encoder wrote.
    pub(crate) fn decode_base64(text: &str) -> Vec<u8> {
        let mut bits: u32 = 0;
        let mut count = 0;
        let mut out = Vec::new();
        for c in text.bytes() {
            let value = match BASE64_ALPHABET.iter().position(|&s| s == c) {
                Some(value) => value as u32,
                None => continue,
            };
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
                bits &= (1 << count) - 1;
            }
        }
        out
    }

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(decode_base64(encoded), plain.as_bytes());
        }
    }

    #[test]
    fn base64_body_lines_never_exceed_76_characters() {
        let body = "é".repeat(500);
        let lines = base64_lines(body.as_bytes());
        assert!(lines.split("\r\n").all(|line| line.len() <= 76));
        assert_eq!(decode_base64(&lines), body.as_bytes());
    }

    #[test]
    fn fnv_hash_is_stable() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn line_breaks_cannot_smuggle_a_header() {
        assert_eq!(
            single_line("Hello\r\nBcc: victim@example.com"),
            "Hello Bcc: victim@example.com"
        );
        assert!(!header_text("Hi\r\nBcc: x@example.com", 70).contains('\n'));
    }

    #[test]
    fn non_ascii_header_text_becomes_encoded_words_that_split_on_characters() {
        let text = "Ihr Guthaben: 12,30 € – jetzt einlösen bei Müller & Söhne GmbH";
        let encoded = header_text(text, 70);
        let mut decoded = Vec::new();
        for word in encoded.split("\r\n ") {
            assert!(word.len() <= 75, "{word} is too long");
            let inner = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .expect("an encoded word");
            // Each word must decode to valid UTF-8 on its own.
            let bytes = decode_base64(inner);
            assert!(String::from_utf8(bytes.clone()).is_ok());
            decoded.extend(bytes);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), text);
        assert_eq!(header_text("Plain subject", 70), "Plain subject");
    }

    #[test]
    fn a_long_ascii_subject_is_folded_at_spaces_not_encoded() {
        let text = "You have 40.00 USD in CashBack to spend at The Very Long Named Outdoor Equipment Shop of Somewhere";
        let folded = header_text(text, 69);
        assert!(!folded.contains("=?"));
        assert!(folded.contains("\r\n "));
        let mut lines = folded.split("\r\n");
        assert!(lines.next().unwrap().len() <= 69);
        assert!(lines.all(|line| line.len() <= LINE));
        assert_eq!(folded.replace("\r\n", ""), text);
    }
}
