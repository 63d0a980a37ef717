//! Outgoing email. A request only stores its message in the `email_outbox`
//! table (within the per-recipient limit); a background sender delivers
//! stored messages over SMTP when `SMTP_URL` is set. Without SMTP they stay
//! in the outbox, which operators read in admin. The sender also delivers
//! what admin stores there (admin has no SMTP settings of its own).
//!
//! So no request waits for an SMTP server, and a sign-up answers in the same
//! time whether its address is new or already has an account.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use saas_core::error_chain::{Chain, chain};
use saas_core::outbox::{self, Enqueued, NewEmail, Outbox, OutboxEmail};
use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::settings::PortalSettings;

const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claimed message is left to one sender: longer than a send.
const LEASE: Duration = Duration::from_secs(60);
/// How often the sender looks for due messages when nobody wakes it.
const POLL: Duration = Duration::from_secs(5);
const BATCH: i64 = 20;

#[derive(Clone)]
pub struct Mailer {
    outbox: Outbox,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    wake: Arc<Notify>,
}

impl Mailer {
    pub fn new(settings: &PortalSettings, outbox: Outbox) -> Result<Self, String> {
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
        Ok(Self {
            outbox,
            smtp,
            from,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Stores `email` for the sender, in `conn`'s transaction when it is
    /// one. Call [`Mailer::wake`] after that transaction commits.
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        email: &NewEmail<'_>,
    ) -> Result<Enqueued, sqlx::Error> {
        self.outbox.enqueue(conn, email).await
    }

    /// Tells the sender that a message is waiting (no-op without SMTP).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the background sender when SMTP is configured.
    pub fn spawn_sender(&self, db: PgPool) {
        let Some(smtp) = self.smtp.clone() else {
            return;
        };
        let mailer = self.clone();
        tokio::spawn(async move {
            loop {
                match mailer.send_due(&db, &smtp).await {
                    // A full batch: more may be due at once.
                    Ok(n) if n as i64 == BATCH => continue,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(error = %Chain(&err), "the email sender cannot read the outbox")
                    }
                }
                let _ = tokio::time::timeout(POLL, mailer.wake.notified()).await;
            }
        });
    }

    async fn send_due(
        &self,
        db: &PgPool,
        smtp: &AsyncSmtpTransport<Tokio1Executor>,
    ) -> Result<usize, sqlx::Error> {
        let due = outbox::claim_due(db, BATCH, LEASE).await?;
        for email in &due {
            match self.deliver(smtp, email).await {
                Ok(()) => outbox::mark_sent(db, email.id).await?,
                Err(err) => {
                    tracing::warn!(error = %err, purpose = email.purpose, "SMTP delivery failed; kept in the outbox for another attempt");
                    outbox::mark_failed(db, email.id, &err).await?;
                }
            }
        }
        Ok(due.len())
    }

    async fn deliver(
        &self,
        smtp: &AsyncSmtpTransport<Tokio1Executor>,
        email: &OutboxEmail,
    ) -> Result<(), String> {
        let to: Mailbox = email
            .to_address
            .parse()
            .map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .body(email.body_text.clone())
            .map_err(|e| chain(&e))?;
        smtp.send(message).await.map(|_| ()).map_err(|e| chain(&e))
    }
}
