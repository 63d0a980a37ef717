//! Outgoing email: over SMTP when `SMTP_URL` is set, otherwise kept in the
//! `email_outbox` table that operators read in admin.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use saas_core::outbox::{self, NewEmail};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use crate::error::AppError;
use crate::settings::PortalSettings;
use saas_core::error_chain::chain;

const SEND_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Mailer {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &PortalSettings) -> Result<Self, String> {
        let from: Mailbox = settings
            .smtp_from
            .parse()
            .map_err(|e| format!("SMTP_FROM: {e}"))?;
        let smtp = match &settings.smtp_url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| format!("SMTP_URL: {e}"))?
                    .timeout(Some(SEND_TIMEOUT))
                    .build(),
            ),
        };
        Ok(Self { smtp, from })
    }

    /// Sends `email`; without SMTP, or when delivery fails, it is kept in the
    /// outbox (with the error) so nothing is lost silently.
    pub async fn send(&self, db: &PgPool, email: &NewEmail<'_>) -> Result<(), AppError> {
        let error = match &self.smtp {
            None => None,
            Some(smtp) => match self.deliver(smtp, email).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    tracing::warn!(error = %err, purpose = email.purpose, "SMTP delivery failed; kept in the outbox");
                    Some(err)
                }
            },
        };
        let mut conn = db.acquire().await?;
        outbox::store(&mut conn, email, false, error.as_deref()).await?;
        Ok(())
    }

    async fn deliver(
        &self,
        smtp: &AsyncSmtpTransport<Tokio1Executor>,
        email: &NewEmail<'_>,
    ) -> Result<(), String> {
        let to: Mailbox = email.to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject)
            .body(email.body_text.to_owned())
            .map_err(|e| chain(&e))?;
        smtp.send(message).await.map(|_| ()).map_err(|e| chain(&e))
    }
}
