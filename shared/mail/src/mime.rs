//! The MIME message both adapters send: RFC 5322 headers around a
//! multipart/alternative body with the text part first and the HTML part
//! last (clients show the last part they understand).
//!
//! Bodies are UTF-8 in base64, so any merchant text survives any relay, and
//! every line stays under the 78/998-character limits. Nothing here is
//! random: the boundary and Message-ID come from the idempotency key, so the
//! same notification composed twice is the same bytes (given the same date).

use chrono::{DateTime, Utc};

use cashback_app::notify::{Notification, NotifyError};
use cashback_core::ids::Email;

use crate::encoding::{base64_lines, fnv1a64, header_text, single_line};
use crate::templates::RenderedEmail;

/// Who sends, and when.
pub(crate) struct Envelope<'a> {
    pub from: &'a Email,
    pub date: DateTime<Utc>,
}

/// Composes the full message, CRLF line ends throughout.
pub(crate) fn compose(
    notification: &Notification,
    email: &RenderedEmail,
    envelope: &Envelope<'_>,
) -> Result<String, NotifyError> {
    let to = notification.to.as_str();
    // SES (and most relays) cannot deliver to SMTPUTF8 mailboxes; refusing
    // here keeps a raw non-ASCII byte out of the header block.
    if !to.is_ascii() {
        return Err(NotifyError::Rejected(
            "recipient address is not ASCII".to_string(),
        ));
    }
    let from = envelope.from.as_str();
    let key_hash = fnv1a64(notification.idempotency_key.as_bytes());
    let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let boundary = format!("=_cashback_{key_hash:016x}");

    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    header("From", &mailbox(&notification.branding.shop_name, from));
    header("To", to);
    header(
        "Subject",
        &header_text(&email.subject, 78 - "Subject: ".len()),
    );
    header("Date", &envelope.date.to_rfc2822());
    header(
        "Message-ID",
        &format!(
            "<{key_hash:016x}.{}@{domain}>",
            notification.kind.name().replace('_', "-")
        ),
    );
    header("MIME-Version", "1.0");
    for (name, value) in &email.headers {
        header(&single_line(name), &single_line(value));
    }
    header(
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{boundary}\""),
    );
    out.push_str("\r\n");

    for (subtype, body) in [("plain", &email.text), ("html", &email.html)] {
        out.push_str(&format!("--{boundary}\r\n"));
        out.push_str(&format!("Content-Type: text/{subtype}; charset=utf-8\r\n"));
        out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        out.push_str(&base64_lines(crlf(body).as_bytes()));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out)
}

/// `"Shop Name" <addr>`: the shop's name is what the customer recognises in
/// the inbox; the address is the verified sender.
fn mailbox(name: &str, address: &str) -> String {
    let name = single_line(name);
    if name.is_empty() {
        return address.to_string();
    }
    let shown = if name.is_ascii() && !name.contains("=?") {
        // A quoted string: only `"` and `\` need escaping inside it. Shop
        // names are far below the 998-character line limit.
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        header_text(&name, 78 - "From: ".len())
    };
    format!("{shown} <{address}>")
}

/// Text bodies use CRLF on the wire (RFC 2046 canonical form).
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_name_with_quotes_stays_one_quoted_display_name() {
        assert_eq!(
            mailbox("Tom \"The\" Shop", "shop@example.com"),
            "\"Tom \\\"The\\\" Shop\" <shop@example.com>"
        );
        assert_eq!(mailbox("", "shop@example.com"), "shop@example.com");
        assert!(mailbox("Müller", "shop@example.com").starts_with("=?UTF-8?B?"));
    }

    #[test]
    fn bare_line_feeds_become_crlf() {
        assert_eq!(crlf("a\nb\r\nc"), "a\r\nb\r\nc");
    }
}
