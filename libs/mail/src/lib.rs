//! Mail for every Portico process: a message is queued in the process's outbox inside the
//! transaction that calls for it ([`enqueue`]), then sent by the outbox worker ([`handler`])
//! over SMTP when `PORTICO_SMTP_URL` is set (`smtp://host:port`, `smtp://…?tls=required` for
//! STARTTLS, `smtps://…` for implicit TLS; credentials in the URL), otherwise written as one
//! `.eml` file per message under `$PORTICO_DATA_DIR/mail` (the embedded default).
//!
//! A crash between the commit and the send loses nothing; a crash between the send and the
//! outbox's acknowledgement sends the message again, with the same `Message-ID` (the outbox
//! row id), so mail clients show it once.

use std::{path::PathBuf, sync::Arc};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};
use portico_runtime::{
    config::{CommonConfig, ConfigError, Secret, Vars},
    db::DbConnection,
    outbox::{self, Handler, Item},
};
use serde::{Deserialize, Serialize};

/// The outbox topic of mail.
pub const TOPIC: &str = "mail";

/// Where mail goes.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `PORTICO_SMTP_URL`: the SMTP server; when unset, messages are written to [`Self::dir`].
    pub smtp_url: Option<Secret<String>>,
    /// `PORTICO_MAIL_FROM` (default `Portico <no-reply@portico.localhost>`).
    pub from: Mailbox,
    /// `$PORTICO_DATA_DIR/mail`: one `.eml` file per message when there is no SMTP server.
    pub dir: PathBuf,
}

impl MailConfig {
    /// Reads the mail settings.
    pub fn from_vars(vars: &Vars, common: &CommonConfig) -> Result<Self, ConfigError> {
        let from = vars.string("PORTICO_MAIL_FROM", "Portico <no-reply@portico.localhost>");
        let from = from.parse::<Mailbox>().map_err(|e| ConfigError {
            var: "PORTICO_MAIL_FROM".into(),
            message: format!("`{from}` is not a mailbox: {e}"),
        })?;
        let smtp_url = vars.raw("PORTICO_SMTP_URL");
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(ConfigError {
                var: "PORTICO_SMTP_URL".into(),
                message: "must start with smtp:// or smtps://".into(),
            });
        }
        Ok(MailConfig {
            smtp_url: smtp_url.map(Secret::new),
            from,
            dir: common.data_dir.join("mail"),
        })
    }

    /// Where messages end up, for the start-up banner (never the SMTP credentials).
    pub fn describe(&self) -> String {
        match &self.smtp_url {
            Some(url) => {
                let url = url.expose();
                let host = url.rsplit('@').next().unwrap_or(url);
                let host = host.trim_start_matches("smtps://").trim_start_matches("smtp://");
                format!("SMTP {}", host.split('?').next().unwrap_or(host))
            }
            None => format!("files in {}", self.dir.display()),
        }
    }
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// Queues `mail` in the caller's transaction (call [`outbox::Outbox::notify`] after commit).
pub fn enqueue(conn: &mut DbConnection, mail: &Mail) -> diesel::QueryResult<String> {
    let payload = serde_json::to_string(mail).map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
    outbox::enqueue(conn, TOPIC, &payload)
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Sends messages.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `config` (creates the mail directory when writing files).
    pub fn new(config: &MailConfig) -> Result<Self, String> {
        let transport = match &config.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| format!("PORTICO_SMTP_URL: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&config.dir)
                    .map_err(|e| format!("mail directory {}: {e}", config.dir.display()))?;
                Transport::Files(AsyncFileTransport::new(&config.dir))
            }
        };
        Ok(Mailer {
            transport,
            from: config.from.clone(),
        })
    }

    /// Sends one message; `id` becomes its `Message-ID`, so a resend is recognisably the same.
    pub async fn send(&self, id: &str, mail: &Mail) -> Result<(), String> {
        let to = mail
            .to
            .parse::<Mailbox>()
            .map_err(|e| format!("recipient is not an address: {e}"))?;
        let domain = self.from.email.domain().to_string();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{id}@{domain}>")))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(|e| format!("building the message: {e}"))?;
        match &self.transport {
            Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| format!("smtp: {e}")),
            Transport::Files(t) => t.send(message).await.map(|_| ()).map_err(|e| format!("mail file: {e}")),
        }
    }
}

/// The outbox handler that sends queued mail with `mailer`.
pub fn handler(mailer: Arc<Mailer>) -> Handler {
    Arc::new(move |item: Item| {
        let mailer = mailer.clone();
        Box::pin(async move {
            let mail: Mail =
                serde_json::from_str(&item.payload).map_err(|e| format!("queued mail is unreadable: {e}"))?;
            mailer.send(&item.id, &mail).await
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use portico_runtime::{db::Db, outbox::Outbox};
    use portico_testkit::{SmtpSink, TestDb};

    use super::*;

    fn config(smtp: Option<String>, dir: PathBuf) -> MailConfig {
        MailConfig {
            smtp_url: smtp.map(Secret::new),
            from: "Portico <no-reply@portico.test>".parse().unwrap(),
            dir,
        }
    }

    fn welcome() -> Mail {
        Mail {
            to: "ada@example.com".into(),
            subject: "Verify your address".into(),
            text: "Open this link:\n.\nhttps://example.com/verify?token=abc\n".into(),
        }
    }

    #[tokio::test]
    async fn queued_mail_reaches_an_smtp_server_once_with_a_stable_message_id() {
        for backend in portico_testkit::backends() {
            let test_db = TestDb::new(backend, "mail");
            let db = Db::connect(&test_db.url, outbox::MIGRATIONS, 2).await.unwrap();
            let sink = SmtpSink::start();
            let mailer = Arc::new(Mailer::new(&config(Some(sink.url()), PathBuf::from("/nonexistent"))).unwrap());
            let id = db
                .write(|conn| enqueue(conn, &welcome()).map_err(portico_runtime::db::DbError::from))
                .await
                .unwrap();
            let outbox = Outbox::new(db.clone());
            let handler = handler(mailer);
            assert_eq!(outbox.deliver_due(TOPIC, &handler).await.unwrap(), 1);
            // Delivered rows are not sent again.
            assert_eq!(outbox.deliver_due(TOPIC, &handler).await.unwrap(), 0);
            let got = sink.wait_for(1, Duration::from_secs(5));
            assert_eq!(got.len(), 1, "{backend:?}");
            assert_eq!(got[0].to, vec!["ada@example.com".to_string()]);
            assert_eq!(got[0].from, "no-reply@portico.test");
            assert_eq!(got[0].header("Subject").as_deref(), Some("Verify your address"));
            assert_eq!(got[0].header("Message-ID"), Some(format!("<{id}@portico.test>")));
            assert!(got[0].data.contains("token=abc"), "{}", got[0].data);
            let backlog = outbox.backlog(TOPIC).await.unwrap();
            assert_eq!((backlog.pending, backlog.delivered), (0, 1));
        }
    }

    #[tokio::test]
    async fn a_failed_send_stays_queued_and_is_retried_later() {
        let test_db = TestDb::new(portico_testkit::Backend::Sqlite, "mail-retry");
        let db = Db::connect(&test_db.url, outbox::MIGRATIONS, 2).await.unwrap();
        // Nothing listens on this port.
        let dead = portico_testkit::DeadPort::new();
        let mailer = Arc::new(Mailer::new(&config(Some(dead.url("smtp")), PathBuf::from("/nonexistent"))).unwrap());
        db.write(|conn| enqueue(conn, &welcome()).map_err(portico_runtime::db::DbError::from))
            .await
            .unwrap();
        let outbox = Outbox::new(db.clone());
        assert_eq!(outbox.deliver_due(TOPIC, &handler(mailer)).await.unwrap(), 0);
        let backlog = outbox.backlog(TOPIC).await.unwrap();
        assert_eq!((backlog.pending, backlog.delivered), (1, 0), "the message is kept");
        // The retry is scheduled later, so an immediate pass does not hammer the server.
        let sink = SmtpSink::start();
        let live = Arc::new(Mailer::new(&config(Some(sink.url()), PathBuf::from("/nonexistent"))).unwrap());
        assert_eq!(outbox.deliver_due(TOPIC, &handler(live)).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn without_smtp_each_message_is_an_eml_file() {
        let test_db = TestDb::new(portico_testkit::Backend::Sqlite, "mail-files");
        let db = Db::connect(&test_db.url, outbox::MIGRATIONS, 2).await.unwrap();
        let dir = std::env::temp_dir().join(format!("portico-mail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mailer = Arc::new(Mailer::new(&config(None, dir.clone())).unwrap());
        for _ in 0..2 {
            db.write(|conn| enqueue(conn, &welcome()).map_err(portico_runtime::db::DbError::from))
                .await
                .unwrap();
        }
        let outbox = Outbox::new(db.clone());
        assert_eq!(outbox.deliver_due(TOPIC, &handler(mailer)).await.unwrap(), 2);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("Subject: Verify your address"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_description_never_shows_smtp_credentials() {
        let c = config(
            Some("smtp://user:hunter2@mail.example.com:587?tls=required".into()),
            PathBuf::new(),
        );
        assert_eq!(c.describe(), "SMTP mail.example.com:587");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
