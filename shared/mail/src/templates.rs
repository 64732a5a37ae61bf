//! Email templates: one per [`NotificationKind`], each in HTML and plain text.
//!
//! A kind only says what to tell the customer, as headings and paragraphs of
//! plain strings; one layout turns that into HTML (escaping every value on
//! the way in, so no merchant or platform string is ever markup) and into
//! text. Rendering is pure: the same notification always gives the same
//! email, which is what lets a retried send produce the very same message.
//!
//! Amounts are shown as the decimal at the currency's minor unit followed by
//! the ISO code ("12.30 USD", "1500 JPY"): exact, and unambiguous for shops
//! that sell in several countries. Dates are calendar dates in UTC
//! ("23 December 2026").

use chrono::{DateTime, Utc};

use cashback_app::notify::{Branding, Notification, NotificationKind};
use cashback_core::bonuses::{BonusKind, ExtraPercentOffer};
use cashback_core::ids::Code;
use cashback_core::money::Money;

use crate::encoding::single_line;

/// The program's name when the merchant has not renamed it.
pub const DEFAULT_DISPLAY_NAME: &str = "CashBack";

/// A notification rendered, ready to be wrapped in a MIME message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line: the merchant's override, or the kind's default.
    pub subject: String,
    /// The inbox preview line, also placed in the HTML's hidden preheader.
    pub preview_text: String,
    pub html: String,
    /// Plain text with `\n` line ends; the MIME layer turns them into CRLF.
    pub text: String,
    /// Extra message headers (List-Unsubscribe and its one-click companion).
    pub headers: Vec<(String, String)>,
}

/// Renders a notification into subject, preview, HTML, text and headers.
pub fn render(notification: &Notification) -> RenderedEmail {
    let branding = &notification.branding;
    let names = Names::of(branding);
    let content = content_for(&notification.kind, &names);

    let subject = override_or(branding.subject.as_deref(), content.subject.clone());
    let preview_text = override_or(branding.preview_text.as_deref(), content.preview.clone());
    let shop_url = branding.shop_url.as_deref().and_then(web_url);
    let unsubscribe_url = notification.unsubscribe_url.as_deref().and_then(web_url);

    let page = Page {
        names: &names,
        subject: &subject,
        preview_text: &preview_text,
        content: &content,
        shop_url,
        unsubscribe_url,
    };

    let mut headers = Vec::new();
    if let Some(url) = unsubscribe_url {
        // RFC 8058 one-click: mailbox providers POST to the URL themselves.
        headers.push(("List-Unsubscribe".to_string(), format!("<{url}>")));
        headers.push((
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ));
    }

    RenderedEmail {
        html: page.html(),
        text: page.text(),
        subject,
        preview_text,
        headers,
    }
}

/// The names every template mentions, cleaned once.
struct Names {
    program: String,
    shop: String,
}

impl Names {
    fn of(branding: &Branding) -> Names {
        let program = single_line(&branding.display_name);
        let shop = single_line(&branding.shop_name);
        Names {
            program: if program.is_empty() {
                DEFAULT_DISPLAY_NAME.to_string()
            } else {
                program
            },
            // A shop with no name is still "the shop" in a sentence.
            shop: if shop.is_empty() {
                "our shop".to_string()
            } else {
                shop
            },
        }
    }
}

fn override_or(merchant: Option<&str>, default: String) -> String {
    match merchant.map(single_line) {
        Some(text) if !text.is_empty() => text,
        _ => default,
    }
}

/// Only http(s) URLs become links or headers: a `javascript:` link, or one
/// with spaces or angle brackets that would break out of `<...>` in the
/// List-Unsubscribe header, is dropped instead.
fn web_url(url: &str) -> Option<&str> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let clean = !url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    (scheme_ok && clean && url.len() > "https://".len()).then_some(url)
}

/// "12.30 USD": the exact decimal at the currency's minor unit, never a float.
pub fn format_money(money: &Money) -> String {
    format!("{} {}", money.amount(), money.currency().code())
}

/// "23 December 2026", the calendar date in UTC.
pub fn format_date(at: &DateTime<Utc>) -> String {
    at.format("%-d %B %Y").to_string()
}

/// An offset before expiry in words: `30 days`, `1 week`, `24 hours`.
fn time_left(hours: u32) -> String {
    let unit = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if hours.is_multiple_of(168) && hours / 168 < 4 {
        unit(hours / 168, "week", "weeks")
    } else if hours.is_multiple_of(24) && hours > 24 {
        unit(hours / 24, "day", "days")
    } else {
        unit(hours, "hour", "hours")
    }
}

/// Tier percents arrive as text ("5" or "5.5%"); shown with one `%` sign.
fn format_percent(percent: &str) -> String {
    let percent = single_line(percent);
    let number = percent.trim_end_matches('%').trim_end();
    format!("{number}%")
}

/// A run of text in a paragraph; `Strong` is emphasised in HTML.
enum Span {
    Plain(String),
    Strong(String),
}

fn plain(text: impl Into<String>) -> Span {
    Span::Plain(text.into())
}

fn strong(text: impl Into<String>) -> Span {
    Span::Strong(text.into())
}

/// What one kind says, before any layout or escaping.
struct Content {
    subject: String,
    preview: String,
    heading: String,
    paragraphs: Vec<Vec<Span>>,
    /// The customer's code, shown in its own box (upper case).
    code: Option<String>,
}

fn content_for(kind: &NotificationKind, names: &Names) -> Content {
    let program = &names.program;
    let shop = &names.shop;
    match kind {
        NotificationKind::Earned {
            amount,
            order_name,
            release_at,
            code,
        } => {
            let amount = format_money(amount);
            let order = single_line(order_name);
            let (preview, when) = match release_at {
                Some(at) => {
                    let date = format_date(at);
                    (
                        format!("It will be ready to spend on {date}."),
                        vec![
                            plain("It will be ready to spend on "),
                            strong(date),
                            plain(", once the order can no longer be returned."),
                        ],
                    )
                }
                None => (
                    "It is in your balance and ready to spend now.".to_string(),
                    vec![plain("It is in your balance and ready to spend now.")],
                ),
            };
            let mut paragraphs = vec![
                vec![
                    plain(format!(
                        "Thank you for your order {order} at {shop}. It earned you "
                    )),
                    strong(amount.clone()),
                    plain(format!(" in {program}.")),
                ],
                when,
            ];
            if code.is_some() {
                paragraphs.push(vec![plain(format!(
                    "Enter your personal code at checkout to spend your {program}:"
                ))]);
            }
            Content {
                subject: format!("You earned {amount} in {program}"),
                preview,
                heading: format!("You earned {amount} in {program}"),
                paragraphs,
                code: code.as_ref().map(|code| code.display()),
            }
        }
        NotificationKind::Ready {
            amount,
            balance,
            code,
        } => {
            let amount = format_money(amount);
            let balance = format_money(balance);
            Content {
                subject: format!("Your {amount} in {program} is ready to spend"),
                preview: format!("Your balance at {shop} is now {balance}."),
                heading: format!("Your {program} is ready to spend"),
                paragraphs: vec![
                    vec![
                        strong(amount),
                        plain(format!(
                            " in {program} has been added to your balance at {shop}."
                        )),
                    ],
                    vec![plain("Your balance is now "), strong(balance), plain(".")],
                    vec![plain("Enter your personal code at checkout to spend it:")],
                ],
                code: Some(code.display()),
            }
        }
        NotificationKind::Reminder {
            position: _,
            balance,
            code,
            expires_at,
        } => {
            let balance = format_money(balance);
            let mut paragraphs = vec![vec![
                plain(format!("Your {program} balance at {shop} is ")),
                strong(balance.clone()),
                plain("."),
            ]];
            let preview = match expires_at {
                Some(at) => {
                    let date = format_date(at);
                    paragraphs.push(vec![
                        plain("It expires on "),
                        strong(date.clone()),
                        plain(", so use it before then."),
                    ]);
                    format!("Use it before {date}.")
                }
                None => format!("Spend it on your next order at {shop}."),
            };
            paragraphs.push(vec![plain("Enter your personal code at checkout:")]);
            Content {
                subject: format!("You have {balance} in {program} to spend at {shop}"),
                preview,
                heading: format!("You have {balance} to spend"),
                paragraphs,
                code: Some(code.display()),
            }
        }
        NotificationKind::ClawedBack {
            amount,
            order_name,
            balance,
            debt,
        } => {
            // The ledger may hand the delta over signed; the email speaks of
            // an amount taken back.
            let amount = format_money(&if amount.is_negative() {
                amount.negated()
            } else {
                *amount
            });
            let order = single_line(order_name);
            let balance = format_money(balance);
            let mut paragraphs = vec![
                vec![
                    plain(format!("Order {order} was refunded or cancelled, so ")),
                    strong(amount.clone()),
                    plain(format!(" of the {program} it earned has been taken back.")),
                ],
                vec![plain("Your balance is now "), strong(balance), plain(".")],
            ];
            if debt.is_positive() {
                paragraphs.push(vec![
                    strong(format_money(debt)),
                    plain(format!(
                        " could not be taken from your balance; it will be deducted from the {program} you earn next."
                    )),
                ]);
            }
            Content {
                subject: format!("Your {program} balance has changed"),
                preview: format!(
                    "{amount} was taken back after a refund or cancellation of order {order}."
                ),
                heading: format!("Your {program} balance has changed"),
                paragraphs,
                code: None,
            }
        }
        NotificationKind::ExpiryWarning {
            amount,
            expires_at,
            hours_before,
            balance,
            code,
        } => {
            let amount = format_money(amount);
            let date = format_date(expires_at);
            let left = time_left(*hours_before);
            let mut paragraphs = vec![
                vec![
                    strong(amount.clone()),
                    plain(format!(" of your {program} at {shop} expires on ")),
                    strong(date.clone()),
                    plain(format!(" ({left} from now). Spend it before then.")),
                ],
                vec![
                    plain("Your balance is "),
                    strong(format_money(balance)),
                    plain("."),
                ],
            ];
            if code.is_some() {
                paragraphs.push(vec![plain("Enter your personal code at checkout:")]);
            }
            Content {
                subject: format!("{amount} in {program} expires on {date}"),
                preview: format!("Spend it at {shop} within {left}."),
                heading: format!("Your {program} expires soon"),
                paragraphs,
                code: code.as_ref().map(|code| code.display()),
            }
        }
        NotificationKind::Bonus {
            bonus,
            amount,
            milestone,
            balance,
            code,
            extra_percent,
        } => bonus_content(
            *bonus,
            amount.as_ref(),
            milestone.as_ref(),
            extra_percent.as_ref(),
            balance,
            code,
            names,
        ),
        NotificationKind::TierUpgraded { tier_name, percent } => {
            let tier = single_line(tier_name);
            let percent = format_percent(percent);
            Content {
                subject: format!("Welcome to {tier}: you now earn {percent} in {program}"),
                preview: format!("From your next order at {shop} you earn {percent} back."),
                heading: format!("You reached {tier}"),
                paragraphs: vec![vec![
                    plain(format!(
                        "Thank you for shopping at {shop}. You have reached the "
                    )),
                    strong(tier),
                    plain(" tier, so from your next order you earn "),
                    strong(percent),
                    plain(format!(" in {program} on what you spend.")),
                ]],
                code: None,
            }
        }
    }
}

/// A bonus's email: what it is for, what was credited (if anything) and
/// the balance, with the code to spend it.
fn bonus_content(
    bonus: BonusKind,
    amount: Option<&Money>,
    milestone: Option<&Money>,
    extra_percent: Option<&ExtraPercentOffer>,
    balance: &Money,
    code: &Option<Code>,
    names: &Names,
) -> Content {
    let program = &names.program;
    let shop = &names.shop;
    let amount = amount.map(format_money);
    let (subject, heading, reason) = match bonus {
        BonusKind::Birthday => (
            format!("Happy birthday from {shop}"),
            "Happy birthday".to_string(),
            format!("Happy birthday from everyone at {shop}!"),
        ),
        BonusKind::Anniversary => (
            format!("A year with {shop}: thank you"),
            "Happy anniversary".to_string(),
            format!(
                "It is a year since your first order at {shop}. Thank you for shopping with us."
            ),
        ),
        BonusKind::WinBack => (
            format!("We miss you at {shop}"),
            "We miss you".to_string(),
            format!("It has been a while since your last order at {shop}."),
        ),
        BonusKind::Milestone => {
            let spend = milestone.map(format_money).unwrap_or_default();
            (
                format!("You have spent {spend} at {shop}: thank you"),
                "Thank you for your loyalty".to_string(),
                format!("You have now spent {spend} at {shop}."),
            )
        }
    };
    let mut paragraphs = vec![vec![plain(reason)]];
    let preview = match &amount {
        Some(amount) => {
            paragraphs.push(vec![
                plain("We have added "),
                strong(amount.clone()),
                plain(format!(
                    " in {program} to your balance, ready to spend now."
                )),
            ]);
            paragraphs.push(vec![
                plain("Your balance is now "),
                strong(format_money(balance)),
                plain("."),
            ]);
            format!("{amount} in {program} is in your balance, ready to spend.")
        }
        None => match extra_percent {
            Some(offer) => {
                let percent = format_percent(&offer.percent.normalize().to_string());
                let until = format_date(&offer.until);
                paragraphs.push(vec![
                    plain("Your next order until "),
                    strong(until.clone()),
                    plain(" earns an extra "),
                    strong(percent.clone()),
                    plain(format!(" in {program}.")),
                ]);
                format!("Your next order earns an extra {percent} in {program} until {until}.")
            }
            None => format!("Thank you for shopping at {shop}."),
        },
    };
    let code = code.as_ref().filter(|_| amount.is_some());
    if code.is_some() {
        paragraphs.push(vec![plain("Enter your personal code at checkout:")]);
    }
    Content {
        subject: match &amount {
            Some(amount) if bonus != BonusKind::Milestone => {
                format!("{subject}: {amount} in {program}")
            }
            _ => subject,
        },
        preview,
        heading,
        paragraphs,
        code: code.map(|code| code.display()),
    }
}

/// Escapes text for HTML element content and double- or single-quoted
/// attribute values alike.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Everything the layout needs; all fields are unescaped text.
struct Page<'a> {
    names: &'a Names,
    subject: &'a str,
    preview_text: &'a str,
    content: &'a Content,
    shop_url: Option<&'a str>,
    unsubscribe_url: Option<&'a str>,
}

// Inline styles and tables: most mail clients ignore <style> and flexbox.
const CELL: &str = "padding:16px 32px 0;font-size:16px;line-height:24px;";

impl Page<'_> {
    fn html(&self) -> String {
        let e = escape_html;
        let program = e(&self.names.program);
        let shop = e(&self.names.shop);
        let mut rows = String::new();
        rows.push_str(&format!(
            "<tr><td style=\"padding:24px 32px 0;font-size:14px;color:#52525b;\">{program} &middot; {shop}</td></tr>\n"
        ));
        rows.push_str(&format!(
            "<tr><td style=\"padding:8px 32px 0;\"><h1 style=\"margin:0;font-size:22px;line-height:30px;\">{}</h1></td></tr>\n",
            e(&self.content.heading)
        ));
        for paragraph in &self.content.paragraphs {
            let mut html = String::new();
            for span in paragraph {
                match span {
                    Span::Plain(text) => html.push_str(&e(text)),
                    Span::Strong(text) => {
                        html.push_str("<strong>");
                        html.push_str(&e(text));
                        html.push_str("</strong>");
                    }
                }
            }
            rows.push_str(&format!(
                "<tr><td style=\"{CELL}\"><p style=\"margin:0;\">{html}</p></td></tr>\n"
            ));
        }
        if let Some(code) = &self.content.code {
            rows.push_str(&format!(
                "<tr><td style=\"padding:16px 32px 0;\"><div style=\"border:2px dashed #a1a1aa;border-radius:6px;padding:12px;text-align:center;font-family:'Courier New',Courier,monospace;font-size:22px;font-weight:bold;letter-spacing:2px;\">{}</div></td></tr>\n",
                e(code)
            ));
        }
        if let Some(url) = self.shop_url {
            rows.push_str(&format!(
                "<tr><td style=\"padding:24px 32px 0;\"><a href=\"{}\" style=\"display:inline-block;background:#18181b;color:#ffffff;text-decoration:none;padding:12px 24px;border-radius:6px;font-weight:bold;\">Shop at {shop}</a></td></tr>\n",
                e(url)
            ));
        }
        let mut footer = format!("You receive this email because you collect {program} at {shop}.");
        if let Some(url) = self.unsubscribe_url {
            footer.push_str(&format!(
                " <a href=\"{}\" style=\"color:#71717a;\">Unsubscribe</a> from these emails.",
                e(url)
            ));
        }
        rows.push_str(&format!(
            "<tr><td style=\"padding:24px 32px;font-size:12px;line-height:18px;color:#71717a;\">{footer}</td></tr>\n"
        ));

        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{title}</title>\n</head>\n<body style=\"margin:0;padding:0;background:#f4f4f5;\">\n<div style=\"display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;mso-hide:all;\">{preview}</div>\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f4f4f5;\"><tr><td align=\"center\" style=\"padding:24px 12px;\">\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:560px;background:#ffffff;border-radius:8px;font-family:Arial,Helvetica,sans-serif;color:#18181b;\">\n{rows}</table>\n</td></tr></table>\n</body>\n</html>\n",
            title = e(self.subject),
            preview = e(self.preview_text),
        )
    }

    fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{} at {}\n\n",
            self.names.program, self.names.shop
        ));
        out.push_str(&self.content.heading);
        out.push_str("\n\n");
        for paragraph in &self.content.paragraphs {
            for span in paragraph {
                match span {
                    Span::Plain(text) | Span::Strong(text) => out.push_str(text),
                }
            }
            out.push_str("\n\n");
        }
        if let Some(code) = &self.content.code {
            out.push_str(&format!("    {code}\n\n"));
        }
        if let Some(url) = self.shop_url {
            out.push_str(&format!("Shop at {}: {url}\n\n", self.names.shop));
        }
        out.push_str("-- \n");
        out.push_str(&format!(
            "You receive this email because you collect {} at {}.\n",
            self.names.program, self.names.shop
        ));
        if let Some(url) = self.unsubscribe_url {
            out.push_str(&format!("Unsubscribe: {url}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cashback_core::ids::{Code, Email, ShopId};
    use cashback_core::money::Currency;
    use chrono::TimeZone;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::USD).unwrap()
    }

    fn code() -> Code {
        Code::parse("cb-7k2m9q").unwrap()
    }

    fn branding() -> Branding {
        Branding {
            display_name: "CashBack".to_string(),
            shop_name: "Demo Shop".to_string(),
            shop_url: Some("https://demo.example.com/".to_string()),
            subject: None,
            preview_text: None,
        }
    }

    fn notification(kind: NotificationKind) -> Notification {
        Notification {
            idempotency_key: "test:key".to_string(),
            shop: ShopId::parse("demo.myshopify.com").unwrap(),
            to: Email::parse("ann@example.com").unwrap(),
            branding: branding(),
            kind,
            unsubscribe_url: None,
        }
    }

    fn release_date() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 23, 9, 30, 0).unwrap()
    }

    fn every_kind() -> Vec<NotificationKind> {
        vec![
            NotificationKind::Earned {
                amount: usd("12.3"),
                order_name: "#1001".to_string(),
                release_at: Some(release_date()),
                code: Some(code()),
            },
            NotificationKind::Ready {
                amount: usd("12.30"),
                balance: usd("40"),
                code: code(),
            },
            NotificationKind::Reminder {
                position: 2,
                balance: usd("40.00"),
                code: code(),
                expires_at: Some(release_date()),
            },
            NotificationKind::ClawedBack {
                amount: usd("6.15"),
                order_name: "#1001".to_string(),
                balance: usd("0"),
                debt: usd("1.05"),
            },
            NotificationKind::TierUpgraded {
                tier_name: "Gold".to_string(),
                percent: "7.5".to_string(),
            },
            NotificationKind::ExpiryWarning {
                amount: usd("7.5"),
                expires_at: release_date(),
                hours_before: 168,
                balance: usd("40"),
                code: Some(code()),
            },
        ]
    }

    #[test]
    fn an_expiry_warning_names_the_amount_the_date_and_the_time_left() {
        let email = render(&notification(every_kind().remove(5)));
        assert_eq!(
            email.subject,
            "7.50 USD in CashBack expires on 23 December 2026"
        );
        assert_eq!(email.preview_text, "Spend it at Demo Shop within 1 week.");
        assert!(email.text.contains(
            "7.50 USD of your CashBack at Demo Shop expires on 23 December 2026 (1 week from now)"
        ));
        assert!(email.html.contains("<strong>7.50 USD</strong>"));
        assert_eq!(time_left(720), "30 days");
        assert_eq!(time_left(24), "24 hours");
        assert_eq!(time_left(1), "1 hour");
        assert_eq!(time_left(336), "2 weeks");
        assert_eq!(time_left(48), "2 days");
    }

    #[test]
    fn each_bonus_has_its_own_email_saying_what_it_is_and_what_it_credited() {
        let bonus = |bonus, amount: Option<&str>, milestone: Option<&str>, extra| {
            render(&notification(NotificationKind::Bonus {
                bonus,
                amount: amount.map(usd),
                milestone: milestone.map(usd),
                balance: usd("45.00"),
                code: Some(code()),
                extra_percent: extra,
            }))
        };
        let birthday = bonus(BonusKind::Birthday, Some("5"), None, None);
        assert_eq!(
            birthday.subject,
            "Happy birthday from Demo Shop: 5.00 USD in CashBack"
        );
        assert!(birthday.text.contains("45.00 USD") && birthday.text.contains("CB-7K2M9Q"));
        let anniversary = bonus(BonusKind::Anniversary, Some("2"), None, None);
        assert!(anniversary.text.contains("a year since your first order"));
        let milestone = bonus(BonusKind::Milestone, None, Some("500"), None);
        assert_eq!(
            milestone.subject,
            "You have spent 500.00 USD at Demo Shop: thank you"
        );
        assert!(!milestone.text.contains("CB-7K2M9Q"), "no amount, no code");
        let offer = ExtraPercentOffer {
            percent: usd("5").amount(),
            from: release_date(),
            until: release_date() + chrono::Duration::days(14),
        };
        let win_back = bonus(BonusKind::WinBack, None, None, Some(offer));
        assert_eq!(win_back.subject, "We miss you at Demo Shop");
        assert!(
            win_back.text.contains("earns an extra 5% in CashBack")
                && win_back.text.contains("6 January 2027"),
            "{}",
            win_back.text
        );
    }

    #[test]
    fn every_kind_renders_a_subject_preview_html_and_text_with_the_branding() {
        for kind in every_kind() {
            let name = kind.name();
            let email = render(&notification(kind));
            assert!(!email.subject.is_empty(), "{name}: subject");
            assert!(!email.preview_text.is_empty(), "{name}: preview");
            assert!(
                email.html.contains("CashBack"),
                "{name}: html names the program"
            );
            assert!(
                email.text.contains("CashBack"),
                "{name}: text names the program"
            );
            assert!(
                email.html.contains("Demo Shop"),
                "{name}: html names the shop"
            );
            assert!(
                email.html.contains("href=\"https://demo.example.com/\""),
                "{name}: html links the shop"
            );
            assert!(
                email.text.contains("https://demo.example.com/"),
                "{name}: text links the shop"
            );
            assert!(email.html.starts_with("<!DOCTYPE html>"), "{name}");
            assert!(!email.subject.contains('\n'), "{name}: one-line subject");
        }
    }

    #[test]
    fn amounts_are_shown_exactly_at_the_currency_minor_unit() {
        let email = render(&notification(NotificationKind::Ready {
            amount: usd("12.3"),
            balance: usd("40"),
            code: code(),
        }));
        assert_eq!(
            email.subject,
            "Your 12.30 USD in CashBack is ready to spend"
        );
        assert!(email.text.contains("12.30 USD in CashBack has been added"));
        assert!(email.text.contains("Your balance is now 40.00 USD."));
        assert!(email.html.contains("<strong>40.00 USD</strong>"));

        let yen = Money::parse("1500", Currency::JPY).unwrap();
        assert_eq!(format_money(&yen), "1500 JPY");
        let dinar = Money::parse("1.5", Currency::KWD).unwrap();
        assert_eq!(format_money(&dinar), "1.500 KWD");
    }

    #[test]
    fn the_customer_code_appears_in_its_display_form() {
        for kind in every_kind() {
            let has_code = matches!(
                kind,
                NotificationKind::Earned { .. }
                    | NotificationKind::Ready { .. }
                    | NotificationKind::Reminder { .. }
                    | NotificationKind::ExpiryWarning { .. }
            );
            let name = kind.name();
            let email = render(&notification(kind));
            assert_eq!(email.html.contains("CB-7K2M9Q"), has_code, "{name}: html");
            assert_eq!(email.text.contains("CB-7K2M9Q"), has_code, "{name}: text");
            assert!(
                !email.text.contains("cb-7k2m9q"),
                "{name}: never the stored form"
            );
        }
    }

    #[test]
    fn the_release_date_is_a_human_readable_calendar_date() {
        assert_eq!(format_date(&release_date()), "23 December 2026");
        let email = render(&notification(every_kind().remove(0)));
        assert_eq!(
            email.preview_text,
            "It will be ready to spend on 23 December 2026."
        );
        assert!(email.text.contains("ready to spend on 23 December 2026"));
    }

    #[test]
    fn cashback_issued_at_once_is_said_to_be_ready_now() {
        let email = render(&notification(NotificationKind::Earned {
            amount: usd("5"),
            order_name: "#7".to_string(),
            release_at: None,
            code: None,
        }));
        assert!(email.text.contains("ready to spend now"));
        assert_eq!(email.subject, "You earned 5.00 USD in CashBack");
    }

    #[test]
    fn a_renamed_program_is_named_everywhere() {
        let mut n = notification(every_kind().remove(1));
        n.branding.display_name = "Store Credit".to_string();
        let email = render(&n);
        assert!(email.subject.contains("Store Credit"));
        assert!(!email.html.contains("CashBack"));
        assert!(!email.text.contains("CashBack"));
    }

    #[test]
    fn a_blank_display_name_falls_back_to_cashback() {
        let mut n = notification(every_kind().remove(1));
        n.branding.display_name = "  ".to_string();
        assert!(render(&n).subject.contains("CashBack"));
    }

    #[test]
    fn markup_in_merchant_and_platform_values_is_escaped() {
        let mut n = notification(NotificationKind::ClawedBack {
            amount: usd("1"),
            order_name: "#1\"><img src=x onerror=alert(1)>".to_string(),
            balance: usd("0"),
            debt: usd("0"),
        });
        n.branding.display_name = "<script>alert('x')</script>".to_string();
        n.branding.shop_name = "Tom & Jerry's".to_string();
        n.branding.preview_text = Some("<b>bold</b>".to_string());
        let email = render(&n);
        assert!(!email.html.contains("<script>"));
        assert!(email
            .html
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(!email.html.contains("<img"));
        assert!(email.html.contains("Tom &amp; Jerry&#39;s"));
        assert!(email.html.contains("&lt;b&gt;bold&lt;/b&gt;"));
        // The text part is not HTML: it carries the value as written.
        assert!(email.text.contains("<script>alert('x')</script>"));
    }

    #[test]
    fn only_web_links_are_linked() {
        let mut n = notification(every_kind().remove(1));
        n.branding.shop_url = Some("javascript:alert(1)".to_string());
        n.unsubscribe_url = Some("https://x.example/u?t=1> <evil".to_string());
        let email = render(&n);
        assert!(!email.html.contains("javascript:"));
        assert!(!email.html.contains("Unsubscribe"));
        assert!(email.headers.is_empty());
    }

    #[test]
    fn the_merchant_subject_and_preview_replace_the_defaults() {
        let mut n = notification(every_kind().remove(2));
        n.branding.subject = Some("Don't forget your\r\nBcc: credit".to_string());
        n.branding.preview_text = Some("Spend it this weekend".to_string());
        let email = render(&n);
        assert_eq!(email.subject, "Don't forget your Bcc: credit");
        assert_eq!(email.preview_text, "Spend it this weekend");
        assert!(email
            .html
            .contains("mso-hide:all;\">Spend it this weekend</div>"));
    }

    #[test]
    fn a_blank_merchant_subject_keeps_the_default() {
        let mut n = notification(every_kind().remove(2));
        n.branding.subject = Some("   ".to_string());
        assert_eq!(
            render(&n).subject,
            "You have 40.00 USD in CashBack to spend at Demo Shop"
        );
    }

    #[test]
    fn the_preview_text_sits_in_a_hidden_preheader() {
        let email = render(&notification(every_kind().remove(1)));
        let preheader = format!(
            "<div style=\"display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;mso-hide:all;\">{}</div>",
            email.preview_text
        );
        assert!(email.html.contains(&preheader));
    }

    #[test]
    fn an_unsubscribe_url_adds_the_one_click_headers_and_a_link() {
        let mut n = notification(every_kind().remove(2));
        n.unsubscribe_url = Some("https://demo.example.com/u?t=a&s=b".to_string());
        let email = render(&n);
        assert_eq!(
            email.headers,
            vec![
                (
                    "List-Unsubscribe".to_string(),
                    "<https://demo.example.com/u?t=a&s=b>".to_string()
                ),
                (
                    "List-Unsubscribe-Post".to_string(),
                    "List-Unsubscribe=One-Click".to_string()
                ),
            ]
        );
        assert!(email
            .html
            .contains("href=\"https://demo.example.com/u?t=a&amp;s=b\""));
        assert!(email
            .text
            .contains("Unsubscribe: https://demo.example.com/u?t=a&s=b"));
    }

    #[test]
    fn no_unsubscribe_url_means_no_list_headers() {
        let email = render(&notification(every_kind().remove(2)));
        assert!(email.headers.is_empty());
        assert!(!email.text.contains("Unsubscribe"));
    }

    #[test]
    fn a_clawback_mentions_the_debt_only_when_there_is_one() {
        let email = render(&notification(every_kind().remove(3)));
        assert!(email
            .text
            .contains("6.15 USD of the CashBack it earned has been taken back"));
        assert!(email.text.contains("1.05 USD could not be taken"));
        let no_debt = render(&notification(NotificationKind::ClawedBack {
            amount: usd("-6.15"),
            order_name: "#1001".to_string(),
            balance: usd("3"),
            debt: usd("0"),
        }));
        assert!(no_debt.text.contains("so 6.15 USD of"));
        assert!(!no_debt.text.contains("could not be taken"));
    }

    #[test]
    fn a_tier_upgrade_shows_the_percent_once() {
        assert_eq!(format_percent("7.5"), "7.5%");
        assert_eq!(format_percent("10%"), "10%");
        let email = render(&notification(every_kind().remove(4)));
        assert_eq!(
            email.subject,
            "Welcome to Gold: you now earn 7.5% in CashBack"
        );
    }
}
