//! SES v2 delivery: `SendEmail` with raw content.
//!
//! Raw content sends the same MIME message the outbox writes, so our own
//! headers (List-Unsubscribe, List-Unsubscribe-Post) reach the customer
//! unchanged; SES adds its own Message-ID and DKIM signature. SES v2 accepts
//! raw messages up to 40 MB; ours are a few kilobytes.
//!
//! SES v2 has no idempotency key: a send whose response is lost (a timeout
//! after SES accepted it) may have gone out. So `SendEmail` runs with the
//! SDK's own retries turned off: one `send` is at most one request SES can
//! accept, and every retry is the caller's decision, made with the error in
//! hand ([`NotifyError::is_retryable`]). The caller records the notification
//! before sending so a retried run skips it; see docs/email.md.
//!
//! Every send names the configuration set (`CASHBACK_SES_CONFIGURATION_SET`;
//! template.yaml creates one and sets it), whose event destination reports
//! bounces and complaints (see [`crate::feedback`]); an adapter built without
//! one says so in the log, once. Before its first send the adapter asks SES
//! about the account (`GetAccount`, once per container, off the cold start):
//! an account still in the SES sandbox, which delivers only to verified
//! addresses, is logged as a warning with the way out (README: Deploying,
//! step 1). A failed look-up (an emulator without the call, a missing
//! permission) is logged and never stops a send.
//!
//! Logs carry the notification kind, the shop and the SES message id, never
//! the address or the code. SES error messages can quote addresses, so the
//! text kept in a [`NotifyError`] has anything that looks like one redacted.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use tracing::instrument;

use cashback_app::notify::{Notification, Notifier, NotifyError, Sent};
use cashback_core::ids::Email;

use crate::mime::{compose, Envelope};
use crate::templates::render;
use crate::{env_opt, parse_from, system_clock, Clock, ConfigError};

/// How the SES adapter sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesConfig {
    /// A verified SES identity (the address, or its domain).
    pub from: Email,
    /// Configuration set for event publishing (bounces, complaints, the
    /// suppressions SES reports only after the send).
    pub configuration_set: Option<String>,
    /// Overrides the SES endpoint (moto, LocalStack). When `None`, aws-config
    /// still honours `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SESV2`.
    pub endpoint_url: Option<String>,
    /// Bounds one `SendEmail` call, so an unanswered request ends as
    /// `Unavailable` well inside a Lambda's timeout instead of the function
    /// being killed mid-send with nothing recorded.
    pub send_timeout: Duration,
    /// Asks SES about the account (sandbox, paused) once, alongside the
    /// first send, and logs a warning when it cannot deliver to everyone.
    pub check_account: bool,
}

impl SesConfig {
    pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(from: Email) -> SesConfig {
        SesConfig {
            from,
            configuration_set: None,
            endpoint_url: None,
            send_timeout: Self::DEFAULT_SEND_TIMEOUT,
            check_account: true,
        }
    }

    /// `CASHBACK_MAIL_FROM` (required) and `CASHBACK_SES_CONFIGURATION_SET`
    /// (optional; blank means none).
    pub fn from_env() -> Result<SesConfig, ConfigError> {
        let from =
            env_opt("CASHBACK_MAIL_FROM").ok_or(ConfigError::Missing("CASHBACK_MAIL_FROM"))?;
        let mut config = SesConfig::new(parse_from("CASHBACK_MAIL_FROM", &from)?);
        config.configuration_set = env_opt("CASHBACK_SES_CONFIGURATION_SET");
        Ok(config)
    }
}

/// Sends notifications through SES v2.
pub struct SesNotifier {
    client: aws_sdk_sesv2::Client,
    config: SesConfig,
    clock: Clock,
    /// What `GetAccount` said, asked once alongside the first send.
    account: Arc<tokio::sync::OnceCell<AccountStatus>>,
}

/// What SES says of the account, as far as sending goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Out of the sandbox, sending enabled.
    Production,
    /// Still in the sandbox: mail goes only to verified addresses.
    Sandbox,
    /// Sending is paused for the whole account.
    SendingPaused,
    /// The account could not be read (no permission, an emulator).
    Unknown,
}

impl AccountStatus {
    /// From `GetAccount`'s `ProductionAccessEnabled` and `SendingEnabled`.
    pub fn of(production_access: bool, sending_enabled: bool) -> AccountStatus {
        match (production_access, sending_enabled) {
            (_, false) => AccountStatus::SendingPaused,
            (false, true) => AccountStatus::Sandbox,
            (true, true) => AccountStatus::Production,
        }
    }

    /// The warning to log at start, if any.
    pub fn warning(self) -> Option<&'static str> {
        match self {
            AccountStatus::Sandbox => Some(
                "the SES account is in the sandbox: emails reach verified addresses only; \
                 request production access (README: Deploying, step 1)",
            ),
            AccountStatus::SendingPaused => {
                Some("sending is paused for the SES account: no email will be delivered")
            }
            AccountStatus::Production | AccountStatus::Unknown => None,
        }
    }
}

impl SesNotifier {
    /// Uses a client built elsewhere; `config.endpoint_url` is not applied
    /// (the client already has its endpoint).
    pub fn new(client: aws_sdk_sesv2::Client, config: SesConfig) -> SesNotifier {
        if config.configuration_set.is_none() {
            tracing::warn!(
                "no SES configuration set (CASHBACK_SES_CONFIGURATION_SET): bounces and \
                 complaints will not be reported, so their addresses are not suppressed"
            );
        }
        SesNotifier {
            client,
            config,
            clock: system_clock(),
            account: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// What SES says of the account: asked once, logged as a warning when
    /// still in the sandbox or paused.
    pub async fn account_status(&self) -> AccountStatus {
        account_status(&self.client, &self.account).await
    }

    /// Starts the account check in the background, once: the first send
    /// does not wait for it.
    fn check_account_once(&self) {
        if !self.config.check_account || self.account.initialized() {
            return;
        }
        let (client, cell) = (self.client.clone(), Arc::clone(&self.account));
        tokio::spawn(async move {
            account_status(&client, &cell).await;
        });
    }

    /// Builds the client from a loaded AWS config, applying
    /// `config.endpoint_url` when set. Call once, outside the handler.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, config: SesConfig) -> SesNotifier {
        let mut builder = aws_sdk_sesv2::config::Builder::from(sdk);
        if let Some(url) = &config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        SesNotifier::new(aws_sdk_sesv2::Client::from_conf(builder.build()), config)
    }

    /// Loads the AWS config from the environment (region, credentials,
    /// `AWS_ENDPOINT_URL`) and [`SesConfig::from_env`].
    pub async fn from_env() -> Result<SesNotifier, ConfigError> {
        let config = SesConfig::from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(SesNotifier::from_sdk_config(&sdk, config))
    }

    /// Replaces the clock the `Date:` header is taken from.
    pub fn with_clock(mut self, clock: Clock) -> SesNotifier {
        self.clock = clock;
        self
    }

    pub fn client(&self) -> &aws_sdk_sesv2::Client {
        &self.client
    }
}

async fn account_status(
    client: &aws_sdk_sesv2::Client,
    cell: &tokio::sync::OnceCell<AccountStatus>,
) -> AccountStatus {
    *cell
        .get_or_init(|| async {
            let status = match client
                .get_account()
                .customize()
                .config_override(
                    aws_sdk_sesv2::config::Builder::default()
                        .retry_config(RetryConfig::disabled())
                        .timeout_config(
                            TimeoutConfig::builder()
                                .connect_timeout(Duration::from_millis(3100))
                                .operation_attempt_timeout(Duration::from_secs(3))
                                .build(),
                        ),
                )
                .send()
                .await
            {
                Ok(account) => AccountStatus::of(
                    account.production_access_enabled(),
                    account.sending_enabled(),
                ),
                Err(error) => {
                    tracing::info!(
                        error = %redact_addresses(&DisplayErrorContext(&error).to_string()),
                        "could not read the SES account (sandbox check skipped)"
                    );
                    AccountStatus::Unknown
                }
            };
            if let Some(warning) = status.warning() {
                tracing::warn!(status = ?status, "{warning}");
            }
            status
        })
        .await
}

/// SES tag values allow ASCII letters, digits, `_` and `-` only, at most
/// 256 characters.
fn tag_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

fn tag(name: &str, value: &str) -> Result<MessageTag, NotifyError> {
    MessageTag::builder()
        .name(name)
        .value(tag_value(value))
        .build()
        .map_err(|error| NotifyError::Rejected(format!("message tag: {error}")))
}

#[async_trait]
impl Notifier for SesNotifier {
    #[instrument(
        name = "ses.send",
        skip(self, notification),
        fields(kind = notification.kind.name(), shop = %notification.shop, message_id)
    )]
    async fn send(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        self.check_account_once();
        let email = render(notification);
        let envelope = Envelope {
            from: &self.config.from,
            date: (self.clock)(),
        };
        let message = compose(notification, &email, &envelope)?;
        let raw = RawMessage::builder()
            .data(Blob::new(message.into_bytes()))
            .build()
            .map_err(|error| NotifyError::Rejected(format!("raw message: {error}")))?;

        let result = self
            .client
            .send_email()
            .from_email_address(self.config.from.as_str())
            .destination(
                Destination::builder()
                    .to_addresses(notification.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .email_tags(tag("kind", notification.kind.name())?)
            .email_tags(tag("shop", notification.shop.as_str())?)
            .set_configuration_set_name(self.config.configuration_set.clone())
            .customize()
            .config_override(
                aws_sdk_sesv2::config::Builder::default()
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        // Replaces the client's timeouts as a whole, so the
                        // connect timeout is restated (the SDK default).
                        TimeoutConfig::builder()
                            .connect_timeout(Duration::from_millis(3100))
                            .operation_attempt_timeout(self.config.send_timeout)
                            .build(),
                    ),
            )
            .send()
            .await;

        match result {
            Ok(output) => {
                let message_id = output.message_id().unwrap_or_default().to_string();
                tracing::Span::current().record("message_id", message_id.as_str());
                tracing::info!("sent through SES");
                Ok(Sent { message_id })
            }
            Err(error) => {
                let mapped = map_sdk_error(&error);
                tracing::warn!(
                    error = %redact_addresses(&DisplayErrorContext(&error).to_string()),
                    retryable = mapped.is_retryable(),
                    "SES refused or failed the send"
                );
                Err(mapped)
            }
        }
    }
}

/// Sorts an SDK failure into what the caller does next: wait (Throttled),
/// retry (Unavailable), stop the series (Suppressed) or give up (Rejected).
fn map_sdk_error<R>(error: &SdkError<SendEmailError, R>) -> NotifyError
where
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => map_service_error(service.err()),
        // Our request could not even be built: retrying builds it the same.
        SdkError::ConstructionFailure(_) => {
            NotifyError::Rejected(redact_addresses(&DisplayErrorContext(error).to_string()))
        }
        // The request may not have left: a refused connection, DNS.
        SdkError::DispatchFailure(_) => NotifyError::Unavailable(format!(
            "could not reach SES: {}",
            redact_addresses(&DisplayErrorContext(error).to_string())
        )),
        // A timeout or a garbled response: SES may have accepted the
        // message. Said in the text for whoever reads the log.
        _ => NotifyError::Unavailable(format!(
            "SES may have accepted the message: {}",
            redact_addresses(&DisplayErrorContext(error).to_string())
        )),
    }
}

fn map_service_error(error: &SendEmailError) -> NotifyError {
    let code = error.code().unwrap_or("Unknown");
    // Display names the exception and its message, for modelled and
    // unmodelled errors alike.
    let described = redact_addresses(&error.to_string());
    let message = &described;
    match error {
        SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => {
            NotifyError::Throttled
        }
        // SES v2 accepts a message to an address on the account-level
        // suppression list and reports it later as a bounce event; a
        // synchronous rejection that says so is the only case seen here.
        SendEmailError::MessageRejected(_) if mentions_suppression(message) => {
            NotifyError::Suppressed
        }
        SendEmailError::AccountSuspendedException(_)
        | SendEmailError::SendingPausedException(_)
        | SendEmailError::MailFromDomainNotVerifiedException(_)
        | SendEmailError::MessageRejected(_)
        | SendEmailError::BadRequestException(_)
        // The configuration set named in our config does not exist: a
        // deployment error that a retry will not mend.
        | SendEmailError::NotFoundException(_) => NotifyError::Rejected(described),
        _ => match code {
            "Throttling" | "ThrottlingException" | "TooManyRequestsException"
            | "LimitExceededException" => NotifyError::Throttled,
            "MessageRejected" if mentions_suppression(message) => NotifyError::Suppressed,
            "MessageRejected" | "AccountSuspendedException" | "SendingPausedException"
            | "MailFromDomainNotVerifiedException" | "BadRequestException"
            | "NotFoundException" | "InvalidParameterValue" | "ValidationException" => {
                NotifyError::Rejected(described)
            }
            // Unknown codes (5xx InternalFailure, ServiceUnavailable, ...)
            // are treated as passing trouble.
            _ => NotifyError::Unavailable(described),
        },
    }
}

fn mentions_suppression(message: &str) -> bool {
    message.to_ascii_lowercase().contains("suppress")
}

/// Replaces every whitespace-separated token containing `@` with
/// `<redacted>`: SES quotes the failing identity or recipient in messages.
fn redact_addresses(text: &str) -> String {
    text.split(' ')
        .map(|token| {
            if token.contains('@') {
                "<redacted>"
            } else {
                token
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::error::ErrorMetadata;
    use aws_sdk_sesv2::types::error::{
        AccountSuspendedException, LimitExceededException, MessageRejected, NotFoundException,
        SendingPausedException, TooManyRequestsException,
    };

    #[test]
    fn throttling_and_quota_errors_ask_to_wait() {
        let too_many =
            SendEmailError::TooManyRequestsException(TooManyRequestsException::builder().build());
        let limit =
            SendEmailError::LimitExceededException(LimitExceededException::builder().build());
        let generic = SendEmailError::generic(ErrorMetadata::builder().code("Throttling").build());
        for error in [too_many, limit, generic] {
            assert!(matches!(map_service_error(&error), NotifyError::Throttled));
        }
    }

    #[test]
    fn account_and_message_problems_are_rejections_without_addresses() {
        let rejected = SendEmailError::MessageRejected(
            MessageRejected::builder()
                .message("Email address is not verified: ann@example.com")
                .build(),
        );
        match map_service_error(&rejected) {
            NotifyError::Rejected(text) => {
                assert!(!text.contains("ann@example.com"), "{text}");
                assert!(text.contains("<redacted>"));
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let suspended =
            SendEmailError::AccountSuspendedException(AccountSuspendedException::builder().build());
        let paused =
            SendEmailError::SendingPausedException(SendingPausedException::builder().build());
        let not_found = SendEmailError::NotFoundException(NotFoundException::builder().build());
        for error in [suspended, paused, not_found] {
            let mapped = map_service_error(&error);
            assert!(matches!(mapped, NotifyError::Rejected(_)), "{mapped:?}");
            assert!(!mapped.is_retryable());
        }
    }

    #[test]
    fn a_rejection_that_names_the_suppression_list_stops_the_series() {
        let error = SendEmailError::MessageRejected(
            MessageRejected::builder()
                .message("Address is on the account-level suppression list")
                .build(),
        );
        assert!(matches!(map_service_error(&error), NotifyError::Suppressed));
    }

    #[test]
    fn unknown_service_errors_are_retryable() {
        let error =
            SendEmailError::generic(ErrorMetadata::builder().code("InternalFailure").build());
        assert!(map_service_error(&error).is_retryable());
    }

    #[test]
    fn tag_values_keep_to_the_ses_alphabet() {
        assert_eq!(tag_value("demo.myshopify.com"), "demo_myshopify_com");
        assert_eq!(tag_value("clawed_back"), "clawed_back");
    }

    #[test]
    fn config_from_env_requires_a_sender() {
        // Read only: no test sets these variables, so they are unset here
        // unless the developer's shell set them, in which case skip.
        if std::env::var_os("CASHBACK_MAIL_FROM").is_some() {
            return;
        }
        assert!(matches!(
            SesConfig::from_env(),
            Err(ConfigError::Missing("CASHBACK_MAIL_FROM"))
        ));
    }
}
