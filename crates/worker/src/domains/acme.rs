//! Certificates from an ACME v2 CA (`ACME_DIRECTORY_URL`) with the HTTP-01
//! challenge, through instant-acme: the key authorization is published in
//! `ACME_CHALLENGE_DIR`, which nginx serves under
//! `/.well-known/acme-challenge/` on plain HTTP for every host. The account
//! is created once and its credentials kept in the certificate store.

use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use saas_core::domain_settings::DomainSettings;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::store;

/// A certificate and its key, PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: secrecy::SecretString,
}

/// What the account file holds: the credentials and the directory they
/// belong to (another `ACME_DIRECTORY_URL` needs another account).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

pub struct Acme {
    directory: String,
    contact: Option<String>,
    ca_bundle: Option<PathBuf>,
    account_file: PathBuf,
    challenge_dir: PathBuf,
    /// One account, made once, even when two tenants' operations ask at once.
    account: Mutex<Option<Account>>,
}

impl Acme {
    pub fn new(settings: &DomainSettings) -> Self {
        Self {
            directory: settings.acme_directory.clone(),
            contact: settings.acme_contact.clone(),
            ca_bundle: settings.acme_ca_bundle.clone(),
            account_file: settings.cert_store.join("acme-account.json"),
            challenge_dir: settings.challenge_dir.clone(),
            account: Mutex::new(None),
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, String> {
        // Both of rustls' providers are in the build (object_store brings
        // aws-lc-rs): the process default must be chosen before a client
        // is built. Already chosen is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        match &self.ca_bundle {
            Some(bundle) => Account::builder_with_root(bundle)
                .map_err(|err| format!("ACME_CA_BUNDLE {}: {err}", bundle.display())),
            None => Account::builder().map_err(|err| format!("the ACME HTTP client: {err}")),
        }
    }

    async fn account(&self) -> Result<Account, String> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let account = match self.read_account().await? {
            Some(credentials) => self
                .builder()?
                .from_credentials(credentials)
                .await
                .map_err(|err| format!("restoring the ACME account: {err}"))?,
            None => self.create_account().await?,
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    async fn read_account(&self) -> Result<Option<AccountCredentials>, String> {
        let text = match tokio::fs::read_to_string(&self.account_file).await {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(format!("{}: {err}", self.account_file.display())),
        };
        let stored: StoredAccount = serde_json::from_str(&text)
            .map_err(|err| format!("{}: {err}", self.account_file.display()))?;
        Ok((stored.directory == self.directory).then_some(stored.credentials))
    }

    async fn create_account(&self) -> Result<Account, String> {
        let contact = self.contact.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.directory.clone(),
                None,
            )
            .await
            .map_err(|err| format!("creating the ACME account at {}: {err}", self.directory))?;
        let stored = serde_json::to_vec(&StoredAccount {
            directory: self.directory.clone(),
            credentials,
        })
        .map_err(|err| format!("serialising the ACME account: {err}"))?;
        store::write_private(&self.account_file, &stored).await?;
        tracing::info!(directory = %self.directory, "ACME account created");
        Ok(account)
    }

    /// Orders a certificate for `domain`, answering its HTTP-01 challenge.
    pub async fn issue(&self, domain: &str) -> Result<Issued, String> {
        let account = self.account().await?;
        let identifiers = [Identifier::Dns(domain.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|err| format!("new ACME order: {err}"))?;
        let mut published = Vec::new();
        let answered = self.answer_challenges(&mut order, &mut published).await;
        let result = match answered {
            Ok(()) => finish(&mut order).await,
            Err(err) => Err(err),
        };
        for path in published {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn answer_challenges(
        &self,
        order: &mut instant_acme::Order,
        published: &mut Vec<PathBuf>,
    ) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization =
                authorization.map_err(|err| format!("ACME authorization: {err}"))?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("ACME authorization is {other:?}")),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .ok_or("the ACME CA offers no HTTP-01 challenge")?;
            let token = challenge.token.clone();
            if token.is_empty()
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("the ACME CA sent a malformed challenge token".to_owned());
            }
            let path = self.challenge_dir.join(&token);
            let answer = challenge.key_authorization();
            store::write_public(&path, answer.as_str().as_bytes()).await?;
            published.push(path);
            challenge
                .set_ready()
                .await
                .map_err(|err| format!("ACME challenge: {err}"))?;
        }
        Ok(())
    }
}

fn retries() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90))
}

async fn finish(order: &mut instant_acme::Order) -> Result<Issued, String> {
    let status = order
        .poll_ready(&retries())
        .await
        .map_err(|err| format!("the ACME order did not become ready: {err}"))?;
    if status != OrderStatus::Ready {
        return Err(format!(
            "the ACME CA refused the challenge (order {status:?})"
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|err| format!("finalising the ACME order: {err}"))?;
    let chain_pem = order
        .poll_certificate(&retries())
        .await
        .map_err(|err| format!("fetching the certificate: {err}"))?;
    Ok(Issued {
        chain_pem,
        key_pem: secrecy::SecretString::from(key_pem),
    })
}

/// Where a domain's files are in the store.
pub fn domain_dir(cert_store: &Path, domain: &str) -> PathBuf {
    cert_store.join(domain)
}
