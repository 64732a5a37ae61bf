//! Each shop's platform credentials, read where its reference points: an
//! SSM SecureString (`GetParameter` with decryption, through a client built
//! on first use and sharing the project's HTTPS client), or an environment
//! variable under `CASHBACK_SECRET_` for local runs. Values never reach a
//! log or an error; the adapters keep them for the container's life (and
//! read them again after a refusal, `Connections::forget`).

use tokio::sync::OnceCell;

use cashback_app::secret_ref::{SecretPlace, SecretRef};
use cashback_platform_codes::{CredentialSource, FetchError};

/// The deployed source: the environment and SSM.
#[derive(Default)]
pub struct EnvAndSsm {
    ssm: OnceCell<aws_sdk_ssm::Client>,
}

impl EnvAndSsm {
    /// SSM's client is built from the project's AWS configuration on first use.
    pub fn new() -> EnvAndSsm {
        EnvAndSsm::default()
    }

    /// With a client made elsewhere (the container's shared configuration).
    pub fn with_client(client: aws_sdk_ssm::Client) -> EnvAndSsm {
        EnvAndSsm {
            ssm: OnceCell::new_with(Some(client)),
        }
    }

    async fn client(&self) -> &aws_sdk_ssm::Client {
        self.ssm
            .get_or_init(|| async {
                let config = cashback_edge::wiring::aws_config().await;
                aws_sdk_ssm::Client::new(&config)
            })
            .await
    }
}

#[async_trait::async_trait]
impl CredentialSource for EnvAndSsm {
    async fn fetch(&self, reference: &SecretRef) -> Result<String, FetchError> {
        match reference.place() {
            SecretPlace::Env(name) => std::env::var(name).map_err(|_| FetchError::Missing),
            SecretPlace::Ssm(name) => {
                use aws_sdk_ssm::error::SdkError;
                let output = self
                    .client()
                    .await
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|error| match error {
                        SdkError::ServiceError(service) => {
                            let service = service.into_err();
                            if service.is_parameter_not_found() {
                                FetchError::Missing
                            } else {
                                let code = aws_sdk_ssm::error::ProvideErrorMetadata::code(&service)
                                    .unwrap_or("unknown")
                                    .to_string();
                                if service.is_internal_server_error() || code.contains("Throttl") {
                                    FetchError::Unavailable(format!("SSM {name}: {code}"))
                                } else {
                                    FetchError::Refused(format!("SSM {name}: {code}"))
                                }
                            }
                        }
                        other => FetchError::Unavailable(format!("SSM {name}: {other}")),
                    })?;
                output
                    .parameter
                    .and_then(|p| p.value)
                    .ok_or(FetchError::Missing)
            }
        }
    }
}
